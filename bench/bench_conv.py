"""Conv2d and pooling speed: microgradbn vs PyTorch on a small CNN's layers.

    python bench/bench_conv.py [--threads 1 2] [--dtypes float32] [--repeats 7] [--batch 64]

Layers (NCHW, 28x28 images as MNIST, 3x3 kernels, padding 1):
    conv1      (batch, 1, 28, 28)  -> 16 channels
    conv2      (batch, 16, 28, 28) -> 32 channels
    maxpool    (batch, 32, 28, 28), 2x2 window, stride 2
For each: forward, and backward computing every gradient (dx, dweight,
dbias for a convolution). Both libraries are called at the kernel level
(microgradbn._backend.cpu and torch's aten ops), so graph bookkeeping is not
measured. Each thread count runs in its own subprocess with MGBN_NUM_THREADS
and OMP_NUM_THREADS set (and torch.set_num_threads). The libraries take
turns within each repeat, so a busy neighbour on a shared machine slows them
alike. Prints one JSON line per (layer, pass, dtype, threads, library) with
the median and spread (min, max) of the time per call, then a table.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAYERS = [  # name, input channels, output channels (None: 2x2 max pooling)
    ("conv1", 1, 16),
    ("conv2", 16, 32),
    ("maxpool", 32, None),
]


def timed(fn, min_seconds=0.05):
    """Seconds per call of fn, averaged over enough calls to last min_seconds."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def cases(np, torch, cpu, batch, dtype):
    """(layer, pass, {library: function}) for each benchmarked call."""
    rng = np.random.default_rng(0)
    for name, c_in, c_out in LAYERS:
        x = rng.standard_normal((batch, c_in, 28, 28)).astype(dtype)
        xt = torch.from_numpy(x) if torch else None
        if c_out is None:
            grad = rng.standard_normal((batch, c_in, 14, 14)).astype(dtype)
            gt = torch.from_numpy(grad) if torch else None
            fwd = {"mg": lambda x=x: cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))}
            bwd = {"mg": lambda x=x, g=grad: cpu.max_pool2d_backward(x, g, (2, 2), (2, 2), (0, 0))}
            if torch:
                fwd["torch"] = lambda xt=xt: torch.nn.functional.max_pool2d(xt, 2)
                # torch's backward takes the indices its forward saved
                _, idx = torch.ops.aten.max_pool2d_with_indices(xt, [2, 2], [2, 2])
                bwd["torch"] = lambda xt=xt, gt=gt, idx=idx: torch.ops.aten.max_pool2d_with_indices_backward(
                    gt, xt, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)
        else:
            w = (rng.standard_normal((c_out, c_in, 3, 3)) / (3 * c_in ** 0.5)).astype(dtype)
            b = rng.standard_normal(c_out).astype(dtype)
            grad = rng.standard_normal((batch, c_out, 28, 28)).astype(dtype)
            fwd = {"mg": lambda x=x, w=w, b=b: cpu.conv2d_forward(x, w, b, (1, 1), (1, 1))}
            bwd = {"mg": lambda x=x, w=w, g=grad: cpu.conv2d_backward(x, w, g, (1, 1), (1, 1), True, True, True)}
            if torch:
                wt, bt, gt = torch.from_numpy(w), torch.from_numpy(b), torch.from_numpy(grad)
                fwd["torch"] = lambda xt=xt, wt=wt, bt=bt: torch.nn.functional.conv2d(xt, wt, bt, padding=1)
                bwd["torch"] = lambda xt=xt, wt=wt, gt=gt: torch.ops.aten.convolution_backward(
                    gt, xt, wt, [c_out], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, True, True])
        yield name, "forward", fwd
        yield name, "backward", bwd


def worker(args):
    """Runs in a subprocess whose thread-count variables are already set."""
    sys.path.insert(0, ROOT)
    import numpy as np

    from microgradbn._backend import cpu

    cpu.set_num_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
        torch.set_grad_enabled(False)
    except ImportError:
        torch = None
    isa = cpu.backend_info()["isa"]
    for dtype in args.dtypes:
        for layer, kind, libs in cases(np, torch, cpu, args.batch, dtype):
            for fn in libs.values():
                fn()                                     # warm up: buffers, thread pools
            samples = {name: [] for name in libs}
            for _ in range(args.repeats):
                for name, fn in libs.items():
                    samples[name].append(1e3 * timed(fn))
            for name, ms in samples.items():
                print(json.dumps({
                    "layer": layer, "pass": kind, "lib": name, "dtype": dtype, "batch": args.batch,
                    "threads": args.threads, "isa": isa, "ms_median": round(statistics.median(ms), 3),
                    "ms_min": round(min(ms), 3), "ms_max": round(max(ms), 3), "repeats": args.repeats,
                }), flush=True)


def table(rows):
    by_key = {}
    for r in rows:
        by_key.setdefault((r["dtype"], r["threads"], r["layer"], r["pass"]), {})[r["lib"]] = r
    head = f"{'dtype':8} {'thr':>3} {'layer':8} {'pass':9}| {'mg ms':>21} {'torch ms':>21} | {'mg/torch':>8}"
    lines = [head, "-" * len(head)]
    order = {name: i for i, (name, _, _) in enumerate(LAYERS)}
    for key in sorted(by_key, key=lambda k: (k[0], k[1], order[k[2]], k[3] != "forward")):
        libs = by_key[key]

        def cell(name):
            r = libs.get(name)
            return f"{r['ms_median']:7.3f} ({r['ms_min']:.3f}-{r['ms_max']:.3f})" if r else "-"
        ratio = libs["mg"]["ms_median"] / libs["torch"]["ms_median"] if "torch" in libs else float("nan")
        lines.append(f"{key[0]:8} {key[1]:3d} {key[2]:8} {key[3]:9}| {cell('mg'):>21} {cell('torch'):>21} | "
                     f"{ratio:8.2f}")
    lines.append("ms per call: median (min-max) over repeats; mg/torch < 1 means microgradbn is faster.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.threads = args.threads[0]
        worker(args)
        return
    rows = []
    for threads in args.threads:
        env = dict(os.environ, MGBN_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", str(threads),
               "--repeats", str(args.repeats), "--batch", str(args.batch), "--dtypes", *args.dtypes]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        for line in proc.stdout.splitlines():
            print(line, flush=True)
            rows.append(json.loads(line))
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
