"""``fleetlearn train`` and ``fleetlearn demo``.

The run options of ``train`` are generated from :class:`~fleetlearn.training.RunOptions`:
each option's help, default and bound are read from its field (``_help``,
``_default``), and the values typed go back through the model, so the CLI checks
exactly what a run file or the API checks, with the same message.

Imports of the registry, training, serving, reports and pandas sit inside each
command, not at the top: every verb (and ``fleetlearn --help``) imports all verb
modules, so a top-level import would make each of them pay for all the others.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import annotated_types
import pandas as pd
import typer

from fleetlearn.cli._common import (
    LogFormatOpt,
    console,
    interrupted_message,
    json_logs,
    note,
    print_json,
    setup_logs,
)
from fleetlearn.config import fleetlearn_home
from fleetlearn.errors import ConfigError, Terminated

# pydantic only: fleetlearn.training loads its scikit-learn and Ray parts on first use.
from fleetlearn.training import (
    DatasetOptions,
    RunOptions,
    dataset_configs,
    describe_field,
    load_run_file,
)

#: The run options of ``fleetlearn train`` by field, and the command's parameter for
#: each (``--model`` is repeated once per model; ``--extra`` once per key).
OPTION_PARAMS = {name: {"models": "model"}.get(name, name)
                 for name in RunOptions.model_fields if name != "datasets"}


_BOUNDS = (annotated_types.Ge, annotated_types.Gt, annotated_types.Le, annotated_types.Lt,
           annotated_types.MaxLen)


def _help(name: str, model: type[Any] = RunOptions) -> str:
    """An option's help: its field's description, and the bound when it has one."""
    field = model.model_fields[name]
    text = field.description or ""
    bounded = any(isinstance(m, _BOUNDS) for m in field.metadata)
    if bounded or "one of " in describe_field(field):
        text += f" Must be {describe_field(field)}."
    return text


def _default(name: str) -> Any:
    """An option's default, as its field declares it."""
    return RunOptions.model_fields[name].get_default(call_default_factory=True)


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


def _parse_extra(values: list[str] | None) -> dict[str, str]:
    """``["team=ml", "ticket=42"]`` -> ``{"team": "ml", "ticket": "42"}``."""
    out = {}
    for value in values or []:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"--extra {value!r} is not KEY=VALUE: write e.g. --extra team=ml.")
        out[key] = text
    return out


def train_command(
    ctx: typer.Context,
    data: Annotated[list[Path] | None, typer.Argument(
        help="CSV/Parquet files or folders of Parquet shards.", show_default=False)] = None,
    target: Annotated[list[str] | None, typer.Option(
        "--target", "-t", help="Target column, for all tables or as FILE=COLUMN (repeatable).")
    ] = None,
    task: Annotated[str | None, typer.Option(help=_help("task", DatasetOptions))] = None,
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help=_help("models") + " Repeatable.")] = _default("models"),
    folds: Annotated[int, typer.Option(help=_help("folds"))] = _default("folds"),
    test_size: Annotated[float, typer.Option(help=_help("test_size"))] = _default("test_size"),
    metric: Annotated[str | None, typer.Option(help=_help("metric"))] = _default("metric"),
    seed: Annotated[int, typer.Option(help=_help("seed"))] = _default("seed"),
    schedule: Annotated[str, typer.Option(help=_help("schedule"))] = _default("schedule"),
    curves: Annotated[bool, typer.Option(help=_help("curves"))] = _default("curves"),
    final_fit: Annotated[bool, typer.Option(help=_help("final_fit"))] = _default("final_fit"),
    max_retries: Annotated[int, typer.Option(help=_help("max_retries"))
                           ] = _default("max_retries"),
    quadratic_row_limit: Annotated[int, typer.Option(help=_help("quadratic_row_limit"))
                                   ] = _default("quadratic_row_limit"),
    name: Annotated[str | None, typer.Option(help=_help("name"))] = _default("name"),
    extra: Annotated[list[str] | None, typer.Option(
        metavar="KEY=VALUE", help=_help("extra") + " Repeatable.")] = None,
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
    log_format: LogFormatOpt = None,
) -> None:
    """Train models on one or more tables in parallel on Ray, register them, rank them."""
    setup_logs(log_format)
    if resume or run_id:
        from fleetlearn.logs import bind_log_context

        bind_log_context(run_id=resume or run_id)
    typed = {"models": list(model) if model else None, "folds": folds, "test_size": test_size,
             "metric": metric, "seed": seed, "schedule": schedule, "curves": curves,
             "final_fit": final_fit, "max_retries": max_retries,
             "quadratic_row_limit": quadratic_row_limit, "name": name,
             "extra": _parse_extra(extra)}
    if run_id is not None:
        restore_ctrl_c()
    stop_on_sigterm()
    run_config: RunOptions | None = None
    if resume is None:
        if config is not None:
            if data:
                raise ConfigError("Give datasets either as arguments or in --config, not both.")
            # Options typed on the command line override the run file's values.
            given = {f: v for f, v in typed.items() if _given(ctx, OPTION_PARAMS[f])}
            run_config = load_run_file(config).with_options(**given)
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
            run_config = RunOptions(
                datasets=dataset_configs([str(p) for p in data], parse_targets(target), task),
                **typed)
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


def restore_ctrl_c() -> None:
    """Turn SIGINT back into ``KeyboardInterrupt`` in a driver the REST API launched.

    A server started in the background (``&`` in a script, ``nohup``, some service
    managers) passes SIGINT on as *ignored*, and Python then leaves it ignored. The API's
    cancel relies on SIGINT: the driver journals what finished and marks the run
    ``interrupted`` (resumable); ignored, the run would be killed after the grace period
    and marked failed.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def stop_on_sigterm() -> None:
    """SIGTERM stops ``train`` the way Ctrl-C does (journal, ``interrupted``, exit 143).

    ``docker stop`` and service managers send SIGTERM, then SIGKILL after a grace
    period (10 s for Docker). Python's default would end the driver on the spot; the
    driver's loop turns it into a request it honours between two results, and
    :func:`~fleetlearn.training.connect_ray` keeps this handler over Ray's own.
    """
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, _raise_terminated)


def _given(ctx: typer.Context, param: str) -> bool:
    """Whether an option was typed on the command line (not left at its default)."""
    source = ctx.get_parameter_source(param)
    return source is not None and source.name == "COMMANDLINE"


def run_training(config: RunOptions | None, *, registry: str | None, address: str | None,
                 resume: str | None, quiet: bool, run_id: str | None = None) -> Any:
    """Train (or resume) with progress on the terminal; Ctrl-C says how to resume."""
    try:
        return _run_training(config, registry=registry, address=address, resume=resume,
                             quiet=quiet, run_id=run_id)
    except KeyboardInterrupt as exc:
        # Typer would turn this into a bare exit 130; say which run stopped and how to go on.
        # 130 after Ctrl-C, 143 after SIGTERM (128 + the signal, as a shell reports it).
        note(interrupted_message(exc), level="warning",
             **({"run_id": exc.run_id} if getattr(exc, "run_id", None) else {}))
        raise typer.Exit(getattr(exc, "exit_code", 130)) from exc


def _run_training(config: RunOptions | None, *, registry: str | None, address: str | None,
                  resume: str | None, quiet: bool, run_id: str | None = None) -> Any:
    # Imported on use: the driver loads scikit-learn and Ray (seconds), which every other
    # verb and 'fleetlearn --help' should not wait for.
    from fleetlearn.cli._progress import RunProgress
    from fleetlearn.training import train_run

    if quiet:
        return train_run(config, registry=registry, address=address, resume=resume,
                         run_id=run_id)
    if json_logs():
        # A log collector gets parseable lines only: progress as log records, no bars.
        from fleetlearn.cli._progress import LoggedProgress

        return train_run(config, registry=registry, address=address, resume=resume,
                         on_progress=LoggedProgress().update, run_id=run_id)
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
    ids = {"run_id": result.run_id}
    for warning in result.warnings:
        note(f"[yellow]note:[/] {warning}", level="warning", **ids)
    # Imported on use, as fleetlearn.cli registers 'compare' (it loads the statistics).
    from fleetlearn.cli.compare import TIED_NOTE, leaderboard_tables

    for table in leaderboard_tables(result.leaderboard):
        console.print(table)
    if "tied_with_best" in result.leaderboard:
        console.print(TIED_NOTE.format(alpha=0.05), style="dim", highlight=False)
    if result.failed:
        note(f"[yellow]{len(result.failed)} unit(s) failed[/]; details: "
             f"fleetlearn runs show {result.run_id}", level="warning", **ids)
    if result.retried:
        note(f"{len(result.retried)} unit(s) ran again after a lost worker or "
             f"node; details: fleetlearn runs show {result.run_id}", level="warning", **ids)
    console.print(
        f"run [bold]{result.run_id}[/] finished in {result.elapsed_s:.1f} s; "
        f"{len(result.models)} model version(s) registered (fleetlearn models list)."
    )


def demo_command(
    registry: Annotated[str | None, typer.Option(help="Registry URL.")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster HOST:PORT.")] = None,
    folds: Annotated[int, typer.Option(help=_help("folds"))] = _default("folds"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train the default models on the bundled example tables and show the results."""
    # Imported on use: fleetlearn.data loads pyarrow and scikit-learn.
    from fleetlearn.data import example_datasets

    folder = fleetlearn_home() / "examples"
    tables = example_datasets(folder)
    console.print(f"example tables written to {folder}: "
                  + ", ".join(p.name for p, _ in tables))
    config = RunOptions(
        datasets=[DatasetOptions(path=str(p), target=t) for p, t in tables],
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
    # Imported on use: fleetlearn.evaluation loads scikit-learn's metrics.
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
