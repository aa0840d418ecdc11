"""DARTS one-shot search (first/second order) with DARTS-, PC-, P-, Sharp- and TSE-DARTS."""

from nasforge.strategies.oneshot.darts.search import DartsParams, DartsSearch

__all__ = ["DartsParams", "DartsSearch"]
