"""Few-shot sets and the episode sampler: class disjointness, seeding, shapes, bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasforge.data.base import TASKS, Split
from nasforge.data.fewshot import EpisodeSampler, check_fewshot, rotate_classes
from nasforge.exceptions import DataError


@pytest.fixture(scope="module")
def digits_rot():  # type: ignore[no-untyped-def]
    return TASKS.get("digits_rot")().load()


def test_digits_rot_splits_are_class_disjoint(digits_rot) -> None:  # type: ignore[no-untyped-def]
    sets = [set(s.y.tolist()) for s in (digits_rot.train, digits_rot.val, digits_rot.test)]
    assert [len(s) for s in sets] == [24, 8, 8]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert digits_rot.input_shape == (1, 8, 8)


def test_episode_shapes_seeding_and_labels(digits_rot) -> None:  # type: ignore[no-untyped-def]
    s = EpisodeSampler(digits_rot.train, n_way=5, k_shot=2, q_query=3, seed=1, name="train")
    e = s.episode(7)
    assert e.support_x.shape == (10, 1, 8, 8) and e.query_x.shape == (15, 1, 8, 8)
    assert e.support_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert len(set(e.classes)) == 5 and set(e.classes) <= set(digits_rot.train.y.tolist())
    again = EpisodeSampler(digits_rot.train, n_way=5, k_shot=2, q_query=3, seed=1,
                           name="train").episode(7)
    assert torch.equal(e.support_x, again.support_x) and e.classes == again.classes
    assert s.episode(8).classes != e.classes or not torch.equal(s.episode(8).query_x, e.query_x)
    # support and query never share an image
    flat = digits_rot.train.x.flatten(1)
    def rows(x: torch.Tensor) -> set[int]:
        return {int((flat == r).all(1).nonzero()[0]) for r in x.flatten(1)}
    assert not rows(e.support_x) & rows(e.query_x)


def test_sampler_bad_input(digits_rot) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match="n_way=9 exceeds the 8 classes of the meta-val"):
        EpisodeSampler(digits_rot.val, n_way=9, k_shot=1, q_query=1, seed=0, name="val")
    with pytest.raises(DataError, match="k_shot \\+ q_query = 1000 exceeds"):
        EpisodeSampler(digits_rot.val, n_way=5, k_shot=500, q_query=500, seed=0, name="val")


def test_rotations_are_new_classes() -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    xr, yr = rotate_classes(x, np.array([0, 1]), 2, 4)
    assert yr.tolist() == [0, 4, 1, 5, 2, 6, 3, 7]  # class c, rotation r: c * 4 + r
    assert sorted(set(yr.tolist())) == list(range(8)) and len(xr) == 8
    assert np.array_equal(xr[2], np.rot90(x[0]))


def test_not_a_fewshot_set() -> None:
    task = TASKS.get("digits")().load()
    with pytest.raises(DataError, match="not a few-shot set"):
        check_fewshot(task)


def test_triple_mnist_small() -> None:
    task = TASKS.get("triple_mnist")(per_class=3, classes=[20, 5, 5], seed=2).load()
    assert task.input_shape == (1, 28, 28) and len(task.train) == 60
    check_fewshot(task)
    assert 0.0 <= float(task.train.x.min()) and float(task.train.x.max()) <= 1.0


def _png(path: Path, size: int, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(path)


def test_omniglot_layout(tmp_path: Path) -> None:
    for part, n_alpha in (("images_background", 2), ("images_evaluation", 1)):
        for a in range(n_alpha):
            for c in range(3):
                for i in range(2):
                    _png(tmp_path / part / f"alpha{a}" / f"character{c:02d}" / f"{i}.png", 20,
                         10 * c + i)
    task = TASKS.get("omniglot")(path=str(tmp_path), size=12, val_classes=0.34).load()
    assert task.input_shape == (1, 12, 12)
    check_fewshot(task)
    counts = [len(set(s.y.tolist())) for s in (task.train, task.val, task.test)]
    assert counts == [4 * 4, 2 * 4, 3 * 4]  # rotations are classes


def test_omniglot_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "images_background").mkdir()
    with pytest.raises(DataError, match="images_evaluation' not found"):
        TASKS.get("omniglot")(path=str(tmp_path)).load()


def test_miniimagenet_folders_and_pickles(tmp_path: Path) -> None:
    for split, k in (("train", 3), ("val", 2), ("test", 2)):
        for c in range(k):
            for i in range(2):
                f = tmp_path / "f" / split / f"n{c}" / f"{i}.jpg"
                f.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((10, 10, 3), 20 * c, np.uint8)).save(f)
        data = {"image_data": np.zeros((2 * k, 10, 10, 3), np.uint8),
                "class_dict": {f"n{c}": [2 * c, 2 * c + 1] for c in range(k)}}
        (tmp_path / "p").mkdir(exist_ok=True)
        with (tmp_path / "p" / f"mini-imagenet-cache-{split}.pkl").open("wb") as fh:
            pickle.dump(data, fh)
    a = TASKS.get("miniimagenet")(path=str(tmp_path / "f"), size=8).load()
    b = TASKS.get("miniimagenet")(path=str(tmp_path / "p"), size=8).load()
    for t in (a, b):
        assert t.input_shape == (3, 8, 8) and t.num_classes == 7
        check_fewshot(t)


def test_miniimagenet_pickle_cannot_run_code(tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        with (tmp_path / f"mini-imagenet-cache-{split}.pkl").open("wb") as fh:
            pickle.dump({"image_data": Path("x"), "class_dict": {}}, fh)
    with pytest.raises(DataError, match="only numpy arrays"):
        TASKS.get("miniimagenet")(path=str(tmp_path)).load()


def test_mixed_sizes_refused() -> None:
    from nasforge.data.fewshot import _task

    a = (np.zeros((2, 1, 4, 4), np.float32), np.array([0, 1]))
    b = (np.zeros((2, 1, 5, 5), np.float32), np.array([2, 3]))
    with pytest.raises(DataError, match="mixed image sizes"):
        _task("x", {}, [a, b, a])


def test_split_is_a_plain_split() -> None:
    s = Split(torch.zeros(4, 1, 2, 2), torch.tensor([0, 0, 1, 1]))
    e = EpisodeSampler(s, n_way=2, k_shot=1, q_query=1, seed=0, name="train").episode(0)
    assert e.support_y.tolist() == [0, 1]
