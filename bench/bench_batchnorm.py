"""Batch normalization speed: microgradbn's C kernels against PyTorch, a NumPy
closed form and a bandwidth floor, float32, at 1 and 2 threads.

    python bench/bench_batchnorm.py [--reps 20] [--threads 1 2] [--quick]

(with microgradbn importable: installed, or PYTHONPATH=. after tools/dev_build.sh).

Phases: train forward, backward (dx, dweight, dbias), forward+backward, eval
forward. PyTorch runs its own kernels, aten.native_batch_norm and
aten.native_batch_norm_backward (what autograd calls, without the graph).
The floor is the least data a phase must move (forward and eval: read x,
write y; backward: read dy and x, write dx) at copy speed, measured in the
same run with np.copyto: once on arrays of the phase's own size ("floor",
same cache regime) and once on a 256 MiB array ("floor_dram"). With two
threads the copy runs as two np.copyto calls on halves, in two threads.
Implementations are interleaved within each repetition, so a noisy machine
slows all of them alike. Each result is printed as a JSON line; a table of
ratios follows. mg's outputs come from its caching allocator (pages reused);
PyTorch and NumPy allocate fresh outputs, as they do in use.
"""
import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from microgradbn._backend import cpu

try:
    import torch
except ImportError:   # the table then has no PyTorch column
    torch = None

SHAPES = [(256, 1024), (4096, 512), (32, 64, 56, 56)]
PHASES = ["forward", "backward", "fwd+bwd", "eval"]
FLOOR_TENSORS = {"forward": 2, "backward": 3, "fwd+bwd": 5, "eval": 2}   # tensors read or written
EPS = 1e-5


def numpy_phases(x, dy, w, b, rm, rv):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    n = x.size // x.shape[1]

    def forward():
        mean = x.mean(axis=axes)
        rstd = 1.0 / np.sqrt(x.var(axis=axes) + EPS)
        xhat = (x - mean.reshape(shape)) * rstd.reshape(shape)
        return xhat * w.reshape(shape) + b.reshape(shape), xhat, rstd

    def backward(xhat, rstd):
        dbeta = dy.sum(axis=axes)
        dgamma = (dy * xhat).sum(axis=axes)
        k = (w * rstd / n).reshape(shape)
        return k * (n * dy - dbeta.reshape(shape) - xhat * dgamma.reshape(shape)), dgamma, dbeta

    _, xhat, rstd = forward()
    scale = (w / np.sqrt(rv + EPS)).reshape(shape)
    shift = b.reshape(shape) - rm.reshape(shape) * scale
    return {
        "forward": forward,
        "backward": lambda: backward(xhat, rstd),
        "fwd+bwd": lambda: backward(*forward()[1:]),
        "eval": lambda: x * scale + shift,
    }


def mg_phases(x, dy, w, b, rm, rv):
    _, mean, rstd, _ = cpu.batch_norm_train_forward(x, w, b, EPS)

    def fwd_bwd():
        _, m, r, _ = cpu.batch_norm_train_forward(x, w, b, EPS)
        return cpu.batch_norm_backward(dy, x, m, r, w, True, True, True)

    return {
        "forward": lambda: cpu.batch_norm_train_forward(x, w, b, EPS),
        "backward": lambda: cpu.batch_norm_backward(dy, x, mean, rstd, w, True, True, True),
        "fwd+bwd": fwd_bwd,
        "eval": lambda: cpu.batch_norm_eval_forward(x, rm, rv, w, b, EPS),
    }


def torch_phases(x, dy, w, b, rm, rv):
    aten = torch.ops.aten
    tx, tdy, tw, tb, trm, trv = (torch.from_numpy(a) for a in (x, dy, w, b, rm, rv))
    mask = [True, True, True]
    _, mean, invstd = aten.native_batch_norm(tx, tw, tb, None, None, True, 0.1, EPS)

    def fwd_bwd():
        _, m, s = aten.native_batch_norm(tx, tw, tb, None, None, True, 0.1, EPS)
        return aten.native_batch_norm_backward(tdy, tx, tw, None, None, m, s, True, EPS, mask)

    return {
        "forward": lambda: aten.native_batch_norm(tx, tw, tb, None, None, True, 0.1, EPS),
        "backward": lambda: aten.native_batch_norm_backward(tdy, tx, tw, None, None, mean, invstd,
                                                            True, EPS, mask),
        "fwd+bwd": fwd_bwd,
        "eval": lambda: aten.native_batch_norm(tx, tw, tb, trm, trv, False, 0.1, EPS),
    }


def copy_seconds(nbytes, threads, reps):
    """Median time of np.copyto over nbytes of float32, split over `threads` threads."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    halves = [(d, s) for d, s in zip(np.array_split(dst, threads), np.array_split(src, threads))]
    pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def copy():
        if pool is None:
            np.copyto(dst, src)
        else:
            list(pool.map(lambda ds: np.copyto(*ds), halves))

    times = []
    for _ in range(reps + 2):
        t = time.perf_counter()
        copy()
        times.append(time.perf_counter() - t)
    if pool is not None:
        pool.shutdown()
    return statistics.median(times[2:])


def measure(impls, reps):
    """{impl: {phase: [seconds...]}}, implementations interleaved in every repetition."""
    times = {name: {p: [] for p in PHASES} for name in impls}
    for name in impls:   # warm up: first-touch pages, caches, the thread pool
        for phase in PHASES:
            impls[name][phase]()
    for _ in range(reps):
        for phase in PHASES:
            for name, fns in impls.items():
                t = time.perf_counter()
                fns[phase]()
                times[name][phase].append(time.perf_counter() - t)
    return times


def summary(samples):
    q = np.percentile(samples, [25, 50, 75])
    return q[1], q[2] - q[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="5 repetitions, for a smoke test")
    args = parser.parse_args()
    reps = 5 if args.quick else args.reps
    rng = np.random.default_rng(0)
    rows = []
    for threads in args.threads:
        cpu.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        dram_bw = 256 * 2**20 * 2 / copy_seconds(256 * 2**20, threads, 5)
        print(json.dumps({"threads": threads, "copy_GBps_256MiB": round(dram_bw / 1e9, 2)}))
        for shape in SHAPES:
            x = rng.standard_normal(shape, dtype=np.float32) * 2 + 1
            dy = rng.standard_normal(shape, dtype=np.float32)
            c = shape[1]
            w, b = rng.uniform(0.5, 1.5, c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
            rm, rv = rng.standard_normal(c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)
            impls = {"mg": mg_phases(x, dy, w, b, rm, rv), "numpy": numpy_phases(x, dy, w, b, rm, rv)}
            if torch is not None:
                impls["torch"] = torch_phases(x, dy, w, b, rm, rv)
            times = measure(impls, reps)
            copy_bw = 2 * x.nbytes / copy_seconds(x.nbytes, threads, reps)
            for phase in PHASES:
                floor = FLOOR_TENSORS[phase] * x.nbytes
                row = {"shape": list(shape), "phase": phase, "threads": threads, "reps": reps,
                       "floor_ms": 1e3 * floor / copy_bw, "floor_dram_ms": 1e3 * floor / dram_bw}
                for name in impls:
                    med, iqr = summary(times[name][phase])
                    row[f"{name}_ms"], row[f"{name}_iqr_ms"] = 1e3 * med, 1e3 * iqr
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
                rows.append(row)
    print_table(rows)


def print_table(rows):
    has_torch = "torch_ms" in rows[0]
    head = f"{'shape':>16} {'phase':>8} {'thr':>3} {'mg ms':>8} {'±iqr':>6} "
    head += f"{'torch ms':>9} {'torch/mg':>8} " if has_torch else ""
    head += f"{'numpy ms':>9} {'floor ms':>8} {'mg/floor':>8} {'mg/dram':>8}"
    print("\n" + head)
    for r in rows:
        line = f"{'x'.join(map(str, r['shape'])):>16} {r['phase']:>8} {r['threads']:>3} "
        line += f"{r['mg_ms']:8.3f} {r['mg_iqr_ms']:6.3f} "
        if has_torch:
            line += f"{r['torch_ms']:9.3f} {r['torch_ms'] / r['mg_ms']:8.2f} "
        line += f"{r['numpy_ms']:9.3f} {r['floor_ms']:8.3f} {r['mg_ms'] / r['floor_ms']:8.2f} "
        line += f"{r['mg_ms'] / r['floor_dram_ms']:8.2f}"
        print(line)
    print("torch/mg > 1: mg is faster. mg/floor: time over the least bytes moved at same-size "
          "copy speed; mg/dram: the same at 256 MiB copy speed.")


if __name__ == "__main__":
    main()
