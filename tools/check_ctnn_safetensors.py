#!/usr/bin/env python3
"""Check that safetensors files saved by ctnn load in PyTorch with identical tensors.

Run from the repository root, after building the examples:

    /usr/bin/python3 tools/check_ctnn_safetensors.py --exe build/gcc/examples/save_load
    /usr/bin/python3 tools/check_ctnn_safetensors.py --dir DIR     # files save_load already wrote

examples/save_load.cpp writes the chapter's files (x-file, x-files, mydict, mlp.params) and
expected.txt: every tensor it saved, and the MLP's input and output, as text (tests/reference
format, '%.9g' round-trips float32 exactly). This script reads each safetensors file on its
own (the safetensors Python package is not a Debian package): it checks the layout (8-byte
length, header padded to 8, JSON without duplicate keys, {"format": "pt"} metadata,
contiguous offsets covering the data exactly), compares every tensor bit for bit with
expected.txt, loads mlp.params into nn.Sequential(nn.Linear(20, 256), nn.ReLU(),
nn.Linear(256, 10)) with load_state_dict(strict=True), and compares its output on the input
with ctnn's. The verdict goes to tests/reference/ctnn_saved_check.txt (commit it); the exit
status is 0 only if every check passed.
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import torch
from torch import nn

OUT = os.path.join("tests", "reference", "ctnn_saved_check.txt")
DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8), "F16": (torch.float16, 2),
          "BF16": (torch.bfloat16, 2)}


def read_reference(path):
    """tests/reference text format -> dict name -> float32 tensor."""
    out, name, shape, vals = {}, None, None, []

    def flush():
        if name is not None:
            out[name] = torch.tensor(vals, dtype=torch.float64).to(torch.float32).reshape(shape)

    with open(path) as f:
        assert f.readline().strip() == "ctnn-reference 1", "bad magic in " + path
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            parts = line.split()
            if parts[0] == "tensor":
                flush()
                name, rank = parts[1], int(parts[2])
                shape, vals = [int(d) for d in parts[3:3 + rank]], []
            else:
                vals += [float(v) for v in parts]
    flush()
    return out


def read_safetensors(path):
    """Parse and validate one file; returns (metadata, dict name -> tensor, notes)."""
    data = open(path, "rb").read()
    notes = []
    assert len(data) >= 8, "shorter than 8 bytes"
    (n,) = struct.unpack("<Q", data[:8])
    assert 8 + n <= len(data), "header length %d beyond the file" % n
    assert (8 + n) % 8 == 0, "data does not start at a multiple of 8"

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), "duplicate keys %r" % keys
        return dict(pairs)

    header = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=no_duplicates)
    metadata = header.pop("__metadata__", None)
    body = data[8 + n:]
    spans, tensors = [], {}
    for name, info in header.items():
        assert set(info) == {"dtype", "shape", "data_offsets"}, "%s: keys %r" % (name, sorted(info))
        dtype, size = DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        numel = 1
        for d in info["shape"]:
            numel *= d
        assert e - b == numel * size, "%s: %d bytes for %d elements" % (name, e - b, numel)
        raw = bytearray(body[b:e])
        t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(info["shape"]).clone()
        spans.append((b, e, name))
    at = 0
    for b, e, name in sorted(spans):
        assert b == at, "%s: starts at %d, expected %d (gap or overlap)" % (name, b, at)
        at = e
    assert at == len(body), "%d trailing bytes" % (len(body) - at)
    notes.append("layout ok: header %d bytes (padded to 8), %d tensors, %d data bytes" % (n, len(tensors), len(body)))
    return metadata, tensors, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--exe", help="path of the built examples/save_load: run it into a temporary directory")
    g.add_argument("--dir", help="a directory save_load already wrote")
    ap.add_argument("--out", default=OUT, help="where to write the verdict (default %(default)s)")
    args = ap.parse_args()

    tmp = None
    if args.exe:
        tmp = tempfile.TemporaryDirectory(prefix="ctnn_saved_")
        subprocess.run([args.exe, tmp.name], check=True, stdout=subprocess.DEVNULL)
        directory = tmp.name
    else:
        directory = args.dir

    expected = read_reference(os.path.join(directory, "expected.txt"))
    lines, failures = [], 0

    def check(ok, what):
        nonlocal failures
        failures += not ok
        lines.append(("PASS " if ok else "FAIL ") + what)

    loaded = {}
    for fname in ["x-file", "x-files", "mydict", "mlp.params"]:
        try:
            metadata, tensors, notes = read_safetensors(os.path.join(directory, fname))
        except Exception as e:  # report, don't stop
            check(False, "%s: cannot read: %s" % (fname, e))
            continue
        loaded[fname] = tensors
        check(metadata == {"format": "pt"}, "%s: __metadata__ %r" % (fname, metadata))
        for n in notes:
            check(True, "%s: %s" % (fname, n))
        want = {k[len(fname) + 1:]: v for k, v in expected.items() if k.startswith(fname + ".")}
        check(sorted(want) == sorted(tensors), "%s: tensor names %s" % (fname, sorted(tensors)))
        for name, t in tensors.items():
            w = want.get(name)
            same = (w is not None and t.dtype == torch.float32 and list(t.shape) == list(w.shape)
                    and torch.equal(t.view(torch.int32), w.view(torch.int32)))
            check(same, "%s: '%s' %s %s identical to what ctnn saved" % (fname, name, str(t.dtype), list(t.shape)))

    if "mlp.params" in loaded:
        net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
        result = net.load_state_dict(loaded["mlp.params"], strict=True)
        check(not result.missing_keys and not result.unexpected_keys,
              "mlp.params: load_state_dict(strict=True) into nn.Sequential(nn.Linear(20, 256), nn.ReLU(), "
              "nn.Linear(256, 10))")
        net.eval()
        with torch.no_grad():
            y = net(expected["input"])
        diff = (y - expected["output"]).abs().max().item()
        check(torch.allclose(y, expected["output"], rtol=1e-5, atol=1e-6),
              "mlp.params: PyTorch's output on ctnn's input matches ctnn's output (max abs diff %.3g)" % diff)

    verdict = "ALL PASS" if failures == 0 else "%d FAILED" % failures
    text = ["# tools/check_ctnn_safetensors.py: files saved by ctnn (examples/save_load.cpp) read by PyTorch %s"
            % torch.__version__,
            "# regenerate: /usr/bin/python3 tools/check_ctnn_safetensors.py --exe <build>/examples/save_load"]
    text += lines + ["verdict: " + verdict]
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(text) + "\n")
    print("\n".join(text))
    if tmp:
        tmp.cleanup()
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
