"""The layout's import rules: arrows run down only (http -> model -> bundle, ops beside), the
contract imports numpy and pydantic only, and serving never imports training."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"

# Module path prefix -> app modules it must not import (by prefix).
FORBIDDEN = {
    "app.bundle": ("app.errors", "app.http", "app.model", "app.ops", "app.settings", "app.score"),
    "app.errors": ("app.",),
    "app.settings": ("app.",),
    "app.model": ("app.http", "app.score", "app.cli"),
    "app.ops": ("app.http", "app.score", "app.cli"),
}
THIRD_PARTY_IN_BUNDLE = {"numpy", "pydantic", "__future__"}


def app_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(APP.rglob("*.py")):
        parts = path.relative_to(APP.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules.append((name, path))
    return modules


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(("module", "path"), app_modules(), ids=[m for m, _ in app_modules()])
def test_imports_run_down_the_layers(module: str, path: Path) -> None:
    imported = imports_of(path)
    for layer, banned in FORBIDDEN.items():
        if module == layer or module.startswith(f"{layer}."):
            wrong = sorted(i for i in imported if i.startswith(banned) and i != module)
            assert not wrong, f"{module} imports {wrong}, above its layer"
    training = sorted(i for i in imported if i == "training" or i.startswith("training."))
    assert not training, f"{module} imports {training}: serving never imports training"
    if module.startswith("app.bundle"):
        outside = {i.split(".")[0] for i in imported} - THIRD_PARTY_IN_BUNDLE - {"app"}
        standard = outside & sys.stdlib_module_names
        assert outside == standard, f"the contract imports {sorted(outside - standard)}"


def test_the_rules_would_catch_a_wrong_import(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text("from app.http.factory import create_app\nimport training.cli\n")
    assert imports_of(wrong) == {"app.http.factory", "training.cli"}
