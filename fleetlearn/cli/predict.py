"""``fleetlearn predict NAME input.csv``: predictions from a running server, in batches.

Imports of the registry, training, serving, reports and pandas sit inside each
command, not at the top: every verb (and ``fleetlearn --help``) imports all verb
modules, so a top-level import would make each of them pay for all the others.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from fleetlearn.cli._common import console, err_console, frame_table
from fleetlearn.errors import ApiError, ConfigError

#: Rows shown on the terminal without -o (the rest is summarised).
SHOWN_ROWS = 50


def predict_command(
    name: Annotated[str, typer.Argument(
        help="Model: NAME (latest version), NAME@ALIAS or NAME:VERSION.", show_default=False)],
    data: Annotated[Path, typer.Argument(
        help="CSV/TSV/Parquet file of input rows (extra columns such as the target are "
        "kept in the output).", show_default=False)],
    proba: Annotated[bool, typer.Option(
        "--proba", help="Add one probability column per class (classifiers).")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the input rows with their predictions here (.csv, "
        ".tsv or .parquet); a table on the terminal otherwise.")] = None,
    url: Annotated[str | None, typer.Option(
        help="Server URL; $FLEETLEARN_URL or http://127.0.0.1:8000.")] = None,
    api_key: Annotated[str | None, typer.Option(
        help="API key (role predict); $FLEETLEARN_API_KEY by default.")] = None,
    batch_size: Annotated[int, typer.Option(
        help="Rows per request (the server's limit is in GET /v1/info, max_rows).")] = 1000,
    ca_file: Annotated[Path | None, typer.Option(
        help="PEM CA bundle to check an HTTPS server's certificate; $FLEETLEARN_CA_FILE.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.")] = 60.0,
) -> None:
    """Predict with a model served by 'fleetlearn serve', for every row of a file."""
    import pandas as pd

    from fleetlearn.client import Client
    from fleetlearn.data import load_table

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}.")
    if output is not None and output.suffix.lower() not in (".csv", ".tsv", ".txt",
                                                            ".parquet", ".pq"):
        raise ConfigError(f"Cannot write '{output}': use a .csv, .tsv or .parquet file name.")
    frame = load_table(data)
    with Client(url, api_key, timeout=timeout,
                verify=str(ca_file) if ca_file else None) as client:
        frame = _numbers_as_numbers(frame, _numeric_columns(client, name))
        parts = _predict_batches(client, name, frame, proba, batch_size, data)
    result = pd.concat(parts) if parts else pd.DataFrame()
    model, version = parts[0].attrs.get("model"), parts[0].attrs.get("version")
    out = pd.concat([frame.reset_index(drop=True), result.reset_index(drop=True)], axis=1)
    if output is not None:
        _write(out, output)
        err_console.print(f"{len(out)} prediction(s) by {model}:{version} written to {output}",
                          highlight=False)
        return
    shown = out.head(SHOWN_ROWS)
    console.print(frame_table(shown, title=f"{model}:{version}"))
    if len(out) > SHOWN_ROWS:
        err_console.print(f"{len(out) - SHOWN_ROWS} more row(s) not shown: write them all "
                          "with -o predictions.csv", highlight=False)


def _numeric_columns(client: Any, ref: str) -> list[str]:
    """The numeric input columns of the version ``ref`` names (404 here if it has none)."""
    from fleetlearn.registry import parse_model_ref

    name, version, alias = parse_model_ref(ref)
    info = client.model_versions(name)
    if alias is not None:
        version = info["aliases"].get(alias)
    versions = info["versions"]
    chosen = next((v for v in versions if v["version"] == version), None) if version else (
        max(versions, key=lambda v: v["version"]) if versions else None)
    if chosen is None:
        return []  # an unknown alias or version: the predict request says so
    columns = (chosen.get("input_schema") or {}).get("columns") or []
    return [c["name"] for c in columns if c.get("kind") == "numeric"]


def _numbers_as_numbers(frame: Any, numeric: list[str]) -> Any:
    """In numeric columns read as text (one bad cell makes a whole CSV column text),
    send the cells that are numbers as numbers, so the server names only the bad cells."""
    import math

    import pandas as pd

    def number(value: Any) -> Any:
        if isinstance(value, str):
            try:
                parsed = float(value)
            except ValueError:
                return value
            return parsed if math.isfinite(parsed) else value
        return value

    frame = frame.copy()
    for column in numeric:
        if column in frame.columns and (pd.api.types.is_string_dtype(frame[column])
                                        or frame[column].dtype == object):
            frame[column] = frame[column].map(number).astype(object)
    return frame


def _predict_batches(client: Any, name: str, frame: Any, proba: bool, batch_size: int,
                     source: Path) -> list[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    starts = range(0, len(frame), batch_size)
    parts = []
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), console=err_console,
                  transient=True, disable=len(starts) < 2) as bar:
        task = bar.add_task(f"predicting with {name}", total=len(frame))
        for start in starts:
            batch = frame.iloc[start:start + batch_size]
            try:
                parts.append(client.predict_frame(name, batch, return_proba=proba))
            except ApiError as exc:
                if exc.status is None or start == 0:
                    raise
                raise type(exc)(_shift_rows(exc.detail, start, source), exc.status, exc.error,
                                exc.errors) from exc
            bar.advance(task, len(batch))
    return parts


def _shift_rows(detail: str, offset: int, source: Path) -> str:
    """Row numbers of a batch's error, counted from the start of the file instead."""
    shifted = re.sub(r"\b([Rr]ows?) (\d+)", lambda m: f"{m.group(1)} {int(m.group(2)) + offset}",
                     detail)
    return f"{source.name}: {shifted}"


def _write(frame: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    tmp.replace(path)  # never a half-written file under the name asked for
