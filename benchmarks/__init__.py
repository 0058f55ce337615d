"""asv benchmarks for numbanorm, with torch as the baseline in the same suite.

Run from the repository root, in an environment that has numbanorm (and, for the baseline,
torch) installed::

    asv machine --yes                      # once per machine
    asv check --python=same
    asv run --python=same --quick --show-stderr   # smoke run, one sample per case
    asv run --python=same --show-stderr           # real measurement (not saved)
    asv run --python=same --set-commit-hash=$(git rev-parse HEAD)   # saved in .asv/results
    asv run --python=same --bench 'BatchNorm2d\\.' --show-stderr
    python -m numbanorm bench                     # medians, torch/numbanorm ratios, GB/s

With ``--python=same`` asv saves results only when given ``--set-commit-hash``. On a machine
shared with other jobs, asv's timings include their interference; ``python -m numbanorm bench``
runs the same cases (``numbanorm.bench.cases``) and keeps only samples taken while other
processes were quiet (Linux ``/proc/stat``).

``asv run`` without ``--python=same`` builds numbanorm into fresh virtualenvs under
``.asv/env`` (``asv.conf.json``); torch is not in that matrix, so there the torch cases are
skipped (their ``setup`` raises ``NotImplementedError``).

Both libraries run on ``NUMBANORM_BENCH_THREADS`` threads (default 2): ``numbanorm.bench.cases``
sets ``NUMBA_NUM_THREADS`` before numba is imported and calls ``numba.set_num_threads`` and
``torch.set_num_threads`` in each case's setup. numbanorm, numba and torch are imported only
inside setup functions, so importing the suite (asv discovery) stays cheap and one library's
imports never weigh on the other's timings or peak memory.
"""
