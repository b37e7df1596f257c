"""DLPack: zero-copy exchange of tensors with NumPy and PyTorch, both ways.
Zero-copy is checked by writing through one side and reading the other."""
import numpy as np
import pytest

import microgradbn as mg

DTYPES = [np.float32, np.float64, np.int64, np.bool_]


def sample(dtype, shape=(3, 5)):
    return (np.arange(np.prod(shape)).reshape(shape) % 7).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_to_mg_shares_memory(dtype):
    a = sample(dtype)
    t = mg.from_dlpack(a)
    assert isinstance(t, mg.Tensor) and t.dtype == a.dtype and t.shape == a.shape
    assert np.shares_memory(t.numpy(), a)
    a[0, 0] = 1
    assert t[0, 0].item() == 1
    t[2, 4] = 0            # through the tensor, seen by the array
    assert a[2, 4] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_mg_to_numpy_shares_memory(dtype):
    t = mg.tensor(sample(dtype))
    a = np.from_dlpack(t)
    assert a.dtype == t.dtype and a.shape == t.shape and np.shares_memory(a, t.numpy())
    a[1, 2] = 0
    assert t[1, 2].item() == 0
    t[0, 1] = 1
    assert a[0, 1] == 1


def test_strided_and_zero_dim_views_keep_their_layout():
    base = sample(np.float64, (4, 6))
    view = base[::2, 1::2].T
    t = mg.from_dlpack(view)
    np.testing.assert_array_equal(t.numpy(), view)
    np.testing.assert_array_equal((t * 2).numpy(), view * 2)   # ops read strided storage
    back = np.from_dlpack(t)
    back[0, 0] = -1.0
    assert base[0, 1] == -1.0
    scalar = mg.tensor(np.float64(2.5))
    assert np.from_dlpack(scalar).shape == () and mg.from_dlpack(np.array(2.5)).item() == 2.5


def test_device_and_versioned_capsule():
    t = mg.zeros(2, 3)
    assert t.__dlpack_device__() == (1, 0)          # kDLCPU, device 0
    assert type(t.__dlpack__()).__name__ == "PyCapsule"
    if np.lib.NumpyVersion(np.__version__) >= "2.1.0":
        assert type(t.__dlpack__(max_version=(1, 0))).__name__ == "PyCapsule"
        copied = np.from_dlpack(t, copy=True)
        copied[...] = 1
        assert (t.numpy() == 0).all()


def test_a_tensor_that_requires_grad_is_not_exported():
    w = mg.ones(3, requires_grad=True)
    with pytest.raises(BufferError, match="require gradient"):   # as torch
        np.from_dlpack(w)
    assert np.shares_memory(np.from_dlpack(w.detach()), w.data)


def test_unsupported_inputs():
    with pytest.raises(TypeError, match="__dlpack__"):
        mg.from_dlpack([1.0, 2.0])
    with pytest.raises(TypeError, match="__dlpack__"):
        mg.from_dlpack(None)
    for dtype in (np.float16, np.int32, np.uint8, np.complex64):
        with pytest.raises(TypeError):
            mg.from_dlpack(np.zeros(3, dtype))


def test_autograd_through_an_imported_tensor():
    a = np.array([1.0, 2.0, 3.0])
    x = mg.from_dlpack(a).requires_grad_()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2 * a)


TORCH_DTYPES = ["float32", "float64", "int64", "bool"]


@pytest.mark.parametrize("name", TORCH_DTYPES)
def test_torch_to_mg_shares_memory(name):
    torch = pytest.importorskip("torch")
    src = torch.from_numpy(sample(getattr(np, name if name != "bool" else "bool_")))
    t = mg.from_dlpack(src)
    assert t.shape == tuple(src.shape) and str(t.dtype) == name
    src[0, 0] = 1
    assert t[0, 0].item() == 1
    t[2, 3] = 0
    assert src[2, 3].item() == 0
    assert t.numpy().__array_interface__["data"][0] == src.data_ptr()


@pytest.mark.parametrize("name", TORCH_DTYPES)
def test_mg_to_torch_shares_memory(name):
    torch = pytest.importorskip("torch")
    t = mg.tensor(sample(getattr(np, name if name != "bool" else "bool_")))
    dst = torch.from_dlpack(t)
    assert tuple(dst.shape) == t.shape and str(dst.dtype) == f"torch.{name}"
    assert dst.data_ptr() == t.numpy().__array_interface__["data"][0]
    dst[1, 1] = 0
    assert t[1, 1].item() == 0
    t[0, 2] = 1
    assert dst[0, 2].item() == 1


def test_torch_round_trip_of_a_strided_view_and_grad_refusal():
    torch = pytest.importorskip("torch")
    src = torch.arange(24, dtype=torch.float64).reshape(4, 6)[:, ::3].t()
    t = mg.from_dlpack(src)
    np.testing.assert_array_equal(t.numpy(), src.numpy())
    back = torch.from_dlpack(t)
    assert back.stride() == src.stride() and back.data_ptr() == src.data_ptr()
    with pytest.raises(BufferError):
        mg.from_dlpack(torch.ones(2, requires_grad=True))
    with pytest.raises(BufferError, match="require gradient"):
        torch.from_dlpack(mg.ones(2, requires_grad=True))
