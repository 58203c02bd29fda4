"""``fleetlearn catalog``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from fleetlearn.cli._common import console, print_json, rows_table


def catalog_command(
    task: Annotated[str | None, typer.Option(help="classification or regression.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the models fleetlearn knows by short name, per task."""
    from fleetlearn.catalog import catalog_entries

    entries = catalog_entries(task)
    if json_out:
        print_json(entries)
        return
    rows = [{
        "name": e["name"], "task": e["task"], "estimator": e["estimator_path"],
        "default": "yes" if e["in_default_set"] else "",
        "note": ("O(n^2): not default on big tables" if e["quadratic"] else "")
        + ("" if e["available"] else f" needs: pip install 'fleetlearn[{e['extra']}]'"),
        "params": json.dumps(e["params"])[:50],
    } for e in entries]
    console.print(rows_table(rows, title="model catalog"))
    console.print("Any scikit-learn-compatible estimator works by dotted path too, e.g. "
                  "--model sklearn.ensemble.AdaBoostClassifier:n_estimators=200")
