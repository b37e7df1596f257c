"""Benchmark of the graph tools and the engine at scale (a benchmark, not a test).

    PYTHONPATH=. python bench/bench_graph.py [--nodes 10000] [--chain 100000]

Prints one JSON line per measurement, then a table. The targets: backward
through a chain of 100,000 ops with no RecursionError, and to_dot of a
10,000-node graph in under a second. Where PyTorch is installed, the same
chain's forward and backward are timed there too (ratio = ours / PyTorch).
"""
import argparse
import json
import sys
import time

import microgradbn as mg


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ladder(lib, nodes):
    """A graph of about `nodes` nodes: y = y * w + x repeated (two nodes a
    step), with a new leaf w every 10 steps: ops, leaves, branches, saved tensors."""
    x = lib.ones(16, requires_grad=True)
    y = x
    for k in range(int((nodes - 2) / 2.1)):
        if k % 10 == 0:
            w = lib.ones(16, requires_grad=True)
        y = y * w + x
    return y.sum()


def chain(lib, length):
    x = lib.ones(1, requires_grad=True)
    y = x
    for _ in range(length):
        y = -y
    return y.sum()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--chain", type=int, default=100_000)
    args = parser.parse_args()
    results = []

    def report(name, seconds, torch_seconds=None, **extra):
        row = {"bench": name, "seconds": round(seconds, 6), **extra}
        if torch_seconds is not None:
            row["torch_seconds"] = round(torch_seconds, 6)
            row["ratio"] = round(seconds / torch_seconds, 3)
        print(json.dumps(row), flush=True)
        results.append(row)

    try:
        import torch
    except ImportError:
        torch = None

    y = ladder(mg, args.nodes)
    count = len(mg.graph.nodes_in_order([y.grad_fn]))
    report("to_dot", best_of(lambda: mg.graph.to_dot(y)), nodes=count, target_seconds=1.0)
    report("to_dot show_saved", best_of(lambda: mg.graph.to_dot(y, show_saved=True)), nodes=count)
    report("summary", best_of(lambda: str(mg.graph.summary(y))), nodes=count)
    report("backward", best_of(lambda: y.backward(retain_graph=True)), nodes=count)

    def traced():
        with mg.graph.trace():
            y.backward(retain_graph=True)

    report("backward under trace()", best_of(traced), nodes=count)

    start = time.perf_counter()
    z = chain(mg, args.chain)
    build = time.perf_counter() - start
    start = time.perf_counter()
    z.backward()
    backward = time.perf_counter() - start
    torch_build = torch_backward = None
    if torch is not None:
        start = time.perf_counter()
        tz = chain(torch, args.chain)
        torch_build = time.perf_counter() - start
        start = time.perf_counter()
        tz.backward()
        torch_backward = time.perf_counter() - start
    report("chain forward", build, torch_build, ops=args.chain)
    report("chain backward", backward, torch_backward, ops=args.chain,
           recursion_limit=sys.getrecursionlimit())

    print()
    print(f"{'bench':<24} {'size':>8} {'seconds':>10} {'torch':>10} {'ratio':>7}")
    for r in results:
        size = r.get("nodes", r.get("ops"))
        torch_text = f"{r['torch_seconds']:.4f}" if "torch_seconds" in r else "-"
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        print(f"{r['bench']:<24} {size:>8} {r['seconds']:>10.4f} {torch_text:>10} {ratio:>7}")


if __name__ == "__main__":
    main()
