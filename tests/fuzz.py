"""Long hypothesis runs behind the ``fuzz`` marker, shared by the hypothesis test modules."""

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis.strategies import SearchStrategy


def _fuzz_settings(config: Any) -> settings:
    """The "fuzz" profile when fuzz tests are asked for (``-m fuzz``), else the loaded one."""
    markexpr = config.getoption("markexpr") or ""
    asked = "fuzz" in markexpr and "not fuzz" not in markexpr
    return settings.get_profile("fuzz") if asked else settings()


def fuzz(config: Any, strategy: SearchStrategy, check: Callable[[Any], None]) -> None:
    """``check`` every example of ``strategy``, with the fuzz profile's example count when
    pytest was asked for fuzz tests (``config`` is pytest's)."""

    @settings(_fuzz_settings(config))
    @given(strategy)
    def run(example):
        check(example)

    run()
