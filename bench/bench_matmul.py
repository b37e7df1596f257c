"""Matrix multiplication speed: microgradbn vs NumPy (OpenBLAS) vs PyTorch.

    python bench/bench_matmul.py [--sizes 256 512 1024 2048] [--threads 1 2]
                                 [--dtypes float32 float64] [--repeats 7]

Square products C = A @ B (n x n, 2 n^3 flops). Each thread count runs in
its own subprocess with MGBN_NUM_THREADS, OPENBLAS_NUM_THREADS and
OMP_NUM_THREADS set (and torch.set_num_threads), so every library uses the
same number of threads. The libraries take turns within each repeat, so a
busy neighbour on a shared machine slows them alike, and each timed block
starts after a pause (--pause, 0.3 s): OpenBLAS's idle threads spin for
about 0.1 s after a call (PyTorch's OpenMP threads for milliseconds), and
would otherwise hold the second core while the next library runs (mg's
own idle workers watch for the next job for 5 ms). Prints one JSON line
per (library, dtype, n, threads) with the median and the spread (min, max)
of GFLOP/s, then a table with mg/numpy ratios.

"% peak" divides by an ESTIMATE of the peak FMA throughput: the clock in
/proc/cpuinfo x 2 FMA units x vector lanes x 2 flops x threads. Turbo
clocks above the listed one can give more than 100%.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

from _timing import timed_block

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_mhz():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1])
    except OSError:
        pass
    return None


def peak_gflops(isa, dtype, threads):
    """Estimated peak: clock x 2 FMA units x lanes x 2 flops, per thread."""
    mhz = cpu_mhz()
    bits = {"avx512": 512, "avx2": 256, "neon": 128}.get(isa)
    if mhz is None or bits is None:
        return None
    lanes = bits // (32 if dtype == "float32" else 64)
    return mhz * 1e-3 * 2 * lanes * 2 * threads


def worker(args):
    """Runs in a subprocess whose thread-count variables are already set."""
    sys.path.insert(0, ROOT)
    import numpy as np

    from microgradbn._backend import cpu

    cpu.set_num_threads(args.threads)
    libs = {"mg": cpu.matmul, "numpy": np.matmul}
    try:
        import torch

        torch.set_num_threads(args.threads)
        libs["torch"] = lambda a, b: torch.from_numpy(a) @ torch.from_numpy(b)
    except ImportError:
        pass
    isa = cpu.backend_info()["isa"]
    rng = np.random.default_rng(0)
    for dtype in args.dtypes:
        for n in args.sizes:
            a = rng.standard_normal((n, n)).astype(dtype)
            b = rng.standard_normal((n, n)).astype(dtype)
            inner = max(1, int(2e8 / (2 * n**3)))   # about 0.1 s or more per sample
            samples = {name: [] for name in libs}
            for fn in libs.values():
                fn(a, b)                             # warm up: buffers, thread pools
            for _ in range(args.repeats):
                for name, fn in libs.items():
                    samples[name].append(2 * n**3 / timed_block(lambda: fn(a, b), inner, args.pause) / 1e9)
            peak = peak_gflops(isa, dtype, args.threads)
            ratios = [m / o for m, o in zip(samples["mg"], samples["numpy"])]   # per repeat
            for name, gf in samples.items():
                med = statistics.median(gf)
                record = {
                    "lib": name, "dtype": dtype, "n": n, "threads": args.threads, "isa": isa,
                    "gflops_median": round(med, 2), "gflops_min": round(min(gf), 2),
                    "gflops_max": round(max(gf), 2), "repeats": args.repeats,
                    "peak_estimate_pct": round(100 * med / peak, 1) if peak else None,
                }
                if name == "mg":
                    record["vs_numpy"] = [round(v, 2) for v in (statistics.median(ratios), min(ratios), max(ratios))]
                print(json.dumps(record), flush=True)


def table(rows):
    by_key = {}
    for r in rows:
        by_key.setdefault((r["dtype"], r["n"], r["threads"]), {})[r["lib"]] = r
    has_torch = any("torch" in libs for libs in by_key.values())
    head = f"{'dtype':8} {'n':>5} {'thr':>3} | {'mg GF/s':>15} {'numpy GF/s':>15}"
    head += f" {'torch GF/s':>15}" if has_torch else ""
    head += f" | {'mg/numpy':>16} {'mg %peak*':>9}"
    lines = [head, "-" * len(head)]
    for (dtype, n, threads), libs in sorted(by_key.items()):
        def cell(name):
            r = libs.get(name)
            return f"{r['gflops_median']:7.1f} ({r['gflops_min']:.0f}-{r['gflops_max']:.0f})" if r else "-"
        mg = libs["mg"]
        line = f"{dtype:8} {n:5d} {threads:3d} | {cell('mg'):>15} {cell('numpy'):>15}"
        line += f" {cell('torch'):>15}" if has_torch else ""
        pct = mg["peak_estimate_pct"]
        ratio = "{:.2f} ({:.2f}-{:.2f})".format(*mg["vs_numpy"])
        line += f" | {ratio:>16} {pct if pct is not None else '-':>9}"
        lines.append(line)
    lines.append("GF/s: median (min-max) over repeats; mg/numpy: median (min-max) of the per-repeat ratios.  *peak is an estimate: /proc/cpuinfo clock x 2 FMA "
                 "units x lanes x 2 flops x threads; turbo can exceed it.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pause", type=float, default=0.3,
                        help="seconds of pause before each timed block (default 0.3)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.threads = args.threads[0]
        worker(args)
        return
    rows = []
    for threads in args.threads:
        env = dict(os.environ, MGBN_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                   OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", str(threads),
               "--repeats", str(args.repeats), "--pause", str(args.pause), "--sizes", *map(str, args.sizes), "--dtypes", *args.dtypes]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        for line in proc.stdout.splitlines():
            print(line, flush=True)
            rows.append(json.loads(line))
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
