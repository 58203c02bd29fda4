"""Cluster mode: the same FastAPI app as a Ray Serve ingress deployment with N replicas.

``fleetlearn serve --ray`` deploys :func:`~fleetlearn.api.create_app` on Ray Serve
(prediction and read routes: ``training=False``):

* Every replica is a :class:`FleetlearnReplica` actor that builds its own
  :class:`~fleetlearn.serving.ServingState` (registry connection, model cache,
  statistics, metrics) from the same :class:`~fleetlearn.serving.ServeSettings`. The
  registry URL and the artifact folder are resolved to absolute values in the driver,
  so every node opens the very same registry: a SQLite file only works when all
  replicas run on this machine; a real cluster needs PostgreSQL (and the artifact
  folder on a filesystem every node mounts at the same path).
* Ray Serve's HTTP proxy listens on ``--host``/``--port`` and spreads requests over
  the replicas; an autoscaling configuration keeps between ``replicas`` and
  ``max_replicas`` of them, scaled on ongoing requests per replica.
* Predictions inside a replica are coalesced. Two ways, measured (docs/api.md
  "Cluster mode"): ``batching="micro"`` (default) keeps the embedded server's
  :class:`~fleetlearn.serving._batch.MicroBatcher` in each replica: its worker takes
  every request that arrived while the previous call ran, so it coalesced more and
  served RF-100 single rows at c=16 about 1.3-2x faster. ``batching="serve"`` routes
  them through ``@serve.batch`` (:meth:`FleetlearnReplica.predict_batch`), made
  adaptive: idle, a lone request goes straight through (Ray's queue would hold it for
  the full ``batch_wait_timeout_s``); while a batch runs, the next gathers newcomers
  until the running one should end, plus ``batch_wait_ms``. Ray's queue forms batches
  on a timer rather than when the previous call ends, hence fewer requests per call.
  Requests for different model versions in one batch are split per version.

Ray is embedded (``address="local"``, started and stopped here) unless an address is
given. Stopping (Ctrl-C, SIGTERM: ``docker stop`` allows 10 s) takes a few seconds:

* on the embedded Ray, which this process owns, Serve is shut down at once (replicas
  get ``graceful_shutdown_timeout_s`` to finish their requests) and Ray after it;
* on a cluster joined by address, only the fleetlearn app is deleted; Serve (its
  controller and proxies) is left to the cluster when other apps run on it, else shut
  down; then this process disconnects.

SIGTERM used to abort the process (exit 134) when it arrived while Ray was connected
but before :func:`serve_forever` had set its handler: Ray's core worker installs a C++
handler that aborts; :func:`~fleetlearn.training.connect_ray` now keeps the caller's
handler. If the shutdown ever hangs (a dead cluster), :func:`serve_forever` exits
after :data:`SHUTDOWN_BOUND_S` anyway. Never ``ray stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray import serve
from sqlalchemy.engine import make_url

from fleetlearn.api import create_app
from fleetlearn.config import default_artifact_dir, default_registry_url
from fleetlearn.data import Rows
from fleetlearn.errors import ClusterError, ConfigError, did_you_mean
from fleetlearn.logs import route_ray_logs
from fleetlearn.model import Prediction, Predictor
from fleetlearn.serving._batch import MicroBatcher
from fleetlearn.serving._settings import ServeSettings
from fleetlearn.serving._state import ServingState
from fleetlearn.training import connect_ray

__all__ = ["APP_ARGS", "APP_NAME", "ClusterServing", "FleetlearnReplica", "build_app", "deploy",
           "replica_options"]

log = logging.getLogger("fleetlearn.serving")

#: Name of the Ray Serve application (and of its one deployment).
APP_NAME = "fleetlearn"
#: Most requests in one ``@serve.batch`` call (rows are bounded by ``batch_max_rows``).
MAX_BATCH_REQUESTS = 256
#: Default autoscaling target: ongoing requests per replica. Coalescing makes a replica
#: cheap per extra concurrent request, so it is far above Ray's default of 2.
TARGET_ONGOING_REQUESTS = 16.0
BATCHING_MODES = ("serve", "micro")
#: Longest a stop may take before the process exits without waiting for the rest of the
#: shutdown: within Docker's 10 s between SIGTERM and SIGKILL, with margin.
SHUTDOWN_BOUND_S = 8.0


# ------------------------------------------------------------- batching


@dataclass
class _BatchItem:
    """One request's rows on their way through the replica's ``@serve.batch`` queue."""

    batcher: ServeBatcher
    rows: Rows
    proba: bool


class ServeBatcher(MicroBatcher):
    """A model version's coalescer that hands requests to the replica's ``@serve.batch``.

    Same interface as :class:`MicroBatcher` (``predict``, ``close``, ``calls``, the
    ``on_batch`` metrics hook), so the app and the model cache need not know which one
    serves them; the call itself (merge rows, one ``predict``, split the answers) is
    :meth:`MicroBatcher._call`.
    """

    def __init__(self, predictor: Predictor, submit: Callable[[_BatchItem], Any],
                 **kwargs: Any) -> None:
        super().__init__(predictor, **kwargs)
        self._submit = submit

    async def predict(self, rows: Rows, proba: bool = False) -> Prediction:
        """Predict ``rows``, possibly in one call with other requests of this replica."""
        return await self._submit(_BatchItem(self, rows, proba))

    def close(self) -> None:
        """Nothing to stop: the replica owns the queue."""


class _ReplicaState(ServingState):
    """A replica's serving state whose model versions predict through ``submit``."""

    def __init__(self, settings: ServeSettings,
                 submit: Callable[[_BatchItem], Any] | None) -> None:
        self._submit = submit
        super().__init__(settings)

    def _make_batcher(self, predictor: Predictor, name: str, version: int) -> MicroBatcher:
        plain = super()._make_batcher(predictor, name, version)
        if self._submit is None:
            return plain
        return ServeBatcher(predictor, self._submit, max_rows=plain.max_rows,
                            executor=self.executor, on_batch=plain.on_batch)


# ----------------------------------------------------------- deployment


@serve.deployment(name=APP_NAME)
@serve.ingress()
class FleetlearnReplica:
    """One replica: its own :class:`ServingState`, the fleetlearn FastAPI app on it.

    Parameters
    ----------
    settings : dict
        :class:`ServeSettings` fields (absolute registry URL and artifact folder).
    batching : {"micro", "serve"}
        fleetlearn's :class:`MicroBatcher` (default, faster) or ``@serve.batch``.
    """

    def __init__(self, settings: dict[str, Any], batching: str = "micro") -> None:
        self.settings = ServeSettings(**settings)
        self.batch_wait_s = self.settings.batch_wait_ms / 1000
        self._running_since: float | None = None  # start of the batch being predicted
        self._call_s = 0.0  # moving average of a batch's duration
        submit = self._submit if batching == "serve" else None
        self.state = _ReplicaState(self.settings, submit)
        self.predict_batch.set_batch_wait_timeout_s(0.0)

    def __serve_build_asgi_app__(self) -> Any:
        # Predictions and reads only: a replica never spawns a training driver or keeps
        # an upload on its own disk (those routes live on `fleetlearn serve` without --ray).
        return create_app(self.settings, state=self.state, training=False,
                          request_id_header=False)

    async def _submit(self, item: _BatchItem) -> Prediction:
        # Ray's queue forms the next batch on a timer, even while the previous one
        # still runs, and holds even a lone request for the whole timeout. So the
        # timeout is set per arrival: 0 when idle (a lone request goes straight
        # through); while a batch runs, until it is expected to end plus batch_wait_ms,
        # so the next call takes every request that arrived meanwhile (what
        # MicroBatcher does, and the batch could not start earlier anyway).
        wait = 0.0
        if self._running_since is not None:
            left = self._running_since + self._call_s - time.perf_counter()
            wait = max(0.0, left) + self.batch_wait_s
        self.predict_batch.set_batch_wait_timeout_s(wait)
        result = await self.predict_batch(item)
        if isinstance(result, BaseException):
            raise result
        return result

    @serve.batch(max_batch_size=MAX_BATCH_REQUESTS, batch_wait_timeout_s=0.0)
    async def predict_batch(self, items: list[_BatchItem]) -> list[Prediction | Exception]:
        """Predict a batch of requests: one call per model version among them."""
        start = self._running_since = time.perf_counter()
        try:
            return await self._predict_groups(items)
        finally:
            self._running_since = None
            took = time.perf_counter() - start
            self._call_s = took if not self._call_s else 0.8 * self._call_s + 0.2 * took

    async def _predict_groups(self, items: list[_BatchItem]) -> list[Prediction | Exception]:
        loop = asyncio.get_running_loop()
        groups: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(id(item.batcher), []).append(i)
        out: list[Any] = [None] * len(items)
        for indices in groups.values():
            batcher = items[indices[0]].batcher
            for chunk in _chunks(indices, items, batcher.max_rows):
                parts: list[Any]
                try:
                    parts = await loop.run_in_executor(
                        self.state.executor, batcher._call, [items[i] for i in chunk])
                except Exception as exc:  # noqa: BLE001 - every request gets an answer
                    parts = [exc] if len(chunk) == 1 else []
                    # As MicroBatcher: one request's rows may be what failed, so retry
                    # each alone and only the request at fault gets the error.
                    for i in chunk if len(chunk) > 1 else ():
                        try:
                            (part,) = await loop.run_in_executor(
                                self.state.executor, batcher._call, [items[i]])
                        except Exception as one:  # noqa: BLE001
                            part = one
                        parts.append(part)
                for i, part in zip(chunk, parts, strict=True):
                    out[i] = part
        return out


def _chunks(indices: list[int], items: list[_BatchItem], max_rows: int) -> list[list[int]]:
    """Split one version's requests into calls of at most ``max_rows`` rows (a bigger
    request runs alone), as MicroBatcher does."""
    chunks: list[list[int]] = []
    chunk: list[int] = []
    rows = 0
    for i in indices:
        if chunk and rows + items[i].rows.n > max_rows:
            chunks.append(chunk)
            chunk, rows = [], 0
        chunk.append(i)
        rows += items[i].rows.n
    chunks.append(chunk)
    return chunks


def replica_options(replicas: int, max_replicas: int | None = None,
                    target_ongoing_requests: float = TARGET_ONGOING_REQUESTS,
                    num_cpus: float = 1.0) -> dict[str, Any]:
    """Ray Serve deployment options for ``replicas`` .. ``max_replicas`` replicas.

    Examples
    --------
    >>> opts = replica_options(2, 4)
    >>> opts["autoscaling_config"]["min_replicas"], opts["autoscaling_config"]["max_replicas"]
    (2, 4)
    """
    max_replicas = replicas if max_replicas is None else max_replicas
    if int(replicas) < 1:
        raise ConfigError(f"--replicas must be at least 1, got {replicas}.")
    if int(max_replicas) < int(replicas):
        raise ConfigError(f"--max-replicas ({max_replicas}) must be at least --replicas "
                          f"({replicas}).")
    if target_ongoing_requests <= 0:
        raise ConfigError(f"target_ongoing_requests must be positive, got "
                          f"{target_ongoing_requests}.")
    return {
        "autoscaling_config": {
            "min_replicas": int(replicas),
            "initial_replicas": int(replicas),
            "max_replicas": int(max_replicas),
            "target_ongoing_requests": float(target_ongoing_requests),
            # Scale up within seconds of a burst, down only after a quiet minute.
            "upscale_delay_s": 3.0,
            "downscale_delay_s": 60.0,
        },
        # Coalescing needs many requests in a replica at once (Ray's default is 5).
        "max_ongoing_requests": max(MAX_BATCH_REQUESTS, int(target_ongoing_requests)),
        "ray_actor_options": {"num_cpus": num_cpus},
        # Replicas stop quickly on Ctrl-C; a request in flight gets this long to finish.
        "graceful_shutdown_wait_loop_s": 0.5,
        "graceful_shutdown_timeout_s": 5.0,
    }


#: Arguments of :func:`build_app` that shape the deployment (as ``fleetlearn serve --ray``'s
#: options); every other argument is a :class:`ServeSettings` field.
APP_ARGS = ("replicas", "max_replicas", "batching", "target_ongoing_requests", "num_cpus")


def build_app(args: dict[str, Any]) -> serve.Application:
    """The fleetlearn Serve application, for a Serve config file (``serve deploy``,
    KubeRay's ``RayService``): ``import_path: fleetlearn.serving:build_app``.

    What :func:`deploy` runs, built from the config's ``args`` instead of a driver: the
    cluster's Serve controller calls this with them. Serve's own ``http_options`` (host,
    port) and ``route_prefix`` come from the config file, not from here.

    Parameters
    ----------
    args : dict
        ``replicas``, ``max_replicas``, ``batching``, ``target_ongoing_requests``,
        ``num_cpus`` (as :func:`deploy`), and any :class:`ServeSettings` field
        (``host: 0.0.0.0`` tells the replicas they answer off loopback, so API keys are
        required). Settings not given are read by each replica from its own
        ``FLEETLEARN_*`` environment: secrets such as the registry URL belong there
        (a Kubernetes Secret), not in the config, which Serve stores and shows.

    Returns
    -------
    Application
        The bound ingress deployment, named :data:`APP_NAME`.

    Raises
    ------
    ConfigError
        An unknown argument, or a value out of its bounds (one sentence naming it).

    Examples
    --------
    >>> app = build_app({"replicas": 2, "max_replicas": 4, "max_rows": 5000})
    >>> type(app).__name__
    'Application'
    """
    if not isinstance(args, dict):
        raise ConfigError(f"The args of fleetlearn's Serve app must be a mapping, got "
                          f"{type(args).__name__}.")
    known = (*APP_ARGS, *ServeSettings.model_fields)
    for name in args:
        if name not in known:
            raise ConfigError(f"'{name}' is not an argument of fleetlearn's Serve app."
                              f"{did_you_mean(str(name), known)} Known: {', '.join(known)}.")
    batching = str(args.get("batching", "micro"))
    if batching not in BATCHING_MODES:
        raise ConfigError(f"batching must be one of {', '.join(BATCHING_MODES)}, got "
                          f"'{batching}'.")
    max_replicas = args.get("max_replicas")
    options = replica_options(
        _arg(args, "replicas", int, 1),
        None if max_replicas is None else _arg(args, "max_replicas", int, 1),
        _arg(args, "target_ongoing_requests", float, TARGET_ONGOING_REQUESTS),
        _arg(args, "num_cpus", float, 1.0))
    given = {name: value for name, value in args.items() if name not in APP_ARGS}
    settings = ServeSettings(**given)  # checked here, once, with the error naming the arg
    # Only what was given, as checked: the rest each replica reads from its environment.
    payload = {name: value for name, value in settings.model_dump().items() if name in given}
    return FleetlearnReplica.options(**options).bind(payload, batching)


def _arg(args: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    """``args[name]`` as ``kind`` (a config file may hold ``"2"``), or a ConfigError."""
    value = args.get(name, default)
    try:
        if isinstance(value, bool) or (kind is int and float(value) != int(float(value))):
            raise ValueError(value)
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        word = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} of fleetlearn's Serve app must be {word}, got "
                          f"{value!r}.") from None


@dataclass
class ClusterServing:
    """A running cluster deployment: where it answers and how to stop it.

    Attributes
    ----------
    url : str
        Base URL of Ray Serve's HTTP proxy, e.g. ``http://127.0.0.1:8000``.
    handle : DeploymentHandle
        Ray Serve's handle to the ingress deployment.
    started_ray : bool
        Whether :func:`deploy` connected this process to Ray (then :meth:`shutdown`
        disconnects it, stopping an embedded Ray).
    options : dict
        The deployment options used (see :func:`replica_options`).
    embedded : bool
        Whether that Ray is an embedded one this process owns (then Serve is shut down
        at once, not asked about other apps).
    """

    url: str
    handle: Any
    started_ray: bool
    options: dict[str, Any] = field(default_factory=dict)
    embedded: bool = False

    def shutdown(self) -> None:
        """Stop serving: see the module docstring for what is torn down and what is left."""
        shutdown(self.started_ray, embedded=self.embedded)


def resolved_settings(settings: ServeSettings) -> dict[str, Any]:
    """``settings`` as a dict for the replicas, registry and artifact paths made absolute.

    Replicas on other nodes do not share this process's environment or working
    directory, so defaults (``$FLEETLEARN_HOME``, relative SQLite paths) are resolved
    here, once.
    """
    out = settings.model_dump()
    url = settings.registry_url or default_registry_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in url:
            raise ConfigError("An in-memory SQLite registry cannot be shared by Ray Serve "
                              "replicas: give a SQLite file or a PostgreSQL URL with "
                              "--registry.")
        if not database.startswith("file:"):
            url = parsed.set(database=os.path.abspath(database)).render_as_string(
                hide_password=False)
    out["registry_url"] = url
    out["artifact_dir"] = os.path.abspath(settings.artifact_dir or default_artifact_dir())
    return out


def deploy(settings: ServeSettings, replicas: int = 1, max_replicas: int | None = None,
           address: str | None = None, *, batching: str = "micro",
           target_ongoing_requests: float = TARGET_ONGOING_REQUESTS,
           num_cpus: float = 1.0, tls_cert: str | None = None,
           tls_key: str | None = None, log_format: str = "text") -> ClusterServing:
    """Deploy the fleetlearn API on Ray Serve and wait until every replica answers.

    Parameters
    ----------
    settings : ServeSettings
        As for the embedded server; ``host``/``port`` are where Ray Serve's proxy listens.
    replicas : int
        Replicas at start, and the autoscaling minimum.
    max_replicas : int, optional
        Autoscaling maximum (default: ``replicas``, no autoscaling).
    address : str, optional
        Ray cluster ``HOST:PORT`` to join; ``$RAY_ADDRESS`` or an embedded local Ray
        (started here) otherwise.
    batching : {"micro", "serve"}
        Coalesce predictions with fleetlearn's MicroBatcher (default: it coalesced more
        and measured faster) or with an adaptive ``@serve.batch``.
    target_ongoing_requests : float
        Autoscaling target of ongoing requests per replica.
    num_cpus : float
        CPUs Ray reserves for each replica.
    tls_cert, tls_key : str, optional
        Serve HTTPS from the proxy.
    log_format : {"text", "json"}
        json: Ray Serve writes its controller's, proxies' and replicas' logs (in Ray's
        log folder) as JSON (``LoggingConfig(encoding="JSON")``), and this driver's
        Ray records go through fleetlearn's JSON handler.

    Returns
    -------
    ClusterServing
        ``.url`` to send requests to, ``.shutdown()`` to stop.

    Examples
    --------
    >>> running = deploy(ServeSettings(port=8000), replicas=2)    # doctest: +SKIP
    >>> running.url                                               # doctest: +SKIP
    'http://127.0.0.1:8000'
    >>> running.shutdown()                                        # doctest: +SKIP
    """
    if batching not in BATCHING_MODES:
        raise ConfigError(f"batching must be one of {', '.join(BATCHING_MODES)}, got "
                          f"'{batching}'.")
    options = replica_options(replicas, max_replicas, target_ongoing_requests, num_cpus)
    payload = resolved_settings(settings)
    embedded = not (ray.is_initialized() or address or os.environ.get("RAY_ADDRESS"))
    started = _connect(address, options["autoscaling_config"]["max_replicas"], num_cpus)
    embedded = embedded and started
    http: dict[str, Any] = {"host": settings.host, "port": int(settings.port)}
    if tls_cert and tls_key:
        http.update(ssl_certfile=str(tls_cert), ssl_keyfile=str(tls_key))
    # Serve's INFO lines ("Started Serve", "Connecting to existing Serve app") would
    # interleave with fleetlearn's output; the replicas' own logs stay in Ray's log folder.
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    try:
        encoding = {"encoding": "JSON"} if log_format == "json" else {}
        serve.start(http_options=http, logging_config={"log_level": "WARNING", **encoding})
        route_ray_logs()
        app = FleetlearnReplica.options(**options).bind(payload, batching)
        start = time.monotonic()
        # The replicas' own logs (their files in Ray's log folder) in the same format;
        # serve.start's logging_config covers the controller and proxies only.
        handle = serve.run(app, name=APP_NAME, route_prefix="/",
                           logging_config=encoding or None)
        log.info("Ray Serve app '%s' running with %d replica(s) after %.1f s", APP_NAME,
                 replicas, time.monotonic() - start)
    except BaseException as exc:
        try:
            shutdown(started, embedded=embedded)
        except Exception:  # noqa: BLE001 - report the deploy error, not the cleanup's
            log.warning("cleanup after a failed deploy failed", exc_info=True)
        if isinstance(exc, KeyboardInterrupt | SystemExit | ClusterError | ConfigError):
            raise
        text = " ".join(str(exc).split())[:600]
        raise ClusterError(f"Ray Serve could not deploy the fleetlearn app: {text} "
                           "(replica logs: session_latest/logs/serve under RAY_TMPDIR).") \
            from exc
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    scheme = "https" if tls_cert else "http"
    return ClusterServing(f"{scheme}://{host}:{settings.port}", handle, started, options,
                          embedded)


def _connect(address: str | None, max_replicas: int, num_cpus: float) -> bool:
    """Join ``address`` or start embedded Ray sized for the replicas; True if started."""
    if ray.is_initialized() or address or os.environ.get("RAY_ADDRESS"):
        return connect_ray(address)
    # Embedded: declare at least as many CPUs as the replicas reserve, so max_replicas
    # can be scheduled on a small machine (they then share its cores).
    cpus = max(os.cpu_count() or 1, int(max_replicas * num_cpus + 0.999))
    return connect_ray(None, num_cpus=cpus)


def shutdown(stop_ray: bool, *, embedded: bool = False) -> None:
    """Stop the fleetlearn app, and Serve with it when this process owns Ray (``embedded``)
    or Serve runs nothing else; then ``ray.shutdown()`` if :func:`deploy` connected.
    Never ``ray stop``."""
    if not ray.is_initialized():
        return
    try:
        if embedded:
            # Nothing else can run on a Ray this process started: no need to delete the
            # app and ask about others first (a second each); replicas still drain.
            with contextlib.suppress(Exception):
                serve.shutdown()
            return
        try:
            # Deleting first lets replicas drain; it also spares the driver Ray's
            # "graceful_shutdown failed" notice when Serve is shut down right after.
            serve.delete(APP_NAME)
            others = serve.status().applications
        except Exception:  # noqa: BLE001 - Serve already gone
            return
        if not others:
            serve.shutdown()
    finally:
        if stop_ray:
            ray.shutdown()


def serve_forever(running: ClusterServing, poll_s: float = 1.0,
                  bound_s: float = SHUTDOWN_BOUND_S) -> None:
    """Block until SIGINT/SIGTERM, then shut the deployment down cleanly.

    The shutdown gets ``bound_s``; past it (a cluster that stopped answering) the
    process exits with 143 rather than be killed half-way by the next SIGKILL.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(poll_s):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopping Ray Serve")
        watchdog = threading.Timer(bound_s, _exit_now, args=(bound_s,))
        watchdog.daemon = True
        watchdog.start()
        start = time.monotonic()
        try:
            running.shutdown()
        finally:
            watchdog.cancel()
        log.info("Ray Serve stopped in %.1f s", time.monotonic() - start)


def _exit_now(bound_s: float) -> None:
    log.error("Ray Serve did not shut down within %.0f s; exiting without waiting", bound_s)
    os._exit(143)
