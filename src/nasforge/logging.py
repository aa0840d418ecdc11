"""The library logger. Library code never configures logging; the CLI alone adds handlers."""

from __future__ import annotations

import logging

_ROOT = "nasforge"
logging.getLogger(_ROOT).addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith(_ROOT) else f"{_ROOT}.{name}")
