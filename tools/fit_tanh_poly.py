"""Fit the polynomial that src/cpu/unary.c uses for float32 tanh near zero.

    python tools/fit_tanh_poly.py

For |x| < 0.625 the kernel computes tanh(x) = x + x^3 * P(x^2) with P of
degree 5. P is a least-squares fit on Chebyshev nodes, weighted so that
what is minimised is the relative error of tanh itself, against tanh in
40-digit arithmetic (mpmath). The script prints the coefficients as float32
hex literals and the worst error in float32 ulps over a dense grid
(0.65 ulp when this was written); above 0.625 the kernel uses
1 - 2/(exp(2|x|) + 1), which has no cancellation there.
"""
import numpy as np
from mpmath import mp

mp.dps = 40
LIMIT, DEGREE, NODES = 0.625, 5, 400


def p_exact(x):
    """(tanh(x) - x) / x^3, the function P approximates, at x > 0."""
    x = mp.mpf(float(x))
    return float((mp.tanh(x) - x) / x**3)


def fit():
    k = np.arange(NODES)
    z = LIMIT**2 * (1 - np.cos(np.pi * (k + 0.5) / NODES)) / 2
    x = np.sqrt(z)
    target = np.array([p_exact(v) for v in x])
    weight = x**3 / np.array([float(mp.tanh(mp.mpf(float(v)))) for v in x])
    vander = np.vander(z, DEGREE + 1, increasing=True)
    coef, *_ = np.linalg.lstsq(vander * weight[:, None], target * weight, rcond=None)
    return coef.astype(np.float32)


def worst_ulps(coef):
    x = np.linspace(1e-3, LIMIT, 4001).astype(np.float32)
    z = x * x
    p = coef[-1]
    for c in coef[-2::-1]:
        p = p * z + c
    y = (x + x * z * p).astype(np.float64)
    exact = np.array([float(mp.tanh(mp.mpf(float(v)))) for v in x])
    return np.max(np.abs(y - exact) / np.spacing(exact.astype(np.float32)))


if __name__ == "__main__":
    coef = fit()
    for i, c in enumerate(coef):
        mantissa, exponent = float(c).hex().split("p")
        print(f"c{i} = {mantissa.rstrip('0')}p{exponent}f")
    print(f"worst error: {worst_ulps(coef):.2f} ulp")
