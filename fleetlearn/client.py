"""``fleetlearn.Client``: the Python HTTP client of the fleetlearn REST API.

One method per route, plain dicts (and DataFrames where they help) back. Every error
the server answers becomes a :class:`~fleetlearn.errors.ApiError` whose message is the
server's ``detail`` (what was wrong and what to do), with ``status``, ``error`` and
the list of ``errors`` of a rejected prediction; no server at the URL is a
:class:`~fleetlearn.errors.ServerUnreachableError` naming the URL.

>>> import fleetlearn
>>> client = fleetlearn.Client("http://127.0.0.1:8000")          # doctest: +SKIP
>>> client.predict("iris-random_forest", [{"sepal_length": 5.1, "sepal_width": 3.5,
...                 "petal_length": 1.4, "petal_width": 0.2}])   # doctest: +SKIP
{'model': 'iris-random_forest', 'version': 1, 'predictions': ['setosa'], ...}

Defaults come from the environment: ``FLEETLEARN_URL`` (else
``http://127.0.0.1:8000``), ``FLEETLEARN_API_KEY`` and ``FLEETLEARN_CA_FILE`` (a PEM
bundle to check a server's HTTPS certificate against).
"""

from __future__ import annotations

import inspect
import json
import os
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from fleetlearn import __version__
from fleetlearn.errors import (
    ApiError,
    ConfigError,
    DataFileNotFoundError,
    FleetlearnError,
    ServerUnreachableError,
)

__all__ = ["Client", "RunTimeoutError", "DEFAULT_URL", "predictions_frame"]

DEFAULT_URL = "http://127.0.0.1:8000"
#: Statuses a run ends in (the others are ``starting`` and ``running``).
FINAL_STATUSES = frozenset({"finished", "failed", "interrupted", "cancelled"})


class RunTimeoutError(FleetlearnError, TimeoutError):
    """:meth:`Client.wait_for_run` gave up before the run ended (the run goes on)."""


def _path(prefix: str, *parts: str | int) -> str:
    """``prefix`` followed by URL-quoted parts (a name holding '/' cannot escape its route)."""
    return "/".join([prefix, *(quote(str(p), safe="@:") for p in parts)])


class Client:
    """A client of one fleetlearn server.

    Parameters
    ----------
    url : str, optional
        The server, e.g. ``"https://models.example.org:8443"``; ``$FLEETLEARN_URL`` or
        ``http://127.0.0.1:8000`` by default.
    api_key : str, optional
        Sent as ``Authorization: Bearer <key>``; ``$FLEETLEARN_API_KEY`` by default.
    timeout : float
        Seconds to wait for a connection and for each answer.
    verify : bool or str, optional
        HTTPS certificate check: True (system CAs), False (no check; testing only) or
        the path of a PEM CA bundle; ``$FLEETLEARN_CA_FILE`` when set, else True.
    transport : httpx.BaseTransport, optional
        For tests (e.g. ``httpx.MockTransport``); the network by default.

    Examples
    --------
    >>> with Client("http://127.0.0.1:8000", api_key="flk_...") as client:  # doctest: +SKIP
    ...     client.health()
    {'status': 'ok'}
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *,
                 timeout: float = 30.0, verify: bool | str | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = (url or os.environ.get("FLEETLEARN_URL") or DEFAULT_URL).rstrip("/")
        if "://" not in self.url:
            self.url = f"http://{self.url}"
        key = api_key if api_key is not None else os.environ.get("FLEETLEARN_API_KEY")
        headers = {"user-agent": f"fleetlearn-client/{_version()}"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                                  verify=_ssl_context(verify), transport=transport)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # ------------------------------------------------------------- plumbing

    def _request(self, method: str, path: str, *, timeout: float | None = None,
                 **kwargs: Any) -> httpx.Response:
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServerUnreachableError(
                f"The fleetlearn server at {self.url} did not answer {method} {path} within "
                f"{timeout or self.timeout:g} s ({type(exc).__name__}). Check that it is up, "
                "or pass a longer timeout.") from exc
        except httpx.ConnectError as exc:
            raise ServerUnreachableError(_connect_message(self.url, exc)) from exc
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            hint = (" The server may have refused a body that big (see its upload limit)."
                    if method == "POST" else "")
            raise ServerUnreachableError(
                f"The fleetlearn server at {self.url} closed the connection during "
                f"{method} {path}: {exc or type(exc).__name__}.{hint}") from exc
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(f"The server at {self.url} answered {method} {path} with something "
                           f"that is not JSON: {response.text[:200]!r}. Is it a fleetlearn "
                           "server?", response.status_code, "BadResponse") from exc

    # ------------------------------------------------------------- health

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: the process is alive."""
        return self._json("GET", "/healthz")

    def ready(self) -> dict[str, Any]:
        """``GET /readyz``: the registry answers and preloaded models are loaded.

        Raises :class:`~fleetlearn.errors.ApiError` (status 503) when not ready.
        """
        return self._json("GET", "/readyz")

    def info(self) -> dict[str, Any]:
        """``GET /v1/info``: server version and configuration."""
        return self._json("GET", "/v1/info")

    # ------------------------------------------------------------- models

    def models(self, *, dataset: str | None = None, task: str | None = None,
               alias: str | None = None, metric: str | None = None,
               has_alias: bool = False, limit: int | None = None,
               offset: int | None = None) -> list[dict[str, Any]]:
        """The latest version of every model (filters as ``GET /v1/models``), by name;
        ``has_alias=True``: every version holding an alias instead; ``offset`` skips that
        many first (paging)."""
        params = _params(dataset=dataset, task=task, alias=alias, metric=metric,
                         has_alias="true" if has_alias else None, limit=limit,
                         offset=offset)
        return self._json("GET", "/v1/models", params=params)["data"]

    def model_versions(self, name: str) -> dict[str, Any]:
        """Every version of a model and its aliases: ``{"name", "aliases", "versions"}``."""
        return self._json("GET", _path("/v1/models", name))

    def model_version(self, name: str, version: int) -> dict[str, Any]:
        """One version: metrics, parameters, lineage, input schema, artifact digest."""
        return self._json("GET", _path("/v1/models", name, "versions", version))

    def set_alias(self, name: str, alias: str, version: int) -> dict[str, Any]:
        """Point ``alias`` at ``version`` (admin); returns that version."""
        return self._json("PUT", _path("/v1/models", name, "aliases", alias),
                          json={"version": int(version)})

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias (admin)."""
        self._json("DELETE", _path("/v1/models", name, "aliases", alias))

    def delete_model_version(self, name: str, version: int) -> None:
        """Delete one version and the aliases pointing at it (admin)."""
        self._json("DELETE", _path("/v1/models", name, "versions", int(version)))

    # ------------------------------------------------------------- predict

    def predict(self, name: str, data: Any, *, columns: Sequence[str] | None = None,
                version: int | None = None, return_proba: bool = False) -> dict[str, Any]:
        """Predict with a model; returns the server's answer as a dict.

        Parameters
        ----------
        name : str
            ``"name"`` (latest version), ``"name@alias"`` or ``"name:version"``.
        data : list of dict, pandas.DataFrame, or list of lists with ``columns``
            The rows. A DataFrame's missing values are sent as null.
        version : int, optional
            A version number (instead of ``name:version``).
        return_proba : bool
            Add ``probabilities`` (one ``{class: p}`` per row) and ``classes``.

        Returns
        -------
        dict
            ``{"model", "version", "predictions", "unseen_categories"}`` and, with
            ``return_proba``, ``"probabilities"`` and ``"classes"``.

        Examples
        --------
        >>> client.predict("iris-knn@production", frame, return_proba=True)  # doctest: +SKIP
        """
        body = _predict_body(data, columns)
        if return_proba:
            body["return_proba"] = True
        params = {"version": version} if version is not None else None
        # orjson-free: the standard encoder refuses NaN, which the server refuses too.
        content = json.dumps(body, allow_nan=False, default=_json_default).encode()
        return self._json("POST", _path("/v1/models", name, "predict"), content=content,
                          params=params, headers={"content-type": "application/json"})

    def predict_frame(self, name: str, data: Any, *, version: int | None = None,
                      return_proba: bool = False) -> Any:
        """:meth:`predict`, as a DataFrame aligned with the input rows.

        Columns: ``prediction``, then ``proba_<class>`` per class with ``return_proba``.
        The version that answered is in ``frame.attrs["model"]`` / ``["version"]``.
        """
        result = self.predict(name, data, version=version, return_proba=return_proba)
        index = getattr(data, "index", None)
        return predictions_frame(result, index=index)

    # ------------------------------------------------------------- monitoring

    def stats(self, *, scope: str = "replica", window: float = 60.0, model: str | None = None,
              version: int | None = None, since: float | None = None) -> dict[str, Any]:
        """Inference statistics per model version (``GET /v1/stats``)."""
        params = _params(scope=scope, window=window, model=model, version=version, since=since)
        return self._json("GET", "/v1/stats", params=params)

    def metrics(self) -> str:
        """The Prometheus metrics, as text."""
        return self._request("GET", "/metrics").text

    def cluster(self) -> dict[str, Any]:
        """The server's Ray cluster (``GET /v1/cluster``): ``mode`` (``cluster`` or
        ``local``), the address, every node (alive and dead) with its resources total
        and in use, pending tasks."""
        return self._json("GET", "/v1/cluster")

    # ------------------------------------------------------------- keys (admin)

    def keys(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        """Every API key (never the secrets)."""
        return self._json("GET", "/v1/keys", params={"include_revoked": include_revoked})

    def create_key(self, name: str, role: str) -> dict[str, Any]:
        """Create a key; the secret is in ``["key"]`` of this answer only."""
        return self._json("POST", "/v1/keys", json={"name": name, "role": role})

    def revoke_key(self, key: str | int) -> dict[str, Any]:
        """Revoke a key by id, name or prefix."""
        return self._json("DELETE", _path("/v1/keys", key))

    # ------------------------------------------------------------- training

    def upload_dataset(self, path: str | Path, name: str | None = None) -> dict[str, Any]:
        """Upload a CSV/TSV/Parquet table to the server's data folder (role train).

        The file is streamed, never read whole into memory. Returns ``{"name", "label",
        "path", "bytes", "sha256", "columns", "rows", "uploaded_at"}``: ``name`` is the
        name the server chose (from ``name`` or the file's name, made safe; the suffix
        follows the content), the one to use in :meth:`start_run`; ``label`` is the
        file's own name.
        """
        path = Path(path)
        if not path.is_file():
            raise DataFileNotFoundError(f"No file {path} to upload. Check the path.")
        with path.open("rb") as fh:
            return self._json("POST", "/v1/datasets", files={"file": (path.name, fh)},
                              data={"name": name} if name else None,
                              timeout=max(self.timeout, 600.0))

    def datasets(self) -> list[dict[str, Any]]:
        """The tables in the server's data folder."""
        return self._json("GET", "/v1/datasets")["data"]

    def dataset_profile(self, name: str, target: str | None = None) -> dict[str, Any]:
        """What training would make of a table on the server (role read).

        Returns ``{"name", "rows", "columns", "kinds", "target"}``: every column's
        detected kind (numeric, categorical, boolean, datetime, or why it is left out:
        text, id-like, constant, ...), missing cells and frequent values; with
        ``target``, its detected task and classes (or value summary). An unknown table
        raises :class:`~fleetlearn.errors.ApiError` 404, an unknown target 422.

        Examples
        --------
        >>> client.dataset_profile("iris.csv", target="species")["target"]["task"]  # doctest: +SKIP
        'classification'
        """
        return self._json("GET", _path("/v1/datasets", name, "profile"),
                          params=_params(target=target), timeout=max(self.timeout, 120.0))

    def examples(self) -> list[dict[str, Any]]:
        """The example tables the server can add to its data folder (``name``,
        ``target``, ``description``, ``stored``)."""
        return self._json("GET", "/v1/datasets/examples")["data"]

    def add_example(self, name: str) -> dict[str, Any]:
        """Write an example table (``"iris.csv"``, ``"wine.csv"`` ...) into the server's
        data folder (role train); returns it as :meth:`upload_dataset` does."""
        return self._json("POST", _path("/v1/datasets/examples", name),
                          timeout=max(self.timeout, 120.0))

    def catalog(self, task: str | None = None) -> dict[str, Any]:
        """The server's model catalog (role read): ``{"models": [...], "defaults":
        {task: [name, ...]}}``, each model with its tasks, description and parameters
        (``name, type, default, nullable, choices, minimum, maximum, range``) by task.

        Examples
        --------
        >>> rf = next(m for m in client.catalog()["models"]          # doctest: +SKIP
        ...           if m["name"] == "random_forest")
        """
        return self._json("GET", "/v1/catalog", params=_params(task=task),
                          timeout=max(self.timeout, 60.0))

    def start_run(self, datasets: str | Sequence[str | Mapping[str, Any]],
                  target: str | Mapping[str, str] | None = None, *,
                  models: Sequence[str | Mapping[str, Any]] | None = None,
                  task: str | None = None, folds: int = 5, test_size: float = 0.2,
                  metric: str | Mapping[str, str] | None = None, seed: int = 0,
                  schedule: str = "concurrent", curves: bool = True,
                  final_fit: bool = True, max_retries: int = 3,
                  quadratic_row_limit: int = 10_000, name: str | None = None,
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Start a training run on the server; returns ``{"id", "status", ...}`` at once.

        Same options as ``fleetlearn train`` (the fields of
        :class:`fleetlearn.training.RunRequest`, with the same defaults; the server
        checks them and answers a bad one with a 422 naming it). ``datasets`` are
        uploaded names (or paths inside the server's data folder). Follow it with
        :meth:`run` or :meth:`wait_for_run`.

        Examples
        --------
        >>> started = client.start_run("iris.csv", "species", folds=3)  # doctest: +SKIP
        >>> client.wait_for_run(started["id"])["status"]                 # doctest: +SKIP
        'finished'
        """
        options: dict[str, Any] = {
            "task": task, "models": list(models) if models is not None else None,
            "folds": folds, "test_size": test_size,
            "metric": dict(metric) if isinstance(metric, Mapping) else metric,
            "seed": seed, "schedule": schedule, "curves": curves, "final_fit": final_fit,
            "max_retries": max_retries, "quadratic_row_limit": quadratic_row_limit,
            "name": name, "extra": dict(extra) if extra is not None else None,
        }
        body: dict[str, Any] = {
            "datasets": [datasets] if isinstance(datasets, str) else list(datasets),
            "target": dict(target) if isinstance(target, Mapping) else target,
            # An option left at its default is left out: the server applies the same
            # default, and a server from before an option existed still takes the body.
            **{k: v for k, v in options.items() if v != _RUN_DEFAULTS[k]},
        }
        return self._json("POST", "/v1/runs", json=body, timeout=max(self.timeout, 300.0))

    def runs(self, *, limit: int = 50, offset: int = 0,
             status: str | None = None) -> list[dict[str, Any]]:
        """Recent runs, newest first; ``offset`` skips that many of the newest (paging)."""
        params = _params(limit=limit, offset=offset or None, status=status)
        return self._json("GET", "/v1/runs", params=params)["data"]

    def run(self, run_id: str) -> dict[str, Any]:
        """One run: status, progress (units and trials done/total), failures."""
        return self._json("GET", _path("/v1/runs", run_id))

    def leaderboard(self, run_id: str, metric: str | None = None) -> list[dict[str, Any]]:
        """A run's leaderboard rows (NaN as None); ``pandas.DataFrame(rows)`` for a table."""
        return self._json("GET", _path("/v1/runs", run_id, "leaderboard"),
                          params=_params(metric=metric))["rows"]

    def report(self, run_id: str, metric: str | None = None, alpha: float = 0.05, *,
               test_split: bool = True, timeout: float | None = 300.0) -> str:
        """A run's report (``GET /v1/runs/{id}/report``): one self-contained HTML document.

        Examples
        --------
        >>> html = client.report("3f2a9c")    # doctest: +SKIP
        >>> Path("report.html").write_text(html, encoding="utf-8")    # doctest: +SKIP
        """
        params = _params(metric=metric, alpha=alpha,
                         test_split=None if test_split else "false")
        return self._request("GET", _path("/v1/runs", run_id, "report"), params=params,
                             timeout=timeout).text

    def run_figures(self, run_id: str, *, dataset: str | None = None,
                    kind: str | None = None, metric: str | None = None, alpha: float = 0.05,
                    test_split: bool = True, timeout: float | None = 300.0
                    ) -> list[dict[str, Any]]:
        """A run's figures (``GET /v1/runs/{id}/figures``), in report order: each a dict
        with ``kind``, ``dataset`` (None for a figure of the whole run), ``model``,
        ``title``, ``key`` and ``figure`` (Plotly JSON). ``dataset`` and ``kind`` filter.

        Examples
        --------
        >>> import json, plotly.io
        >>> roc = client.run_figures("3f2a9c", kind="roc")[0]    # doctest: +SKIP
        >>> fig = plotly.io.from_json(json.dumps(roc["figure"]))    # doctest: +SKIP
        """
        params = _params(dataset=dataset, kind=kind, metric=metric, alpha=alpha,
                         test_split=None if test_split else "false")
        return self._json("GET", _path("/v1/runs", run_id, "figures"), params=params,
                          timeout=timeout)["figures"]

    def compare(self, run_id: str, metric: str | None = None,
                alpha: float = 0.05) -> dict[str, Any]:
        """A run's significance comparison: ``leaderboard`` rows with ``tied_with_best``,
        ``across_datasets`` (average ranks, Friedman, Nemenyi) and ``notes``."""
        return self._json("GET", _path("/v1/runs", run_id, "compare"),
                          params=_params(metric=metric, alpha=alpha))

    def trends(self, model: str | None = None, dataset: str | None = None,
               metric: str | None = None) -> dict[str, Any]:
        """Scores over time of one model's versions, or of every model of a dataset:
        ``points`` and a ``summary`` per model (change, Kendall's tau, improving)."""
        return self._json("GET", "/v1/trends",
                          params=_params(model=model, dataset=dataset, metric=metric))

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        """Stop a run the server started; it ends ``interrupted`` (resumable)."""
        return self._json("POST", _path("/v1/runs", run_id, "cancel"),
                          timeout=max(self.timeout, 60.0))

    def resume_run(self, run_id: str) -> dict[str, Any]:
        """Resume an interrupted or failed run in a new process on the server.

        It trains only what the run's journal is missing; follow it with
        :meth:`wait_for_run`. A running or finished run is refused (``ApiError``, 409).
        """
        return self._json("POST", _path("/v1/runs", run_id, "resume"))

    def wait_for_run(self, run_id: str, *, timeout: float = 3600.0, poll_s: float = 2.0,
                     on_progress: Callable[[dict[str, Any]], None] | None = None
                     ) -> dict[str, Any]:
        """Poll a run until it ends; return it (check ``["status"]``: it may have failed).

        Raises
        ------
        RunTimeoutError
            After ``timeout`` seconds; the run itself goes on.
        """
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if on_progress is not None:
                on_progress(run)
            if run["status"] in FINAL_STATUSES:
                return run
            if time.monotonic() >= deadline:
                progress = run.get("progress") or {}
                raise RunTimeoutError(
                    f"Run {run_id} is still {run['status']} after {timeout:g} s "
                    f"({progress.get('units_done', 0)}/{progress.get('units_total', '?')} "
                    "units); it goes on: wait again, or cancel it.")
            time.sleep(max(0.05, min(poll_s, deadline - time.monotonic())))


# ----------------------------------------------------------------- helpers


#: The defaults of :meth:`Client.start_run`'s run options, read from its signature
#: (``tests/unit/test_training_options.py`` keeps them equal to ``RunRequest``'s; the
#: client does not import the training package).
_RUN_DEFAULTS: dict[str, Any] = {
    p.name: p.default for p in inspect.signature(Client.start_run).parameters.values()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
}


def predictions_frame(result: Mapping[str, Any], index: Any = None) -> Any:
    """A predict answer as a DataFrame: ``prediction`` and ``proba_<class>`` columns.

    >>> predictions_frame({"model": "m", "version": 1, "predictions": ["a", "b"],
    ...                    "probabilities": [{"a": 0.9, "b": 0.1}, {"a": 0.2, "b": 0.8}],
    ...                    "classes": ["a", "b"]}).columns.tolist()
    ['prediction', 'proba_a', 'proba_b']
    """
    # On use: the client is imported by every CLI verb; pandas only when a frame is made.
    import pandas as pd

    frame = pd.DataFrame({"prediction": list(result["predictions"])})
    probabilities = result.get("probabilities")
    if probabilities is not None:
        classes = result.get("classes") or (list(probabilities[0]) if probabilities else [])
        for cls in classes:
            frame[f"proba_{cls}"] = [row.get(str(cls), row.get(cls)) for row in probabilities]
    if index is not None and len(index) == len(frame):
        frame.index = index
    frame.attrs.update(model=result.get("model"), version=result.get("version"))
    return frame


def _predict_body(data: Any, columns: Sequence[str] | None) -> dict[str, Any]:
    if columns is not None:
        return {"columns": list(columns), "data": [list(row) for row in data]}
    if hasattr(data, "to_json") and hasattr(data, "columns"):  # a pandas DataFrame
        # pandas writes NaN/NaT as null and timestamps as ISO 8601.
        split = json.loads(data.to_json(orient="split", index=False, date_format="iso"))
        return {"columns": [str(c) for c in split["columns"]], "data": split["data"]}
    if isinstance(data, Mapping):
        if "records" in data or "data" in data:
            return {k: v for k, v in data.items() if k != "return_proba"}
        return {"records": [dict(data)]}  # one row as a mapping
    if isinstance(data, Iterable) and not isinstance(data, str | bytes):
        return {"records": [dict(r) for r in data]}
    raise TypeError(f"Cannot send {type(data).__name__} as rows: give a list of dicts, a "
                    "pandas DataFrame, or rows with columns=[...].")


def _json_default(value: Any) -> Any:
    import numpy as np  # on use, as pandas above: only bodies holding numpy values need it

    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"Cannot send a {type(value).__name__} as JSON.")


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _api_error(response: httpx.Response) -> ApiError:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        errors = body.get("errors") if isinstance(body.get("errors"), list) else []
        return ApiError(body["detail"], status, str(body.get("error") or ""), errors)
    if isinstance(body, dict) and isinstance(body.get("detail"), list):  # FastAPI's default
        errors = body["detail"]
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", [])[1:])
        return ApiError(f"The request is not valid: {where}: {first.get('msg', '')}.", status,
                        "ValidationError", errors)
    text = " ".join(response.text.split())[:200]
    return ApiError(f"HTTP {status} from {response.request.method} {response.request.url}"
                    + (f": {text}" if text else "") + ". Is the URL a fleetlearn server?",
                    status, "HTTPError")


def _connect_message(url: str, exc: Exception) -> str:
    text = str(exc)
    if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return (f"Cannot reach the fleetlearn server at {url}: the TLS handshake failed "
                f"({text.splitlines()[0][:200] if text else 'certificate'}). Pass the server's "
                "CA bundle (verify='ca.pem', $FLEETLEARN_CA_FILE), or use http:// if it "
                "does not serve HTTPS.")
    reason = "connection refused" if "refused" in text.lower() else (
        text.splitlines()[0][:200] if text else type(exc).__name__)
    return (f"Cannot reach the fleetlearn server at {url}: {reason}. Start it with "
            "'fleetlearn serve', or check the URL (--url / $FLEETLEARN_URL).")


def _ssl_context(verify: bool | str | None) -> bool | ssl.SSLContext:
    if verify is None:
        verify = os.environ.get("FLEETLEARN_CA_FILE") or True
    if isinstance(verify, bool):
        return verify
    path = Path(verify).expanduser()
    if not path.is_file():
        raise ConfigError(f"CA file {path} not found: pass the PEM bundle that signed the "
                          "server's certificate.")
    try:
        return ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"CA file {path} is not a PEM certificate bundle: {exc}.") from exc


def _version() -> str:
    return __version__
