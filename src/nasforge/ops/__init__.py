"""Building blocks shared by every space: the one op registry and the one activation table.

* :mod:`nasforge.ops.cells`: cell operations by name (DARTS, seed 000's few-shot set, SharpDARTS,
  NAS-Bench-201), one factory signature ``(c_in, c_out, stride, affine, track_running_stats)``;
* :mod:`nasforge.ops.activations`: activations by name, with aliases.
"""

from nasforge.ops.activations import ACTIVATIONS, activation, canonical, is_activation
from nasforge.ops.cells import OP_SETS, OPS, PARAMETER_FREE, make_op

__all__ = [
    "ACTIVATIONS",
    "OPS",
    "OP_SETS",
    "PARAMETER_FREE",
    "activation",
    "canonical",
    "is_activation",
    "make_op",
]
