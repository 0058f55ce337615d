"""CUDA kernels, ``numba.cuda``: the mirror of ``numbanorm.kernels.cpu``, file for file and name
for name, on numba device arrays.

Each public function launches its kernels on the arrays it is given, with the block size of
``NUMBANORM_THREADS_PER_BLOCK``. Importing this module imports ``numba.cuda``; each kernel compiles
on its first launch.
"""
