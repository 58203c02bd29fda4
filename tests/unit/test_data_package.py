"""The data package's public surface and its boundaries."""

from __future__ import annotations

import ast
from pathlib import Path

import fleetlearn.data

PACKAGE = Path(fleetlearn.data.__file__).parent
FORBIDDEN = ("ray", "fleetlearn.registry", "fleetlearn.training", "fleetlearn.serving",
             "fleetlearn.model")


def test_public_api_is_exported() -> None:
    expected = {
        "ColumnKind",
        "ColumnSchema",
        "Schema",
        "Dataset",
        "load_table",
        "infer_task",
        "load_dataset",
        "dataset_from_frame",
        "check_folds",
        "build_preprocessor",
        "DatetimeFeatures",
        "coerce_frame",
        "example_datasets",
    }
    assert expected <= set(fleetlearn.data.__all__)
    for name in fleetlearn.data.__all__:
        assert hasattr(fleetlearn.data, name), name


def test_data_package_imports_neither_ray_nor_the_registry() -> None:
    imported: list[tuple[str, str]] = []
    for source in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported += [(source.name, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.append((source.name, node.module))
    offending = [
        (file, module)
        for file, module in imported
        if any(module == f or module.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert imported  # the walk saw the imports
    assert offending == []


def _imports_of(folder: Path) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for source in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                found += [(str(source), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((str(source), node.module))
    return found


def test_nothing_outside_data_reaches_into_its_private_modules() -> None:
    root = PACKAGE.parent.parent
    imported = [
        pair
        for folder in (root / "fleetlearn", root / "tests", root / "benchmarks")
        if folder.is_dir()
        for pair in _imports_of(folder)
        # data's own code and its own tests may use its internals
        if not pair[0].startswith(str(PACKAGE)) and not Path(pair[0]).name.startswith("test_data_")
    ]
    assert any(module == "fleetlearn.data" for _, module in imported)  # the walk works
    private = [(f, m) for f, m in imported if m.startswith("fleetlearn.data._")]
    assert private == []
