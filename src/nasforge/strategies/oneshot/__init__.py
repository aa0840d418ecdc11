"""One-shot searches: the shared base (supernet lifecycle, checkpoint, commit, finalize) and
DARTS with its regularizers (``darts/``); MetaNAS is meant to run on the same base."""

from nasforge.strategies.oneshot import darts
from nasforge.strategies.oneshot.base import OneShotSearch, decode_checkpoint, encode_checkpoint

__all__ = ["OneShotSearch", "darts", "decode_checkpoint", "encode_checkpoint"]
