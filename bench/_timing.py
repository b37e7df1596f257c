"""The timing helper the benchmarks share (imported as a sibling module: the
scripts run as `python bench/<name>.py`, which puts bench/ on sys.path)."""
import time


def timed_block(fn, number, pause):
    """Seconds per call over a block of `number` calls, after a pause of
    `pause` seconds (so that another library's spinning idle threads have
    let go of the cores before the block starts)."""
    time.sleep(pause)
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number
