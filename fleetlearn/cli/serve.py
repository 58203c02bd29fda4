"""``fleetlearn serve``: the REST API over the registry's models.

Imports of the registry, training, serving, reports and pandas sit inside each
command, not at the top: every verb (and ``fleetlearn --help``) imports all verb
modules, so a top-level import would make each of them pay for all the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from fleetlearn.cli._common import LogFormatOpt, console, setup_logs
from fleetlearn.errors import ConfigError, Terminated

# The options that are ServeSettings fields: {parameter: (field, option as typed)}.
SETTINGS_OPTIONS = {
    "host": ("host", "--host"),
    "port": ("port", "--port"),
    "registry": ("registry_url", "--registry"),
    "auth": ("auth", "--auth"),
    "preload": ("preload", "--preload"),
    "max_rows": ("max_rows", "--max-rows"),
    "max_models": ("max_models", "--max-models"),
    "max_cache_mb": ("max_cache_mb", "--max-cache-mb"),
    "batch_wait_ms": ("batch_wait_ms", "--batch-wait-ms"),
    "trust": ("trusted_types", "--trust"),
}


def given_settings(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The settings options the user typed, as ``{field: value}``.

    An option left at its default is not passed on, so ``FLEETLEARN_SERVE_<NAME>`` can
    fill it; one typed with the default's value (``--max-rows 10000``) is, and wins.
    """
    given: dict[str, Any] = {}
    for param, (name, _) in SETTINGS_OPTIONS.items():
        source = ctx.get_parameter_source(param)
        # Compared by name: Typer may bundle its own click, with its own enum class.
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            given[name] = values[param]
    return given


def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but loopback "
                                      "requires API keys.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    registry: Annotated[str | None, typer.Option(
        help="Registry URL; $FLEETLEARN_REGISTRY_URL or the home's SQLite.")] = None,
    auth: Annotated[str, typer.Option(
        help="auto: keys required once the registry holds one, and always off loopback. "
             "on: always. off: never (loopback only).")] = "auto",
    preload: Annotated[list[str] | None, typer.Option(
        help="Load this model (NAME, NAME@ALIAS, NAME:VERSION) at start; repeatable.")] = None,
    max_rows: Annotated[int, typer.Option(help="Most rows per predict request.")] = 10_000,
    max_models: Annotated[int, typer.Option(help="Most model versions in memory.")] = 32,
    max_cache_mb: Annotated[float, typer.Option(help="Most artifact MiB in memory.")] = 2048.0,
    batch_wait_ms: Annotated[float, typer.Option(
        help="Under load, how long a prediction may wait for others to share its call.")] = 2.0,
    trust: Annotated[list[str] | None, typer.Option(
        help="Also load artifacts holding this exact type (e.g. "
             "mypackage.models.MyClassifier); repeatable. Adds to "
             "FLEETLEARN_TRUSTED_TYPES; prefixes are refused.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    ray: Annotated[bool, typer.Option(
        "--ray", help="Serve on Ray Serve: the same API, several replicas, autoscaled.")] = False,
    replicas: Annotated[int, typer.Option(help="With --ray: replicas at start (and the "
                                          "autoscaling minimum).")] = 1,
    max_replicas: Annotated[int | None, typer.Option(
        help="With --ray: autoscale up to this many replicas (default: --replicas).")] = None,
    address: Annotated[str | None, typer.Option(
        help="With --ray: Ray cluster HOST:PORT to join; embedded local Ray by default.")] = None,
    log_format: LogFormatOpt = None,
) -> None:
    """Serve the registry's models over HTTP (FastAPI + uvicorn, or Ray Serve with --ray);
    Ctrl-C stops. Each setting also reads FLEETLEARN_SERVE_<NAME> (e.g.
    FLEETLEARN_SERVE_MAX_ROWS); an option typed wins over it."""
    # First: every message after this one, errors included, is written in this format.
    fmt = setup_logs(log_format, log_level, text=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import uvicorn

    from fleetlearn.api import create_app
    from fleetlearn.logs import uvicorn_log_config
    from fleetlearn.serving import ServeSettings, ServingState, is_loopback, keys_required

    if not ray and (replicas != 1 or max_replicas is not None or address is not None):
        raise ConfigError("--replicas, --max-replicas and --address apply to cluster mode: "
                          "add --ray.")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("HTTPS needs both --tls-cert and --tls-key.")
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise ConfigError(f"TLS file not found: {path}.")
    options = dict(host=host, port=port, registry=registry, auth=auth,
                   preload=list(preload or []), max_rows=max_rows, max_models=max_models,
                   max_cache_mb=max_cache_mb, batch_wait_ms=batch_wait_ms,
                   trust=list(trust or []))
    # Precedence: an option typed > FLEETLEARN_SERVE_<NAME> > the default (see
    # ServeSettings); errors name the option or the variable the bad value came from.
    settings = ServeSettings(_flags={name: flag for name, flag in SETTINGS_OPTIONS.values()},
                             **given_settings(ctx, options))
    host, port = settings.host, settings.port  # the environment may have set them
    from fleetlearn.registry import Registry

    # Cluster mode: every replica builds its own state; the driver only checks the registry.
    reg = Registry(settings.registry_url, artifact_dir=settings.artifact_dir)
    auth_required = keys_required(settings, reg)
    if auth_required and not reg.has_active_keys():
        raise ConfigError(
            f"Refusing to serve on {host}: API keys are required there and the registry holds "
            "none. Create one with 'fleetlearn keys create --role predict', or serve on "
            "127.0.0.1."
        )
    def say(text: str) -> None:
        if fmt == "json":  # a log collector reads stdout too: log records only
            logging.getLogger("fleetlearn.serving").info(text)
        else:
            console.print(text, highlight=False, soft_wrap=True)

    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    say(f"serving {reg.url} on {scheme}://{shown}:{port}")
    if auth_required:
        say("API keys required (Authorization: Bearer <key>)")
    elif is_loopback(host):
        say("no API keys: open to this machine only (create a key with 'fleetlearn keys "
            "create' to require keys)")
    say(f"docs: {scheme}://{shown}:{port}/docs   Ctrl-C stops")
    from fleetlearn.cluster import discover_address, exposure_lines

    # Which of Ray's dashboard, Jobs API and metrics ports can be reached from where.
    for line in exposure_lines(discover_address(address or settings.ray_address)[0]):
        say(line)
    if ray:
        from fleetlearn.logs import stdout_as_logs
        from fleetlearn.serving import deploy, serve_forever  # imports Ray Serve

        stdout_as_logs()  # Ray prints notices to stdout; in json mode they become records

        # SIGTERM while deploying: stop like Ctrl-C (deploy cleans up, exit 143); once
        # serving, serve_forever takes it over.
        terminated: list[int] = []

        def on_sigterm(signum: int, frame: Any) -> None:
            terminated.append(signum)
            raise Terminated

        signal.signal(signal.SIGTERM, on_sigterm)
        try:
            status = f"deploying {replicas} replica(s) on Ray Serve ..."
            if fmt == "json":
                say(status)
            with (console.status(status) if fmt == "text" else contextlib.nullcontext()):
                running = deploy(settings, replicas, max_replicas, address,
                                 tls_cert=str(tls_cert) if tls_cert else None,
                                 tls_key=str(tls_key) if tls_key else None,
                                 log_format=fmt)
        except KeyboardInterrupt as exc:
            if terminated:  # Ray's code may re-raise it as a plain KeyboardInterrupt
                raise Terminated from exc
            raise
        scaling = running.options["autoscaling_config"]
        say(f"Ray Serve: {scaling['min_replicas']}-{scaling['max_replicas']} replicas "
            f"answering on {running.url}")
        serve_forever(running)
        # Serve and Ray are down and nothing is left to write. What the interpreter would
        # still do at exit is Ray's native teardown (no Python frame left): measured at
        # 4-9 s on a loaded 2-core machine, after a 3 s shutdown, past Docker's 10 s
        # grace. Leave at once instead.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    app = create_app(settings, state=ServingState(settings, registry=reg))
    # json: uvicorn's loggers through fleetlearn's JSON handler; text: uvicorn's own.
    logs = {"log_config": uvicorn_log_config(fmt, log_level)} if fmt == "json" else {}
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=access_log,
                loop="auto", http="auto", ssl_certfile=str(tls_cert) if tls_cert else None,
                ssl_keyfile=str(tls_key) if tls_key else None, timeout_graceful_shutdown=5,
                **logs)
