"""The one activation table: canonical names, aliases, and a clear error for unknown names."""

from __future__ import annotations

import pytest
from torch import nn

from nasforge.ops import activation, canonical, is_activation
from nasforge.spaces.genes import ACTS


def test_aliases_resolve_to_the_same_module_class() -> None:
    assert isinstance(activation("swish"), nn.SiLU) and isinstance(activation("SiLU"), nn.SiLU)
    assert canonical("relu") == canonical("ReLU") == "ReLU"
    assert isinstance(activation("id"), nn.Identity)


def test_unknown_activation_names_the_allowed_ones() -> None:
    assert not is_activation("Softsign")
    with pytest.raises(KeyError, match="allowed: Sigmoid, Tanh, ReLU"):
        activation("Softsign")


def test_gene_spaces_build_from_the_one_table() -> None:
    assert list(ACTS) == ["id", "tanh", "relu", "swish"]
    assert ACTS["swish"] is nn.SiLU
