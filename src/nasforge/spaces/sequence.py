"""Variable-length token sequences with an explicit stop token (seed 002's MLP space).

Tokens are layer widths (ints) and activation names; ``EOS`` ends the sequence and is not part of
the architecture (``[8, "Tanh", 4]`` ended by EOS and the same three layers are one network). An
architecture of fewer than ``max_len`` tokens is encoded with a trailing EOS.

Child (ALGORITHMS.md 3.1): from the flattened input, a width adds ``Linear(prev, width)``, an
activation appends that activation, and a final ``Linear(prev, num_classes)`` closes the network.
Grammar ``mask`` (the nasforge default, Q-M5) forbids two widths or two activations in a row and a
stop at positions 1-2; grammar ``free`` allows every token everywhere, as the seed does (its
controller is then penalised by reward shaping instead).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasforge.exceptions import InvalidArchitecture
from nasforge.ops.activations import ACTIVATIONS
from nasforge.spaces.base import SPACES, Architecture, JSONDict, SearchSpace, Token

EOS = "EOS"


class SequenceParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    widths: list[int] = Field(default=[1, 2, 4, 8, 16], min_length=1)
    activations: list[str] = Field(default=["Sigmoid", "Tanh", "ReLU", "LeakyReLU"], min_length=1)
    max_len: int = Field(default=6, ge=1, le=64)
    grammar: Literal["mask", "free"] = "mask"


@SPACES.register("mlp")
class SequenceSpace(SearchSpace):
    """Seed 002's space: widths {1,2,4,8,16}, Sigmoid/Tanh/ReLU/LeakyReLU, EOS, max 6 tokens."""

    name: ClassVar[str] = "mlp"
    Params: ClassVar[type[BaseModel]] = SequenceParams

    def __init__(
        self,
        *,
        widths: Sequence[int] = (1, 2, 4, 8, 16),
        activations: Sequence[str] = ("Sigmoid", "Tanh", "ReLU", "LeakyReLU"),
        max_len: int = 6,
        grammar: str = "mask",
    ) -> None:
        bad = [a for a in activations if a not in ACTIVATIONS]
        if bad:
            raise InvalidArchitecture(
                f"mlp: unknown activation {bad[0]!r}; allowed: {', '.join(ACTIVATIONS)}"
            )
        if any(w < 1 for w in widths):
            raise InvalidArchitecture("mlp: widths must be positive integers")
        if grammar not in ("mask", "free"):
            raise InvalidArchitecture(f"mlp: unknown grammar {grammar!r}; allowed: mask, free")
        self.widths = tuple(int(w) for w in widths)
        self.activations = tuple(activations)
        self.max_len = int(max_len)
        self.grammar = grammar
        self.vocab: tuple[Token, ...] = (*self.widths, *self.activations, EOS)
        self.eos = len(self.vocab) - 1
        self._index = {v: i for i, v in enumerate(self.vocab)}

    def spec(self) -> JSONDict:
        return {
            "name": self.name,
            "widths": list(self.widths),
            "activations": list(self.activations),
            "max_len": self.max_len,
            "grammar": self.grammar,
        }

    # ------------------------------------------------------------- decisions
    def max_steps(self) -> int:
        return self.max_len

    def options(self, step: int) -> tuple[Token, ...]:
        return self.vocab

    def head(self, step: int) -> int:
        return 0

    def kind(self, index: int) -> str:
        if index == self.eos:
            return "eos"
        return "width" if index < len(self.widths) else "act"

    def allowed(self, prefix: Sequence[int]) -> np.ndarray:
        mask = np.ones(len(self.vocab), dtype=bool)
        if self.grammar == "free":
            return mask
        if len(prefix) < 2:
            mask[self.eos] = False
        if prefix:
            last = self.kind(prefix[-1])
            if last == "width":
                mask[: len(self.widths)] = False
            elif last == "act":
                mask[len(self.widths) : self.eos] = False
        return mask

    def is_complete(self, prefix: Sequence[int]) -> bool:
        return len(prefix) >= self.max_len or (len(prefix) > 0 and prefix[-1] == self.eos)

    def decode(self, indices: Sequence[int]) -> Architecture:
        tokens: list[Token] = []
        for i in indices:
            if i == self.eos:
                break
            tokens.append(self.vocab[i])
        return Architecture(tuple(tokens))

    def encode(self, arch: Architecture) -> tuple[int, ...]:
        if len(arch.tokens) > self.max_len:
            raise InvalidArchitecture(
                f"mlp: {len(arch.tokens)} tokens in {arch}; at most max_len={self.max_len}"
            )
        out = []
        for pos, t in enumerate(arch.tokens):
            # bool is an int subclass and JSON may hand back 8.0: normalise before the lookup
            key: Token = int(t) if isinstance(t, float) and t.is_integer() else t
            if isinstance(t, bool) or key not in self._index or key == EOS:
                allowed = ", ".join(str(v) for v in self.vocab[:-1])
                raise InvalidArchitecture(
                    f"mlp: unknown token {t!r} at position {pos} of {arch}; allowed: {allowed}"
                )
            out.append(self._index[key])
        if len(out) < self.max_len:
            out.append(self.eos)
        return tuple(out)

    def size(self) -> int:
        n_w, n_a = len(self.widths), len(self.activations)

        @cache
        def count(length: int, last: str) -> int:
            # number of completions of a prefix of `length` tokens whose last kind is `last`
            if length >= self.max_len:
                return 1
            mask_eos = self.grammar == "free" or length >= 2
            total = 1 if mask_eos else 0
            if self.grammar == "free" or last != "width":
                total += n_w * count(length + 1, "width")
            if self.grammar == "free" or last != "act":
                total += n_a * count(length + 1, "act")
            return total

        return count(0, "none")

    # ----------------------------------------------------------------- build
    def build(
        self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int
    ) -> nn.Module:
        self.validate(arch)
        prev = math.prod(input_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        for t in arch.tokens:
            if isinstance(t, str):
                layers.append(ACTIVATIONS[t]())
            else:
                layers.append(nn.Linear(prev, int(t)))
                prev = int(t)
        layers.append(nn.Linear(prev, num_classes))
        return nn.Sequential(*layers)
