"""MetaNAS (seed 000): Reptile over first-order DARTS inner loops on the one-shot base, with the
DARTS family's regularizers in the meta setting and a Conv-4 Reptile baseline."""

from nasforge.strategies.oneshot.metanas.meta import (
    Conv4,
    discretize_pairwise,
    merge_adam_states,
    prune_alphas,
    reptile_update,
    sparse_params,
    temperature,
)
from nasforge.strategies.oneshot.metanas.model import InnerSettings, MetaModel
from nasforge.strategies.oneshot.metanas.search import PRESETS, MetaNAS, MetaNASParams

__all__ = ["PRESETS", "Conv4", "InnerSettings", "MetaModel", "MetaNAS", "MetaNASParams",
           "discretize_pairwise", "merge_adam_states", "prune_alphas", "reptile_update",
           "sparse_params", "temperature"]
