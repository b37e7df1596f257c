#!/usr/bin/env python3
"""Derive the BatchNorm backward pass with sympy, from the paper's chain rule
to the closed form the C kernel computes, and check every step.

Ioffe & Szegedy (2015), Algorithm 1, for one channel holding a batch of n values:

    mu     = 1/n sum_i x_i
    sigma2 = 1/n sum_i (x_i - mu)^2
    xhat_i = (x_i - mu) / sqrt(sigma2 + eps)
    y_i    = gamma * xhat_i + beta

and the paper's backpropagation lines (dy_i = dl/dy_i are free symbols):

    dl/dxhat_i = dl/dy_i * gamma
    dl/dsigma2 = sum_i dl/dxhat_i * (x_i - mu) * (-1/2) * (sigma2 + eps)^(-3/2)
    dl/dmu     = (sum_i dl/dxhat_i * -1/sqrt(sigma2 + eps)) + dl/dsigma2 * (sum_i -2 (x_i - mu)) / n
    dl/dx_i    = dl/dxhat_i / sqrt(sigma2 + eps) + dl/dsigma2 * 2 (x_i - mu) / n + dl/dmu / n
    dl/dgamma  = sum_i dl/dy_i * xhat_i
    dl/dbeta   = sum_i dl/dy_i

For each requested n the script
  1. applies the four lines step by step, checking each one against sympy's
     partial derivative of the corresponding node of the graph;
  2. shows that the second term of dl/dmu vanishes, because sum_i (x_i - mu) = 0;
  3. shows that dl/dx_i equals the kernel's closed form
         dx_i = (1/n) * rstd * (n*g_i - sum g - xhat_i * sum(g*xhat)),
         g = dy*gamma, rstd = 1/sqrt(sigma2 + eps),
     and that its two sums are gamma * dl/dbeta and gamma * dl/dgamma;
  4. checks the paper's result against direct differentiation of the loss
     L = sum_i dy_i * y_i(x) (sympy.diff through mu(x) and sigma2(x)),
     fully symbolically and again at exact random rational points;
  5. derives the eval-mode backward, dx = dy * gamma / sqrt(running_var + eps).

Symbolic equalities are decided exactly: eps is replaced by 1/rstd^2 - sigma2
(rstd > 0), a change of variables that turns every sqrt(sigma2 + eps) into
1/rstd, so each difference becomes a polynomial in x, dy, gamma, mu, rstd and
`expand(difference) == 0` settles it. The script exits with status 1 if any
identity fails.

    python tools/derive_bn_backward.py              # n = 2..6
    python tools/derive_bn_backward.py -n 2 3 4
"""
import argparse
import random
import sys
import time

import sympy as sp

GAMMA = sp.Symbol("gamma", real=True)
BETA = sp.Symbol("beta", real=True)
EPS = sp.Symbol("eps", positive=True)
MU = sp.Symbol("mu", real=True)
SIGMA2 = sp.Symbol("sigma2", nonnegative=True)
RSTD = sp.Symbol("rstd", positive=True)
RUNNING_MEAN = sp.Symbol("running_mean", real=True)
RUNNING_VAR = sp.Symbol("running_var", nonnegative=True)
HALF = sp.Rational(1, 2)


class Report:
    """Prints the derivation and remembers whether every check held."""

    def __init__(self):
        self.failures = []

    def say(self, text=""):
        print(text)

    def show(self, name, expr):
        print(f"    {name} = {sp.sstr(expr)}")

    def check(self, what, difference):
        """A check holds when `difference` expands to exactly zero."""
        self._record(what, sp.expand(difference) == 0)

    def check_each(self, what, differences):
        """One check over a list of differences, one per batch element i."""
        self._record(f"{what}   (i = 1..{len(differences)})",
                     all(sp.expand(d) == 0 for d in differences))

    def _record(self, what, ok):
        print(f"    [{'OK' if ok else 'FAILED'}] {what}")
        if not ok:
            self.failures.append(what)


def in_rstd(expr):
    """Rewrite sqrt(sigma2 + eps) as 1/rstd by substituting eps = 1/rstd^2 - sigma2."""
    return expr.subs(EPS, 1 / RSTD**2 - SIGMA2)


def forward_graph(x):
    """Algorithm 1 with mu and sigma2 kept as the graph's own nodes (symbols)."""
    xhat = [(xi - MU) / sp.sqrt(SIGMA2 + EPS) for xi in x]
    y = [GAMMA * h + BETA for h in xhat]
    return xhat, y


def paper_backward(x, dy):
    """The paper's backpropagation lines, written literally, over mu and sigma2 symbols."""
    n = len(x)
    dxhat = [d * GAMMA for d in dy]
    dsigma2 = sum(dh * (xi - MU) for dh, xi in zip(dxhat, x)) * (-HALF) * (SIGMA2 + EPS) ** sp.Rational(-3, 2)
    dmu_first = sum(dh * (-1 / sp.sqrt(SIGMA2 + EPS)) for dh in dxhat)
    dmu_factor = sum(-2 * (xi - MU) for xi in x) / n   # the (sum -2(x_i - mu))/n in the second term
    dmu = dmu_first + dsigma2 * dmu_factor
    dx = [dh / sp.sqrt(SIGMA2 + EPS) + dsigma2 * 2 * (xi - MU) / n + dmu / n
          for dh, xi in zip(dxhat, x)]
    xhat, _ = forward_graph(x)
    dgamma = sum(d * h for d, h in zip(dy, xhat))
    dbeta = sum(dy)
    return dict(dxhat=dxhat, dsigma2=dsigma2, dmu_first=dmu_first, dmu_factor=dmu_factor,
                dmu=dmu, dx=dx, dgamma=dgamma, dbeta=dbeta)


def closed_form(x, dy):
    """The kernel's formula, with xhat_i = (x_i - mu) * rstd."""
    n = len(x)
    g = [d * GAMMA for d in dy]
    xhat = [(xi - MU) * RSTD for xi in x]
    sum_g = sum(g)
    sum_gxhat = sum(gi * h for gi, h in zip(g, xhat))
    return [sp.Rational(1, n) * RSTD * (n * gi - sum_g - h * sum_gxhat) for gi, h in zip(g, xhat)]


def check_lines_against_graph(rep, x, dy, p):
    """Each paper line is the chain rule on the graph x -> (mu, sigma2) -> xhat -> y -> l."""
    n = len(x)
    _, y = forward_graph(x)
    loss = sum(d * yi for d, yi in zip(dy, y))            # l as a function of the graph nodes
    sigma2_of = sum((xi - MU) ** 2 for xi in x) / n       # the sigma2 node as a function of x and mu
    mu_of = sum(x) / n                                    # the mu node as a function of x
    xh = sp.symbols(f"xhat1:{n + 1}", real=True)
    loss_of_xhat = sum(d * (GAMMA * h + BETA) for d, h in zip(dy, xh))
    rep.check_each("dl/dxhat_i = partial l / partial xhat_i",
                   [sp.diff(loss_of_xhat, h) - dh for h, dh in zip(xh, p["dxhat"])])
    rep.check("dl/dsigma2 = partial l / partial sigma2",
              in_rstd(sp.diff(loss, SIGMA2) - p["dsigma2"]))
    rep.check("dl/dmu = partial l / partial mu + dl/dsigma2 * partial sigma2 / partial mu",
              in_rstd(sp.diff(loss, MU) + p["dsigma2"] * sp.diff(sigma2_of, MU) - p["dmu"]))
    via_graph = [sp.diff(loss, xi) + p["dsigma2"] * sp.diff(sigma2_of, xi) + p["dmu"] * sp.diff(mu_of, xi)
                 for xi in x]
    rep.check_each("dl/dx_i = partial l/partial x_i + dl/dsigma2 * dsigma2/dx_i + dl/dmu * dmu/dx_i",
                   [in_rstd(v - dxi) for v, dxi in zip(via_graph, p["dx"])])


def direct_loss(x, dy):
    """l(x) = sum_i dy_i * y_i(x), with mu(x) and sigma2(x) written out in x."""
    n = len(x)
    mean = sum(x) / n
    var = sum((xi - mean) ** 2 for xi in x) / n
    xhat = [(xi - mean) / sp.sqrt(var + EPS) for xi in x]
    loss = sum(d * (GAMMA * h + BETA) for d, h in zip(dy, xhat))
    return loss, mean, var


def rational_point(x, dy, var_of_x, rng):
    """Exact random rationals for x, dy, gamma, and eps chosen so that sigma2 + eps is a
    rational square: every expression then evaluates to an exact rational number."""
    point = {xi: sp.Rational(rng.randint(-40, 40), rng.randint(1, 9)) for xi in x}
    point.update({d: sp.Rational(rng.randint(-40, 40), rng.randint(1, 9)) for d in dy})
    point[GAMMA] = sp.Rational(rng.randint(1, 30), rng.randint(1, 7))
    var = var_of_x.subs(point)
    root = sp.floor(sp.sqrt(var)) + sp.Rational(rng.randint(1, 9), rng.randint(1, 9))
    point[EPS] = root**2 - var
    return point


def derive(n, rep, rng, points):
    x = sp.symbols(f"x1:{n + 1}", real=True)
    dy = sp.symbols(f"dy1:{n + 1}", real=True)
    mean = sum(x) / n
    rep.say(f"==== batch of n = {n} values: x = {', '.join(map(str, x))};"
            f" upstream gradients dl/dy_i = {', '.join(map(str, dy))}")

    rep.say("Step 1. The paper's chain-rule lines, applied literally (mu, sigma2 kept as graph nodes):")
    p = paper_backward(x, dy)
    rep.show("dl/dxhat_1", p["dxhat"][0])
    rep.show("dl/dsigma2", p["dsigma2"])
    rep.show("dl/dmu", p["dmu"])
    rep.show("dl/dx_1", p["dx"][0])
    rep.show("dl/dgamma", p["dgamma"])
    rep.show("dl/dbeta", p["dbeta"])
    check_lines_against_graph(rep, x, dy, p)

    rep.say("Step 2. The second term of dl/dmu vanishes:")
    rep.show("(sum_i -2 (x_i - mu)) / n", p["dmu_factor"])
    vanishing = p["dmu_factor"].subs(MU, mean)
    rep.show(f"with mu = {sp.sstr(mean)} it is", vanishing)
    rep.check("sum_i (x_i - mu) = 0, so dl/dsigma2 * (sum -2(x_i - mu))/n = 0", vanishing)

    rep.say("Step 3. Simplify, writing g_i = dy_i*gamma and rstd = 1/sqrt(sigma2 + eps):")
    g = [d * GAMMA for d in dy]
    sum_g = sum(g)
    sum_g_centred = sum(gi * (xi - MU) for gi, xi in zip(g, x))
    dmu = in_rstd(p["dmu_first"])
    dsigma2 = in_rstd(p["dsigma2"])
    rep.check("dl/dmu = -rstd * sum_k g_k   (only the first term is left)", dmu - (-RSTD * sum_g))
    rep.check("dl/dsigma2 = -rstd^3/2 * sum_k g_k (x_k - mu)", dsigma2 - (-RSTD**3 / 2 * sum_g_centred))
    dx = [g[i] * RSTD + dsigma2 * 2 * (x[i] - MU) / n + dmu / n for i in range(n)]
    rep.check_each("dl/dx_i = g_i rstd - rstd^3 (x_i - mu) sum_k g_k (x_k - mu) / n - rstd sum_k g_k / n",
                   [dx[i] - (g[i] * RSTD - RSTD**3 * (x[i] - MU) * sum_g_centred / n - RSTD * sum_g / n)
                    for i in range(n)])
    rep.say("    with xhat_i = (x_i - mu) rstd, rstd^3 (x_i - mu) sum_k g_k (x_k - mu) = rstd xhat_i sum_k g_k xhat_k:")
    closed = closed_form(x, dy)
    rep.show("closed form dx_1", closed[0])
    rep.check_each("dl/dx_i = (1/n) rstd (n g_i - sum g - xhat_i sum(g xhat)), the kernel's closed form",
                   [dx[i] - closed[i] for i in range(n)])
    rep.check_each("the paper's full dl/dx_i (mu = mean, both dl/dmu terms) = the closed form",
                   [in_rstd(p["dx"][i].subs(MU, mean)) - closed[i].subs(MU, mean) for i in range(n)])
    rep.say("    sweep 1's two sums are the parameter gradients: sum g = gamma dl/dbeta, sum g xhat = gamma dl/dgamma:")
    dgamma, dbeta = in_rstd(p["dgamma"]), p["dbeta"]
    rep.check_each("dx_i = gamma rstd / n * (n dy_i - dl/dbeta - xhat_i dl/dgamma)",
                   [closed[i] - GAMMA * RSTD / n * (n * dy[i] - dbeta - (x[i] - MU) * RSTD * dgamma)
                    for i in range(n)])

    rep.say("Step 4. Independent check: differentiate l(x) = sum_i dy_i y_i(x) directly (sympy.diff):")
    loss, mean_x, var_x = direct_loss(x, dy)
    on_x = {MU: mean_x, SIGMA2: var_x}
    eps_to_rstd = {EPS: 1 / RSTD**2 - var_x}
    direct_dx = [sp.diff(loss, xi) for xi in x]
    if n == 2:
        rep.show("d l/d x_1 (direct, before simplifying)", direct_dx[0])
    paper_dx = [d.subs(on_x) for d in p["dx"]]
    rep.check_each("d l/d x_i (direct) = the paper's dl/dx_i, symbolically",
                   [(a - b).subs(eps_to_rstd) for a, b in zip(direct_dx, paper_dx)])
    rep.check("d l/d gamma (direct) = the paper's dl/dgamma",
              (sp.diff(loss, GAMMA) - p["dgamma"].subs(on_x)).subs(eps_to_rstd))
    rep.check("d l/d beta (direct) = the paper's dl/dbeta", sp.diff(loss, BETA) - p["dbeta"])
    closed_dx = [c.subs(RSTD, 1 / sp.sqrt(var_x + EPS)).subs(MU, mean_x) for c in closed]
    for k in range(points):
        at = rational_point(x, dy, var_x, rng)
        values = [e.xreplace(at) for e in direct_dx + paper_dx + closed_dx]
        exact = all(v.is_Rational for v in values)
        rep.check(f"exact rational point {k + 1}: direct = paper = closed form, every dx_i",
                  0 if exact and values[:n] == values[n:2 * n] == values[2 * n:] else 1)
    rep.say()


def derive_eval(rep):
    rep.say("==== eval mode: running statistics are constants, y_i = gamma (x_i - running_mean)"
            " / sqrt(running_var + eps) + beta")
    x = sp.symbols("x1:4", real=True)
    dy = sp.symbols("dy1:4", real=True)
    y = [GAMMA * (xi - RUNNING_MEAN) / sp.sqrt(RUNNING_VAR + EPS) + BETA for xi in x]
    loss = sum(d * yi for d, yi in zip(dy, y))
    scale = GAMMA / sp.sqrt(RUNNING_VAR + EPS)
    shift = BETA - RUNNING_MEAN * scale
    rep.show("scale", scale)
    rep.show("shift", shift)
    rep.check_each("y_i = x_i * scale + shift (one fused scale-shift)",
                   [yi - (xi * scale + shift) for yi, xi in zip(y, x)])
    rep.show("d l/d x_1", sp.diff(loss, x[0]))
    rep.check_each("d l/d x_i = dy_i * gamma / sqrt(running_var + eps)",
                   [sp.diff(loss, xi) - d * scale for xi, d in zip(x, dy)])
    rep.check("d l/d gamma = sum_i dy_i (x_i - running_mean) / sqrt(running_var + eps)",
              sp.diff(loss, GAMMA) - sum(d * (xi - RUNNING_MEAN) for d, xi in zip(dy, x)) / sp.sqrt(RUNNING_VAR + EPS))
    rep.check("d l/d beta = sum_i dy_i", sp.diff(loss, BETA) - sum(dy))
    rep.say()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, nargs="+", default=[2, 3, 4, 5, 6], metavar="N",
                        help="batch sizes to derive for, each 2..8 (default: 2 3 4 5 6)")
    parser.add_argument("--points", type=int, default=2,
                        help="exact random rational points checked per n (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if any(not 2 <= n <= 8 for n in args.n):
        parser.error("each n must be in 2..8 (n = 1 has zero variance; larger n is slow)")
    rep = Report()
    rng = random.Random(args.seed)
    start = time.perf_counter()
    for n in args.n:
        derive(n, rep, rng, args.points)
    derive_eval(rep)
    seconds = time.perf_counter() - start
    if rep.failures:
        print(f"FAILED: {len(rep.failures)} identities did not hold ({seconds:.1f} s):")
        for what in rep.failures:
            print(f"  - {what}")
        return 1
    print(f"All identities hold for n = {', '.join(map(str, args.n))} and in eval mode ({seconds:.1f} s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
