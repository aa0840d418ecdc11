"""Search strategies, one folder per family, registered by name. Import order registers them.

* ``blackbox/``: random search, regularized evolution, Optuna TPE, predictor-guided evolution;
* ``reinforce/``: REINFORCE controllers (seeds 002, 003);
* ``oneshot/``: the one-shot base, DARTS with its regularizers, MetaNAS;
* ``pbt/``: PBT-NAS;
* ``metarl/``: meta-RL NAS (an A2C-LSTM agent building networks in ``envs``).
"""

from nasforge.strategies import blackbox as _blackbox  # noqa: F401
from nasforge.strategies import metarl as _metarl  # noqa: F401
from nasforge.strategies import oneshot as _oneshot  # noqa: F401
from nasforge.strategies import pbt as _pbt  # noqa: F401
from nasforge.strategies import reinforce as _reinforce  # noqa: F401
from nasforge.strategies.base import (
    STRATEGIES,
    AskTellStrategy,
    Callback,
    SearchContext,
    Strategy,
)

__all__ = ["STRATEGIES", "AskTellStrategy", "Callback", "SearchContext", "Strategy"]
