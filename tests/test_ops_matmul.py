"""matmul through check_op (2-D, vectors, batched with broadcasting, every
layout), float64 gradcheck, and its shape errors."""
import numpy as np
import pytest

import microgradbn as mg
from helpers import check_op, gradcheck64, torch

CASES = [((7, 33), (33, 5)), ((1, 1), (1, 1)), ((33,), (33, 7)), ((7, 33), (33,)), ((33,), (33,)),
         ((3, 7, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
         ((30, 1000), (1000, 2))]


@pytest.mark.parametrize("shapes", CASES)
def test_matmul(shapes):
    # float32 GEMM accumulates in float32: error grows like sqrt(k) ulps
    k = shapes[0][-1]
    tol = {np.float32: dict(rtol=2e-5, atol=2e-6 * k), np.float64: dict(rtol=1e-11, atol=1e-12 * k)}
    check_op(lambda a, b: a @ b, np.matmul, list(shapes),
             (lambda a, b: a @ b) if torch is not None else None, tol=tol)


@pytest.mark.parametrize("shapes", CASES[:9])
def test_matmul_gradcheck(shapes):
    gradcheck64(lambda a, b: mg.matmul(a, b), list(shapes))


def test_matmul_errors():
    with pytest.raises(mg.ShapeError, match=r"\(2, 3\).*\(4, 5\)"):
        mg.ones(2, 3) @ mg.ones(4, 5)
    with pytest.raises(mg.ShapeError):
        mg.tensor(1.0) @ mg.ones(3)
    with pytest.raises(mg.ShapeError):
        mg.ones(2, 3, 4) @ mg.ones(3, 4, 5)    # batch axes 2 and 3 do not broadcast
    assert (mg.ones(2, 3) @ mg.ones(3, 4, dtype=mg.float64)).dtype == mg.float64
    assert (mg.tensor([[1, 2]]) @ mg.tensor([[3], [4]])).tolist() == [[11]]
