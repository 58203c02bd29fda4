"""``fleetlearn runs list|show``."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetlearn.cli._common import JsonOpt, RegistryOpt, console, print_json, rows_table

app = typer.Typer(help="Training runs: list them, show one with its leaderboard.",
                  no_args_is_help=True)



@app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List recent runs."""
    from fleetlearn.registry import Registry

    reg = Registry(registry)
    runs = reg.list_runs(limit=limit)
    if json_out:
        print_json([r.to_dict() for r in runs])
        return
    rows = []
    for r in runs:
        datasets = ", ".join(d.name for d in reg.run_datasets(r.id))
        duration = (
            f"{(r.finished_at - r.started_at).total_seconds():.1f}"
            if r.finished_at and r.started_at else ""
        )
        rows.append({"id": r.id, "name": r.name or "", "status": r.status,
                     "created": r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                     "seconds": duration, "datasets": datasets})
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
    from fleetlearn.registry import Registry
    from fleetlearn.training import run_leaderboard

    reg = Registry(registry)
    run = reg.get_run(run_id)
    board = run_leaderboard(reg, run.id, metric=metric)
    datasets = reg.run_datasets(run.id)
    names = {d.id: d.name for d in datasets}
    failures = [
        {"dataset": names.get(t.dataset_id, ""), "model": t.model_name, "unit": name,
         "status": u.status, "error": ((u.error or "").splitlines() or [""])[0][:200]}
        for t in reg.list_trials(run.id)
        for name, u in sorted(t.units.items())
        if u.status != "ok"
    ]
    if json_out:
        print_json({"run": run.to_dict(), "datasets": [d.to_dict() for d in datasets],
                    "leaderboard": board.astype(object).where(board.notna(), None)
                    .to_dict(orient="records"),
                    "failures": failures})
        return
    console.print(f"run [bold]{run.id}[/] {run.name or ''} status [bold]{run.status}[/] "
                  f"created {run.created_at:%Y-%m-%d %H:%M:%S} seed {run.seed}")
    if run.error:
        console.print(f"error: {run.error}")
    for d in datasets:
        console.print(f"  dataset {d.name}: {d.n_rows} rows, {d.n_features} features, "
                      f"{d.task}, target '{d.target}', fingerprint {d.fingerprint[:12]}")
    if not board.empty:
        from fleetlearn.cli.compare import TIED_NOTE, leaderboard_tables

        for table in leaderboard_tables(board):
            console.print(table)
        console.print(TIED_NOTE.format(alpha=0.05) + f"; details: fleetlearn compare {run.id}")
    if failures:
        console.print(rows_table(failures, title="failed units"))
