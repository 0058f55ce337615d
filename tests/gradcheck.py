"""Central-difference gradient checks of numbanorm's tape, in float64.

``gradcheck(function, arrays)`` runs ``function`` (numbanorm Tensors in, one Tensor out) with every
array requiring a gradient, back-propagates a fixed random upstream gradient ``g``, and compares
each analytic gradient with the central difference of ``loss = sum(function(...) * g)`` obtained by
perturbing that array's elements one at a time. Arrays keep their memory layout (a channels-last
array stays channels-last in every evaluation).
"""

from collections.abc import Callable, Sequence

import numpy as np

import numbanorm
from tests.oracle import deterministic
from tests.tolerances import FINITE_DIFFERENCE


def _loss(function: Callable, arrays: Sequence[np.ndarray], upstream: np.ndarray) -> float:
    with numbanorm.no_grad():
        output = function(*(numbanorm.Tensor(a) for a in arrays))
    return float(np.sum(np.asarray(output.data, np.float64) * upstream))


def numerical_gradients(
    function: Callable, arrays: Sequence[np.ndarray], upstream: np.ndarray
) -> list[np.ndarray]:
    """d(sum(function(*arrays) * upstream)) / d(arrays[k]), by central differences."""
    eps = FINITE_DIFFERENCE["eps"]
    gradients = []
    for k, array in enumerate(arrays):
        gradient = np.zeros(array.shape)
        for index in np.ndindex(array.shape):
            losses = []
            for step in (eps, -eps):
                perturbed = [a.copy(order="K") for a in arrays]
                perturbed[k][index] += step
                losses.append(_loss(function, perturbed, upstream))
            gradient[index] = (losses[0] - losses[1]) / (2 * eps)
        gradients.append(gradient)
    return gradients


def analytic_gradients(
    function: Callable, arrays: Sequence[np.ndarray], upstream: np.ndarray
) -> list[np.ndarray]:
    """The gradients that ``function``'s backward gives the same loss."""
    leaves = [numbanorm.Tensor(a.copy(order="K"), requires_grad=True) for a in arrays]
    output = function(*leaves)
    output.backward(numbanorm.Tensor(upstream.astype(output.dtype)))
    return [leaf.grad.data for leaf in leaves]


def gradcheck(function: Callable, arrays: Sequence[np.ndarray], seed: int = 0) -> None:
    """Analytic gradients of ``function`` at float64 ``arrays`` equal central differences."""
    assert all(a.dtype == np.float64 for a in arrays), "gradcheck runs in float64"
    with numbanorm.no_grad():
        shape = function(*(numbanorm.Tensor(a) for a in arrays)).shape
    upstream = deterministic(shape, seed, np.float64)
    analytic = analytic_gradients(function, arrays, upstream)
    numerical = numerical_gradients(function, arrays, upstream)
    tolerance = {key: FINITE_DIFFERENCE[key] for key in ("rtol", "atol")}
    for k, (got, want) in enumerate(zip(analytic, numerical, strict=True)):
        assert got.shape == want.shape, f"argument {k}: shape {got.shape} != {want.shape}"
        assert got.dtype == np.float64, f"argument {k}: gradient dtype {got.dtype}"
        np.testing.assert_allclose(got, want, err_msg=f"argument {k}", **tolerance)
