"""Black-box strategies: they only decide, through ``ask(n)`` / ``tell(records)``; the ask/tell
loop (budget, reward cache, resume) is :class:`nasforge.strategies.base.AskTellStrategy`'s.

Random search, regularized evolution, Optuna TPE and predictor-guided (BO) evolution.
"""

from nasforge.strategies.blackbox import bo_evolution, evolution, random_search, tpe

__all__ = ["bo_evolution", "evolution", "random_search", "tpe"]
