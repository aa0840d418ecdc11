"""Search strategies, registered by name. Import order registers them."""

from nasforge.strategies import bo_evolution as _bo_evolution  # noqa: F401
from nasforge.strategies import darts as _darts  # noqa: F401
from nasforge.strategies import evolution as _evolution  # noqa: F401
from nasforge.strategies import metarl as _metarl  # noqa: F401
from nasforge.strategies import pbt_nas as _pbt_nas  # noqa: F401
from nasforge.strategies import random_search as _random_search  # noqa: F401
from nasforge.strategies import reinforce as _reinforce  # noqa: F401
from nasforge.strategies import tpe as _tpe  # noqa: F401
from nasforge.strategies.base import (
    STRATEGIES,
    AskTellStrategy,
    Callback,
    SearchContext,
    Strategy,
)

__all__ = ["STRATEGIES", "AskTellStrategy", "Callback", "SearchContext", "Strategy"]
