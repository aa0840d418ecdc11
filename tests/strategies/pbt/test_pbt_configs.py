"""PBT-NAS variant configs = their task's default config plus exactly the variant's overrides."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nasforge.config import load_config

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks"))
from pbt_ablation import VARIANT_OVERRIDES, config_path  # noqa: E402


@pytest.mark.parametrize("task", ["digits", "rl"])
@pytest.mark.parametrize("variant", sorted(set(VARIANT_OVERRIDES) - {"pbt_nas"}))
def test_variant_file_is_default_plus_overrides(task: str, variant: str) -> None:
    default = load_config(config_path(task, "pbt_nas"), overrides=VARIANT_OVERRIDES[variant])
    got = load_config(config_path(task, variant))
    assert got.model_dump(exclude={"name"}) == default.model_dump(exclude={"name"})
    assert got.name.endswith(variant)
