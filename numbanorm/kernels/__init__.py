"""Numba kernels: plain functions on arrays, one module per kernel family and device.

``numbanorm.kernels.cpu`` holds ``@njit`` functions that a user's own ``@njit`` code may call.
Nothing here validates its input; ``numbanorm.nn.functional`` does that.
"""
