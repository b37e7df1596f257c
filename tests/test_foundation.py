"""The foundation seen from Python: backend info, SIMD paths and environment
variables, thread counts, fork, the generated cffi declarations, and how C
status codes become exceptions. Tested at the backend level
(microgradbn._backend.cpu), below Tensor."""
import os
import pathlib
import platform
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import microgradbn as mg
from microgradbn import errors
from microgradbn._backend import cpu
from microgradbn._mgbn import ffi, lib

SIZES = (1, 7, 33, 1000, 100003)
DTYPES = (np.float32, np.float64)
REPO = pathlib.Path(__file__).resolve().parents[1]
# The directory holding the microgradbn package under test (a checkout or
# site-packages); subprocesses must import the same one.
PACKAGE_PARENT = str(pathlib.Path(mg.__file__).resolve().parents[1])


def run_python(code, tmp_path, **env):
    """Runs code in a fresh interpreter with extra environment variables."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MGBN_")}
    full_env.update(env)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, full_env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=120)


def inputs(n, dtype, seed=0):
    rng = np.random.default_rng(seed + n)
    return (rng.standard_normal(n) * 10).astype(dtype), (rng.standard_normal(n) + 0.5).astype(dtype)


def unavailable_isa():
    """A SIMD path this machine cannot run (avx512 on an AVX2-only x86 CPU)."""
    available = mg.backend_info()["available_isas"]
    return next(name for name in ("avx512", "neon", "avx2") if name not in available)


# ---- backend_info ------------------------------------------------------------

def test_backend_info_keys_and_values():
    info = mg.backend_info()
    assert set(info) == {"isa", "available_isas", "compiled_isas", "threads", "version", "opencl_available",
                         "stream_min_bytes"}
    assert (1 << 20) <= info["stream_min_bytes"] <= (6 << 20)
    assert info["version"] == mg.__version__
    assert "scalar" in info["available_isas"]
    assert info["isa"] in info["available_isas"]
    assert set(info["available_isas"]) <= set(info["compiled_isas"]) <= set(cpu.ISA_NAMES)
    assert isinstance(info["threads"], int) and info["threads"] >= 1
    assert info["threads"] == mg.get_num_threads()
    assert isinstance(info["opencl_available"], bool)
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        assert info["compiled_isas"] == ["scalar", "avx2", "avx512"]
    elif machine in ("aarch64", "arm64"):
        assert info["compiled_isas"] == ["scalar", "neon"]
        assert info["isa"] == "neon"


# ---- SIMD paths: scalar and the best give the same bits ----------------------

COMPUTE = """
import numpy as np, microgradbn as mg
from microgradbn._backend import cpu
out = {"isa": np.array(mg.backend_info()["isa"])}
for dtype in (np.float32, np.float64):
    for n in %(sizes)r:
        rng = np.random.default_rng(n)
        a = (rng.standard_normal(n) * 10).astype(dtype)
        b = (rng.standard_normal(n) + 0.5).astype(dtype)
        key = f"{np.dtype(dtype).name}_{n}"
        out["add_" + key] = cpu.binary(cpu.OP_ADD, a, b, a.shape, dtype)
        out["mul_" + key] = cpu.binary(cpu.OP_MUL, a, b, a.shape, dtype)
        out["sum_" + key] = cpu.sum_all(a)
        col = a[:, None]                  # broadcast (n, 1) against (1, 7), reversed
        out["bcast_" + key] = cpu.binary(cpu.OP_SUB, col, b[-7:][::-1][None, :], (n, 7), dtype)
np.savez(%(path)r, **out)
"""


def test_scalar_and_best_paths_give_identical_bits(tmp_path):
    results = {}
    for name, env in (("scalar", {"MGBN_SIMD": "scalar"}), ("best", {})):
        path = str(tmp_path / f"{name}.npz")
        proc = run_python(COMPUTE % {"sizes": SIZES, "path": path}, tmp_path, **env)
        assert proc.returncode == 0, proc.stderr
        results[name] = dict(np.load(path))
    scalar, best = results["scalar"], results["best"]
    assert str(scalar.pop("isa")) == "scalar"
    assert str(best.pop("isa")) == mg.backend_info()["available_isas"][-1]
    assert scalar.keys() == best.keys() and len(scalar) == 4 * len(SIZES) * len(DTYPES)
    for key in scalar:
        assert scalar[key].dtype == best[key].dtype
        assert scalar[key].tobytes() == best[key].tobytes(), f"{key}: scalar and best paths differ"


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_available_isa_matches_numpy(dtype):
    """In process: each path the CPU runs gives NumPy's add/mul bits and one sum."""
    start = mg.backend_info()["isa"]
    try:
        for n in SIZES:
            a, b = inputs(n, dtype)
            sums = set()
            for isa in mg.backend_info()["available_isas"]:
                cpu.set_isa(isa)
                np.testing.assert_array_equal(cpu.binary(cpu.OP_ADD, a, b, a.shape, dtype), a + b)
                np.testing.assert_array_equal(cpu.binary(cpu.OP_MUL, a, b, a.shape, dtype), a * b)
                s = cpu.sum_all(a)
                assert s.dtype == dtype
                sums.add(s.tobytes())
                np.testing.assert_allclose(s, a.astype(np.float64).sum(), rtol=1e-6 if dtype == np.float32 else 1e-12)
            assert len(sums) == 1, f"n={n}: the SIMD paths disagree on the sum"
    finally:
        cpu.set_isa(start)


# ---- environment variables ---------------------------------------------------

IMPORT = "import microgradbn as mg; print(mg.backend_info()['isa'], mg.backend_info()['threads'])"


def assert_import_fails(proc, variable, value):
    assert proc.returncode != 0, f"import succeeded with {variable}={value!r}"
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("microgradbn.errors.BackendError:"), proc.stderr
    assert variable in last and value in last, last
    return last


def test_bad_simd_value_fails_at_import(tmp_path):
    last = assert_import_fails(run_python(IMPORT, tmp_path, MGBN_SIMD="sse9"), "MGBN_SIMD", "sse9")
    assert "not one of scalar, avx2, avx512, neon" in last
    available = ", ".join(mg.backend_info()["available_isas"])
    assert f"this machine can run: {available}" in last


def test_unsupported_simd_path_fails_at_import(tmp_path):
    isa = unavailable_isa()
    last = assert_import_fails(run_python(IMPORT, tmp_path, MGBN_SIMD=isa), "MGBN_SIMD", isa)
    assert "does not support it" in last or "does not contain it" in last
    assert "this machine can run: " + ", ".join(mg.backend_info()["available_isas"]) in last


@pytest.mark.parametrize("isa", ["scalar", "best"])
def test_good_simd_value_is_used(tmp_path, isa):
    want = mg.backend_info()["available_isas"][-1] if isa == "best" else isa
    proc = run_python(IMPORT, tmp_path, MGBN_SIMD=want)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == want


@pytest.mark.parametrize("value", ["0", "-2", "abc", "2x", "1.5", "100000"])
def test_bad_thread_count_fails_at_import(tmp_path, value):
    last = assert_import_fails(run_python(IMPORT, tmp_path, MGBN_NUM_THREADS=value), "MGBN_NUM_THREADS", value)
    assert "whole number" in last


def test_thread_count_from_environment(tmp_path):
    proc = run_python(IMPORT, tmp_path, MGBN_NUM_THREADS="3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[1] == "3"


# ---- threads and fork --------------------------------------------------------

@pytest.fixture
def restore_threads():
    start = mg.get_num_threads()
    yield
    mg.set_num_threads(start)


@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_counts_give_identical_bits(dtype, restore_threads):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(1_000_000) * np.exp(rng.uniform(-20, 20, 1_000_000))).astype(dtype)
    y = rng.standard_normal(1_000_000).astype(dtype)
    sums, products = set(), set()
    for threads in (1, 2, 3):
        mg.set_num_threads(threads)
        assert mg.get_num_threads() == threads
        sums.add(cpu.sum_all(x).tobytes())
        products.add(cpu.binary(cpu.OP_MUL, x[:, None], y[None, :3], (x.size, 3), dtype).tobytes())
    assert len(sums) == 1 and len(products) == 1


def test_set_num_threads_rejects_bad_values(restore_threads):
    with pytest.raises(ValueError, match="mg_set_num_threads: 0"):
        mg.set_num_threads(0)
    with pytest.raises(TypeError):
        mg.set_num_threads(2.0)
    with pytest.raises(TypeError):
        mg.set_num_threads(True)


def test_fork_after_the_pool_ran(restore_threads):
    mg.set_num_threads(2)
    x = np.random.default_rng(2).standard_normal(1_000_003)
    before = cpu.sum_all(x)                      # the pool's worker threads now exist
    doubled = x + x
    pid = os.fork()
    if pid == 0:                                 # the child: only os._exit leaves it
        ok = False
        try:
            signal.alarm(30)                     # a deadlocked pool dies instead of hanging
            ok = (cpu.sum_all(x).tobytes() == before.tobytes()
                  and np.array_equal(cpu.binary(cpu.OP_ADD, x, x, x.shape, x.dtype), doubled))
            mg.set_num_threads(3)
            ok = ok and cpu.sum_all(x).tobytes() == before.tobytes()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child failed (wait status {status})"
    assert cpu.sum_all(x).tobytes() == before.tobytes()   # and the parent's pool still works


# ---- the cffi declarations ---------------------------------------------------

def declared_functions(cdef):
    return sorted(set(re.findall(r"\b(mg_\w+)\s*\(", cdef)))


def test_cdef_matches_header():
    header = REPO / "src" / "mg.h"
    generator = REPO / "tools" / "gen_cffi.py"
    if not header.exists() or not generator.exists():
        pytest.skip("no source checkout beside the tests")
    sys.path.insert(0, str(generator.parent))
    try:
        import gen_cffi
    finally:
        sys.path.remove(str(generator.parent))
    from microgradbn import _cdef
    assert _cdef.CDEF == gen_cffi.extract_cdef(header.read_text()), (
        "microgradbn/_mgbn was built from another src/mg.h: run tools/dev_build.sh")


def test_every_declared_function_is_in_the_module():
    from microgradbn import _cdef
    names = declared_functions(_cdef.CDEF)
    assert "mg_init" in names and "mg_sum" in names and len(names) >= 12
    missing = [name for name in names if not hasattr(lib, name)]
    assert not missing, f"declared in mg.h but not in microgradbn._mgbn.lib: {missing}"


# ---- C status -> Python exception -------------------------------------------

def test_status_codes_map_to_exceptions():
    expected = {"MG_ERR_ARG": ValueError, "MG_ERR_SHAPE": mg.ShapeError, "MG_ERR_DTYPE": mg.DTypeError,
                "MG_ERR_NOMEM": MemoryError, "MG_ERR_BACKEND": mg.BackendError,
                "MG_ERR_INTERNAL": mg.InternalError}
    assert lib.MG_OK == 0
    assert {getattr(lib, name): cls for name, cls in expected.items()} == errors.STATUS_EXCEPTIONS
    assert issubclass(mg.ShapeError, ValueError) and issubclass(mg.DTypeError, TypeError)
    assert issubclass(mg.BackendError, RuntimeError) and issubclass(mg.InternalError, RuntimeError)


def test_shape_error_carries_the_c_message():
    a = np.ones((), np.float64)
    with pytest.raises(mg.ShapeError, match=r"mg_binary: ndim 17 is not in \[0, 16\]") as info:
        cpu.binary(cpu.OP_ADD, a, a, (1,) * 17, np.float64)
    assert isinstance(info.value, ValueError)
    status = lib.mg_binary(cpu.OP_ADD, 1, 2, [2, -3], ffi.NULL, [0, 0], ffi.NULL, [0, 0], ffi.NULL)
    with pytest.raises(mg.ShapeError, match="mg_binary: negative size -3 on axis 1"):
        cpu.raise_status(status)


def test_dtype_and_arg_errors_carry_the_c_message():
    x = np.ones(4, np.float32)
    out = np.empty((), np.float32)
    status = lib.mg_sum(5, ffi.from_buffer(x), 4, ffi.from_buffer(out))
    with pytest.raises(mg.DTypeError, match="mg_sum: dtype 5 is neither float32") as info:
        cpu.raise_status(status)
    assert isinstance(info.value, TypeError)
    status = lib.mg_binary_contig(42, 0, 4, ffi.from_buffer(x), ffi.from_buffer(x), ffi.from_buffer(out))
    with pytest.raises(ValueError, match="mg_binary_contig: unknown op 42"):
        cpu.raise_status(status)


def test_backend_error_names_the_paths():
    isa = unavailable_isa()
    start = mg.backend_info()["isa"]
    with pytest.raises(mg.BackendError, match=f"'{isa}' is not available here .this machine can run: scalar"):
        cpu.set_isa(isa)
    assert mg.backend_info()["isa"] == start
    with pytest.raises(ValueError, match="unknown SIMD path 'sse9'"):
        cpu.set_isa("sse9")


def test_absurd_allocation_raises_memory_error_and_process_stays_usable():
    with pytest.raises(MemoryError, match="mg_alloc: cannot allocate 4000000000000000 bytes"):
        cpu.empty((10**15,), np.float32)
    big = cpu.empty((1 << 20,), np.float32)       # the C allocator still works
    assert big.shape == (1 << 20,) and big.ctypes.data % 64 == 0
    big[:] = 1.5
    assert cpu.sum_all(big) == 1.5 * (1 << 20)
    np.testing.assert_array_equal(cpu.binary(cpu.OP_ADD, big, big, big.shape, np.float32), 3.0)


def test_large_buffers_are_aligned_and_recycled():
    first = cpu.empty((300, 301), np.float64)
    assert first.ctypes.data % 64 == 0 and first.flags.c_contiguous and first.flags.writeable
    assert first.ctypes.data % 4096 == 2048        # away from NumPy's page offset (memory.c: 4K aliasing)
    address = first.ctypes.data
    del first                                     # back to the C cache...
    again = cpu.empty((301, 300), np.float64)     # ...and out again for the same size
    assert again.ctypes.data == address
