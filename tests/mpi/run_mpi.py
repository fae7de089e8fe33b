#!/usr/bin/env python3
"""The MPI tests of ctnn::dist: runs test_mpi.cpp's program under mpirun, one mode per run.

Usage:
  run_mpi.py <ctnn_mpi_tests binary> [--np N] [--timeout SECONDS]
  run_mpi.py --no-mpi            (meson found no MPI: skip)

Every run is `mpirun -np 2` on localhost only (Open MPI: --oversubscribe, TCP over lo, no
binding), bounded by a timeout after which the whole process group is killed, so a hang is a
failure, never a stuck test. Checks:
  equal, broadcast  exit 0 and every rank prints "rank R: <mode> OK"
  mismatch          exit 0, every rank OK and every rank caught "the ranks' models differ"
  throw             rank 1 throws mid-step, uncaught: mpirun exits non-zero within the timeout
                    and the output holds "ctnn rank 1: injected failure in step 3"
  throw-scope       rank 1's exception leaves the ctnn::dist::Context scope: the same, with
                    "ctnn rank 1: an exception left the scope of ctnn::dist::Context"
Exit status: 0 all passed, 1 a check failed, 77 skipped (no MPI, or no mpirun).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

SKIP = 77


def mpirun_command(mpirun: str, np: int) -> list[str]:
    version = subprocess.run([mpirun, "--version"], capture_output=True, text=True).stdout
    cmd = [mpirun, "-np", str(np)]
    if "Open MPI" in version or "OpenRTE" in version:
        cmd += ["--oversubscribe", "--bind-to", "none",
                "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo",
                "--mca", "oob_tcp_if_include", "lo", "--mca", "mpi_yield_when_idle", "1"]
    return cmd


def run(cmd: list[str], timeout: float) -> tuple[int | None, str, float]:
    """(exit status or None on timeout, stdout + stderr, seconds)."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out, time.monotonic() - start
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out, time.monotonic() - start


def main() -> int:
    args = sys.argv[1:]
    if not args or args[0] == "--no-mpi":
        print("SKIP: meson found no MPI when it configured this build "
              "(install libopenmpi-dev and openmpi-bin, then reconfigure)")
        return SKIP
    binary = args[0]
    np, timeout = 2, 120.0
    if "--np" in args:
        np = int(args[args.index("--np") + 1])
    if "--timeout" in args:
        timeout = float(args[args.index("--timeout") + 1])
    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if not mpirun:
        print("SKIP: mpirun not found (install openmpi-bin)")
        return SKIP
    base = mpirun_command(mpirun, np) + [binary]

    failed = []
    for mode in ["equal", "broadcast", "mismatch", "throw", "throw-scope"]:
        cmd = base + [mode]
        print("== " + " ".join(cmd), flush=True)
        status, out, seconds = run(cmd, timeout)
        problems = []
        if status is None:
            problems.append(f"did not end within {timeout:.0f} s (a hang)")
        ok_lines = [f"rank {r}: {mode} OK" for r in range(np)]
        if mode in ("equal", "broadcast", "mismatch"):
            if status not in (None, 0):
                problems.append(f"exit status {status}, expected 0")
            problems += [f"no '{line}'" for line in ok_lines if line not in out]
            if mode == "mismatch":
                for r in range(np):
                    if out.count(f"rank {r}: caught: ctnn::dist::allreduce_gradients: the ranks' models differ") != 2:
                        problems.append(f"rank {r} did not catch the allreduce_gradients mismatch twice")
                    if out.count(f"rank {r}: caught: ctnn::dist::broadcast_parameters: the ranks' models differ") != 2:
                        problems.append(f"rank {r} did not catch the broadcast_parameters mismatch twice")
        else:
            if status == 0:
                problems.append("exit status 0, expected non-zero")
            expected = ("ctnn rank 1: injected failure in step 3" if mode == "throw" else
                        "ctnn rank 1: an exception left the scope of ctnn::dist::Context")
            if expected not in out:
                problems.append(f"no '{expected}' in the output")
        if "FAILED" in out:
            problems.append("a rank reported FAILED")
        print(out.rstrip())
        verdict = "ok" if not problems else "FAILED: " + "; ".join(problems)
        print(f"== {mode}: {verdict} (exit status {status}, {seconds:.1f} s)\n", flush=True)
        if problems:
            failed.append(mode)
    if failed:
        print("failed modes: " + ", ".join(failed))
        return 1
    print("all MPI modes passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
