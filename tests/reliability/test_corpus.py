"""The malformed-input corpus: every case ends with exit code 2, one line on stderr naming the
problem, nothing written or changed, and no code run from a tampered file."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import nasforge
from nasforge.cli.main import main
from nasforge.exceptions import RunDirError
from tests.conftest import tiny_config
from tests.reliability._helpers import malicious_pickle, malicious_torch_file, snapshot

Case = Callable[[Path], list[str]]  # builds the inputs under a folder, returns the CLI argv


def _cfg(tmp: Path, name: str = "c.yaml", **over: object) -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(tiny_config(budget=3, final={"seeds": 0}, **over)))
    return p


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run with a trained best model (to be copied and damaged)."""
    root = tmp_path_factory.mktemp("finished")
    cfg = root / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(budget=3, final={"seeds": 1})))
    assert main(["search", str(cfg), "--run-dir", str(root / "run"), "--no-progress"]) == 0
    return root


def _copy_run(finished: Path, tmp: Path) -> Path:
    shutil.copytree(finished / "run", tmp / "run")
    shutil.copy(finished / "c.yaml", tmp / "c.yaml")
    return tmp / "run"


# ------------------------------------------------------------------ search inputs (no run yet)
def _non_utf8(tmp: Path) -> list[str]:
    p = tmp / "bad.yaml"
    p.write_bytes(b"name: caf\xe9\nbudget: 3\n")
    return ["search", str(p), "--run-dir", str(tmp / "run")]


def _binary(tmp: Path) -> list[str]:
    p = tmp / "bin.yaml"
    p.write_bytes(bytes(range(256)) * 4)
    return ["search", str(p), "--run-dir", str(tmp / "run")]


def _nul_bytes(tmp: Path) -> list[str]:
    p = tmp / "nul.yaml"
    p.write_bytes(b"name: x\x00\x00\nbudget: 3\n")
    return ["search", str(p), "--run-dir", str(tmp / "run")]


def _config_is_dir(tmp: Path) -> list[str]:
    (tmp / "d.yaml").mkdir()
    return ["search", str(tmp / "d.yaml"), "--run-dir", str(tmp / "run")]


def _name_case(name: str) -> Case:
    def case(tmp: Path) -> list[str]:
        return ["search", str(_cfg(tmp, name=name)), "--run-dir", str(tmp / "run")]

    return case


def _bad_name(name: str) -> Case:
    def case(tmp: Path) -> list[str]:
        p = tmp / "c.yaml"
        p.write_text(yaml.safe_dump({**tiny_config(budget=3), "name": name}))
        return ["search", str(p)]  # default run dir runs/<name>: must never be a path

    return case


def _run_dir_is_file(tmp: Path) -> list[str]:
    (tmp / "afile").write_text("x")
    return ["search", str(_cfg(tmp)), "--run-dir", str(tmp / "afile")]


def _run_dir_under_file(tmp: Path) -> list[str]:
    (tmp / "afile").write_text("x")
    return ["search", str(_cfg(tmp)), "--run-dir", str(tmp / "afile" / "sub" / "run")]


def _run_dir_uncreatable(tmp: Path) -> list[str]:
    return ["search", str(_cfg(tmp)), "--run-dir", "/proc/nasforge-run"]


def _darts_on_mlp(tmp: Path) -> list[str]:
    p = _cfg(tmp, strategy={"name": "darts", "epochs": 1})
    return ["search", str(p), "--run-dir", str(tmp / "run")]


def _ray_unreachable(tmp: Path) -> list[str]:
    p = _cfg(tmp, executor={"name": "ray", "address": "127.0.0.1:9", "connect_timeout_s": 2})
    return ["search", str(p), "--run-dir", str(tmp / "run")]


def _ray_bad_address(tmp: Path) -> list[str]:
    p = _cfg(tmp, executor={"name": "ray", "address": "no-port-here"})
    return ["search", str(p), "--run-dir", str(tmp / "run")]


def _resume_nothing(tmp: Path) -> list[str]:
    (tmp / "run").mkdir()
    return ["search", str(_cfg(tmp)), "--run-dir", str(tmp / "run"), "--resume"]


def _resume_is_file(tmp: Path) -> list[str]:
    (tmp / "run").write_text("x")
    return ["search", str(_cfg(tmp)), "--run-dir", str(tmp / "run"), "--resume"]


SEARCH_CASES: dict[str, tuple[Case, str]] = {
    "non_utf8_config": (_non_utf8, "not UTF-8"),
    "binary_config": (_binary, "config"),
    "nul_bytes_config": (_nul_bytes, "binary"),
    "config_is_directory": (_config_is_dir, "config"),
    "missing_config": (lambda t: ["search", str(t / "nope.yaml")], "not found"),
    "name_dotdot": (_bad_name("../escape"), "plain name"),
    "name_absolute": (_bad_name("/tmp/abs"), "plain name"),
    "name_slash": (_bad_name("a/b"), "plain name"),
    "name_hidden": (_bad_name(".hidden"), "plain name"),
    "name_empty": (_bad_name(""), "plain name"),
    "run_dir_is_file": (_run_dir_is_file, "is a file"),
    "run_dir_under_file": (_run_dir_under_file, "is a file"),
    "run_dir_uncreatable": (_run_dir_uncreatable, "cannot create"),
    "darts_on_mlp_space": (_darts_on_mlp, "darts needs space"),
    "ray_unreachable": (_ray_unreachable, "no Ray cluster answers"),
    "ray_bad_address": (_ray_bad_address, "host:port"),
    "resume_without_store": (_resume_nothing, "not a nasforge run"),
    "resume_run_dir_is_file": (_resume_is_file, "is a file"),
    "bad_budget": (lambda t: ["search", str(_cfg(t)), "--budget", "zero"], "positive integer"),
    "unknown_key": (lambda t: ["search", str(_cfg(t, bogus=1))], "unknown config key"),
}


def _assert_one_line_exit_2(argv: list[str], expect: str, capsys: pytest.CaptureFixture[str],
                            root: Path) -> None:
    before = snapshot(root)
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nasforge: error:") or lines[0].startswith("usage"), err
    assert expect in lines[0], lines[0]
    assert snapshot(root) == before, "a refused input changed files"


@pytest.mark.parametrize("case", sorted(SEARCH_CASES))
def test_bad_search_input(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # default run directories land here, if anywhere
    build, expect = SEARCH_CASES[case]
    argv = [*build(tmp_path), "--no-progress"]
    _assert_one_line_exit_2(argv, expect, capsys, tmp_path)
    assert not (tmp_path / "run" / "run.sqlite").exists()
    assert not Path("/tmp/abs").exists()


# ------------------------------------------------------------------ damaged stores
def _truncate(run: Path) -> None:
    db = run / "run.sqlite"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])


def _garbage(run: Path) -> None:
    (run / "run.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)


def _empty(run: Path) -> None:
    (run / "run.sqlite").write_bytes(b"")


def _drop_table(table: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        con = sqlite3.connect(run / "run.sqlite")
        con.execute(f"DROP TABLE {table}")
        con.commit()
        con.close()

    return damage


def _foreign(run: Path) -> None:
    db = run / "run.sqlite"
    db.unlink()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    con.commit()
    con.close()


def _newer_schema(run: Path) -> None:
    con = sqlite3.connect(run / "run.sqlite")
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()


def _corrupt_page(run: Path) -> None:
    con = sqlite3.connect(run / "run.sqlite")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    db = run / "run.sqlite"
    data = bytearray(db.read_bytes())
    page = 4096
    for off in range(page * 1 + 100, min(len(data), page * 3), 7):  # scribble on pages 2-3
        data[off] = 0xA5
    db.write_bytes(bytes(data))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": _truncate,
    "garbage": _garbage,
    "empty": _empty,
    "dropped_trials": _drop_table("trials"),
    "dropped_meta": _drop_table("meta"),
    "foreign_sqlite": _foreign,
    "newer_schema": _newer_schema,
    "corrupt_pages": _corrupt_page,
}


def test_garbage_strategy_state_on_resume(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy_run(finished, tmp_path)
    con = sqlite3.connect(run / "run.sqlite")
    con.execute("INSERT OR REPLACE INTO state (key, blob) VALUES ('strategy', ?)",
                (b"\x00garbage",))
    con.commit()
    con.close()
    argv = ["search", str(tmp_path / "c.yaml"), "--run-dir", str(run), "--resume", "--budget",
            "5", "--no-progress"]
    def files() -> dict[str, bytes]:  # contents (the lock file and the store aside)
        return {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*")
                if p.is_file() and "run.sqlite" not in p.name and p.name != ".lock"}

    before = files()
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "strategy state is not a nasforge checkpoint" in lines[0], lines
    # config.yaml and every other file as they were; the store's budget and trials too
    assert files() == before
    assert nasforge.load_run(run).meta("config")["budget"] == 3
    assert len(nasforge.load_run(run).trials) == 3


@pytest.mark.parametrize("command", ["show", "export", "resume", "search"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_store(
    damage: str, command: str, finished: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = _copy_run(finished, tmp_path)
    DAMAGE[damage](run)
    for side in ("run.sqlite-wal", "run.sqlite-shm"):
        (run / side).unlink(missing_ok=True)
    argv = {
        "show": ["show", str(run)],
        "export": ["export", str(run), "--out", str(tmp_path / "exp")],
        "resume": ["search", str(tmp_path / "c.yaml"), "--run-dir", str(run), "--resume",
                   "--budget", "5", "--no-progress"],
        "search": ["search", str(tmp_path / "c.yaml"), "--run-dir", str(run), "--no-progress"],
    }[command]
    expect = "already exists" if command == "search" else ""
    _assert_one_line_exit_2(argv, expect, capsys, tmp_path)
    assert not (tmp_path / "exp").exists()


# ------------------------------------------------------------------ export / load
def test_export_out_onto_file(finished: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy_run(finished, tmp_path)
    (tmp_path / "out").write_text("precious")
    _assert_one_line_exit_2(["export", str(run), "--out", str(tmp_path / "out")], "is a file",
                            capsys, tmp_path)
    _assert_one_line_exit_2(["export", str(run), "--out", str(tmp_path / "out" / "x")],
                            "cannot", capsys, tmp_path)
    assert (tmp_path / "out").read_text() == "precious"


def test_export_never_overwrites(finished: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy_run(finished, tmp_path)
    assert main(["export", str(run), "--out", str(tmp_path / "exp")]) == 0
    capsys.readouterr()
    _assert_one_line_exit_2(["export", str(run), "--out", str(tmp_path / "exp")],
                            "already holds", capsys, tmp_path)


def test_export_refuses_malicious_best_model(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy_run(finished, tmp_path)
    marker = tmp_path / "PWNED"
    malicious_torch_file(run / "best_model.pt", marker)
    _assert_one_line_exit_2(["export", str(run), "--out", str(tmp_path / "exp")], "refused",
                            capsys, tmp_path)
    assert not marker.exists()


def _tamper_pickle_weights(d: Path, marker: Path) -> None:
    malicious_torch_file(d / "model.pt", marker)


def _tamper_raw_pickle(d: Path, marker: Path) -> None:
    (d / "model.pt").write_bytes(malicious_pickle(marker))


def _edit_json(fn: Callable[[dict], object]) -> Callable[[Path, Path], None]:
    def tamper(d: Path, marker: Path) -> None:
        import json

        doc = json.loads((d / "architecture.json").read_text())
        out = fn(doc)
        (d / "architecture.json").write_text(json.dumps(doc if out is None else out))

    return tamper


def _weights_list(d: Path, marker: Path) -> None:
    import torch

    torch.save([torch.zeros(3)], d / "model.pt")


def _weights_wrong_shape(d: Path, marker: Path) -> None:
    import torch

    sd = torch.load(d / "model.pt", weights_only=True)
    torch.save({k: torch.zeros(1) for k in sd}, d / "model.pt")


TAMPER: dict[str, Callable[[Path, Path], object]] = {
    "malicious_torch_pickle": _tamper_pickle_weights,
    "malicious_raw_pickle": _tamper_raw_pickle,
    "garbage_weights": lambda d, m: (d / "model.pt").write_bytes(b"\x80\x04garbage"),
    "empty_weights": lambda d, m: (d / "model.pt").write_bytes(b""),
    "truncated_weights": lambda d, m: (d / "model.pt").write_bytes(
        (d / "model.pt").read_bytes()[:200]),
    "weights_not_state_dict": _weights_list,
    "weights_wrong_shape": _weights_wrong_shape,
    "json_not_json": lambda d, m: (d / "architecture.json").write_text("{not json"),
    "json_not_utf8": lambda d, m: (d / "architecture.json").write_bytes(b'{"a": "\xff"}'),
    "json_list": _edit_json(lambda doc: [1, 2]),
    "json_wrong_format": _edit_json(lambda doc: doc.update(format="other/9")),
    "json_no_space": _edit_json(lambda doc: doc.pop("space")),
    "json_unknown_space": _edit_json(lambda doc: doc.update(space={"name": "nope"})),
    "json_bad_arch": _edit_json(lambda doc: doc.update(arch={"tokens": ["nope", 3]})),
    "json_bad_shape": _edit_json(lambda doc: doc.update(input_shape="big")),
    "json_missing_weights": lambda d, m: (d / "model.pt").unlink(),
}


@pytest.mark.parametrize("tamper", sorted(TAMPER))
def test_tampered_export_load_refused(tamper: str, finished: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    nasforge.export(finished / "run", exp)
    marker = tmp_path / "PWNED"
    TAMPER[tamper](exp, marker)
    with pytest.raises(RunDirError) as info:
        nasforge.load(exp)
    assert "\n" not in str(info.value) and str(exp) in str(info.value)
    assert not marker.exists(), "code ran from a tampered export"


def test_untampered_export_loads(finished: Path, tmp_path: Path) -> None:
    nasforge.export(finished / "run", tmp_path / "exp")
    model = nasforge.load(tmp_path / "exp")
    assert not model.training and sum(p.numel() for p in model.parameters()) > 0
