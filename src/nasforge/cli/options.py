"""Options shared by several sub-commands (kept apart so every command module can import them)."""

from __future__ import annotations

import argparse


def add_run_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--set KEY=VALUE`` (repeatable; overrides ``what``) and ``--no-progress``."""
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help=f"override {what} (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
