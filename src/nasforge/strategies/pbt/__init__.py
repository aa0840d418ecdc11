"""PBT-NAS (seed 004): the population loop (:mod:`.pbt_nas`), its operators (mixing,
shrink-perturb, soups: :mod:`.operators`) and its run reports (:mod:`.report`)."""

from nasforge.strategies.pbt import operators, report
from nasforge.strategies.pbt.pbt_nas import PBTNAS

__all__ = ["PBTNAS", "operators", "report"]
