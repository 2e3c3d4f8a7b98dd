"""The batch's summary: one row per portrait (its state, and its measures from `<run>/report.json`:
the key numbers and every goal with whether it is met), as `summary.csv`, `summary.json` and a
`summary.html` page linking each portrait's own report. Rewritten after every portrait that ends,
so an interrupted batch still leaves a true summary."""
from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perse.core.io import atomic_write_bytes, atomic_write_json
from perse.core.paths import RunPaths
from perse.metrics import report_value

SUMMARY_CSV, SUMMARY_JSON, SUMMARY_HTML = "summary.csv", "summary.json", "summary.html"
STATES = ("queued", "running", "done", "skipped", "failed", "cancelled")
# The report's headline numbers, as (column, path into report.json).
KEY_NUMBERS = (
    ("psnr", ("reconstruction", "psnr")),
    ("ssim", ("reconstruction", "ssim")),
    ("psnr_person", ("reconstruction", "psnr_person")),
    ("identity", ("identity", "mean")),
    ("identity_min", ("identity", "min")),
    ("ppl", ("interpolation", "mean", "ppl")),
    ("pdv_x100", ("interpolation", "mean", "pdv_x100")),
    ("changed_outside_region", ("interpolation", "mean", "changed_outside_region")),
    ("ghost_share", ("ghost", "share")),
    ("holes_share", ("holes", "share")),
    ("train_steps", ("training", "steps")),
)


@dataclass
class PortraitStatus:
    name: str
    photo: str
    run: str
    state: str = "queued"
    stage: str = ""  # the pipeline stage it is in (or ended in)
    fraction: float = 0.0
    message: str = ""
    seconds: float | None = None  # wall time of this batch's work on it
    measures: dict[str, Any] = field(default_factory=dict)
    goals: list[dict[str, Any]] = field(default_factory=list)

    def read_report(self) -> None:
        """Take the measures from the run's report.json; a missing or damaged one leaves them empty."""
        try:
            report = json.loads(RunPaths(self.run).report.read_text())
        except (OSError, ValueError):
            return
        self.measures = {column: _measure(report, path) for column, path in KEY_NUMBERS}
        self.goals = [{key: goal.get(key) for key in ("measure", "value", "goal", "met", "shown")}
                      for goal in report.get("goals", []) if isinstance(goal, dict)]

    @property
    def goals_met(self) -> str:
        return f"{sum(bool(g['met']) for g in self.goals)}/{len(self.goals)}" if self.goals else ""


def _measure(report: Any, path: tuple[str, ...]) -> Any:
    value = report_value(report, path)
    return value if isinstance(value, (int, float)) else None


def _goal_names(rows: list[PortraitStatus]) -> list[str]:
    return list(dict.fromkeys(goal["measure"] for row in rows for goal in row.goals))


def counts(rows: list[PortraitStatus]) -> dict[str, int]:
    return {state: sum(row.state == state for row in rows) for state in STATES}


def write_summary(out: Path, rows: list[PortraitStatus], settings: dict[str, Any], names: dict[str, str]) -> None:
    """Write summary.csv, summary.json and summary.html into the batch folder `out`; `names` (photo ->
    run folder name, for every photo the folder has seen) goes into summary.json for the next batch."""
    atomic_write_json(out / SUMMARY_JSON, {
        **settings, "counts": counts(rows),
        "portraits": [{"name": r.name, "photo": r.photo, "run": r.run, "state": r.state, "stage": r.stage,
                       "message": r.message, "seconds": r.seconds, "measures": r.measures,
                       "goals_met": r.goals_met, "goals": r.goals} for r in rows],
        "names": names})
    atomic_write_bytes(out / SUMMARY_CSV, _csv(rows).encode())
    atomic_write_bytes(out / SUMMARY_HTML, _html(rows, settings).encode())


def _csv(rows: list[PortraitStatus]) -> str:
    goal_names = _goal_names(rows)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["name", "photo", "state", "message", "seconds", *(c for c, _ in KEY_NUMBERS), "goals_met",
                     *(column for name in goal_names for column in (name, f"{name} met"))])
    for row in rows:
        goals = {goal["measure"]: goal for goal in row.goals}
        writer.writerow([row.name, row.photo, row.state, row.message, _number(row.seconds),
                         *(_number(row.measures.get(c)) for c, _ in KEY_NUMBERS), row.goals_met,
                         *(cell for name in goal_names for cell in (
                             (_number(goals[name]["value"]), goals[name]["met"]) if name in goals else ("", "")))])
    return text.getvalue()


def _number(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _html(rows: list[PortraitStatus], settings: dict[str, Any]) -> str:
    esc = html.escape
    goal_names = _goal_names(rows)
    goal_text = {g["measure"]: g["goal"] for row in rows for g in row.goals}
    head = "".join(f"<th>{esc(c)}</th>" for c in ("portrait", "state", "seconds", *(c for c, _ in KEY_NUMBERS),
                                                   "goals met"))
    head += "".join(f"<th>{esc(name)}<br><small>{esc(str(goal_text[name]))}</small></th>" for name in goal_names)
    body = []
    for row in rows:
        report_page = RunPaths(row.run).report_page
        name = (f"<a href='{esc(Path(row.run).name)}/{esc(report_page.name)}'>{esc(row.name)}</a>"
                if report_page.exists() else esc(row.name))
        state = f"<td class='{esc(row.state)}'>{esc(row.state)}" + (
            f"<br><small>{esc(row.message)}</small>" if row.state in ("failed", "cancelled") else "") + "</td>"
        goals = {goal["measure"]: goal for goal in row.goals}
        cells = "".join(
            f"<td class='{'met' if goals[n]['met'] else 'missed'}'>{esc(str(goals[n]['shown']))}</td>"
            if n in goals else "<td></td>" for n in goal_names)
        numbers = "".join(f"<td>{esc(_number(row.measures.get(c)))}</td>" for c, _ in KEY_NUMBERS)
        body.append(f"<tr><th title='{esc(row.photo)}'>{name}</th>{state}<td>{esc(_number(row.seconds))}</td>"
                    f"{numbers}<td>{esc(row.goals_met)}</td>{cells}</tr>")
    tally = ", ".join(f"{n} {state}" for state, n in counts(rows).items() if n)
    settings_text = esc(", ".join(f"{k} {v}" for k, v in settings.items()))
    return ("<!doctype html><meta charset='utf-8'><title>PERSE batch summary</title>"
            "<style>body{font-family:sans-serif;margin:1.5em} table{border-collapse:collapse;font-size:14px}"
            " td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
            " .met,.done,.skipped{color:#070} .missed,.failed{color:#b00} .cancelled{color:#a60}</style>"
            f"<h1>Batch summary</h1><p>{esc(tally)}; {settings_text}</p>"
            f"<table><tr>{head}</tr>{''.join(body)}</table>")
