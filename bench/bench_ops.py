"""Elementwise kernels and per-call overhead, side by side with NumPy,
PyTorch (if installed) and this machine's copy bandwidth, in one run.

    python bench/bench_ops.py            (from a checkout with the module built)
    python bench/bench_ops.py --quick    (1M elements only, fewer repeats)

Part 1: add, mul, relu, exp on float32 arrays of 1M and 16M elements, with
1 and 2 threads, writing into a fresh output (what an op does) and into a
preallocated one. Effective bandwidth = bytes read + bytes written per
second; it is compared with np.copyto of the same number of bytes (read n,
write n) measured in the same run.
Part 2: the per-call overhead of `a + b` on 4-element tensors, with and
without requires_grad.

Every figure is the median over repeats, with the spread as [min, max];
a JSON line per measurement goes to stdout, then a table.
"""
import argparse
import json
import statistics
import time
import timeit

import numpy as np

import microgradbn as mg
from microgradbn._backend import cpu

try:
    import torch
except ImportError:
    torch = None


def measure(fn, repeats, number=1):
    """Seconds per call: median, min, max over repeats of `number` calls."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times), min(times), max(times)


def emit(record, rows):
    print(json.dumps(record))
    rows.append(record)


def elementwise(sizes, repeats, rows):
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal(n).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        out = np.empty_like(a)
        src, dst = a.copy(), np.empty_like(a)
        copy = measure(lambda: np.copyto(dst, src), repeats)
        copy_gbs = 2 * a.nbytes / copy[0] / 1e9
        emit({"bench": "copy", "n": n, "GB/s": round(copy_gbs, 2)}, rows)
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
                for who, output, fn in zip(["mg", "mg", "numpy", "numpy", "torch", "torch"],
                                           ["fresh", "prealloc"] * 3, fns):
                    if who == "torch" and torch is None:
                        continue
                    med, lo, hi = measure(fn, repeats)
                    emit({"bench": name, "n": n, "threads": threads, "impl": who, "out": output,
                          "ms": round(med * 1e3, 3), "min_ms": round(lo * 1e3, 3),
                          "max_ms": round(hi * 1e3, 3), "GB/s": round(nbytes / med / 1e9, 2),
                          "of_copy": round(nbytes / med / 1e9 / copy_gbs, 2)}, rows)


def overhead(repeats, rows):
    cases = {"mg": (mg.ones(4), mg.ones(4), mg.ones(4, requires_grad=True))}
    if torch is not None:
        cases["torch"] = (torch.ones(4), torch.ones(4), torch.ones(4, requires_grad=True))
    cases["numpy"] = (np.ones(4, np.float32), np.ones(4, np.float32), None)
    for who, (a, b, g) in cases.items():
        for grad in (False, True):
            if grad and g is None:
                continue
            x = g if grad else a
            timer = timeit.Timer(lambda: x + b)
            samples = sorted(timer.timeit(2000) / 2000 for _ in range(repeats))
            emit({"bench": "a+b overhead", "impl": who, "requires_grad": grad,
                  "us_min": round(samples[0] * 1e6, 3),
                  "us_median": round(statistics.median(samples) * 1e6, 3),
                  "us_max": round(samples[-1] * 1e6, 3)}, rows)


def table(rows):
    print("\n== elementwise, float32: median GB/s (fraction of copy bandwidth) [ms min-max]")
    for r in rows:
        if r["bench"] == "copy":
            print(f"-- n = {r['n']:,}: np.copyto {r['GB/s']} GB/s")
        elif "impl" in r and "threads" in r:
            print(f"{r['bench']:5s} t={r['threads']} {r['impl']:6s} {r['out']:8s} {r['GB/s']:7.2f} GB/s "
                  f"({r['of_copy']:.2f})  [{r['min_ms']}-{r['max_ms']} ms]")
    print("\n== per-call overhead of a + b on 4 elements (us): min / median / max")
    by = {(r["impl"], r["requires_grad"]): r for r in rows if r["bench"] == "a+b overhead"}
    for (who, grad), r in by.items():
        ratio = ""
        if who == "mg" and ("torch", grad) in by:
            ratio = f"   mg/torch (min) = {r['us_min'] / by[('torch', grad)]['us_min']:.2f}"
        print(f"{who:6s} requires_grad={grad!s:5s} {r['us_min']:.2f} / {r['us_median']:.2f} / "
              f"{r['us_max']:.2f}{ratio}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M elements only, fewer repeats")
    args = parser.parse_args()
    rows = []
    print(json.dumps({"backend": mg.backend_info(), "numpy": np.__version__,
                      "torch": torch.__version__ if torch is not None else None}))
    elementwise([1 << 20] if args.quick else [1 << 20, 1 << 24], 5 if args.quick else 11, rows)
    overhead(20 if args.quick else 60, rows)
    table(rows)


if __name__ == "__main__":
    main()
