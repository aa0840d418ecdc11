"""The NB201 cell space: tokens, arch strings, table keys, canonical forms, building."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.exceptions import ConfigError, InvalidArchitecture
from nasforge.spaces import make_space
from nasforge.spaces.base import Architecture
from nasforge.spaces.cell import EDGES, NB201_OPS, CellSpace, arch_str, parse_arch_str

BEST_C100 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|"
)


def test_defaults_are_nb201() -> None:
    space = make_space("nb201")
    assert isinstance(space, CellSpace)
    assert space.ops == NB201_OPS
    assert space.size() == 5**6 == len(list(space.enumerate()))
    assert space.max_steps() == len(EDGES) == 6
    assert space.spec()["cells_per_stage"] == 5


def test_arch_string_and_key_round_trip() -> None:
    space = CellSpace()
    arch = space.from_arch_str(BEST_C100)
    assert arch.tokens == ("nor_conv_3x3",) * 3 + ("skip_connect",) + ("nor_conv_3x3",) * 2
    assert space.nb201_key(arch) == "333133"
    assert space.to_arch_str(arch) == BEST_C100
    assert space.from_nb201_key("333133") == arch
    assert parse_arch_str(arch_str(arch.tokens)) == arch.tokens
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = space.sample(rng)
        assert space.decode(space.encode(a)) == a
        assert space.from_nb201_key(space.nb201_key(a)) == a


def test_bad_input_raises_named_errors() -> None:
    space = CellSpace(ops=["none", "skip_connect", "nor_conv_3x3"])
    with pytest.raises(InvalidArchitecture, match="allowed: none, skip_connect, nor_conv_3x3"):
        space.validate(Architecture(("avg_pool_3x3",) * 6))
    with pytest.raises(InvalidArchitecture, match="expected 6"):
        space.validate(Architecture(("none",) * 5))
    with pytest.raises(InvalidArchitecture):
        space.from_arch_str("|none~0|+|none~0|")
    with pytest.raises(ConfigError, match="unknown op 'conv_7x7'"):
        make_space({"name": "nb201", "ops": ["none", "conv_7x7"]})


def test_build_runs_on_digits_and_flat_inputs() -> None:
    space = CellSpace(ops=["none", "skip_connect", "nor_conv_3x3", "avg_pool_3x3"],
                      channels=4, cells_per_stage=1, stages=2)
    arch = Architecture(("nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none",
                         "nor_conv_3x3", "skip_connect"))
    net = space.build(arch, (1, 8, 8), 10)
    out = net(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 10)
    out.sum().backward()
    flat = space.build(arch, (64,), 10)
    assert flat(torch.randn(2, 64)).shape == (2, 10)
    with pytest.raises(InvalidArchitecture, match="image inputs"):
        space.build(arch, (10,), 2)


def test_all_none_cell_ignores_its_input() -> None:
    space = CellSpace(channels=4, cells_per_stage=1, stages=1)
    net = space.build(Architecture(("none",) * 6), (1, 8, 8), 3).eval()
    a, b = net(torch.randn(2, 1, 8, 8)), net(torch.randn(2, 1, 8, 8))
    assert torch.allclose(a, b)


def test_canonical_classes() -> None:
    space = CellSpace(ops=["none", "skip_connect", "nor_conv_3x3"])
    classes = {space.canonical(a) for a in space.enumerate()}
    assert len(classes) == 261
    # an edge into node 1, when node 1 feeds nothing, is dead
    a = Architecture(("nor_conv_3x3", "skip_connect", "none", "nor_conv_3x3", "none", "none"))
    assert space.canonical(a).tokens[0] == "none"
    # with edge 2<-1 empty, nodes 1 and 2 are interchangeable
    skip, conv = "skip_connect", "nor_conv_3x3"
    b = Architecture((skip, conv, "none", "none", conv, skip))
    c = Architecture((conv, skip, "none", "none", skip, conv))
    assert space.canonical(b) == space.canonical(c)
    # without 'none' every cell is its own class
    full = CellSpace(ops=["skip_connect", "nor_conv_3x3"])
    assert all(full.canonical(x) == x for x in full.enumerate())
