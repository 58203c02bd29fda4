"""``fleetlearn runs list|show``.

Imports of the registry, training, serving, reports and pandas sit inside each
command, not at the top: every verb (and ``fleetlearn --help``) imports all verb
modules, so a top-level import would make each of them pay for all the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fleetlearn.cli._common import JsonOpt, RegistryOpt, console, print_json, rows_table

if TYPE_CHECKING:
    from fleetlearn.insights import UnitRetry

app = typer.Typer(help="Training runs: list them, show one with its leaderboard.",
                  no_args_is_help=True)


@app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List recent runs."""
    # Imported here, not at the top: they pull in pandas and scikit-learn, and every CLI
    # start (even --help) would pay for them.
    from fleetlearn.insights import run_summaries
    from fleetlearn.registry import Registry

    reg = Registry(registry)
    if json_out:
        print_json([r.to_dict() for r in reg.list_runs(limit=limit)])
        return
    rows = [{"id": r.id, "name": r.name or "", "status": r.status,
             "created": r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
             "seconds": f"{r.seconds:.1f}" if r.seconds is not None else "",
             "datasets": ", ".join(r.datasets)}
            for r in run_summaries(reg, limit=limit)]
    if not rows:
        console.print("no runs yet: fleetlearn train DATA.csv --target COLUMN")
        return
    console.print(rows_table(rows, title="runs"))


@app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    metric: Annotated[str | None, typer.Option(help="Rank by this metric.")] = None,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a run: its status, datasets, leaderboard and failed units."""
    # Imported here to keep the CLI's start-up fast (see list_runs).
    from fleetlearn.insights import run_board, run_failures, run_retries
    from fleetlearn.registry import Registry

    reg = Registry(registry)
    board = run_board(reg, run_id, metric=metric)
    run = board.run
    datasets = reg.run_datasets(run.id)
    failures = [f.to_dict() for f in run_failures(reg, run.id)]
    retried = run_retries(reg, run.id)
    if json_out:
        print_json({"run": run.to_dict(), "datasets": [d.to_dict() for d in datasets],
                    "leaderboard": board.rows, "failures": failures,
                    "retried": [r.to_dict() for r in retried]})
        return
    console.print(f"run [bold]{run.id}[/] {run.name or ''} status [bold]{run.status}[/] "
                  f"created {run.created_at:%Y-%m-%d %H:%M:%S} seed {run.seed}")
    if run.error:
        console.print(f"error: {run.error}")
    for d in datasets:
        console.print(f"  dataset {d.name}: {d.n_rows} rows, {d.n_features} features, "
                      f"{d.task}, target '{d.target}', fingerprint {d.fingerprint[:12]}")
    if not board.frame.empty:
        from fleetlearn.cli.compare import TIED_NOTE, leaderboard_tables

        for table in leaderboard_tables(board.frame):
            console.print(table)
        console.print(TIED_NOTE.format(alpha=0.05) + f"; details: fleetlearn compare {run.id}")
    if failures:
        console.print(rows_table(failures, title="failed units"))
    if retried:
        noun = "unit" if len(retried) == 1 else "units"
        console.print(f"{len(retried)} {noun} ran again after a lost worker or node:")
        console.print(rows_table([_retry_row(r) for r in retried], title="units run again"))


def _retry_row(retry: UnitRetry) -> dict[str, str]:
    lost = ", ".join(f"{a.get('node_ip') or '?'} ({a.get('error') or 'unknown'})"
                     for a in retry.failed_attempts) or "not recorded"
    return {"dataset": retry.dataset, "model": retry.model, "unit": retry.unit,
            "attempts": str(retry.attempts),
            "finished on": retry.node_ip or "", "lost attempts on": lost}
