"""Search strategies, registered by name. Import order registers them."""

from nasforge.strategies import random_search as _random_search  # noqa: F401
from nasforge.strategies.base import (
    STRATEGIES,
    AskTellStrategy,
    Callback,
    SearchContext,
    Strategy,
)

__all__ = ["STRATEGIES", "AskTellStrategy", "Callback", "SearchContext", "Strategy"]
