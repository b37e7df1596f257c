"""Training throughput side by side with PyTorch, float32, SGD with momentum 0.9:

    mlp   784-256-256-10, Linear (no bias) + BatchNorm1d + ReLU twice, batch 128
    cnn   the main job's CNN (microgradbn.train.build_cnn): 3x3 conv 1->16, BN2d,
          ReLU, 2x2 max pool, 3x3 conv 16->32, BN2d, ReLU, max pool, Linear
          1568->10; batch 64 of 28x28 images

    python bench/bench_train.py [--models mlp cnn] [--threads 1 2] [--steps 20] [--repeats 15]

Each thread count runs in its own subprocess with MGBN_NUM_THREADS,
OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set (and torch.set_num_threads), and
OMP_WAIT_POLICY=PASSIVE (--omp-wait-policy): PyTorch's OpenMP threads
otherwise spin at every barrier, and when the cores are shared that makes its
2-thread steps ten times slower (seen here: 84 ms instead of 8 ms per MLP step).
The machine may be shared and busy, so the two take turns in short rounds
(`--steps` steps each, who goes first alternating round by round): a busy
neighbour slows both alike within a round. Each round ends with ROUND_GAP_S
of sleep, so that mg's idle workers (which watch for the next job for 5 ms,
src/threads.c) have let go of the second core when PyTorch's round starts. Reported: the median steps/s over
the rounds with its spread (min..max), and the median over the rounds of
microgradbn's speed / PyTorch's in the same round (the ratio column), and
the CPU time per step of each (microgradbn/torch; all of a process's threads
counted, so at 2 threads it includes time spent waiting or spinning).
Prints one JSON line per measurement, then a table. Where the time goes:
  - phases: forward, backward and optimizer step, by time.perf_counter;
  - overhead: the same graph (same ops, same number of calls) at tiny sizes,
    where the kernels take almost no time: what is left is Python and FFI
    overhead per step; kernels = step time - overhead;
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

ROUND_GAP_S = 0.006   # seconds of sleep after each round (see the docstring)

# model -> (full size, tiny size for the overhead measure, batch, tiny batch);
# a size is the MLP's widths or the CNN's (channels..., image side).
MODELS = {
    "mlp": ((784, 256, 256, 10), (8, 8, 8, 10), 128, 4),
    "cnn": ((1, 16, 32, 28), (1, 2, 2, 4), 64, 4),
}


def build(backend, model, size):
    if model == "mlp":
        layers = []
        for n_in, n_out in zip(size[:-2], size[1:-1]):
            layers += [backend.Linear(n_in, n_out, bias=False), backend.BatchNorm1d(n_out), backend.ReLU()]
        return backend.Sequential(*layers, backend.Linear(size[-2], size[-1]))
    *channels, side = size
    layers = []
    for c_in, c_out in zip(channels, channels[1:]):
        layers += [backend.Conv2d(c_in, c_out, 3, padding=1, bias=False), backend.BatchNorm2d(c_out),
                   backend.ReLU(), backend.MaxPool2d(2)]
    return backend.Sequential(*layers, backend.Flatten(), backend.Linear(channels[-1] * (side // 4) ** 2, 10))


def batches(model, size, batch, count=4, seed=0):
    rng = np.random.default_rng(seed)
    shape = (batch, size[0]) if model == "mlp" else (batch, 1, size[-1], size[-1])
    return [(rng.random(shape, dtype=np.float32), rng.integers(0, 10, batch)) for _ in range(count)]


def setup_mg(model, size, batch):
    mg.manual_seed(0)
    net = build(nn, model, size)
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    data = [(mg.from_numpy(x), mg.from_numpy(y)) for x, y in batches(model, size, batch)]

    def step(x, y, phases=None):
        t0 = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        t1 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        if phases is not None:
            t3 = time.perf_counter()
            phases["forward"] += t1 - t0
            phases["backward"] += t2 - t1
            phases["optimizer"] += t3 - t2

    return step, data


def setup_torch(model, size, batch):
    import torch

    torch.manual_seed(0)
    net = build(torch.nn, model, size)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches(model, size, batch)]

    def step(x, y, phases=None):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step, data


def run(state, steps, phases=None, cpu_times=None):
    """Seconds for `steps` training steps (and the process's CPU seconds appended to cpu_times)."""
    step, data = state
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(steps):
        step(*data[i % len(data)], phases)
    if cpu_times is not None:
        cpu_times.append(time.process_time() - cpu_start)
    return time.perf_counter() - start


def top_functions(state, steps, count=8):
    """The functions with the most own time per step under cProfile, in ms."""
    profiler = cProfile.Profile()
    profiler.enable()
    run(state, steps)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    rows = sorted(((tottime, f"{os.path.basename(file)}:{line}({name})" if file != "~" else name)
                   for (file, line, name), (_, _, tottime, _, _) in stats.items()), reverse=True)
    return [(name, round(t / steps * 1e3, 3)) for t, name in rows[:count]]


def measure(model, threads, steps, repeats, with_torch):
    """JSON-ready rows for one model at one thread count, in this process."""
    size, tiny, batch, tiny_batch = MODELS[model]
    mine = setup_mg(model, size, batch)
    theirs = None
    if with_torch:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            torch.set_num_threads(threads)
            theirs = setup_torch(model, size, batch)
    for state in (mine, theirs):
        if state is not None:
            run(state, 10)  # warm up: caches, the allocator, the thread pool
    phases = dict(forward=0.0, backward=0.0, optimizer=0.0)
    mg_times, torch_times, mg_cpu, torch_cpu = [], [], [], []
    for round_ in range(repeats):
        order = [("mg", mine), ("torch", theirs)][::1 if round_ % 2 == 0 else -1]
        for name, state in order:
            if name == "mg":
                mg_times.append(run(state, steps, phases, mg_cpu))
            elif state is not None:
                torch_times.append(run(state, steps, cpu_times=torch_cpu))
            time.sleep(ROUND_GAP_S)
    tiny_state = setup_mg(model, tiny, tiny_batch)
    run(tiny_state, 10)
    overhead = min(run(tiny_state, steps) for _ in range(5)) / steps * 1e3
    step_ms = statistics.median(mg_times) / steps * 1e3
    common = dict(bench=f"train_{model}_bn", threads=threads, batch=batch, steps=steps, repeats=repeats,
                  omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "unset").lower())
    rows = [dict(common, impl="microgradbn", **_rates(mg_times, steps), cpu_ms=_cpu_ms(mg_cpu, steps),
                 phases_ms={k: round(v / (steps * repeats) * 1e3, 3) for k, v in phases.items()},
                 split_ms=dict(overhead=round(overhead, 3), kernels=round(step_ms - overhead, 3)),
                 top_functions_ms=top_functions(mine, steps))]
    if torch_times:
        ratios = [t / m for m, t in zip(mg_times, torch_times)]
        rows.append(dict(common, impl="torch", **_rates(torch_times, steps), cpu_ms=_cpu_ms(torch_cpu, steps),
                         ratio_median=round(statistics.median(ratios), 3),
                         ratio_spread=[round(min(ratios), 3), round(max(ratios), 3)]))
    return rows


def _rates(times, steps):
    return dict(steps_per_s=round(steps / statistics.median(times), 1),
                spread=[round(steps / max(times), 1), round(steps / min(times), 1)])


def _cpu_ms(cpu_times, steps):
    """Median CPU time per step over the rounds, all threads of the process counted."""
    return round(statistics.median(cpu_times) / steps * 1e3, 3)


def table(rows, models, thread_counts):
    lines = [f"{'model':<5} {'threads':>7} {'microgradbn steps/s':>24} {'torch steps/s':>24} "
             f"{'ratio (min..max)':>20}   cpu ms/step   fwd/bwd/opt ms   kernels/overhead ms"]
    for model in models:
        for threads in thread_counts:
            pick = {r["impl"]: r for r in rows if r["bench"] == f"train_{model}_bn" and r["threads"] == threads}
            mine, ref = pick["microgradbn"], pick.get("torch")
            rate = lambda r: f"{r['steps_per_s']:.0f} ({r['spread'][0]:.0f}..{r['spread'][1]:.0f})"  # noqa: E731
            ratio = (f"{ref['ratio_median']:.2f} ({ref['ratio_spread'][0]:.2f}..{ref['ratio_spread'][1]:.2f})"
                     if ref else "-")
            ph, split = mine["phases_ms"], mine["split_ms"]
            cpu = f"{mine['cpu_ms']:.2f}" + (f"/{ref['cpu_ms']:.2f}" if ref else "")
            lines.append(f"{model:<5} {threads:>7} {rate(mine):>24} {rate(ref) if ref else '-':>24} {ratio:>20}   "
                         f"{cpu:>11}   {ph['forward']:.2f}/{ph['backward']:.2f}/{ph['optimizer']:.2f}   "
                         f"{split['kernels']:.2f}/{split['overhead']:.2f}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=20, help="steps per round")
    p.add_argument("--repeats", type=int, default=15, help="rounds")
    p.add_argument("--no-torch", dest="torch", action="store_false")
    p.add_argument("--omp-wait-policy", choices=("passive", "active", "unset"), default="passive",
                   help="OMP_WAIT_POLICY for PyTorch's OpenMP threads")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        mg.set_num_threads(args.child)
        for model in args.models:
            for row in measure(model, args.child, args.steps, args.repeats, args.torch):
                print(json.dumps(row), flush=True)
        return
    rows = []
    for threads in args.threads:
        env = dict(os.environ, MGBN_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                   OMP_NUM_THREADS=str(threads))
        env.pop("OMP_WAIT_POLICY", None)
        if args.omp_wait_policy != "unset":
            env["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
        command = [sys.executable, os.path.abspath(__file__), "--child", str(threads), "--steps", str(args.steps),
                   "--repeats", str(args.repeats), "--models", *args.models] + ([] if args.torch else ["--no-torch"])
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        for line in result.stdout.splitlines():
            print(line, flush=True)
            rows.append(json.loads(line))
    print()
    print(table(rows, args.models, args.threads))


if __name__ == "__main__":
    main()
