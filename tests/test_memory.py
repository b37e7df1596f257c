"""Memory: training does not grow the process, backward frees what the graph
saved, and requests too large for the machine raise MemoryError and leave
the process usable."""
import gc
import os
import resource
import sys
import weakref

import numpy as np
import pytest

import microgradbn as mg
import microgradbn.nn as nn
import microgradbn.nn.functional as F
from microgradbn._backend import cpu


def under_asan():
    """AddressSanitizer keeps freed memory in quarantine: RSS grows by design there."""
    try:
        with open("/proc/self/maps") as maps:
            return "libasan" in maps.read()
    except OSError:
        return False


def rss_bytes():
    """Resident set size now (Linux), else the peak so far (which also must stop growing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def make_step(seed=0):
    """A training step on a small MLP with BN; its (64, 256) float64 activations
    (128 KiB) come from the C allocator, the small arrays from NumPy."""
    mg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 256, bias=False, dtype=mg.float64),
                          nn.BatchNorm1d(256, dtype=mg.float64), nn.ReLU(),
                          nn.Linear(256, 10, dtype=mg.float64))
    x = mg.randn(64, 32, dtype=mg.float64)
    y = mg.tensor(np.arange(64) % 10)
    opt = mg.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return model, step


@pytest.mark.skipif(under_asan(), reason="ASan's quarantine grows RSS by design")
def test_rss_stops_growing_over_thousands_of_steps():
    _, step = make_step()
    for _ in range(300):
        step()
    gc.collect()
    rss_start, objects_start = rss_bytes(), len(gc.get_objects())
    for _ in range(3000):
        step()
    gc.collect()
    grown, new_objects = rss_bytes() - rss_start, len(gc.get_objects()) - objects_start
    # a leaked activation per step would be 3000 * 128 KiB = 375 MiB
    assert grown < 8 << 20, f"RSS grew by {grown / 2**20:.1f} MiB over 3000 steps"
    assert new_objects < 100, f"{new_objects} more objects tracked by the garbage collector"


def intermediate_saved_arrays(loss, owned):
    """Weak references to the arrays the graph's nodes saved that share no memory
    with the arrays in owned (parameters, inputs)."""
    refs = []
    for node in mg.autograd.topological_order(loss.grad_fn):
        for a in node.saved_tensors:
            if isinstance(a, np.ndarray) and not any(np.shares_memory(a, o) for o in owned):
                refs.append(weakref.ref(a))
    return refs


@pytest.mark.parametrize("retain_graph", [False, True])
def test_backward_frees_what_the_graph_saved(retain_graph):
    model, _ = make_step()
    x = mg.randn(16, 32, dtype=mg.float64)
    loss = (F.relu(model(x)) ** 2).mean()
    owned = [p.data for p in model.parameters()] + [b.data for b in model.buffers()] + [x.data]
    refs = intermediate_saved_arrays(loss, owned)
    assert len(refs) >= 4 and all(r() is not None for r in refs)
    loss.backward(retain_graph=retain_graph)
    nodes = mg.autograd.topological_order(loss.grad_fn)   # the graph itself is still referenced
    alive = [r() for r in refs if r() is not None]
    if retain_graph:
        assert len(alive) == len(refs)
        assert any(node.saved_tensors for node in nodes)
    else:
        assert alive == [], f"{len(alive)} saved arrays outlived backward: {[a.shape for a in alive]}"
        assert all(node.saved_tensors == () for node in nodes)
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            loss.backward()


HUGE_REQUESTS = {
    "zeros 2**42 floats (NumPy)": lambda: mg.zeros(2**42),
    "empty 10**6 x 10**6 float64": lambda: mg.empty(10**6, 10**6, dtype=mg.float64),
    "C allocator 16 TiB": lambda: cpu.empty((2**41,), np.float64),
    "a + a broadcast to 2**20 x 2**20": lambda: (lambda a: a + a)(mg.zeros(2**20, 1).expand(2**20, 2**20)),
    "outer product 2**20 x 2**20": lambda: mg.zeros(2**20, 1) @ mg.zeros(1, 2**20),
    "2**62 bytes, beyond any size_t budget": lambda: mg.exp(mg.zeros(1, 1).expand(2**30, 2**30)),
    "batch norm of a broadcast input": lambda: F.batch_norm(mg.zeros(1, 2, 1).expand(2**30, 2, 2**14),
                                                             None, None, training=True),
}


def test_requests_too_large_for_memory_raise_memory_error_and_leave_the_process_usable():
    _, step = make_step(seed=1)
    expected = [step() for _ in range(3)]
    for name, request in HUGE_REQUESTS.items():
        with pytest.raises(MemoryError):
            request()
            pytest.fail(f"{name}: no MemoryError")
    _, step = make_step(seed=1)
    assert [step() for _ in range(3)] == expected
    big = cpu.empty((1 << 20,), np.float64)       # the C allocator still serves requests
    big[...] = 1.0
    assert cpu.sum_all(big) == 1 << 20
