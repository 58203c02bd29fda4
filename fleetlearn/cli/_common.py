"""What every CLI verb shares: consoles, tables, JSON output, option types."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

#: ``--registry URL``, shared by every verb that reads or writes the registry.
RegistryOpt = Annotated[str | None, typer.Option(
    help="Registry URL; $FLEETLEARN_REGISTRY_URL or the home's SQLite.")]
#: ``--url``: talk to a running ``fleetlearn serve`` instead of the registry.
UrlOpt = Annotated[str | None, typer.Option(
    help="A running fleetlearn server (e.g. http://host:8000) to ask instead of the "
         "registry.")]
#: ``--api-key`` for ``--url``.
ApiKeyOpt = Annotated[str | None, typer.Option(
    help="API key for --url; $FLEETLEARN_API_KEY by default.")]
#: ``--json``, for scripts.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
#: ``--log-format``, on every long-running command.
LogFormatOpt = Annotated[str | None, typer.Option(
    "--log-format", metavar="text|json",
    help="text: for people (default). json: one JSON object a line on stderr (time, "
         "level, logger, message, run/model/request ids) for a log collector; progress "
         "becomes log lines. $FLEETLEARN_LOG_FORMAT when not given.")]


def setup_logs(flag: str | None, level: str = "info", *, text: bool = False) -> str:
    """Resolve ``--log-format`` (flag > $FLEETLEARN_LOG_FORMAT > text) and configure
    logging with it; return the format. ``text=True``: also write plain log lines in
    text mode (``serve`` does; ``train`` leaves logging as Python has it)."""
    # Imported on use: fleetlearn.logs loads python-json-logger.
    from fleetlearn.logs import configure_logging, resolve_log_format

    fmt = resolve_log_format(flag)
    configure_logging(fmt, level, text=text)
    return fmt


def json_logs() -> bool:
    """Whether this process writes JSON log lines (``--log-format json``)."""
    import sys

    logs = sys.modules.get("fleetlearn.logs")
    return logs is not None and logs.active_log_format() == "json"


def note(text: str, *, level: str = "info", logger: str = "fleetlearn.cli",
         **fields: Any) -> None:
    """A message for the person running the command: Rich on stderr, or a log record
    in json mode (``fields`` become its fields; Rich markup is stripped)."""
    if json_logs():
        import logging

        from rich.text import Text

        plain = Text.from_markup(text).plain
        logging.getLogger(logger).log(logging.getLevelNamesMapping()[level.upper()], plain,
                                      extra=fields)
    else:
        err_console.print(text, highlight=False)


def print_json(data: Any) -> None:
    """Print JSON for scripts (no colours, no wrapping)."""
    print(json.dumps(data, indent=2, default=str))


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4f}"
    return str(value)


def frame_table(frame: pd.DataFrame, title: str | None = None,
                columns: list[str] | None = None) -> Table:
    """A Rich table of a DataFrame, numbers right-aligned."""
    columns = [c for c in (columns or list(frame.columns)) if c in frame.columns]
    table = Table(title=title, header_style="bold")
    for col in columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col])
        table.add_column(col, justify="right" if numeric else "left",
                         no_wrap=col in _IDENTIFIERS)
    for _, row in frame.iterrows():
        table.add_row(*(_fmt(row[c]) for c in columns))
    return table


#: Columns whose values are identifiers: never wrapped or cut (users copy them).
_IDENTIFIERS = {"name", "id", "model", "dataset", "run", "version", "created", "ip"}


def rows_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, header_style="bold")
    if not rows:
        return table
    for key in rows[0]:
        table.add_column(str(key), no_wrap=str(key) in _IDENTIFIERS)
    for row in rows:
        table.add_row(*(_fmt(v) for v in row.values()))
    return table


def interrupted_message(exc: BaseException) -> str:
    """'interrupted', with the resume command when a run was going.

    Examples
    --------
    >>> interrupted_message(KeyboardInterrupt())
    'interrupted'
    """
    run_id = getattr(exc, "run_id", None) or getattr(exc.__cause__, "run_id", None)
    hint = f"; resume with: fleetlearn train --resume {run_id}" if run_id else ""
    what = "stopped by SIGTERM" if getattr(exc, "exit_code", 130) == 143 else "interrupted"
    return f"{what}{hint}"
