"""The one table of comparison tolerances, by the dtype of the compared arrays.

numbanorm computes in float64 internally, torch's CPU kernels in the input's dtype, so float32
results differ by a few float32 ulps of the values that cancel.
"""

import numpy as np

TOLERANCES = {
    np.dtype(np.float16): {"rtol": 2e-3, "atol": 2e-3},
    np.dtype(np.float32): {"rtol": 1e-4, "atol": 2e-5},
    np.dtype(np.float64): {"rtol": 1e-9, "atol": 1e-11},
}


def tolerance(dtype: np.dtype) -> dict[str, float]:
    """``rtol``/``atol`` for ``dtype``; exact for integers and booleans."""
    return TOLERANCES.get(np.dtype(dtype), {"rtol": 0.0, "atol": 0.0})


def assert_close(actual, expected, err_msg: str = "") -> None:
    """``actual`` equals ``expected`` in shape and dtype, and in value within ``tolerance``."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{err_msg}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{err_msg}: dtype {actual.dtype} != {expected.dtype}"
    np.testing.assert_allclose(actual, expected, err_msg=err_msg, **tolerance(expected.dtype))


# Central differences in float64 (tests/gradcheck.py), a different kind of comparison: a numerical
# derivative against an analytic one. A step of ``eps`` costs O(eps**2) in truncation error and
# about ulp(loss) / eps ≈ 1e-10 (relative to the loss) in rounding error; ``rtol``/``atol`` leave
# room for both on gradients of order 1 from losses of order 10.
FINITE_DIFFERENCE = {"eps": 1e-6, "rtol": 1e-5, "atol": 1e-7}
