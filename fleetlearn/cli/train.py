"""``fleetlearn train`` and ``fleetlearn demo``."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from fleetlearn.cli._common import console, err_console, print_json
from fleetlearn.errors import ConfigError


def parse_targets(values: list[str] | None) -> str | dict[str, str] | None:
    """``["label"]`` -> ``"label"``; ``["a.csv=label", "b.parquet=y"]`` -> a mapping."""
    if not values:
        return None
    plain = [v for v in values if "=" not in v]
    mapped = dict(v.split("=", 1) for v in values if "=" in v)
    if len(plain) > 1:
        raise ConfigError(
            f"Several plain --target values ({', '.join(plain)}): give one name for all tables, "
            "or FILE=COLUMN for each."
        )
    if plain and not mapped:
        return plain[0]
    if plain:
        mapped["*"] = plain[0]
    return mapped


def train_command(
    ctx: typer.Context,
    data: Annotated[list[Path] | None, typer.Argument(
        help="CSV/Parquet files or folders of Parquet shards.", show_default=False)] = None,
    target: Annotated[list[str] | None, typer.Option(
        "--target", "-t", help="Target column, for all tables or as FILE=COLUMN (repeatable).")
    ] = None,
    task: Annotated[str | None, typer.Option(
        help="classification or regression (detected from the target by default).")] = None,
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="Model: short name, name:param=value,..., or a dotted path "
        "(repeatable). The task's default set when omitted. See 'fleetlearn catalog'.")] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    test_size: Annotated[float, typer.Option(help="Held-out test fraction.")] = 0.2,
    metric: Annotated[str | None, typer.Option(
        help="Primary metric ranking the leaderboard (accuracy / r2 by default).")] = None,
    seed: Annotated[int, typer.Option(help="Run seed: same seed, same scores.")] = 0,
    schedule: Annotated[str, typer.Option(
        help="concurrent: all datasets share the cluster; sequential: one after another.")
    ] = "concurrent",
    curves: Annotated[bool, typer.Option(
        help="Record learning curves for models without per-iteration metrics.")] = True,
    name: Annotated[str | None, typer.Option(help="A name for the run.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Run file (YAML or TOML) listing datasets, models, options.")
    ] = None,
    registry: Annotated[str | None, typer.Option(
        help="Registry URL (SQLAlchemy); $FLEETLEARN_REGISTRY_URL or the home's SQLite.")
    ] = None,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster HOST:PORT; $RAY_ADDRESS or embedded local Ray.")] = None,
    resume: Annotated[str | None, typer.Option(
        help="Resume an interrupted run by id: train only what is missing.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    run_id: Annotated[str | None, typer.Option(
        "--run-id", hidden=True, help="Id of the new run (12 hex characters); the REST API "
        "picks it so it can answer before the run is written.")] = None,
) -> None:
    """Train models on one or more tables in parallel on Ray, register them, rank them."""
    from fleetlearn.training import RunConfig, dataset_configs, load_run_file

    run_config: RunConfig | None = None
    if resume is None:
        if config is not None:
            if data:
                raise ConfigError("Give datasets either as arguments or in --config, not both.")
            run_config = _with_overrides(ctx, load_run_file(config), model=model, folds=folds,
                                         test_size=test_size, metric=metric, seed=seed,
                                         schedule=schedule, curves=curves, name=name)
            if _given(ctx, "target") or _given(ctx, "task"):
                raise ConfigError(
                    "--target and --task are set per dataset in the --config run file; "
                    "give them there, not on the command line."
                )
        else:
            if not data:
                raise ConfigError(
                    "No dataset given: fleetlearn train DATA.csv --target COLUMN "
                    "(or --config run.yaml, or --resume RUN_ID)."
                )
            run_config = RunConfig(
                datasets=dataset_configs([str(p) for p in data], parse_targets(target), task),
                models=list(model) if model else None,
                folds=folds, test_size=test_size, metric=metric, seed=seed, schedule=schedule,
                curves=curves, name=name,
            )
    elif data or config:
        raise ConfigError("--resume takes the run's stored datasets; give no DATA or --config.")
    if json_out:
        # Ray may print cluster events (a lost node...) to stdout; keep stdout pure JSON.
        with contextlib.redirect_stdout(sys.stderr):
            result = run_training(run_config, registry=registry, address=address,
                                  resume=resume, quiet=True, run_id=run_id)
        print_json(result.to_dict())
        return
    result = run_training(run_config, registry=registry, address=address, resume=resume,
                          quiet=quiet, run_id=run_id)
    show_result(result)


def _given(ctx: typer.Context, param: str) -> bool:
    """Whether an option was typed on the command line (not left at its default)."""
    source = ctx.get_parameter_source(param)
    return source is not None and source.name == "COMMANDLINE"


def _with_overrides(ctx: typer.Context, config: Any, **options: Any) -> Any:
    """Options typed on the command line override the run file's values."""
    from dataclasses import replace

    changes = {}
    for param, value in options.items():
        if _given(ctx, param):
            changes["models" if param == "model" else param] = (
                list(value) if param == "model" else value)
    return replace(config, **changes) if changes else config


def run_training(config: Any, *, registry: str | None, address: str | None,
                 resume: str | None, quiet: bool, run_id: str | None = None) -> Any:
    try:
        return _run_training(config, registry=registry, address=address, resume=resume,
                             quiet=quiet, run_id=run_id)
    except KeyboardInterrupt as exc:
        # Typer would turn this into a bare exit 130; say which run stopped and how to go on.
        from fleetlearn.cli import interrupted_message

        err_console.print(interrupted_message(exc))
        raise typer.Exit(130) from exc


def _run_training(config: Any, *, registry: str | None, address: str | None,
                  resume: str | None, quiet: bool, run_id: str | None = None) -> Any:
    from fleetlearn.cli._progress import RunProgress
    from fleetlearn.training import train_run

    if quiet:
        return train_run(config, registry=registry, address=address, resume=resume,
                         run_id=run_id)
    with console.status("starting Ray and loading data..."):
        # The status spinner stops at the first progress event.
        holder: dict[str, Any] = {}

        def first(event: Any) -> None:
            if "progress" not in holder:
                console.print(f"run [bold]{event.run_id}[/]: {event.total} units "
                              f"({len(event.dataset_total)} dataset(s))")
                holder["progress"] = RunProgress(console).__enter__()
            holder["progress"].update(event)

        try:
            return train_run(config, registry=registry, address=address, resume=resume,
                             on_progress=first, run_id=run_id)
        finally:
            if "progress" in holder:
                holder["progress"].__exit__(None, None, None)


def show_result(result: Any) -> None:
    for warning in result.warnings:
        err_console.print(f"[yellow]note:[/] {warning}")
    from fleetlearn.cli.compare import TIED_NOTE, leaderboard_tables

    for table in leaderboard_tables(result.leaderboard):
        console.print(table)
    if "tied_with_best" in result.leaderboard:
        console.print(TIED_NOTE.format(alpha=0.05), style="dim", highlight=False)
    if result.failed:
        err_console.print(f"[yellow]{len(result.failed)} unit(s) failed[/]; details: "
                          f"fleetlearn runs show {result.run_id}")
    console.print(
        f"run [bold]{result.run_id}[/] finished in {result.elapsed_s:.1f} s; "
        f"{len(result.models)} model version(s) registered (fleetlearn models list)."
    )


def demo_command(
    registry: Annotated[str | None, typer.Option(help="Registry URL.")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster HOST:PORT.")] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train the default models on the bundled example tables and show the results."""
    from fleetlearn.config import fleetlearn_home
    from fleetlearn.data import example_datasets
    from fleetlearn.training import DatasetConfig, RunConfig

    folder = fleetlearn_home() / "examples"
    tables = example_datasets(folder)
    console.print(f"example tables written to {folder}: "
                  + ", ".join(p.name for p, _ in tables))
    config = RunConfig(
        datasets=[DatasetConfig(path=str(p), target=t) for p, t in tables],
        folds=folds, name="demo",
    )
    result = run_training(config, registry=registry, address=address, resume=None, quiet=quiet)
    show_result(result)
    best = result.leaderboard.sort_values("rank").groupby("dataset", sort=False).head(1)
    console.print("\n[bold]What next[/]")
    for _, row in best.iterrows():
        console.print(f"  fleetlearn models show {row['dataset']}-{row['model']}")
    first = best.iloc[0]
    ref = f"{first['dataset']}-{first['model']}"
    version = next((m.version for m in result.models if m.name == ref), 1)
    console.print(f"  fleetlearn models alias {ref} {version} production")
    console.print(f"  fleetlearn runs show {result.run_id}")
    path, target = next(((p, t) for p, t in tables if p.stem == first["dataset"]), tables[0])
    console.print("\n[bold]Serve them[/] (REST API; interactive docs at "
                  "http://127.0.0.1:8000/docs)")
    console.print("  fleetlearn serve        # in another terminal; Ctrl-C stops", soft_wrap=True)
    from fleetlearn.evaluation import CLASSIFICATION_METRICS

    body = _example_body(path, target, proba=first["metric"] in CLASSIFICATION_METRICS)
    if body:
        console.print(f"  curl -s -X POST http://127.0.0.1:8000/v1/models/{ref}/predict "
                      f"-H 'content-type: application/json' -d '{body}'",
                      soft_wrap=True, highlight=False, markup=False)
    console.print(f"  fleetlearn predict {ref} {path} -o predictions.csv", soft_wrap=True,
                  highlight=False)
    console.print("\nFrom Python:\n  import fleetlearn\n"
                  f"  model = fleetlearn.Registry().load_model('{ref}')"
                  "\n  model.predict(frame)  # a pandas DataFrame with the input columns")


def _example_body(path: Any, target: str, proba: bool) -> str | None:
    """A predict request body holding the table's first row (target left out)."""
    import json

    import pandas as pd

    try:
        frame = (pd.read_parquet(path) if str(path).endswith(".parquet")
                 else pd.read_csv(path, nrows=1)).head(1).drop(columns=[target])
    except Exception:  # noqa: BLE001 - only an example: skip it rather than fail the demo
        return None
    record = json.loads(frame.to_json(orient="records", date_format="iso"))[0]
    body: dict[str, Any] = {"records": [record]}
    if proba:
        body["return_proba"] = True
    return json.dumps(body, separators=(",", ":"))
