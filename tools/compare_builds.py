#!/usr/bin/env python3
"""Two builds of the same benchmarks side by side: median times and their ratio.

    python3 tools/compare_builds.py --a release build/bench/bench_forward.json build/bench/bench_lenet.json \\
                                    --b "O2" build/bench-o2/bench_forward.json build/bench-o2/bench_lenet.json

Each file is Google Benchmark JSON (aggregates or single runs; several files per side, and
several runs of one binary, are pooled: the median is over every repetition found). The ratio is
b / a (above 1: b is slower). Used for the -O2 build beside the release build (README
"Benchmarks") and for interleaved A/B runs of a change (same benchmark names on both sides).
"""
import argparse
import collections
import json
import statistics

TIME_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def medians(paths):
    """{benchmark name: median seconds} over the individual repetitions (or the median aggregates)."""
    runs, aggregates = collections.defaultdict(list), collections.defaultdict(list)
    for path in paths:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        for b in data.get("benchmarks", []):
            name = b.get("run_name", b["name"])
            t = b["real_time"] if "real_time" in name else b["cpu_time"]
            t *= TIME_UNIT[b.get("time_unit", "ns")]
            if b.get("run_type") == "aggregate":
                if b.get("aggregate_name") == "median":
                    aggregates[name].append(t)
            else:
                runs[name].append(t)
    names = set(runs) | set(aggregates)
    return {n: statistics.median(runs[n] or aggregates[n]) for n in names}


def fmt(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", nargs="+", required=True, metavar=("LABEL", "JSON"), help="label, then JSON files")
    ap.add_argument("--b", nargs="+", required=True, metavar=("LABEL", "JSON"), help="label, then JSON files")
    args = ap.parse_args()
    (la, *fa), (lb, *fb) = args.a, args.b
    ma, mb = medians(fa), medians(fb)
    common = sorted(set(ma) & set(mb))
    if not common:
        raise SystemExit("no benchmark appears on both sides")
    print(f"| benchmark | {la} | {lb} | {lb} / {la} |")
    print("|---|---|---|---|")
    for n in common:
        print(f"| {n} | {fmt(ma[n])} | {fmt(mb[n])} | {mb[n] / ma[n]:.2f} |")


if __name__ == "__main__":
    main()
