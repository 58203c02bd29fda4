"""The model contract's public surface and its boundaries."""

from __future__ import annotations

import ast
from pathlib import Path

import fleetlearn.model

PACKAGE = Path(fleetlearn.model.__file__).parent
FORBIDDEN = ("ray", "fleetlearn.serving", "fleetlearn.training", "fleetlearn.cli")


def test_public_api_is_exported() -> None:
    assert set(fleetlearn.model.__all__) == {
        "Artifact", "Prediction", "Predictor", "build_pipeline", "dump_model",
        "load_predictor", "probe_rows",
    }
    for name in fleetlearn.model.__all__:
        assert getattr(fleetlearn.model, name).__module__.startswith("fleetlearn.model._")


def test_model_imports_no_runtime_above_it_and_no_private_module_of_another() -> None:
    imported = []
    for source in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.append(node.module)
            elif isinstance(node, ast.Import):
                imported += [alias.name for alias in node.names]
    assert "fleetlearn.data" in imported
    assert [m for m in imported if m.startswith(FORBIDDEN)] == []
    assert [m for m in imported if m.startswith("fleetlearn.")
            and not m.startswith("fleetlearn.model") and "._" in m] == []
