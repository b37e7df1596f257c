"""Fixtures shared by several test files."""
import pytest

from microgradbn._backend import cpu


@pytest.fixture
def threads():
    """Lets a test change the C library's thread count; puts it back afterwards."""
    before = cpu.backend_info()["threads"]
    yield cpu.set_num_threads
    cpu.set_num_threads(before)
