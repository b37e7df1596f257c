"""fork() after the C thread pool has started: the child re-makes the pool
(src/threads.c registers pthread_atfork handlers) and computes the same bits
as the parent, with `multiprocessing`'s fork start method."""
import multiprocessing
import sys

import numpy as np
import pytest

import microgradbn as mg
import microgradbn.nn as nn
import microgradbn.nn.functional as F

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32" or "fork" not in multiprocessing.get_all_start_methods(),
                       reason="needs the fork start method"),
    # Python >= 3.12 warns when a process with threads forks: the pool's threads are the point here
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]
TIMEOUT = 120   # seconds: a deadlocked child fails the test instead of hanging it


def big_op():
    """A matmul big enough that the C pool splits it over its threads."""
    a = np.random.default_rng(5).standard_normal((600, 500))
    return (mg.tensor(a) @ mg.tensor(a.T)).numpy()


def training_step(seed):
    """One SGD step of a small MLP with BN; returns the parameters, buffers and the loss."""
    mg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(40, 200, bias=False, dtype=mg.float64),
                          nn.BatchNorm1d(200, dtype=mg.float64), nn.ReLU(),
                          nn.Linear(200, 10, dtype=mg.float64))
    x = mg.randn(256, 40, dtype=mg.float64)
    y = mg.tensor(np.arange(256) % 10)
    opt = mg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    state = [t.detach().numpy().copy() for t in list(model.parameters()) + list(model.buffers())]
    return state + [loss.detach().numpy().copy()]


def child_work(seed):
    return mg.get_num_threads(), big_op(), training_step(seed)


@pytest.fixture
def two_threads_started():
    before = mg.get_num_threads()
    mg.set_num_threads(2)
    big_op()           # the pool's workers now exist in the parent
    yield
    mg.set_num_threads(before)


def assert_same(expected, got):
    assert len(expected) == len(got)
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


def test_children_forked_after_the_pool_started_match_the_parent(two_threads_started):
    expected_big = big_op()
    expected = [training_step(seed) for seed in (0, 1, 2)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(child_work, (0, 1, 2)).get(TIMEOUT)
    for (threads, big, state), want in zip(results, expected):
        assert threads == 2
        np.testing.assert_array_equal(big, expected_big)
        assert_same(want, state)


def test_a_forked_child_can_fork_again_and_the_parent_still_works(two_threads_started):
    expected = training_step(3)
    ctx = multiprocessing.get_context("fork")

    def grandchild(queue):
        queue.put(training_step(3))

    def child(queue):
        big_op()
        inner = ctx.Queue()
        p = ctx.Process(target=grandchild, args=(inner,))
        p.start()
        queue.put(("grandchild", inner.get(timeout=TIMEOUT)))
        p.join(TIMEOUT)
        queue.put(("child", training_step(3)))

    queue = ctx.Queue()
    p = ctx.Process(target=child, args=(queue,))
    p.start()
    got = dict(queue.get(timeout=TIMEOUT) for _ in range(2))
    p.join(TIMEOUT)
    assert p.exitcode == 0
    assert_same(expected, got["grandchild"])
    assert_same(expected, got["child"])
    assert_same(expected, training_step(3))   # the parent's pool survived the forks
    np.testing.assert_array_equal(big_op(), big_op())
