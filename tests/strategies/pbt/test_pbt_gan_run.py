"""PBT-NAS on a tiny GAN end to end: the FID falls, `show` names FID (minimize), the soup and the
sample grid are written, and a run killed after a round resumes to the same population."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nasforge.run import Run, export, load
from nasforge.search import search


def gan_cfg(**strategy: Any) -> dict[str, Any]:
    return {
        "name": "gan_tiny", "seed": 0, "budget": 12,
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "gan_hard", "resolution": 8, "bottom": 1, "channels": 4,
                  "df_channels": 4, "latent": 6, "d_blocks": 2},
        "strategy": {"name": "pbt_nas", "population_size": 4, "soup": True,
                     "soup_part": "generator", **strategy},
        "evaluator": {"name": "pbt_gan", "batch_size": 32, "batches_per_unit": 40,
                      "lr": 1e-3, "fid_samples": 128, "final_fid_samples": 128,
                      "feature_dim": 16},
        "executor": {"name": "local", "workers": 1},
    }


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return search(gan_cfg(), run_dir=tmp_path_factory.mktemp("g") / "run", progress=False)


def test_the_fid_falls_and_the_report_is_in_fid(straight: Run) -> None:
    trials = straight.trials
    assert len(trials) == 12 and all(t.ok for t in trials)
    fid = {r: [t.result.metrics["fid"] for t in trials if t.result.metrics["round"] == r]
           for r in range(3)}
    assert min(fid[2]) < min(fid[0]) and sum(fid[2]) < sum(fid[0])
    assert all(t.val_acc == -t.result.metrics["fid"] for t in trials)
    summary = straight.summary()
    assert summary["objective"]["name"] == "fid"
    assert summary["objective"]["direction"] == "minimize"
    assert summary["best"]["score"] == pytest.approx(-straight.final.val_acc)
    assert summary["best"]["score"] <= min(fid[2]) + 1e-9  # the soup never loses to its start
    final = straight.final
    assert final is not None and final.objective.name == "fid"
    assert final.extra["soup"]["part"] == "generator"
    assert final.extra["fid_features"] == "classifier"
    assert "not comparable" in final.extra["fid_note"]
    assert final.test_acc is not None and final.test_acc > 0
    png = straight.dir / "samples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_prints_fid_with_its_direction(
    straight: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    from nasforge.cli.main import main

    assert main(["show", str(straight.dir)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "fid (min)" in out and "(minimize)" in out and "accuracy" not in out
    assert f"fid {-straight.final.val_acc:.4f} (minimize)" in out
    assert f"test FID {straight.final.test_acc:.4f}" in out and "not comparable" in out
    assert "samples: samples.png" in out


def test_export_samples_images(straight: Run, tmp_path: Path) -> None:
    out = export(straight.dir, tmp_path / "exp")
    doc = json.loads((out / "architecture.json").read_text())
    # a generator of latents, not a classifier of the task's (digits) images
    assert doc["kind"] == "generator" and doc["input_shape"] == [6]
    assert doc["output_shape"] == [1, 8, 8] and doc["preprocess"] == {}
    assert doc["score"] == pytest.approx(-straight.final.val_acc) and "val_acc" not in doc
    assert doc["test_score"] == straight.final.test_acc
    model = load(out)
    z = torch.randn(5, 6)
    with torch.no_grad():
        img = model(z)  # the latents reach the generator unscaled
        direct = model.net(z)
    assert img.shape == (5, 1, 8, 8) and torch.equal(img, direct)
    assert float(img.abs().max()) <= 1.0
    pics = model.predict(z.numpy())
    assert pics.shape == (5, 1, 8, 8) and np.allclose(pics, (img.numpy() + 1) / 2, atol=1e-6)
    assert model.predict(z[0].numpy()).shape == (1, 8, 8)
    assert np.array_equal(model.sample(3, seed=1), model.sample(3, seed=1))
    with pytest.raises(ValueError, match="does not fit"):
        model.predict(np.zeros((2, 1, 8, 8)))
    # the generator as a torch.export program: latents in, images out, without nasforge
    out2 = export(straight.dir, tmp_path / "exp2", torch_export=True)
    program = torch.export.load(str(out2 / "model.pt2")).module()
    with torch.no_grad():
        assert torch.allclose(program(z), img, atol=1e-5)


_KILLER = """
import json, os, signal, sys
from nasforge.search import search
from nasforge.strategies.base import Callback

class Kill(Callback):
    def on_step(self, step, total, info, ctx):
        if info.get("phase") == "pbt" and step == 1:
            os.kill(os.getpid(), signal.SIGKILL)

search(json.loads(sys.argv[1]), run_dir=sys.argv[2], callbacks=[Kill()])
"""


def test_resume_after_a_kill_gives_the_same_population(straight: Run, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, json.dumps(gan_cfg()), str(tmp_path / "k")],
        env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert len(Run(tmp_path / "k").trials) == 4
    resumed = search(gan_cfg(), run_dir=tmp_path / "k", resume=True, progress=False)

    def key(run: Run) -> list[tuple[Any, ...]]:
        return [(t.number, t.arch.tokens, t.val_acc, t.result.metrics["d_loss"])
                for t in run.trials]

    assert key(resumed) == key(straight)
    assert resumed.final is not None and straight.final is not None
    pops = [[(m["member"], m["arch"], m["fitness"]) for m in r.final.extra["population"]]
            for r in (resumed, straight)]
    assert pops[0] == pops[1]


@pytest.mark.parametrize(("change", "words"), [
    ({"task": {"name": "moons"}}, "needs an image task"),  # 1-D rows
    ({"task": {"name": "sklearn", "dataset": "breast_cancer"}}, "needs an image task"),  # a table
    ({"task": {"name": "sklearn", "dataset": "diabetes"}}, "needs an image task"),  # regression
    ({"budget": 3}, "below population_size 4"),
    ({"budget": 10}, "budget 10 is not a multiple of population_size 4"),
    ({"evaluator": {"name": "pbt_gan", "feature_dim": 600}}, "at least 1200 training images"),
    ({"space": {"name": "gan_hard"}}, "set space.img_channels 1 and space.resolution 8"),
])
def test_bad_gan_configs_exit_2_with_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], words: str
) -> None:
    import yaml

    from nasforge.cli.main import main

    cfg = {**gan_cfg(), **change}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()
