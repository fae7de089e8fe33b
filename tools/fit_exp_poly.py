#!/usr/bin/env python3
"""Fits the polynomial of ctnn's vector exp (include/ctnn/kernels/eltwise.hpp, exp_signed).

e^r ~ 1 + c1 r + ... + c6 r^6 on |r| <= ln2/2 (the reduced argument), minimizing the largest
relative error: weighted least squares, reweighted towards the worst points (Lawson's method),
then rounded to float32. Prints the coefficients, highest degree first (the order of the Horner
steps in the kernel), and the relative error of the rounded polynomial in double precision.

    python3 tools/fit_exp_poly.py        (needs numpy: Debian's python3-numpy)
"""
import numpy as np

DEGREE = 6
half_ln2 = np.log(2) / 2
r = np.linspace(-half_ln2 * 1.0005, half_ln2 * 1.0005, 200001)
A = np.vstack([r**k for k in range(1, DEGREE + 1)]).T
target, weight = np.exp(r) - 1, np.exp(-r)  # relative error of 1 + A c against e^r
lawson = np.ones_like(r)
for _ in range(80):
    c, *_ = np.linalg.lstsq(A * (weight * lawson)[:, None], target * weight * lawson, rcond=None)
    err = np.abs((A @ c - target) * weight)
    lawson *= err / err.max() + 1e-3
    lawson /= lawson.mean()
c32 = c.astype(np.float32)
p = 1 + sum(float(c32[k - 1]) * r**k for k in range(1, DEGREE + 1))
for k in range(DEGREE, 0, -1):
    print(f"c{k} = {float(c32[k - 1])!r}")
print("max relative error:", np.abs(p / np.exp(r) - 1).max())
