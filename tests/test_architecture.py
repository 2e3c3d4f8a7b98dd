"""The layout's rule, checked: each part of perse imports only from parts below it (docs/architecture.md
section 2), so stages never borrow sideways and shared services never reach up into a stage."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "perse"

# Lower numbers are imported by higher ones, never the other way round; equal ranks may not import each
# other either (ingest and dataset are independent of each other).
LAYERS = {
    "errors": 0, "events": 1, "config": 1,
    "core": 2,
    "ingest": 3, "dataset": 3,
    "synth": 4,
    "avatar": 5,
    "export": 6,
    "metrics": 7, "drive": 7,
    "pipeline": 8,
    "batch": 9,
    "cli": 10, "app": 10,
}
# Test support builds procedural datasets and trained avatars for tests and benches.
OUTSIDE_THE_LAYERS = {"testing", "__init__"}


def part_of(module: str) -> str:
    return module.split(".")[1]


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("perse."):
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "perse":
            found.update(f"perse.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("perse."))
    return found


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert parts - OUTSIDE_THE_LAYERS == set(LAYERS)


def test_imports_point_down_only():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if own in OUTSIDE_THE_LAYERS:
            continue
        for module in imports_of(path):
            other = part_of(module)
            if other != own and other not in OUTSIDE_THE_LAYERS and LAYERS[other] >= LAYERS[own]:
                upward.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not upward, "\n".join(upward)
