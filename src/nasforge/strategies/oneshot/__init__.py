"""One-shot searches: the shared base (supernet lifecycle, checkpoint, commit, finalize),
DARTS with its regularizers (``darts/``) and MetaNAS on the same base (``metanas/``)."""

from nasforge.strategies.oneshot import darts, metanas
from nasforge.strategies.oneshot.base import OneShotSearch, decode_checkpoint, encode_checkpoint

__all__ = ["OneShotSearch", "darts", "metanas", "decode_checkpoint", "encode_checkpoint"]
