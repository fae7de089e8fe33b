#!/usr/bin/env python3
"""Compile-fail tests for ctnn's compile-time shape errors.

Usage:
  run_compile_fail.py --cxx <compiler> [--cxx-arg A ...] --include <dir> [--flag F ...]
                      [--jobs N] <case.cpp | directory> ...

Each case is a tiny program that includes <ctnn/ctnn.hpp>, with `#ifdef CTNN_EXPECT_COMPILE_FAIL`
selecting a wrong network and `#else` the fixed one. It is compiled twice with
`-std=c++20 -fsyntax-only` plus the flags:
  (a) as-is: must succeed (a positive control, so a typo cannot make a case pass);
  (b) with -DCTNN_EXPECT_COMPILE_FAIL: must fail, and the diagnostics must match
      - every `// EXPECT: <python regex>` line of the case (re.search over all diagnostics), and
      - when present, `// EXPECT-ERRORS: <n>`: exactly n lines containing ": error:".
Regex hints: g++ prints `<5> >`, clang `<5>>` (use `\\s?>`); clang may print `5UL` (use `5(UL)?`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import time
from pathlib import Path

EXPECT_RE = re.compile(r"^\s*//\s*EXPECT:\s?(.*?)\s*$")
EXPECT_ERRORS_RE = re.compile(r"^\s*//\s*EXPECT-ERRORS:\s*(\d+)\s*$")
ERROR_LINE_RE = re.compile(r": (fatal )?error:")
SHOW_LINES = 30


def parse_case(path: Path):
    """Returns (regexes, expected_error_count or None, problems)."""
    regexes, count, problems = [], None, []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = EXPECT_ERRORS_RE.match(line)
        if m:
            count = int(m.group(1))
            continue
        m = EXPECT_RE.match(line)
        if m:
            try:
                regexes.append((m.group(1), re.compile(m.group(1))))
            except re.error as e:
                problems.append(f"line {n}: bad regex {m.group(1)!r}: {e}")
    return regexes, count, problems


def compile_once(cmd):
    env = dict(os.environ, LC_ALL="C", LANG="C")  # English, plain quotes in the diagnostics
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       errors="replace", env=env)
    return p.returncode, p.stdout


def run_case(path: Path, base_cmd):
    """Returns (name, ok, reason, diagnostics, seconds)."""
    name = path.stem
    start = time.monotonic()
    regexes, count, problems = parse_case(path)
    if problems:
        return name, False, "; ".join(problems), "", time.monotonic() - start
    if not regexes and count is None:
        return name, False, "no '// EXPECT:' or '// EXPECT-ERRORS:' line in the case", "", time.monotonic() - start

    rc, out = compile_once(base_cmd + [str(path)])
    if rc != 0:
        return (name, False, "the correct variant (without CTNN_EXPECT_COMPILE_FAIL) does not compile",
                out, time.monotonic() - start)

    rc, out = compile_once(base_cmd + ["-DCTNN_EXPECT_COMPILE_FAIL", str(path)])
    elapsed = time.monotonic() - start
    if rc == 0:
        return name, False, "the wrong variant (-DCTNN_EXPECT_COMPILE_FAIL) compiled", out, elapsed
    reasons = []
    for text, rx in regexes:
        if not rx.search(out):
            reasons.append(f"no match for EXPECT: {text}")
    errors = [l for l in out.splitlines() if ERROR_LINE_RE.search(l)]
    if count is not None and len(errors) != count:
        reasons.append(f"expected {count} error line(s), got {len(errors)}")
    if reasons:
        return name, False, "; ".join(reasons), out, elapsed
    return name, True, "", out, elapsed


def collect(paths):
    cases = []
    for p in map(Path, paths):
        if p.is_dir():
            cases.extend(sorted(p.glob("*.cpp")))
        elif p.is_file():
            cases.append(p)
        else:
            sys.exit(f"run_compile_fail.py: no such case or directory: {p}")
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cxx", required=True, help="the C++ compiler")
    ap.add_argument("--cxx-arg", action="append", default=[],
                    help="extra words of the compiler command (e.g. from a ccache wrapper); repeatable")
    ap.add_argument("--include", action="append", default=[], help="include directory; repeatable")
    ap.add_argument("--flag", action="append", default=[], help="extra compiler flag; repeatable")
    ap.add_argument("--jobs", "-j", type=int, default=2, help="cases compiled in parallel (default 2)")
    ap.add_argument("--timing", action="store_true", help="print the seconds each case took")
    ap.add_argument("cases", nargs="+", help="case files, or directories (every *.cpp in them)")
    args = ap.parse_args()

    cases = collect(args.cases)
    if not cases:
        print("compile-fail: no cases found")
        return 1
    base = [args.cxx, *args.cxx_arg, "-std=c++20", "-fsyntax-only"]
    base += [f"-I{d}" for d in args.include] + args.flag

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_case, c, base) for c in cases]
        for fut in futures:  # report in case order
            name, ok, reason, out, secs = fut.result()
            t = f" ({secs:.2f} s)" if args.timing else ""
            if ok:
                print(f"PASS {name}{t}", flush=True)
            else:
                failed += 1
                print(f"FAIL {name}: {reason}{t}", flush=True)
                lines = out.splitlines()
                for line in lines[:SHOW_LINES]:
                    print(f"    {line}")
                if len(lines) > SHOW_LINES:
                    print(f"    ... ({len(lines) - SHOW_LINES} more lines)")
    print(f"compile-fail: {len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
