"""Training throughput side by side with PyTorch: MLP 784-256-256-10 with BatchNorm1d,
batch 128, SGD with momentum, float32; steps/s at 1 and 2 threads, and where the time goes.

    python bench/bench_train.py [--steps 100] [--repeats 5] [--threads 1 2] [--no-torch]

Each thread count runs in its own subprocess with MGBN_NUM_THREADS,
OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set (and torch.set_num_threads);
microgradbn and PyTorch take turns within each repeat, so a busy neighbour
on a shared machine slows both alike, and the median repeat is reported.
Prints one JSON line per measurement, then a table. Where the time goes:
  - phases: forward, backward and optimizer step, timed with time.perf_counter;
  - overhead: the same graph (same ops, same number of calls) at tiny sizes
    (batch 4, widths 8), where the kernels take almost no time: what is left
    is Python and FFI overhead per step; kernels = step time - overhead;
  - top functions by own time under cProfile (NumPy ufuncs such as matmul do
    not appear as functions of their own: their time counts to the caller).
"""
import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout with a dev build (tools/dev_build.sh)

import microgradbn as mg  # noqa: E402
from microgradbn import nn, optim  # noqa: E402
from microgradbn.nn import functional as F  # noqa: E402

SIZES = (784, 256, 256, 10)
BATCH = 128


TINY_SIZES, TINY_BATCH = (8, 8, 8, 8), 4


def batches(count=8, seed=0, sizes=SIZES, batch=BATCH):
    rng = np.random.default_rng(seed)
    return [(rng.random((batch, sizes[0]), dtype=np.float32), rng.integers(0, sizes[-1], batch))
            for _ in range(count)]


def mlp(backend, sizes=SIZES):
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [backend.Linear(n_in, n_out, bias=False), backend.BatchNorm1d(n_out), backend.ReLU()]
    layers.append(backend.Linear(sizes[-2], sizes[-1]))
    return backend.Sequential(*layers)


def mg_step(model, opt, x, y, phases=None):
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    t1 = time.perf_counter()
    opt.zero_grad()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    t3 = time.perf_counter()
    if phases is not None:
        phases["forward"] += t1 - t0
        phases["backward"] += t2 - t1
        phases["optimizer"] += t3 - t2


def setup_mg(data, sizes=SIZES):
    mg.manual_seed(0)
    model = mlp(nn, sizes)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = [(mg.from_numpy(x), mg.from_numpy(y)) for x, y in data]
    for i in range(20):
        mg_step(model, opt, *data[i % len(data)])
    return model, opt, data


def time_mg(state, steps, phases):
    model, opt, data = state
    start = time.perf_counter()
    for i in range(steps):
        mg_step(model, opt, *data[i % len(data)], phases)
    return time.perf_counter() - start


def setup_torch(data):
    import torch

    torch.manual_seed(0)
    model = mlp(torch.nn)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]

    def step(x, y):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for i in range(20):
        step(*data[i % len(data)])
    return step, data


def time_torch(state, steps):
    step, data = state
    start = time.perf_counter()
    for i in range(steps):
        step(*data[i % len(data)])
    return time.perf_counter() - start


def top_functions(state, steps, count=8):
    """The functions with the most own time per step under cProfile, in ms."""
    profiler = cProfile.Profile()
    profiler.enable()
    time_mg(state, steps, None)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    rows = sorted(((tottime, f"{os.path.basename(file)}:{line}({name})" if file != "~" else name)
                   for (file, line, name), (_, _, tottime, _, _) in stats.items()), reverse=True)
    return [(name, round(t / steps * 1e3, 3)) for t, name in rows[:count]]


def child(threads, steps, repeats, with_torch):
    """One thread count, in this process: JSON lines for microgradbn (and torch)."""
    mg.set_num_threads(threads)
    data = batches()
    mine = setup_mg(data)
    theirs = None
    if with_torch:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            torch.set_num_threads(threads)
            theirs = setup_torch(data)
    phases = dict(forward=0.0, backward=0.0, optimizer=0.0)
    mg_times, torch_times = [], []
    for _ in range(repeats):
        mg_times.append(time_mg(mine, steps, phases))
        if theirs is not None:
            torch_times.append(time_torch(theirs, steps))
    tiny = setup_mg(batches(sizes=TINY_SIZES, batch=TINY_BATCH), TINY_SIZES)
    overhead = min(time_mg(tiny, steps, None) for _ in range(3)) / steps * 1e3
    top = top_functions(mine, max(steps // 4, 10))
    total = steps * repeats
    common = dict(bench="train_mlp_bn", threads=threads, batch=BATCH, steps=steps, repeats=repeats)
    seconds = statistics.median(mg_times)
    step_ms = seconds / steps * 1e3
    print(json.dumps(dict(common, impl="microgradbn", steps_per_s=round(steps / seconds, 1),
                          spread=[round(steps / max(mg_times), 1), round(steps / min(mg_times), 1)],
                          phases_ms={k: round(v / total * 1e3, 3) for k, v in phases.items()},
                          split_ms=dict(overhead=round(overhead, 3), kernels=round(step_ms - overhead, 3)),
                          top_functions_ms=top)), flush=True)
    if torch_times:
        seconds = statistics.median(torch_times)
        print(json.dumps(dict(common, impl="torch", steps_per_s=round(steps / seconds, 1),
                              spread=[round(steps / max(torch_times), 1), round(steps / min(torch_times), 1)])),
              flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=100, help="steps per repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--no-torch", dest="torch", action="store_false")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        return child(args.child, args.steps, args.repeats, args.torch)
    rows = []
    for threads in args.threads:
        env = dict(os.environ, MGBN_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                   OMP_NUM_THREADS=str(threads))
        command = [sys.executable, os.path.abspath(__file__), "--child", str(threads), "--steps", str(args.steps),
                   "--repeats", str(args.repeats)] + ([] if args.torch else ["--no-torch"])
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        for line in result.stdout.splitlines():
            print(line, flush=True)
            rows.append(json.loads(line))
    print(f"\n{'threads':>7} {'microgradbn steps/s':>20} {'torch steps/s':>14} {'ratio':>6}   "
          "fwd/bwd/opt ms   kernels/overhead ms")
    for threads in args.threads:
        mine = next(r for r in rows if r["impl"] == "microgradbn" and r["threads"] == threads)
        ref = next((r for r in rows if r["impl"] == "torch" and r["threads"] == threads), None)
        ratio = f"{mine['steps_per_s'] / ref['steps_per_s']:6.2f}" if ref else "     -"
        ph, split = mine["phases_ms"], mine["split_ms"]
        print(f"{threads:>7} {mine['steps_per_s']:>20.1f} {ref['steps_per_s'] if ref else '-':>14} {ratio}   "
              f"{ph['forward']:.2f}/{ph['backward']:.2f}/{ph['optimizer']:.2f}   "
              f"{split['kernels']:.2f}/{split['overhead']:.2f}")


if __name__ == "__main__":
    main()
