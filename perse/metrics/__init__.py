"""PERSE's metrics: image quality on held-out frames, identity, interpolation smoothness, disentanglement."""
from __future__ import annotations

from typing import Any


def report_value(report: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` (keys into nested dicts) of a report.json, or None where the report has none
    (a measure an older version or a smaller run did not write)."""
    for key in path:
        if not isinstance(report, dict):
            return None
        report = report.get(key)
    return report
