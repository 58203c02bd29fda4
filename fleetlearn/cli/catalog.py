"""``fleetlearn catalog``.

Imports of the registry, training, serving, reports and pandas sit inside each
command, not at the top: every verb (and ``fleetlearn --help``) imports all verb
modules, so a top-level import would make each of them pay for all the others.
"""

from __future__ import annotations

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
    for kind in ("classification", "regression"):
        rows = [{
            "name": e["name"],
            # The class name; --json has the full dotted path.
            "estimator": e["estimator_path"].rsplit(".", 1)[-1],
            "default": "yes" if e["in_default_set"] else "",
            "note": _note(e),
            "params": ", ".join(f"{k}={v}" for k, v in e["params"].items())[:60],
        } for e in entries if e["task"] == kind]
        if rows:
            console.print(rows_table(rows, title=f"{kind} models"))
    console.print("Any scikit-learn-compatible estimator works by dotted path too, e.g. "
                  "--model sklearn.ensemble.AdaBoostClassifier:n_estimators=200")


def _note(entry: dict) -> str:
    # Imported on use, as in catalog_command: the catalog imports scikit-learn, which
    # every other verb would pay for at start-up.
    from fleetlearn.catalog import LARGE_TABLE_ROWS, SLOW_ON_LARGE_TABLES
    from fleetlearn.training import RunOptions

    if not entry["available"]:
        return f"pip install 'fleetlearn[{entry['extra']}]'"
    if entry["quadratic"] and entry["in_default_set"]:
        return f"not default > {RunOptions.model_fields['quadratic_row_limit'].default:,} rows"
    if entry["name"] in SLOW_ON_LARGE_TABLES and entry["in_default_set"]:
        return f"not default > {LARGE_TABLE_ROWS:,} rows"
    return ""
