"""``fleetlearn compare RUN_ID``: which differences between a run's models are real.

Imports of the registry, training, serving, reports and pandas sit inside each
command, not at the top: every verb (and ``fleetlearn --help``) imports all verb
modules, so a top-level import would make each of them pay for all the others.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer

from fleetlearn.cli._common import RegistryOpt, console, print_json

#: What a reader needs to read the "tied" column.
TIED_NOTE = ("tied = not significantly different from the best (corrected resampled t-test "
             "on paired folds, Holm-adjusted p >= {alpha:g})")


def _num(value: Any, digits: int = 4) -> str:
    if value is None or value is Ellipsis:
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    if math.isnan(number):
        return ""
    return f"{number:.{digits}f}"


def _p(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def tied_mark(value: Any) -> str:
    """``"yes"`` / ``""`` / ``"?"`` (cannot be tested) for a ``tied_with_best`` value."""
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "?"
    return "yes" if bool(value) else ""


def leaderboard_tables(board: Any, alpha: float = 0.05) -> list[Any]:
    """One compact Rich table per dataset, with the tied-with-best marking (80 columns)."""
    from rich import box
    from rich.table import Table

    tables = []
    for dataset, part in board.groupby("dataset", sort=False):
        metric = part["metric"].iloc[0]
        folds = int(part["folds"].max())
        # collapse_padding: one space between columns keeps 8 columns within 80.
        table = Table(title=f"{dataset}: {metric}, {folds}-fold CV and held-out test",
                      header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                      collapse_padding=True)
        table.add_column("#", justify="right")
        table.add_column("model", no_wrap=True)
        table.add_column("cv mean ± sd", justify="right", no_wrap=True)
        table.add_column("tied", no_wrap=True)
        table.add_column("test", justify="right")
        table.add_column("fit s", justify="right")
        table.add_column("ms/row", justify="right")
        table.add_column("status", no_wrap=True)
        for _, row in part.iterrows():
            rank = "" if math.isnan(row["rank"]) else str(int(row["rank"]))
            cv = _num(row["cv_mean"])
            if cv and not math.isnan(row["cv_std"]):
                cv += f" ± {row['cv_std']:.3f}"
            status = str(row["status"])
            if status != "failed" and int(row["folds"]) < folds:
                status += f" ({int(row['folds'])}/{folds} folds)"
            tied = tied_mark(row.get("tied_with_best")) if status != "failed" else ""
            table.add_row(rank, str(row["model"]), cv, tied, _num(row["test"]),
                          _num(row.get("fit_time_s"), 2), _num(row.get("predict_ms_per_row"), 3),
                          status)
        tables.append(table)
    return tables


def significance_tables(board: Any, alpha: float = 0.05) -> list[Any]:
    """Per dataset: CV mean with its 95 % CI, Holm p-value against the best, tied marking.

    The unadjusted p-values are in ``--json``; the table fits 80 columns.
    """
    from rich import box
    from rich.table import Table

    tables = []
    for dataset, part in board.groupby("dataset", sort=False):
        metric = part["metric"].iloc[0]
        folds = int(part["folds"].max())
        table = Table(title=f"{dataset}: {metric} over {folds} folds, each model vs the best",
                      header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("#", justify="right")
        table.add_column("model", no_wrap=True)
        table.add_column("cv mean", justify="right", no_wrap=True)
        table.add_column("95% CI", justify="right", no_wrap=True)
        table.add_column("p Holm", justify="right", no_wrap=True)
        table.add_column("tied", no_wrap=True)
        table.add_column("test", justify="right", no_wrap=True)
        for _, row in part.iterrows():
            rank = "" if math.isnan(row["rank"]) else str(int(row["rank"]))
            ci = ""
            if not (math.isnan(row["ci_low"]) or math.isnan(row["ci_high"])):
                ci = f"{row['ci_low']:.4f} – {row['ci_high']:.4f}"
            failed = row["status"] == "failed"
            table.add_row(rank, str(row["model"]), _num(row["cv_mean"]), ci,
                          _p(row["p_adjusted"]),
                          "" if failed else tied_mark(row["tied_with_best"]),
                          "failed" if failed else _num(row["test"]))
        tables.append(table)
    return tables


def _p_is(value: float) -> str:
    text = _p(value)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def ranks_summary(comparison: Any) -> str:
    """Friedman and Nemenyi in one paragraph."""
    f = comparison.friedman
    return (
        f"Friedman chi2 = {f['statistic']:.3f} (df {f['df']}), {_p_is(f['p_value'])}; "
        f"Iman-Davenport F = {f['f_statistic']:.3f}, {_p_is(f['f_p_value'])}. "
        f"Nemenyi critical difference {comparison.critical_difference:.3f} "
        f"(alpha {comparison.alpha:g}, q = {comparison.q_alpha:.3f}): models whose average "
        "ranks differ by less are not significantly different."
    )


def ranks_table(task: str, comparison: Any) -> Any:
    """Average ranks across datasets, with the Nemenyi groups."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"{task}: average ranks over {len(comparison.datasets)} datasets "
                        f"({', '.join(comparison.datasets)})",
                  header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("model", no_wrap=True)
    table.add_column("avg rank", justify="right")
    table.add_column("same group as", no_wrap=False)
    for model, rank in comparison.average_ranks.items():
        mates = sorted({m for g in comparison.groups if model in g for m in g} - {model},
                       key=lambda m: comparison.average_ranks[m])
        table.add_row(model, f"{rank:.3f}", ", ".join(mates))
    return table


def compare_command(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    metric: Annotated[str | None, typer.Option(help="Compare on this metric.")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    registry: RegistryOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Which models are really better: significance per dataset, ranks across datasets."""
    # Imported here, not at the top: they pull in pandas and scikit-learn, and every CLI
    # start (even --help) would pay for them.
    from fleetlearn.errors import ConfigError
    from fleetlearn.insights import run_comparison
    from fleetlearn.registry import Registry

    if not 0 < alpha < 1:
        raise ConfigError(f"The '--alpha' option must be a float in the range (0, 1). Got "
                          f"{alpha!r} instead.")
    reg = Registry(registry)
    comparison = run_comparison(reg, run_id, metric=metric, alpha=alpha)
    run, board = comparison.run, comparison.leaderboard
    if json_out:
        # The API's answer, with the whole run record instead of its id.
        body = comparison.to_dict()
        del body["run_id"]
        print_json({"run": run.to_dict(), **body})
        return
    console.print(f"run [bold]{run.id}[/] {run.name or ''} status [bold]{run.status}[/]")
    if board.empty:
        console.print("this run has no trials yet.")
        return
    for table in significance_tables(board, alpha):
        console.print(table)
    console.print(TIED_NOTE.format(alpha=alpha))
    for task, across in comparison.across.items():
        console.print(ranks_table(task, across))
        console.print(ranks_summary(across))
        if across.dropped_models:
            console.print(f"[yellow]note:[/] left out of the ranks (not scored on every "
                          f"{task} dataset): {', '.join(across.dropped_models)}")
    for note in comparison.notes:
        console.print(f"[yellow]note:[/] {note}")
