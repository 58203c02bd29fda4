"""The ``fleetlearn`` command line: one module per verb group.

``main(argv)`` returns an exit code instead of exiting, so tests call it with a
list. Every :class:`~fleetlearn.errors.FleetlearnError` becomes one line on stderr
and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from fleetlearn import __version__
from fleetlearn.cli import catalog, keys, models, runs, serve, train
from fleetlearn.cli._common import interrupted_message, json_logs
from fleetlearn.errors import FleetlearnError

__all__ = ["app", "main"]

app = typer.Typer(
    name="fleetlearn",
    help="Train, compare, register and serve many models in parallel on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("train")(train.train_command)
app.command("demo")(train.demo_command)
app.command("catalog")(catalog.catalog_command)
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.command("serve")(serve.serve_command)
app.add_typer(keys.app, name="keys")
app.command("compare")(importlib.import_module("fleetlearn.cli.compare").compare_command)
app.command("report")(importlib.import_module("fleetlearn.cli.report").report_command)
app.command("predict")(importlib.import_module("fleetlearn.cli.predict").predict_command)
app.add_typer(importlib.import_module("fleetlearn.cli.cluster").app, name="cluster")
app.add_typer(importlib.import_module("fleetlearn.cli.certs").app, name="certs")
app.command("ui")(importlib.import_module("fleetlearn.cli.ui").ui_command)


@app.command("version")
def version() -> None:
    """Print the fleetlearn version."""
    print(__version__)


def _interrupted(exc: BaseException) -> int:
    _say_error(interrupted_message(exc), exc, prefix="")
    return getattr(exc, "exit_code", 130)  # 143 for SIGTERM (errors.Terminated)


def _say_error(message: str, exc: BaseException, prefix: str = "error: ") -> None:
    """The one line a failed command ends with: plain, or a JSON record in json mode
    (with the run id when the error knows it, and the error's type)."""
    if json_logs():
        import logging

        run_id = getattr(exc, "run_id", None) or getattr(exc.__cause__, "run_id", None)
        extra = {"error": type(exc).__name__, **({"run_id": run_id} if run_id else {})}
        logging.getLogger("fleetlearn.cli").error(message, extra=extra)
        return
    print(f"{prefix}{message}", file=sys.stderr)


def _click_errors(name: str) -> tuple[type[BaseException], ...]:
    """A click exception class as raised by Typer: newer Typer bundles its own click."""
    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return tuple(found)


_ABORT = (*_click_errors("Abort"), typer.Abort)
_EXIT = (*_click_errors("Exit"), typer.Exit)
_CLICK_ERROR = _click_errors("ClickException")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="fleetlearn", standalone_mode=False)
    except FleetlearnError as exc:
        _say_error(" ".join(str(exc).split()), exc)
        return 2
    except (KeyboardInterrupt, *_ABORT) as exc:
        return _interrupted(exc)
    except _EXIT as exc:
        return exc.exit_code
    except _CLICK_ERROR as exc:  # usage errors: click prints usage + one message line
        exc.show()
        return exc.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
