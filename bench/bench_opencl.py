"""OpenCL device vs the CPU path: BN training forward/backward and matmul.

    python bench/bench_opencl.py [--device 0] [--dtypes float32 float64] [--repeats 5]

The OpenCL figures are for data already on the device, timed from the first
enqueue to the end of clFinish (no host<->device copies). The CPU path is
microgradbn's C kernels where this build has them (cpu.batch_norm_*,
cpu.matmul) and NumPy otherwise (named in the output). Prints one JSON line
per (op, shape, dtype, path) with the median time and the spread, then a
table of cpu/opencl ratios.

On PoCL the "device" is this same CPU running OpenCL C compiled by LLVM
through PoCL's pthread driver: those figures only show that the path works,
not what a GPU would do.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])

from microgradbn._backend import cpu  # noqa: E402
from microgradbn._backend import opencl as cl  # noqa: E402

BN_SHAPES = [(1024, 256), (256, 64, 8, 8), (32, 32, 32, 32)]
MATMUL_SIZES = [128, 256, 512]


def median_time(fn, repeats, sync=lambda: None):
    fn()
    sync()   # warm-up (first use builds kernels, faults pages)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples), max(samples)


def numpy_bn_forward(x, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    mean = x.mean(axes, keepdims=True, dtype=np.float64)
    var = ((x - mean) ** 2).mean(axes, keepdims=True)
    return ((x - mean) / np.sqrt(var + eps)).astype(x.dtype), mean, 1 / np.sqrt(var + eps)


def numpy_bn_backward(dy, x, mean, rstd):
    axes = (0,) + tuple(range(2, x.ndim))
    n = x.size // x.shape[1]
    xhat = (x - mean) * rstd
    s1, s2 = dy.sum(axes, keepdims=True), (dy * xhat).sum(axes, keepdims=True)
    return (rstd / n * (n * dy - s1 - xhat * s2)).astype(x.dtype)


def cases(dtype, rng):
    """(op, shape, cpu path name, cpu fn, opencl fn, flops or None) for one dtype."""
    out = []
    for shape in BN_SHAPES:
        x = rng.standard_normal(shape).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        X, DY = cl.to_device(x), cl.to_device(dy)
        _, mean_d, rstd_d, _ = cl.batch_norm_train_forward(X, None, None, 1e-5)
        if hasattr(cpu, "batch_norm_train_forward"):
            _, mean, rstd, _ = cpu.batch_norm_train_forward(x, None, None, 1e-5)
            fwd = ("mg cpu", lambda x=x: cpu.batch_norm_train_forward(x, None, None, 1e-5))
            bwd = ("mg cpu", lambda dy=dy, x=x, m=mean, r=rstd: cpu.batch_norm_backward(dy, x, m, r, None,
                                                                                    True, True, True))
        else:
            _, mean, rstd = numpy_bn_forward(x)
            fwd = ("numpy", lambda x=x: numpy_bn_forward(x))
            bwd = ("numpy", lambda dy=dy, x=x, m=mean, r=rstd: numpy_bn_backward(dy, x, m, r))
        out.append(("bn_forward", shape, *fwd, lambda X=X: cl.batch_norm_train_forward(X, None, None, 1e-5), None))
        out.append(("bn_backward", shape, *bwd,
                    lambda DY=DY, X=X, m=mean_d, r=rstd_d: cl.batch_norm_backward(DY, X, m, r, None, True, True, True),
                    None))
    for n in MATMUL_SIZES:
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        A, B = cl.to_device(a), cl.to_device(b)
        name, fn = ("mg cpu", cpu.matmul) if hasattr(cpu, "matmul") else ("numpy", np.matmul)
        out.append(("matmul", (n, n, n), name, lambda a=a, b=b, fn=fn: fn(a, b),
                    lambda A=A, B=B: cl.matmul(A, B), 2.0 * n ** 3))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not cl.is_available():
        print(f"no OpenCL device: {cl.unavailable_reason()}")
        return
    info = cl.device_info(args.device)
    pocl = "pocl" in info["version"].lower()
    print(f"# OpenCL device {args.device}: {info['name']} ({info['version']}), "
          f"{info['compute_units']} compute units, fp64 {info['fp64']}")
    if pocl or not info["is_gpu"]:
        print("# NOTE: this OpenCL device is a CPU (PoCL): its figures only show that the OpenCL path "
              "works, not GPU speed.")
    rows = []
    rng = np.random.default_rng(0)
    for dtype in args.dtypes:
        if dtype == "float64" and not info["fp64"]:
            print(f"# skipping float64: {info['name']} has no cl_khr_fp64")
            continue
        for op, shape, cpu_name, cpu_fn, cl_fn, flops in cases(np.dtype(dtype), rng):
            result = {}
            for path, fn, sync in ((cpu_name, cpu_fn, lambda: None),
                                   ("opencl", cl_fn, lambda: cl.finish(args.device))):
                med, lo, hi = median_time(fn, args.repeats, sync)
                line = {"op": op, "shape": list(shape), "dtype": dtype, "path": path, "seconds": med,
                        "min": lo, "max": hi}
                if flops:
                    line["gflops"] = flops / med * 1e-9
                print(json.dumps(line))
                result[path] = med
            rows.append((op, shape, dtype, cpu_name, result[cpu_name], result["opencl"]))
    print(f"\n{'op':12} {'shape':18} {'dtype':8} {'cpu path':8} {'cpu ms':>9} {'opencl ms':>10} {'cpu/opencl':>11}")
    for op, shape, dtype, cpu_name, t_cpu, t_cl in rows:
        print(f"{op:12} {str(shape):18} {dtype:8} {cpu_name:8} {t_cpu * 1e3:9.3f} {t_cl * 1e3:10.3f} "
              f"{t_cpu / t_cl:11.2f}")
    if pocl:
        print("(PoCL: a CPU running OpenCL; ratios say nothing about a GPU)")


if __name__ == "__main__":
    main()
