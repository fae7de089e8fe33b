#!/usr/bin/env python3
"""ctnn's benchmark report: a markdown table and a PNG chart from Google Benchmark JSON files.

    build/bench/bench/bench_lenet --benchmark_out=lenet.json --benchmark_out_format=json \\
        --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
    python3 tools/plot_benchmarks.py build/bench/*.json --png docs/benchmarks.png
    python3 tools/plot_benchmarks.py --summary build/release/bench-summary/*.json   # a few lines

Rows: the workloads of bench_kernels, bench_forward and bench_lenet (with the issue's targets),
then bench_resnet's (D2L's ResNet-18 at 28x28 and 96x96, BN-LeNet; ctnn against libtorch and
2 threads against 1, no targets).

Benchmarks are named BM_<workload>/<implementation>/<arg>[/process_time|/real_time] (see
bench/common.hpp). For each one the script takes the median over the repetitions (the
"median" aggregate, or the median of the individual runs), pairs ctnn with every other
implementation of the same workload and argument (speedup = baseline time / ctnn time), and
turns FLOP/s counters into % of the FMA peak that BM_fma_peak/ctnn measured in the same run.
It works with whatever is present: without libtorch/oneDNN/Eigen only the plain-loop baselines.
The chart needs python3-matplotlib; the table and the summary do not.
"""
import argparse
import collections
import json
import statistics
import sys

TIME_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
IMPL_LABEL = {"loops": "plain loops", "eigen": "Eigen", "libtorch": "libtorch", "onednn": "oneDNN",
              "onednn_nchw": "oneDNN (NCHW, reorders timed)"}
IMPL_ORDER = ["libtorch", "onednn", "onednn_nchw", "eigen", "loops"]

# (workload, arg): label, the targets for ctnn, and (optionally) which ctnn variant the
# row measures ("ctnn" by default; "ctnn_frozen" is the same network after ctnn::freeze):
#   time_max: ctnn's median time at most this many seconds; peak: at least this fraction of the
#   FMA peak; <impl>: ctnn at least this many times faster than <impl>.
MLP_B1_TARGETS = {"time_max": 300e-9, "libtorch": 25.0, "eigen": 1.0, "loops": 1.0}
MLP_B64_TARGETS = {"peak": 0.75, "onednn": 1.2}
WORKLOADS = [
    (("mlp_forward", "1"), "MLP 20-256-10 forward, batch 1", MLP_B1_TARGETS),
    (("mlp_forward", "1"), "MLP 20-256-10 forward, batch 1, ctnn::freeze", MLP_B1_TARGETS, "ctnn_frozen"),
    (("mlp_forward", "64"), "MLP 20-256-10 forward, batch 64", MLP_B64_TARGETS),
    (("mlp_forward", "64"), "MLP 20-256-10 forward, batch 64, ctnn::freeze", MLP_B64_TARGETS, "ctnn_frozen"),
    (("mlp_forward", "256"), "MLP 20-256-10 forward, batch 256", {}),
    (("sgemm", "256"), "sgemm 256x256x256", {"peak": 0.90}),
    (("conv_relu", "1"), "Conv2d 64-64 3x3 pad 1 + ReLU, [1,64,56,56]", {"libtorch": 1.05, "peak": 0.90}),
    (("lenet_forward", "256"), "LeNet forward, batch 256", {"libtorch": 4.0}),
    (("lenet_train_step", "256"), "LeNet training step, batch 256", {"libtorch": 4.0}),
]
# bench_resnet: D2L chapter 8's BatchNorm networks (no targets yet); the arg of the ResNet-18 rows
# is <image side>/<batch>.
WORKLOADS_CH8 = [
    (("resnet18_train_step", "28/64"), "ResNet-18 training step, 28x28, batch 64", {}),
    (("resnet18_train_step", "96/64"), "ResNet-18 training step, 96x96, batch 64", {}),
    (("resnet18_eval_forward", "28/64"), "ResNet-18 forward, eval mode, 28x28, batch 64", {}),
    (("resnet18_eval_forward", "96/64"), "ResNet-18 forward, eval mode, 96x96, batch 64", {}),
    (("bn_lenet_train_step", "256"), "BN-LeNet training step, batch 256", {}),
]
EPOCH_STEPS = 60000 / 256  # Fashion-MNIST training images / batch
EPOCH_TARGET_S = 1.5
THREADS_TARGET = 1.8
# Thread scaling, ctnn at 2 threads against its own 1 thread (wall time): workload, label, target.
THREADS = [("lenet_train_step_threads", "LeNet training step, 2 threads (wall time)", THREADS_TARGET)]
THREADS_CH8 = [
    ("resnet18_train_step_threads", "ResNet-18 training step, 28x28, batch 64, 2 threads (wall time)", None),
    ("bn_lenet_train_step_threads", "BN-LeNet training step, batch 256, 2 threads (wall time)", None),
    # what bounds the step's scaling: its memory-bound passes over the parameters, and one
    # product's arithmetic alone (docs/benchmarks.md)
    ("resnet18_parameter_passes_threads", "ResNet-18 zero_grad + SGD update, 2 threads (wall time)", None),
    ("resnet18_stage3_conv_threads", "ResNet-18 stage-3 conv forward, batch 64, 2 threads (wall time)", None),
]
# Google Benchmark appends these to a name when a benchmark sets them itself.
NAME_OPTIONS = ("min_time:", "iterations:", "repeats:", "threads:", "manual_time")


def load_file(path):
    """{(workload, impl, arg): {"time": seconds, "flops": FLOP/s or None}} (medians) of one file."""
    with open(path) as f:
        data = json.load(f)
    runs = collections.defaultdict(list)  # key -> [(time, flops)] of individual repetitions
    medians = {}
    for b in data.get("benchmarks", []):
        name = b.get("run_name", b["name"])
        real = name.endswith("/real_time")
        for suffix in ("/process_time", "/real_time"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        parts = [p for p in name.split("/") if not p.startswith(NAME_OPTIONS)]
        if len(parts) < 2 or not parts[0].startswith("BM_"):
            continue
        key = (parts[0][3:], parts[1], "/".join(parts[2:]))  # BM_fma_peak/ctnn has no arg
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        time = b["real_time" if real else "cpu_time"] * TIME_UNIT[b.get("time_unit", "ns")]
        value = (time, b.get("FLOP/s"))
        if b.get("run_type") == "aggregate":
            medians[key] = value
        else:
            runs[key].append(value)
    result = {}
    for key, values in runs.items():
        flops = [v[1] for v in values if v[1] is not None]
        result[key] = {"time": statistics.median(v[0] for v in values),
                       "flops": statistics.median(flops) if flops else None}
    for key, (time, flops) in medians.items():
        result[key] = {"time": time, "flops": flops}
    return result, data.get("context", {})


def load(paths):
    """All files' medians; each entry also gets "peak": the FMA peak measured by its own file
    (every bench binary measures it), else the first peak found. Returns results, peaks, context."""
    result, peaks, context = {}, [], {}
    for path in paths:
        res, ctx = load_file(path)
        context = context or ctx
        peak = res.get(("fma_peak", "ctnn", ""), {}).get("flops")
        if peak:
            peaks.append(peak)
        for value in res.values():
            value["peak"] = peak
        result.update(res)
    for value in result.values():
        value["peak"] = value["peak"] or (peaks[0] if peaks else None)
    return result, peaks, context


def fmt_time(s):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def fmt_pct(x):
    return "" if x is None else f"{100 * x:.0f}%"


def fraction_of_peak(value):
    return value["flops"] / value["peak"] if value["peak"] and value["flops"] else None


def build_rows(res):
    """One row per (workload, comparison): dicts with label, ctnn, baseline, base_time, ratio,
    peak and base_peak (fractions of the FMA peak), target (text), met (True/False/None)."""
    rows = workload_rows(res, WORKLOADS) + thread_rows(res, THREADS)
    step = res.get(("lenet_train_step", "ctnn", "256"))
    if step:
        epoch = step["time"] * EPOCH_STEPS
        rows.append(dict(label="Fashion-MNIST epoch, estimated (60000/256 training steps)", ctnn=epoch,
                         baseline="—", base_time=None, ratio=None, peak=None,
                         target=f"<= {EPOCH_TARGET_S:g} s", met=epoch <= EPOCH_TARGET_S, impl=None))
    return rows + workload_rows(res, WORKLOADS_CH8) + thread_rows(res, THREADS_CH8)


def workload_rows(res, workloads):
    """build_rows' rows of ctnn and its baselines for each (workload, arg) of `workloads`."""
    rows = []
    for (workload, arg), label, targets, *variant in workloads:
        ours = res.get((workload, variant[0] if variant else "ctnn", arg))
        if ours is None:
            continue
        frac = fraction_of_peak(ours)
        # ctnn on its own: the absolute targets
        goals, met = [], []
        if "time_max" in targets:
            goals.append(f"<= {fmt_time(targets['time_max'])}")
            met.append(ours["time"] <= targets["time_max"])
        if "peak" in targets and frac is not None:
            goals.append(f">= {targets['peak'] * 100:.0f}% of peak")
            met.append(frac >= targets["peak"])
        rows.append(dict(label=label, ctnn=ours["time"], baseline="—", base_time=None, ratio=None, peak=frac,
                         target=", ".join(goals), met=all(met) if met else None, impl=None))
        impls = sorted({k[1] for k in res if k[0] == workload and k[2] == arg and not k[1].startswith("ctnn")},
                       key=lambda i: (IMPL_ORDER.index(i) if i in IMPL_ORDER else len(IMPL_ORDER), i))
        for impl in impls:
            base = res[(workload, impl, arg)]
            ratio = base["time"] / ours["time"]
            want = targets.get(impl)
            base_frac = fraction_of_peak(base)
            rows.append(dict(label=label, ctnn=ours["time"], baseline=IMPL_LABEL.get(impl, impl),
                             base_time=base["time"], ratio=ratio, peak=frac, base_peak=base_frac,
                             target=f">= {want:g}x" if want else "", met=(ratio >= want) if want else None,
                             impl=impl))
    return rows


def thread_rows(res, threads):
    """Thread scaling: ctnn's step at 2 threads against its own 1-thread time (wall time)."""
    rows = []
    for workload, label, target in threads:
        one = res.get((workload, "ctnn", "1"))
        two = res.get((workload, "ctnn", "2"))
        if one and two:
            ratio = one["time"] / two["time"]
            rows.append(dict(label=label, ctnn=two["time"], baseline="ctnn, 1 thread", base_time=one["time"],
                             ratio=ratio, peak=None, target=f">= {target:g}x" if target else "",
                             met=ratio >= target if target else None, impl="ctnn_1_thread"))
    return rows


def fmt_peaks(peaks):
    """"147 GFLOP/s" or "139-148 GFLOP/s" (one per file)"""
    lo, hi = min(peaks) / 1e9, max(peaks) / 1e9
    return f"{lo:.0f} GFLOP/s" if round(lo) == round(hi) else f"{lo:.0f}-{hi:.0f} GFLOP/s"


def markdown(rows, peaks, context):
    out = []
    cpus = context.get("num_cpus")
    mhz = context.get("mhz_per_cpu")
    if context:
        load = context.get("load_avg") or ["?"]
        load = f"{load[0]:.1f}" if isinstance(load[0], (int, float)) else load[0]
        out.append(f"Run {context.get('date', '?')} on {context.get('host_name', '?')}"
                   f" ({cpus} CPUs, {mhz} MHz, load average {load} at the start); medians of the"
                   f" repetitions; speedup = baseline time / ctnn time.")
    if peaks:
        out.append(f"FMA peak of one core (BM_fma_peak, measured by each binary; % of peak uses the same"
                   f" binary's): {fmt_peaks(peaks)}.")
    out.append("")
    out.append("| workload | ctnn | ctnn % of peak | baseline | baseline time | baseline % of peak | speedup | target | met? |")
    out.append("|---|---:|---:|---|---:|---:|---:|---|---|")
    previous = None
    for r in rows:
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        base_time = fmt_time(r["base_time"]) if r["base_time"] else ""
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] else ""
        # the workload, ctnn's time and % of peak once per workload
        first = r["label"] != previous
        previous = r["label"]
        label, ours, frac = (r["label"], fmt_time(r["ctnn"]), fmt_pct(r["peak"])) if first else ("", "", "")
        out.append(f"| {label} | {ours} | {frac} | {r['baseline']} | {base_time} | {fmt_pct(r.get('base_peak'))} | "
                   f"{ratio} | {r['target']} | {met} |")
    return "\n".join(out)


def summary(rows, peaks):
    """A few lines for the end of the main job."""
    out = ["== benchmark summary (one core unless noted; medians; speedup = baseline time / ctnn time)"]
    if peaks:
        out.append(f"  FMA peak of this core: {fmt_peaks(peaks)}")
    by_label = collections.OrderedDict()
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    for label, group in by_label.items():
        head = group[0]
        line = f"  {label}: ctnn {fmt_time(head['ctnn'])}"
        if head["peak"] is not None:
            line += f" ({fmt_pct(head['peak'])} of peak)"
        comps = [f"{r['baseline']} {fmt_time(r['base_time'])} ({r['ratio']:.1f}x)" for r in group if r["ratio"]]
        if comps:
            line += "; " + ", ".join(comps)
        goals = [f"{'' if r['ratio'] is None else 'vs ' + r['baseline'] + ' '}{r['target']} "
                 f"{'ok' if r['met'] else 'MISSED'}" for r in group if r["met"] is not None]
        if goals:
            line += "  [" + "; ".join(goals) + "]"
        out.append(line)
    return "\n".join(out)


def plot(rows, peaks, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"libtorch": "#ee4c2c", "onednn": "#0068b5", "onednn_nchw": "#7fb3e0", "eigen": "#6a3d9a",
              "loops": "#999999", "ctnn_1_thread": "#33a02c"}
    pairs = [r for r in rows if r["ratio"]]
    efficiency = [r for r in rows if r["baseline"] == "—" and r["peak"] is not None]
    fig, axes = plt.subplots(1, 2 if efficiency else 1, figsize=(13 if efficiency else 8, 0.42 * len(pairs) + 1.8),
                             gridspec_kw={"width_ratios": [3, 2]} if efficiency else None, squeeze=False)
    ax = axes[0][0]
    y = list(range(len(pairs)))[::-1]
    ax.barh(y, [r["ratio"] for r in pairs], color=[colors.get(r["impl"], "#555555") for r in pairs])
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['label']}\nvs {r['baseline']}" for r in pairs], fontsize=7)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for yi, r in zip(y, pairs):
        ax.text(r["ratio"], yi, f" {r['ratio']:.2f}x", va="center", fontsize=7)
        want = r["target"].startswith(">=") and float(r["target"][3:].rstrip("x"))
        if want:
            ax.plot([want, want], [yi - 0.4, yi + 0.4], color="black", linewidth=2)
    ax.set_xlabel("speedup of ctnn (baseline time / ctnn time, log scale); black tick = target")
    ax.set_title("ctnn vs baselines (one thread unless noted)")
    if efficiency:
        ax2 = axes[0][1]
        y2 = list(range(len(efficiency)))[::-1]
        ax2.barh(y2, [100 * r["peak"] for r in efficiency], color="#1f78b4")
        ax2.set_yticks(y2)
        ax2.set_yticklabels([r["label"] for r in efficiency], fontsize=7)
        ax2.set_xlim(0, 100)
        for yi, r in zip(y2, efficiency):
            ax2.text(100 * r["peak"], yi, f" {100 * r['peak']:.0f}%", va="center", fontsize=7)
            if "of peak" in r["target"]:
                want = float(r["target"].split("%")[0].split()[-1])
                ax2.plot([want, want], [yi - 0.4, yi + 0.4], color="black", linewidth=2)
        ax2.set_xlabel(f"ctnn, % of FMA peak\n(measured in the same run: {fmt_peaks(peaks)})")
        ax2.set_title("ctnn's compute efficiency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="+", help="Google Benchmark JSON output files")
    ap.add_argument("--png", help="write the chart here (e.g. docs/benchmarks.png)")
    ap.add_argument("--summary", action="store_true", help="print a few lines instead of the table")
    args = ap.parse_args(argv)
    res, peaks, context = load(args.json)
    rows = build_rows(res)
    if not rows:
        print("plot_benchmarks.py: no ctnn benchmarks in " + " ".join(args.json), file=sys.stderr)
        return 1
    print(summary(rows, peaks) if args.summary else markdown(rows, peaks, context))
    if args.png:
        plot(rows, peaks, args.png)
        print(f"\nchart written to {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
