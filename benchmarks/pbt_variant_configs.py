"""Write the PBT-NAS ablation / baseline variant configs from a task's default config.

Each variant file is the default config with exactly the overrides of
``benchmarks/pbt_ablation.py: VARIANT_OVERRIDES``
(tests/strategies/pbt/test_pbt_configs.py checks that)::

    .venv/bin/python benchmarks/pbt_variant_configs.py configs/rl_pbt_nas.yaml --prefix rl
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADERS = {
    "no_mixing": "# No mixing: a child clones a top member (the donor is the base itself).",
    "copy_exact": "# Copy exactly: mixing with (lambda, gamma) = (1, 0).",
    "reinit": "# Re-initialise: mixing with (lambda, gamma) = (0, 1).",
    "random_search": "# Random-search baseline: the same initial population trained for the same "
    "budget, never exploited.",
    "mutation_pbt": "# Mutation-PBT baseline (SEARL-like): clone a top member; keep / weight "
    "noise / one gene changed.",
}


def variant_text(base: str, variant: str, overrides: list[str]) -> str:
    text = re.sub(r"^name: (\S+)", lambda m: f"name: {m.group(1)}_{variant}", base, count=1,
                  flags=re.M)
    for ov in overrides:
        key, value = ov.split("=", 1)
        field = key.split(".")[-1]
        text, n = re.subn(rf"^(\s+{field}:\s*)\S+", rf"\g<1>{value}", text, count=1,
                          flags=re.M)
        if n != 1:
            raise SystemExit(f"{key} not found in the base config")
    return HEADERS[variant] + "\n" + text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", type=Path)
    ap.add_argument("--prefix", required=True, help="file name prefix, e.g. rl or digits")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pbt_ablation import VARIANT_OVERRIDES

    base = args.base.read_text()
    for variant, ovs in VARIANT_OVERRIDES.items():
        if variant == "pbt_nas":
            continue
        out = ROOT / "configs" / "pbt" / f"{args.prefix}_{variant}.yaml"
        out.write_text(variant_text(base, variant, ovs))
        print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
