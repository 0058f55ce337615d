"""Start-up costs in a fresh process: ``import`` and the first BatchNorm2d forward+backward,
the latter with numba's on-disk cache warm (the usual case) and cold (the first run after an
install, or after numbanorm's kernels change: every kernel the call needs compiles)."""

from numbanorm.bench.cases import LIBRARIES, THREADS, import_library

SMALL_SHAPE = (8, 16, 8, 8)

# A cold cache is an empty cache directory of the timed process's own.
_COLD_CACHE = """
import os, tempfile
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numbanorm-cold-cache-")
"""

_FIRST_CALL_SETUP = {
    "numbanorm": """
import numpy as np
import numbanorm as nb
x = nb.tensor(np.random.default_rng(0).standard_normal({shape}, dtype=np.float32),
              requires_grad=True)
g = nb.tensor(np.ones({shape}, dtype=np.float32))
""",
    "torch": """
import numpy as np
import torch
torch.set_num_threads({threads})
x = torch.from_numpy(np.random.default_rng(0).standard_normal({shape}, dtype=np.float32))
x.requires_grad_()
g = torch.ones({shape}, dtype=torch.float32)
""",
}

_FIRST_CALL = {
    # BatchNorm2d is constructed in the timed code: with numbanorm that is where numba is first
    # imported, and the forward and backward load their kernels from numba's disk cache.
    "numbanorm": """
m = nb.nn.BatchNorm2d({channels})
m(x).backward(g)
""",
    "torch": """
m = torch.nn.BatchNorm2d({channels})
m(x).backward(g)
""",
}


class Import:
    """``timeraw_*``: each sample runs in a new interpreter."""

    params = (LIBRARIES,)
    param_names = ("library",)
    timeout = 300
    repeat = (3, 5, 60.0)

    def setup(self, library):
        import_library(library)

    def timeraw_import(self, library):
        return f"import {library}"


class BatchNorm2dFirstCall:
    """``timeraw_*``: each sample runs in a new interpreter.

    ``setup`` runs the small case once in the benchmark process so that numba's on-disk cache
    holds the kernels a warm-cache process loads (the timed code's NUMBA_NUM_THREADS comes from
    the environment, set by ``numbanorm.bench.cases``). torch has no JIT cache: it runs warm only.
    """

    params = (LIBRARIES, ["warm", "cold"])
    param_names = ("library", "jit_cache")
    timeout = 600
    repeat = (3, 5, 120.0)

    def setup(self, library, jit_cache):
        if library == "torch" and jit_cache == "cold":
            raise NotImplementedError("torch has no JIT cache")
        module = import_library(library)
        if library == "numbanorm":
            import numpy as np

            x = module.tensor(np.ones(SMALL_SHAPE, np.float32), requires_grad=True)
            module.nn.BatchNorm2d(SMALL_SHAPE[1])(x).backward(module.tensor(x.data))

    def timeraw_first_forward_backward(self, library, jit_cache):
        setup = _FIRST_CALL_SETUP[library].format(shape=SMALL_SHAPE, threads=THREADS)
        if jit_cache == "cold":
            setup = _COLD_CACHE + setup
        code = _FIRST_CALL[library].format(channels=SMALL_SHAPE[1])
        return code, setup
