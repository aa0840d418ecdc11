"""Pure functions from stored records to plot data (tested without pixels)."""

from __future__ import annotations

import math
from typing import NamedTuple

from nasforge.storage.base import Record


class HistoryInfo(NamedTuple):
    numbers: list[int]
    values: list[float]  # validation accuracy per trial (NaN for failed)
    best_so_far: list[float]
    failed: list[int]  # trial numbers that failed


def history_info(records: list[Record]) -> HistoryInfo:
    numbers, values, best, failed = [], [], [], []
    running = -math.inf
    for r in sorted(records, key=lambda r: r.number):
        numbers.append(r.number)
        v = r.val_acc if r.ok else math.nan
        values.append(v)
        if r.ok and v > running:
            running = v
        best.append(running if running > -math.inf else math.nan)
        if not r.ok:
            failed.append(r.number)
    return HistoryInfo(numbers, values, best, failed)
