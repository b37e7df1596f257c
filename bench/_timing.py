"""The timing helper the benchmarks share (imported as a sibling module: the
scripts run as `python bench/<name>.py`, which puts bench/ on sys.path)."""
import time


WARM_S = 0.02


def timed_block(fn, number, pause):
    """Seconds per call over a block of `number` calls, after a pause of
    `pause` seconds (so that another library's spinning idle threads have
    let go of the cores before the block starts), then WARM_S seconds of
    untimed calls. The calls after an idle pause run on cold cores: on a
    virtual machine here a 4 MB np.copyto right after 50 ms of sleep moved
    10 GB/s against 40-50 GB/s for the calls that follow, and a 1M-element
    add on two threads took 187 us per call after one warm-up call, 137 us
    after 5 ms of them and 89 us after 20 ms (as when running back to back).
    Without the warm-up a short block measures that wake-up, whichever
    library it times."""
    time.sleep(pause)
    end = time.perf_counter() + WARM_S
    fn()
    while time.perf_counter() < end:
        fn()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number
