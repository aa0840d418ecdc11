"""The one-shot family's shared base: supernet lifecycle, checkpoint, commit, finalize.

DARTS (``strategies/darts``) runs on it; MetaNAS is meant to.
"""

from nasforge.strategies.oneshot.base import OneShotSearch, decode_checkpoint, encode_checkpoint

__all__ = ["OneShotSearch", "decode_checkpoint", "encode_checkpoint"]
