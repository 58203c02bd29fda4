"""Which version a reference means now, and the loaded models, bounded and shared.

* References (``name``, ``name@alias``, ``name`` + version) resolve through the
  registry; resolutions are cached and dropped whenever the registry's
  :meth:`~fleetlearn.registry.Registry.version_stamp` changes (a new version, a moved
  or deleted alias), which is checked at most every ``refresh_s`` seconds. A new
  version is therefore served within ``refresh_s`` without a restart.
* Loaded models live in an LRU cache bounded by count and by artifact bytes. A version
  is loaded once even when many requests ask for it at the same moment: the first
  starts the load, the others wait for it.
* A load reads the artifact through the registry (sha256 checked) and makes it a
  predictor with :func:`fleetlearn.model.load_predictor` (exact type trust). A load
  that fails is reported to ``on_failure`` with a reason (``integrity``: missing or
  modified file; ``untrusted``: refused types or not skops; ``error``: anything else)
  and is not cached: the version's requests get the error, every other model is
  unaffected, and a repaired file is picked up by the next request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fleetlearn.data import Schema
from fleetlearn.errors import ArtifactIntegrityError, RegistryUnavailableError
from fleetlearn.model import Predictor, load_predictor
from fleetlearn.registry import ModelVersion, check_trusted_names, trusted_types_from_env
from fleetlearn.serving._batch import MicroBatcher

__all__ = ["LoadedModel", "ModelCache"]

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model version in memory, with its predictor and its request coalescer."""

    version: ModelVersion
    predictor: Predictor
    batcher: MicroBatcher
    load_s: float

    @property
    def key(self) -> tuple[str, int]:
        return (self.version.name, self.version.version)


class ModelCache:
    """Resolve model references and keep loaded versions (LRU by count and bytes).

    Parameters
    ----------
    registry : Registry
    max_models : int
        Most versions in memory at once.
    max_bytes : int
        Most artifact bytes in memory at once (a single bigger model is still served).
    refresh_s : float
        How often the registry's version stamp is checked.
    batcher : callable
        ``batcher(predictor, name, version) -> MicroBatcher``.
    on_load, on_evict : callable, optional
        Called with (LoadedModel) after a load, and on each eviction (for metrics).
    on_failure : callable, optional
        Called with (ModelVersion, reason) when a load fails (for metrics).
    trusted : iterable of str
        Extra exact type names to trust when loading (besides the registry's
        allow-list and ``FLEETLEARN_TRUSTED_TYPES``).
    """

    def __init__(self, registry: Any, max_models: int = 32, max_bytes: int = 2 * 2**30,
                 refresh_s: float = 1.0,
                 batcher: Callable[[Predictor, str, int], MicroBatcher] | None = None,
                 on_load: Callable[[LoadedModel], None] | None = None,
                 on_evict: Callable[[LoadedModel], None] | None = None,
                 on_failure: Callable[[ModelVersion, str], None] | None = None,
                 trusted: Iterable[str] = ()) -> None:
        self.registry = registry
        self.trusted = check_trusted_names(trusted)
        trusted_types_from_env()  # a bad FLEETLEARN_TRUSTED_TYPES fails at start, not per load
        self._on_failure = on_failure
        self.max_models = max_models
        self.max_bytes = max_bytes
        self.refresh_s = refresh_s
        self._batcher = batcher or (lambda p, n, v: MicroBatcher(p))
        self._on_load = on_load
        self._on_evict = on_evict
        self._models: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._loading: dict[tuple[str, int], asyncio.Future[LoadedModel]] = {}
        self._refs: dict[tuple[str, int | None, str | None], ModelVersion] = {}
        self._stamp: str | None = None
        self._checked = 0.0
        self.loads = 0

    # ---------------------------------------------------------------- resolution

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.refresh_s:
            return
        self._checked = now
        try:
            stamp = self.registry.version_stamp()
        except RegistryUnavailableError as exc:
            # Keep answering with what the references meant a moment ago: the models
            # in memory go on predicting while the registry restarts, and the check
            # runs again after refresh_s (a new reference still needs the registry).
            log.warning("registry unavailable, serving cached model references: %s", exc)
            return
        if stamp != self._stamp:
            self._stamp = stamp
            self._refs.clear()

    def resolve(self, name: str, version: int | None = None,
                alias: str | None = None) -> ModelVersion:
        """The version a reference means now (cached; registry errors propagate)."""
        self._refresh()
        key = (name, version, alias)
        mv = self._refs.get(key)
        if mv is None:
            mv = self.registry.get_model_version(name, version=version, alias=alias)
            self._refs[key] = mv
        return mv

    # ------------------------------------------------------------------- models

    @property
    def size_bytes(self) -> int:
        return sum(m.version.artifact_size for m in self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def cached(self) -> list[LoadedModel]:
        """Models in memory, least recently used first."""
        return list(self._models.values())

    def peek(self, mv: ModelVersion) -> LoadedModel | None:
        """The loaded model for ``mv`` if it is in memory (marks it recently used)."""
        key = (mv.name, mv.version)
        loaded = self._models.get(key)
        if loaded is not None:
            self._models.move_to_end(key)
        return loaded

    async def get(self, mv: ModelVersion) -> LoadedModel:
        """Return ``mv`` loaded, loading it once however many callers ask at once."""
        loaded = self.peek(mv)
        if loaded is not None:
            return loaded
        key = (mv.name, mv.version)
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[LoadedModel] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            loaded = await asyncio.to_thread(self._load, mv)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning if nobody waits
            raise
        finally:
            self._loading.pop(key, None)
        self._keep(loaded)
        future.set_result(loaded)
        return loaded

    def load_now(self, mv: ModelVersion) -> LoadedModel:
        """Load synchronously (start-up preloading, outside any event loop)."""
        loaded = self.peek(mv)
        if loaded is None:
            loaded = self._load(mv)
            self._keep(loaded)
        return loaded

    def _load(self, mv: ModelVersion) -> LoadedModel:
        start = time.perf_counter()
        reason = "integrity"
        try:
            data = self.registry.load_artifact(mv)
            reason = "untrusted"
            predictor = load_predictor(data, Schema.from_dict(mv.input_schema), self.trusted,
                                       source=f"model {mv.ref}")
        except Exception as exc:
            if not isinstance(exc, ArtifactIntegrityError):
                reason = "error"
            if self._on_failure is not None:
                self._on_failure(mv, reason)
            raise
        loaded = LoadedModel(mv, predictor, self._batcher(predictor, mv.name, mv.version),
                             time.perf_counter() - start)
        self.loads += 1
        return loaded

    def _keep(self, loaded: LoadedModel) -> None:
        # on_load runs once the model is in the cache, so gauges it sets count it.
        self._models[loaded.key] = loaded
        if self._on_load is not None:
            self._on_load(loaded)
        self._evict()

    def _evict(self) -> None:
        while len(self._models) > 1 and (len(self._models) > self.max_models
                                         or self.size_bytes > self.max_bytes):
            _, old = self._models.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(old)
