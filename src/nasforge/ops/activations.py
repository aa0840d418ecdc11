"""The one activation table: canonical names (``torch.nn`` class names) and their aliases.

Seed 002's token space names activations as ``torch.nn`` does (``Sigmoid``, ``Tanh``, ``ReLU``,
``LeakyReLU``); the PBT gene spaces use short lower-case names (``id``, ``tanh``, ``relu``,
``swish``). Both resolve here; spaces keep their own *lists* of allowed names (which are part
of their architectures' tokens) and build through :func:`activation`.
"""

from __future__ import annotations

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "Sigmoid": nn.Sigmoid,
    "Tanh": nn.Tanh,
    "ReLU": nn.ReLU,
    "LeakyReLU": nn.LeakyReLU,
    "ELU": nn.ELU,
    "GELU": nn.GELU,
    "SiLU": nn.SiLU,
    "Identity": nn.Identity,
}
"""Canonical name -> module class (built with its defaults)."""

ALIASES: dict[str, str] = {
    "id": "Identity",
    "identity": "Identity",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "gelu": "GELU",
    "silu": "SiLU",
    "swish": "SiLU",
}
"""Other spellings -> canonical name."""


def canonical(name: str) -> str:
    """The canonical name of ``name``; raises ``KeyError`` listing the allowed names."""
    if name in ACTIVATIONS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise KeyError(
        f"unknown activation {name!r}; allowed: {', '.join([*ACTIVATIONS, *ALIASES])}"
    )


def is_activation(name: str) -> bool:
    return name in ACTIVATIONS or name in ALIASES


def activation(name: str) -> nn.Module:
    """A new activation module by any of its names."""
    return ACTIVATIONS[canonical(name)]()
