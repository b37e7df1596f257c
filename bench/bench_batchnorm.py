"""Batch normalization speed: microgradbn's C kernels against PyTorch, a NumPy
closed form and a bandwidth floor, float32, at 1 and 2 threads.

    python bench/bench_batchnorm.py [--reps 20] [--threads 1 2] [--quick]

(with microgradbn importable: installed, or PYTHONPATH=. after tools/dev_build.sh).

Phases: train forward, backward (dx, dweight, dbias), forward+backward, eval
forward. PyTorch runs its own kernels, aten.native_batch_norm and
aten.native_batch_norm_backward (what autograd calls, without the graph).
The floor is the least data a phase must move (forward and eval: read x,
write y; backward: read dy and x, write dx; fwd+bwd: all five) at copy
speed: a copy of x into a buffer of its size runs as one more
implementation in the rotation, so it meets the same cache state as the
others (an 8 MiB array is partly in L3, partly evicted by what ran before),
and floor = (tensors moved / 2) * that copy's median time. "floor_dram" is
the same at the speed of a 256 MiB copy. Copies are np.copyto (memcpy);
with two threads, the calling thread copies one half while a pool thread
copies the other, whose hand-off (~20-50 us) inflates the floor of the
1 MiB shape. (PyTorch's copy_ is not used: on a loaded machine its spinning
threads can take ~100x longer.) The floor assumes every tensor is moved
once; an exact BN reads x twice in the forward and dy, x twice in the
backward (8 passes for fwd+bwd, not 5) unless they stay in cache between
the sweeps.

Each library reads inputs from its own allocator, as in a training step:
mg's and PyTorch's copies are 64-byte aligned, NumPy's arrays 16-byte
aligned (AVX-512 loads that straddle two cache lines cost mg up to 1.4x at
32x64x56x56). The copy for the floor is between NumPy arrays (memcpy does
not care).

Implementations run in a new random order in every repetition, so none
always follows the one that evicts the cache. After each timed call the
bench waits SETTLE_S, untimed: PyTorch's OpenMP threads spin for a few ms
after each of its calls, and mg's idle workers watch for the next job for
5 ms (src/threads.c); on a 2-core machine either would otherwise take a core
from whatever is timed next (the other library, the 2-thread copy). It
waits by spinning, not sleeping, so that other processes do not get the
core and evict the caches meanwhile. During that wait the machine's other
tenants evict our caches too, the interpreter's included: the first few
Python-level calls after it took ~20 us each here (an mg output buffer from
its allocator, 3 us back to back, took 70 us). So right before each timed
call the bench makes the same call on a small input of the same layout,
untimed, for every implementation alike: that warms the code paths, not the
data. The small input is the smallest corner (R, C) or (2, C, s, s) of
the input with at least WARM_BYTES per array, so that outputs come through the same
allocation path as the large ones (mg hands arrays under 64 KiB to NumPy,
glibc's malloc has its own small-block path): with (2, C), mg's large-buffer
path stayed cold, 17-38 us of a 1 MiB eval after the pause. Each
result is printed as a JSON line (median and interquartile range); a table
of ratios follows. mg's outputs come from its caching allocator (pages
reused); PyTorch and NumPy allocate fresh outputs, as they do in use.
"""
import argparse
import json
import math
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import microgradbn as mg
from microgradbn._backend import cpu

try:
    import torch
except ImportError:   # the table then has no PyTorch column
    torch = None

SHAPES = [(256, 1024), (4096, 512), (32, 64, 56, 56)]
PHASES = ["forward", "backward", "fwd+bwd", "eval"]
FLOOR_TENSORS = {"forward": 2, "backward": 3, "fwd+bwd": 5, "eval": 2}   # tensors read or written
EPS = 1e-5
SETTLE_S = 0.006   # untimed wait after each call: PyTorch's OpenMP threads and mg's workers stop spinning
WARM_BYTES = cpu.LARGE_BYTES   # the least bytes per array of the warming call's input: mg's large-buffer path


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
    x, dy = mg.tensor(x).numpy(), mg.tensor(dy).numpy()   # mg's own (64-byte aligned) copies
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
    tx, tdy, tw, tb, trm, trv = (torch.tensor(a) for a in (x, dy, w, b, rm, rv))   # torch's own copies
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


def copier(nbytes, threads):
    """A function copying nbytes of float32 between two buffers of its own."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    if threads == 1:
        return lambda: np.copyto(dst, src)
    pool = ThreadPoolExecutor(threads - 1)
    parts = list(zip(np.array_split(dst, threads), np.array_split(src, threads)))

    def copy():
        others = [pool.submit(np.copyto, d, s) for d, s in parts[1:]]
        np.copyto(*parts[0])
        for f in others:
            f.result()
    return copy


def dram_copy_seconds(threads, reps=5):
    copy = copier(256 * 2**20, threads)
    times = []
    for _ in range(reps + 2):
        t = time.perf_counter()
        copy()
        times.append(time.perf_counter() - t)
    return statistics.median(times[2:])


def settle(seconds):
    """Spin for seconds (see SETTLE_S)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def warming_corner(x):
    """The slices of x's corner (R, C) or (2, C, s, s) with at least WARM_BYTES."""
    c = x.shape[1]
    if x.ndim == 2:
        return slice(max(2, -(-WARM_BYTES // (c * x.itemsize)))), slice(None)
    side = min(x.shape[2], max(2, math.ceil(math.sqrt(WARM_BYTES / (2 * c * x.itemsize)))))
    return slice(2), slice(None), slice(side), slice(side)


def measure(impls, tiny, reps, rng):
    """{impl: {phase: [seconds...]}}; every repetition runs each phase of every
    implementation, the implementations in a new random order each time, each
    timed call right after the same call on the tiny input."""
    times = {name: {p: [] for p in PHASES} for name in impls}
    names = list(impls)
    for name in names:   # warm up: first-touch pages, caches, the thread pool
        for phase in PHASES:
            impls[name][phase]()
    for _ in range(reps):
        for phase in PHASES:
            for i in rng.permutation(len(names)):
                tiny[names[i]][phase]()
                t = time.perf_counter()
                impls[names[i]][phase]()
                times[names[i]][phase].append(time.perf_counter() - t)
                settle(SETTLE_S)
    return times


def summary(samples):
    q = np.percentile(samples, [25, 50, 75])
    return q[1], q[2] - q[0]


def make_impls(x, dy, w, b, rm, rv, threads):
    copy = copier(x.nbytes, threads)
    impls = {"mg": mg_phases(x, dy, w, b, rm, rv), "numpy": numpy_phases(x, dy, w, b, rm, rv),
             "copy": {phase: copy for phase in PHASES}}
    if torch is not None:
        impls["torch"] = torch_phases(x, dy, w, b, rm, rv)
    return impls


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="5 repetitions, for a smoke test")
    args = parser.parse_args()
    reps = 5 if args.quick else args.reps
    print(json.dumps({"backend": cpu.backend_info(), "numpy": np.__version__,
                      "torch": torch.__version__ if torch is not None else None}))
    rng = np.random.default_rng(0)
    rows = []
    for threads in args.threads:
        cpu.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        dram_bw = 256 * 2**20 * 2 / dram_copy_seconds(threads)
        print(json.dumps({"threads": threads, "copy_GBps_256MiB": round(dram_bw / 1e9, 2)}))
        for shape in SHAPES:
            x = rng.standard_normal(shape, dtype=np.float32) * 2 + 1
            dy = rng.standard_normal(shape, dtype=np.float32)
            c = shape[1]
            w, b = rng.uniform(0.5, 1.5, c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
            rm, rv = rng.uniform(-1, 1, c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)
            corner = warming_corner(x)
            impls, tiny = (make_impls(np.ascontiguousarray(a[sl]), np.ascontiguousarray(dy[sl]), w, b, rm, rv, threads)
                           for a, sl in ((x, ()), (x, corner)))
            times = measure(impls, tiny, reps, rng)
            copy_s = statistics.median([t for phase in PHASES for t in times["copy"][phase]])
            for phase in PHASES:
                tensors = FLOOR_TENSORS[phase]
                row = {"shape": list(shape), "phase": phase, "threads": threads, "reps": reps,
                       "floor_ms": 1e3 * tensors / 2 * copy_s,
                       "floor_dram_ms": 1e3 * tensors * x.nbytes / dram_bw}
                for name in impls:
                    if name == "copy":
                        continue
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
    print("torch/mg > 1: mg is faster. mg/floor: time over the least bytes moved at the speed of "
          "a same-size copy run in the same rotation; mg/dram: the same at 256 MiB copy speed.")


if __name__ == "__main__":
    main()
