"""The darts space: tokens <-> genotype, validation, build, discretisation, diagram."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.exceptions import ConfigError, InvalidArchitecture
from nasforge.spaces.base import Architecture, make_space
from nasforge.spaces.darts.genotype import Genotype, edge_index, parse_cell
from nasforge.spaces.darts.space import DartsSpace

NORMAL = (("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0), ("sep_conv_3x3", 2))
REDUCE = (("avg_pool_3x3", 0), ("dil_conv_3x3", 1), ("skip_connect", 1), ("sep_conv_3x3", 2))


def test_tokens_round_trip_and_build() -> None:
    space = DartsSpace(ops="darts", nodes=2, channels=4, layers=3)
    g = Genotype(NORMAL, (2, 3), REDUCE, (2, 3))
    arch = space.arch(g)
    assert arch.tokens[:4] == ("sep_conv_3x3", 0, "skip_connect", 1)
    assert len(arch.tokens) == 20
    assert space.genotype(arch) == g
    assert space.decode(space.encode(arch)) == arch
    assert space.arch_from_json(arch.to_json()) == arch
    net = space.build(arch, (1, 8, 8), 10)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert make_space(space.spec()).spec() == space.spec()
    rng = np.random.default_rng(0)
    for _ in range(5):
        space.validate(space.sample(rng))


def test_pairs_are_canonical_and_bad_archs_raise() -> None:
    space = DartsSpace(ops="darts", nodes=2)
    swapped = Genotype((NORMAL[1], NORMAL[0], *NORMAL[2:]), (2, 3), REDUCE, (2, 3))
    assert space.arch(swapped) == space.arch(Genotype(NORMAL, (2, 3), REDUCE, (2, 3)))
    good = list(space.arch(Genotype(NORMAL, (2, 3), REDUCE, (2, 3))).tokens)
    for pos, value in ((0, "none"), (0, "conv_9x9"), (1, 1), (3, 0), (7, 3), (16, 4)):
        bad = list(good)
        bad[pos] = value
        with pytest.raises(InvalidArchitecture):
            space.validate(Architecture(tuple(bad)))
    with pytest.raises(InvalidArchitecture):
        space.validate(Architecture(tuple(good[:-1])))
    with pytest.raises(ConfigError):
        make_space({"name": "darts", "ops": "nope"})


def test_parse_cell_top2_and_masks() -> None:
    ops = ["none", "skip_connect", "sep_conv_3x3"]
    w = np.full((5, 3), 0.1)
    w[edge_index(0, 0)] = [0.9, 0.05, 0.05]   # none strongest: edge weak for non-none ops
    w[edge_index(0, 1)] = [0.2, 0.3, 0.5]
    w[edge_index(1, 0)] = [0.1, 0.6, 0.3]
    w[edge_index(1, 1)] = [0.1, 0.2, 0.7]
    w[edge_index(1, 2)] = [0.1, 0.0, 0.2]     # skip masked (weight 0)
    cell = parse_cell(w, ops, 2)
    assert cell == (("skip_connect", 0), ("sep_conv_3x3", 1),
                    ("skip_connect", 0), ("sep_conv_3x3", 1))
    edges = np.ones(5)
    edges[edge_index(1, 0)] = 0.1             # edge normalisation demotes edge 0 -> node 1
    cell = parse_cell(w, ops, 2, edge_weights=edges)
    assert cell[2:] == (("sep_conv_3x3", 1), ("sep_conv_3x3", 2))


def test_render_writes_png(tmp_path: Path) -> None:
    space = DartsSpace(ops="darts", nodes=2)
    path = space.render(space.arch(Genotype(NORMAL, (2, 3), REDUCE, (2, 3))), tmp_path / "g.png")
    assert path.is_file() and path.stat().st_size > 1000
