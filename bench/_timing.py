"""The timing helper the benchmarks share (imported as a sibling module: the
scripts run as `python bench/<name>.py`, which puts bench/ on sys.path)."""
import time


def timed_block(fn, number, pause):
    """Seconds per call over a block of `number` calls, after a pause of
    `pause` seconds (so that another library's spinning idle threads have
    let go of the cores before the block starts) and one untimed call. The
    first call after an idle pause runs on a cold core: on a virtual machine
    here a 4 MB np.copyto right after 50 ms of sleep moved 10 GB/s, against
    40-50 GB/s for the calls that follow it. Without the untimed call a short
    block measures that wake-up, whichever library it times."""
    time.sleep(pause)
    fn()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number
