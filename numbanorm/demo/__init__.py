"""``python -m numbanorm demo``: train a small model on scikit-learn's handwritten digits with
numbanorm alone (no torch), and optionally compare it with the same model trained in torch.

Modules, one job each: ``data`` (digits or ``--data FILE.npz``, seeded held-out split), ``models``
(the CNN and the MLPs, written against torch.nn's API), ``train`` (the loop), ``checkpoint``
(``--save``/``--load``), ``plot`` (``--plot``), ``compare_torch`` (``--compare-torch``, the only
one that imports torch), ``cli`` (the options). Importing this package imports none of scikit-learn,
tqdm, matplotlib or torch.
"""

from numbanorm.demo.cli import add_arguments, run

__all__ = ["add_arguments", "run"]
