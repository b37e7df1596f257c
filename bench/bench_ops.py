"""Elementwise kernels and per-call overhead, side by side with NumPy,
PyTorch (if installed) and this machine's copy bandwidth, in one run.

    python bench/bench_ops.py            (from a checkout with the module built)
    python bench/bench_ops.py --quick    (1M elements only, fewer repeats)
    python bench/bench_ops.py --part 2   (only the per-call overheads)

Part 1: add, mul, relu, exp on float32 arrays of 1M and 16M elements, with
1 and 2 threads, writing into a fresh output (what an op does) and into a
preallocated one. Effective bandwidth = bytes read + bytes written per
second; it is compared with np.copyto of the same number of bytes (read n,
write n, one thread) measured in the same round. The implementations take
turns within each round, after the copy and in a new random order every
round (none always runs first or follows the same one), and every timed
block starts after a pause (--pause, 50 ms) so that a library whose idle
threads spin (PyTorch's OpenMP pool does for milliseconds) does not steal
the second core from the next one. Ratios (of copy, mg/numpy, mg/torch) are taken per round; the
table gives their medians and spread, and the same ratios of each
implementation's best block ("best": on a shared machine the least
disturbed block is the closest to the code's own speed; timeit's advice).
Part 2: the per-call time of the small ops of a training step (a + b,
a * b, relu, sum, reshape, matmul ... on 4-element tensors, with and
without requires_grad) and the backward engine's cost per node, mg and
PyTorch interleaved, one thread each (the backward engine per node: the
chain of 20 multiplications with and without its backward, over 21 nodes).

Every figure is the median over repeats, with the spread as [min, max];
a JSON line per measurement goes to stdout, then a table.
"""
import argparse
import json
import statistics
import timeit

import numpy as np
from _timing import timed_block

import microgradbn as mg
from microgradbn._backend import cpu

try:
    import torch
except ImportError:
    torch = None


def emit(record, rows):
    print(json.dumps(record))
    rows.append(record)


def spread(values):
    return statistics.median(values), min(values), max(values)


def elementwise(sizes, repeats, pause, rows):
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal(n).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        out = np.empty_like(a)
        src, dst = a.copy(), np.empty_like(a)
        copy = lambda: np.copyto(dst, src)
        number = max(2, (1 << 24) // n)               # blocks of a few ms
        ta, tb, tout = (torch.from_numpy(v) for v in (a, b, out)) if torch is not None else (None,) * 3
        ma, mb = mg.from_numpy(a), mg.from_numpy(b)
        # name: (arrays touched, then fresh / into-out calls for mg, numpy and torch)
        ops = {
            "add": (3, lambda: ma + mb, lambda: cpu.binary(cpu.OP_ADD, a, b, a.shape, a.dtype, out),
                    lambda: a + b, lambda: np.add(a, b, out=out),
                    lambda: ta + tb, lambda: torch.add(ta, tb, out=tout)),
            "mul": (3, lambda: ma * mb, lambda: cpu.binary(cpu.OP_MUL, a, b, a.shape, a.dtype, out),
                    lambda: a * b, lambda: np.multiply(a, b, out=out),
                    lambda: ta * tb, lambda: torch.mul(ta, tb, out=tout)),
            "relu": (2, lambda: ma.relu(), lambda: cpu.unary(cpu.UNARY_RELU, a, out),
                     lambda: np.maximum(a, 0), lambda: np.maximum(a, 0, out=out),
                     lambda: torch.relu(ta), lambda: torch.clamp(ta, min=0, out=tout)),
            "exp": (2, lambda: ma.exp(), lambda: cpu.unary(cpu.UNARY_EXP, a, out),
                    lambda: np.exp(a), lambda: np.exp(a, out=out),
                    lambda: torch.exp(ta), lambda: torch.exp(ta, out=tout)),
        }
        for threads in (1, 2):
            mg.set_num_threads(threads)
            if torch is not None:
                torch.set_num_threads(threads)
            for name, (arrays, *fns) in ops.items():
                nbytes = arrays * a.nbytes
                impls = [(who, output, fn) for who, output, fn in
                         zip(["mg", "mg", "numpy", "numpy", "torch", "torch"], ["fresh", "prealloc"] * 3, fns)
                         if who != "torch" or torch is not None]
                for _, _, fn in impls:
                    fn()                                  # warm up: buffers, thread pools
                copy_gbs, secs = [], {(who, output): [] for who, output, _ in impls}
                for _ in range(repeats):      # the copy first, then the others in a new order each round
                    copy_gbs.append(2 * a.nbytes / timed_block(copy, number, pause) / 1e9)
                    for i in rng.permutation(len(impls)):
                        who, output, fn = impls[i]
                        secs[(who, output)].append(timed_block(fn, number, pause))
                emit({"bench": "copy", "n": n, "threads": threads, "op": name,
                      "GB/s": round(statistics.median(copy_gbs), 2)}, rows)
                for (who, output), times in secs.items():
                    of_copy = [nbytes / t / 1e9 / c for t, c in zip(times, copy_gbs)]
                    record = {"bench": name, "n": n, "threads": threads, "impl": who, "out": output,
                              "ms": round(statistics.median(times) * 1e3, 3),
                              "min_ms": round(min(times) * 1e3, 3), "max_ms": round(max(times) * 1e3, 3),
                              "GB/s": round(nbytes / statistics.median(times) / 1e9, 2),
                              "of_copy": [round(v, 2) for v in spread(of_copy)],
                              # the best block of each (least disturbed by the machine's other tenants)
                              "of_copy_best": round(nbytes / min(times) / 1e9 / max(copy_gbs), 2)}
                    if who == "mg":                       # per-round speed ratios, > 1: mg is faster
                        for other in ("numpy", "torch"):
                            if (other, output) in secs:
                                record[f"vs_{other}"] = [round(v, 2) for v in spread(
                                    [o / m for o, m in zip(secs[(other, output)], times)])]
                                record[f"vs_{other}_best"] = round(min(secs[(other, output)]) / min(times), 2)
                    emit(record, rows)


def _op_cases(lib):
    """name -> a call on small tensors of lib (mg or torch): the ops of a
    training step, without and with requires_grad, and backward."""
    a, b = lib.ones(4), lib.ones(4)
    g = lib.ones(4, requires_grad=True)
    x, w = lib.ones(16, 64), lib.ones(32, 64, requires_grad=True)
    chain_x = lib.ones(4, requires_grad=True)

    def chain(n):                         # n multiplications by a number, then a sum
        y = chain_x
        for _ in range(n):
            y = y * 1.0001
        return y.sum()

    return {
        "a+b": lambda: a + b, "a+b grad": lambda: g + b, "a*b grad": lambda: g * b,
        "a*2 grad": lambda: g * 2.0, "relu grad": lambda: g.relu(), "exp grad": lambda: g.exp(),
        "sum grad": lambda: g.sum(), "reshape grad": lambda: g.reshape(2, 2),
        "x@w.T grad": lambda: x @ w.T,
        "chain20": lambda: chain(20), "chain20+backward": lambda: chain(20).backward(),
    }


def overhead(repeats, rows):
    """Per-call time of small ops (4 elements; x@w.T is 16x64 by 64x32), the
    libraries interleaved so that machine load hits them alike. The backward
    engine's cost per node is (chain20+backward - chain20) / 21."""
    libs = {"mg": _op_cases(mg)}
    mg.set_num_threads(1)
    if torch is not None:
        torch.set_num_threads(1)           # small ops: one thread each, as mg runs them
        libs["torch"] = _op_cases(torch)
    samples = {}
    for _ in range(repeats):
        for who, cases in libs.items():
            for name, fn in cases.items():
                number = 20 if name.startswith("chain") else 500
                samples.setdefault((name, who), []).append(timeit.timeit(fn, number=number) / number)
    for (name, who), times in samples.items():
        emit({"bench": "overhead", "op": name, "impl": who, "us_min": round(min(times) * 1e6, 3),
              "us_median": round(statistics.median(times) * 1e6, 3),
              "us_max": round(max(times) * 1e6, 3)}, rows)
    for who in libs:
        forward, both = samples[("chain20", who)], samples[("chain20+backward", who)]
        per_node = {stat: (fn(both) - fn(forward)) / 21 * 1e6 for stat, fn in
                    (("us_min", min), ("us_median", statistics.median), ("us_max", max))}
        emit({"bench": "overhead", "op": "backward per node", "impl": who,
              **{k: round(v, 3) for k, v in per_node.items()}}, rows)


def table(rows):
    print("\n== elementwise, float32: median GB/s; per-round ratios: median [min-max]")
    print("   of copy = GB/s / np.copyto GB/s (one thread) in the same round; mg/numpy, mg/torch = speed ratios")
    print("   target (issue 4): of copy >= 0.85 and mg/numpy >= 1 (medians); best: the same ratios of each one's best block")
    for r in rows:
        if r["bench"] == "copy" and r["threads"] == 1 and r["op"] == "add":
            print(f"-- n = {r['n']:,}: np.copyto {r['GB/s']} GB/s (median of the add rounds)")
        elif "impl" in r and "threads" in r:
            fmt = lambda v: f"{v[0]:.2f} [{v[1]:.2f}-{v[2]:.2f}]"
            line = (f"{r['bench']:5s} t={r['threads']} {r['impl']:6s} {r['out']:8s} {r['GB/s']:7.2f} GB/s  "
                    f"of copy {fmt(r['of_copy'])}")
            if r["impl"] == "mg":
                line += "".join(f"  mg/{o} {fmt(r['vs_' + o])}" for o in ("numpy", "torch") if "vs_" + o in r)
                if "vs_numpy" in r:
                    line += "  ok" if r["of_copy"][0] >= 0.85 and r["vs_numpy"][0] >= 1 else "  NOT MET"
                    line += f"  best: of copy {r['of_copy_best']:.2f}, mg/numpy {r['vs_numpy_best']:.2f}"
            print(line)
    print("\n== per-call time of small ops (us): min / median / max; mg/torch of the medians and of the minima")
    by = {(r["op"], r["impl"]): r for r in rows if r["bench"] == "overhead"}
    for (op, who), r in by.items():
        ratio = ""
        if who == "mg" and (op, "torch") in by:
            t = by[(op, "torch")]
            ratio = f"   {r['us_median'] / t['us_median']:.2f} / {r['us_min'] / t['us_min']:.2f}"
        print(f"{op:18s} {who:6s} {r['us_min']:7.2f} / {r['us_median']:7.2f} / {r['us_max']:7.2f}{ratio}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M elements only, fewer repeats")
    parser.add_argument("--part", type=int, choices=(1, 2), help="run only part 1 or part 2")
    parser.add_argument("--pause", type=float, default=0.05,
                        help="seconds of pause before each timed block of part 1 (default 0.05)")
    args = parser.parse_args()
    rows = []
    print(json.dumps({"backend": mg.backend_info(), "numpy": np.__version__,
                      "torch": torch.__version__ if torch is not None else None}))
    if args.part != 2:
        elementwise([1 << 20] if args.quick else [1 << 20, 1 << 24], 5 if args.quick else 11, args.pause, rows)
    if args.part != 1:
        overhead(20 if args.quick else 60, rows)
    table(rows)


if __name__ == "__main__":
    main()
