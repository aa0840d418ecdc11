"""GAN gene spaces: every option of every gene builds with the right shapes; gene prefixes are
exact (P2) and cover the searchable layers; P1's two discriminator-branch rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.exceptions import ConfigError, InvalidArchitecture
from nasforge.spaces.base import Architecture
from nasforge.spaces.gan import GanHardSpace, GanSpace
from nasforge.spaces.genes import owned_by

SMALL = {"resolution": 8, "bottom": 1, "channels": 4, "df_channels": 4, "latent": 6,
         "d_blocks": 2}


def _base(space: GanHardSpace | GanSpace) -> list[str]:
    return [str(g.options[min(3, len(g.options) - 1)]) for g in space.genes]


def test_the_easy_space_is_the_hard_spaces_generator_cells() -> None:
    hard, easy = GanHardSpace(**SMALL), GanSpace(**SMALL)
    assert easy.genes == hard.genes[:21] and len(easy.genes) == 21
    model = easy.build(easy.sample(np.random.default_rng(0)), (1, 8, 8))
    with torch.no_grad():
        assert model.dis(model(torch.randn(2, 6))).shape == (2,)


def test_every_option_of_every_gene_builds_and_has_the_right_shapes() -> None:
    space = GanHardSpace(**SMALL)  # its genes include every gene of the easy space
    base = _base(space)
    for k, gene in enumerate(space.genes):
        for opt in gene.options:
            toks = list(base)
            toks[k] = opt
            model = space.build(Architecture(tuple(toks)), (1, 8, 8))
            z = torch.randn(3, 6)
            torch.set_grad_enabled(False)
            img = model.gen(z)
            assert img.shape == (3, 1, 8, 8), (gene.name, opt)
            assert float(img.abs().max()) <= 1.0
            assert model.dis(img).shape == (3,), (gene.name, opt)
            assert model(z).shape == (3, 1, 8, 8)
            torch.set_grad_enabled(True)


def test_hard_space_has_the_seeds_72_genes_at_three_cells_and_four_blocks() -> None:
    space = GanHardSpace(resolution=32, bottom=4, channels=4, df_channels=4, latent=6)
    names = [g.name for g in space.genes]
    assert len(names) == 21 + 11 + 40 and space.num_cells == 3
    assert len(GanSpace(resolution=32, bottom=4).genes) == 21
    assert sum(n.startswith("proj") for n in names) == 11
    first = [g for g in space.genes if g.name in ("dblock0.c0", "dblock0.c3")]
    assert len(first[0].options) == 5 and len(first[1].options) == 7
    assert len(space.genes[names.index("dblock1.down0")].options) == 8


def test_gene_prefixes_are_exact_and_own_disjoint_existing_layers() -> None:
    space = GanHardSpace(**SMALL)
    rng = np.random.default_rng(1)
    for _ in range(5):
        arch = space.sample(rng)
        names = list(space.build(arch, (1, 8, 8)).state_dict())
        owners: dict[str, int] = {}
        for k in range(len(space.genes)):
            pre = space.gene_prefixes(k)
            for p in pre:  # a generator gene owns the layer and its EMA copy
                assert not p.startswith("gen.") or f"gen_ema.{p[4:]}" in pre
            for n in names:
                if owned_by(n, pre):
                    assert n not in owners, (n, k, owners.get(n))
                    owners[n] = k
        # every weight of a searchable edge is owned; the stems, heads and output are not
        for n in names:
            searchable = ".cells." in n or "dis.blocks." in n or ".projs." in n
            assert (n in owners) == searchable, n
        # exact matching: cell1 never captures a (hypothetical) cell10
        assert not owned_by("gen.cells.10.c0.op.weight", ["gen.cells.1"])


def test_p1_branch1_ignores_the_second_branch() -> None:
    arch = GanHardSpace(**SMALL).sample(np.random.default_rng(0))
    summed = GanHardSpace(**SMALL).build(arch, (1, 8, 8))
    ref = GanHardSpace(**SMALL, d_branches="branch1").build(arch, (1, 8, 8))
    ref.load_state_dict(summed.state_dict())
    summed.eval()
    ref.eval()  # spectral norm's power iteration moves only in training mode
    x = torch.randn(2, 1, 8, 8)
    block_s, block_r = summed.dis.blocks[0], ref.dis.blocks[0]
    with torch.no_grad():
        h = summed.dis.stem(x)
        assert not torch.allclose(block_s(h), block_r(h))
    with torch.no_grad():
        before = block_r(h)
        for p in block_r.c5.parameters():  # branch 2 has no effect on the reference block
            p.add_(1.0)
        assert torch.allclose(block_r(h), before)


def test_bad_space_settings_and_shapes_are_named_errors() -> None:
    with pytest.raises(ConfigError, match="power"):
        GanHardSpace(resolution=12, bottom=4)
    with pytest.raises(ConfigError, match="multiple of 3"):
        GanHardSpace(latent=10)
    space = GanSpace(**SMALL)
    with pytest.raises(InvalidArchitecture, match="builds"):
        space.build(space.sample(np.random.default_rng(0)), (3, 8, 8))
