"""Commands added by later families (tabulate, bench, ...): each registers here."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from nasforge.cli import bench_cmds

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_commands(sub: Any) -> None:
    """Add the extra sub-commands to the ``nasforge`` parser."""

    bench_cmds.add(sub, COMMANDS)
