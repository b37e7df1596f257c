"""Fit the polynomial that src/cpu/unary.c uses for float32 exp.

    python tools/fit_exp_poly.py

After the reduction x = k ln2 + r, |r| <= ln2/2, the kernel computes
exp(r) = 1 + r + r^2 Q(r) with Q of degree 4, evaluated by Horner's rule in
fused multiply-adds (six in all, one fewer than the degree-7 Taylor
polynomial, for the same accuracy). Q is a least-squares fit on Chebyshev
nodes, weighted so that what is minimised is the relative error of exp(r),
against exp in 40-digit arithmetic (mpmath). The script prints the
coefficients as float32 hex literals and the worst error of the polynomial
alone in float32 ulps over a dense grid, each fused multiply-add rounded
once as the kernel's are (0.67 ulp when this was written).
"""
import numpy as np
from mpmath import mp

mp.dps = 40
LIMIT, DEGREE, NODES = float(np.log(2)) / 2 * 1.0005, 4, 600   # a little past ln2/2


def exp_exact(r):
    return np.array([float(mp.exp(mp.mpf(float(v)))) for v in r])


def fit():
    k = np.arange(NODES)
    r = LIMIT * np.cos(np.pi * (k + 0.5) / NODES)
    e = exp_exact(r)
    target = (e - 1 - r) / r**2                   # Q(r) exactly
    weight = r**2 / e                             # error in Q, relative to exp(r)
    vander = np.vander(r, DEGREE + 1, increasing=True)
    coef, *_ = np.linalg.lstsq(vander * weight[:, None], target * weight, rcond=None)
    return coef.astype(np.float32)


def fma32(a, b, c):
    """float32 a * b + c rounded once (the product of two float32 is exact in float64)."""
    return (a.astype(np.float64) * b + c).astype(np.float32)


def worst_ulps(coef):
    r = np.linspace(-LIMIT, LIMIT, 20001).astype(np.float32)
    p = np.full_like(r, coef[-1])
    for c in coef[-2::-1]:
        p = fma32(p, r, c)
    p = fma32(fma32(p, r, np.float32(1)), r, np.float32(1))
    exact = exp_exact(r)
    return np.max(np.abs(p - exact) / np.spacing(exact.astype(np.float32)))


if __name__ == "__main__":
    coef = fit()
    for i, c in enumerate(coef):
        mantissa, exponent = float(c).hex().split("p")
        print(f"q{i} = {mantissa.rstrip('0')}p{exponent}f")
    print(f"worst error: {worst_ulps(coef):.2f} ulp")
