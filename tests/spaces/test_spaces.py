from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.exceptions import ConfigError, InvalidArchitecture, UnknownName
from nasforge.spaces import Architecture, CNNSpace, SequenceSpace, StateSpace, make_space


def test_architecture_is_frozen_hashable_and_round_trips() -> None:
    a = Architecture((8, "Tanh", 4, "ReLU"))
    b = Architecture.from_json(json.loads(json.dumps(a.to_json())))
    assert a == b and hash(a) == hash(b) and a.arch_id == b.arch_id
    assert len(a.arch_id) == 16 and int(a.arch_id, 16) >= 0
    with pytest.raises(AttributeError):
        a.tokens = ()  # type: ignore[misc]
    assert Architecture((8, "Tanh")).arch_id != Architecture(("Tanh", 8)).arch_id


def test_arch_id_is_stable_across_processes() -> None:
    import subprocess
    import sys

    code = "from nasforge.spaces import Architecture; print(Architecture((8,'Tanh')).arch_id)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == Architecture((8, "Tanh")).arch_id


def test_mlp_space_matches_seed_002() -> None:
    space = SequenceSpace(grammar="free")
    assert space.vocab == (1, 2, 4, 8, 16, "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "EOS")
    assert space.size() == sum(9**k for k in range(6)) + 9**6
    arch = space.validate(Architecture((8, "Tanh", 8, "ReLU", 4, "ReLU")))
    assert space.encode(arch) == (3, 6, 3, 7, 2, 7)  # six tokens: no EOS needed
    short = Architecture((8, "Tanh"))
    assert space.encode(short) == (3, 6, 9)
    assert space.decode(space.encode(short)) == short
    net = space.build(arch, (2,), 2)
    assert net(torch.zeros(5, 2)).shape == (5, 2)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2, 8), (8, 8), (8, 4), (4, 2)]


def test_mlp_mask_grammar() -> None:
    space = SequenceSpace()
    eos = space.eos
    assert (
        not space.allowed([])[eos] and not space.allowed([3])[eos] and space.allowed([3, 6])[eos]
    )
    assert not space.allowed([3])[:5].any() and space.allowed([3])[5:9].all()
    with pytest.raises(InvalidArchitecture, match="not allowed at position 1"):
        space.validate(Architecture((8, 8)))
    rng = np.random.default_rng(0)
    for _ in range(200):
        space.validate(space.sample(rng))
    assert sum(1 for _ in space.enumerate()) == space.size()


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ((8, "Swish"), "unknown token 'Swish' at position 1"),
        ((8, "Tanh", 8, "Tanh", 8, "Tanh", 8), "at most max_len=6"),
        ((True, "Tanh"), "unknown token True"),
    ],
)
def test_mlp_invalid_architectures_say_what_is_wrong(tokens: tuple, message: str) -> None:
    with pytest.raises(InvalidArchitecture, match=message):
        SequenceSpace().validate(Architecture(tokens))


def test_state_space_add_state_like_seed_003() -> None:
    space = StateSpace(num_layers=4)
    space.add_state("kernel", [1, 3])
    space.add_state("filters", [16, 32, 64])
    assert space.size() == 1296 == sum(1 for _ in space.enumerate())
    arch = Architecture((3, 64, 3, 64, 3, 32, 3, 64))
    space.validate(arch)
    assert space.layers(arch)[2] == {"kernel": 3, "filters": 32}
    assert space.options(3) == (16, 32, 64) and space.state_of(3) == 1
    net = space.build(arch, (3, 32, 32), 10)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(InvalidArchitecture, match="filters=48 at position 1"):
        space.validate(Architecture((3, 48, 3, 64, 3, 32, 3, 64)))
    with pytest.raises(InvalidArchitecture, match="expected 8"):
        space.validate(Architecture((3, 64)))


def test_cnn_space_builds_for_images_and_sequences() -> None:
    space = CNNSpace(filters=[8, 16, 32])
    arch = space.sample(np.random.default_rng(1))
    for shape in [(1, 8, 8), (1, 28, 28), (40,)]:
        out = space.build(arch, shape, 10)(torch.zeros(3, *shape))
        assert out.shape == (3, 10)


def test_spaces_are_data() -> None:
    specs: list[dict[str, object]] = [
        {"name": "mlp", "max_len": 3},
        {"name": "cnn", "filters": [4, 8]},
    ]
    for spec in specs:
        space = make_space(spec)
        again = make_space(space.spec())
        assert again.spec() == space.spec() and again.space_id == space.space_id
    with pytest.raises(UnknownName, match="unknown space 'nope'; allowed: .*mlp"):
        make_space("nope")
    with pytest.raises(ConfigError, match="space.max_len"):
        make_space({"name": "mlp", "max_len": "six"})


def test_state_space_rejects_unbuildable_states_at_add_state() -> None:
    space = StateSpace(num_layers=2)
    with pytest.raises(InvalidArchitecture, match="buildable states: kernel, filters"):
        space.add_state("kernal", [1, 3])
    with pytest.raises(InvalidArchitecture, match="unknown activation 'Relu'; allowed: Sigmoid"):
        space.add_state("activation", ["Relu"])
    free = StateSpace(num_layers=1, buildable=False)
    free.add_state("lr", ["1e-3", "1e-2"])  # YAML reads 1e-3 as a string: matched as a number
    assert free.options(0) == (0.001, 0.01)


def test_state_space_builds_an_mlp_for_rows_of_features() -> None:
    import torch

    space = StateSpace(num_layers=2)
    space.add_state("units", [8, 16])
    space.add_state("activation", ["ReLU", "Tanh"])
    space.add_state("dropout", [0.0, 0.5])
    arch = space.decode([1, 0, 1, 0, 1, 0])
    model = space.build(arch, (5,), 3)
    kinds = [type(m).__name__ for m in model]
    assert "Conv1d" not in kinds and kinds.count("Linear") == 3 and "Dropout" in kinds
    assert model(torch.randn(4, 5)).shape == (4, 3)
