"""``fleetlearn report RUN_ID -o report.html [--png DIR]``.

Imports of the registry, training, serving, reports and pandas sit inside each
command, not at the top: every verb (and ``fleetlearn --help``) imports all verb
modules, so a top-level import would make each of them pay for all the others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fleetlearn.cli._common import console, err_console


def _read_inference(path: Path) -> list[dict[str, Any]]:
    from fleetlearn.errors import ConfigError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"Inference statistics file {path} does not exist.") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Inference statistics file {path} is not JSON ({exc}).") from exc
    # Serving's /v1/stats answer holds the windows under "series"; a bare list works too.
    windows = data.get("series") if isinstance(data, dict) else data
    if not isinstance(windows, list) or not all(isinstance(w, dict) for w in windows):
        raise ConfigError(f"Inference statistics file {path} must hold a list of windows "
                          "(objects with t, model, version, count, errors, p50_ms, ...) or "
                          "an object with that list under \"series\".")
    return windows


def report_command(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    output: Annotated[Path, typer.Option("--output", "-o",
                                         help="HTML file to write.")] = Path("report.html"),
    png: Annotated[Path | None, typer.Option(
        "--png", help="Also write every figure as PNG into this folder (needs Chromium).")]
    = None,
    metric: Annotated[str | None, typer.Option(help="Rank and compare by this metric.")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    inference: Annotated[Path | None, typer.Option(
        help="JSON file of inference statistics windows (serving's /v1/stats); by "
             "default what the registry recorded while this run's models were served.")]
    = None,
    no_test_split: Annotated[bool, typer.Option(
        "--no-test-split", help="Skip the figures that reload the tables and models.")] = False,
    registry: Annotated[str | None, typer.Option(
        help="Registry URL; $FLEETLEARN_REGISTRY_URL or the home's SQLite.")] = None,
) -> None:
    """Write a self-contained HTML report of a run (opens offline), and optionally PNGs."""
    # Imported here, not at the top: the report pulls in Plotly, pandas and scikit-learn,
    # and every CLI start (even --help) would pay for them.
    from fleetlearn.insights import run_inference
    from fleetlearn.registry import Registry
    from fleetlearn.reports import collect_report, require_png_export, write_report

    if png is not None:
        require_png_export()  # before minutes of work, not after the HTML is written
    windows = _read_inference(inference) if inference is not None else None
    reg = Registry(registry)
    if windows is None:
        windows = run_inference(reg, run_id) or None
    data = collect_report(reg, run_id, metric=metric, alpha=alpha, inference=windows,
                          test_split=not no_test_split, path=output)
    for d in data.datasets:
        for note in d.notes:
            err_console.print(f"[yellow]note:[/] {d.name}: {note}")
    path, pngs = write_report(data, output, png)
    console.print(f"report of run {data.run.id} written to [bold]{path}[/] "
                  f"({path.stat().st_size / 2**20:.1f} MiB)")
    if png is not None:
        console.print(f"{len(pngs)} PNG figure(s) written to [bold]{png}[/]")
