"""Everything one serving process holds: registry, model cache, statistics, metrics, keys."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from fleetlearn import __version__
from fleetlearn.errors import RegistryUnavailableError
from fleetlearn.model import Predictor
from fleetlearn.monitoring import InferenceStats, ServingMetrics
from fleetlearn.registry import ApiKey, ModelVersion, Registry, parse_model_ref
from fleetlearn.security import AuthThrottle, hash_key
from fleetlearn.serving._batch import MicroBatcher
from fleetlearn.serving._cache import LoadedModel, ModelCache
from fleetlearn.serving._settings import ServeSettings, is_loopback

__all__ = ["ServingState", "keys_required"]

log = logging.getLogger("fleetlearn.serving")

#: How long a key lookup is trusted: a revoked key stops working within this time.
KEY_CACHE_S = 5.0


def keys_required(settings: ServeSettings, registry: Registry) -> bool:
    """Whether requests need an API key now (``settings.auth``; see ServeSettings)."""
    mode = settings.auth
    if mode == "on" or not is_loopback(settings.host) and mode != "off":
        return True
    if mode == "off":
        return False
    return registry.has_active_keys()


class ServingState:
    """The shared state of one app (one process or one Ray Serve replica).

    Parameters
    ----------
    settings : ServeSettings
    registry : Registry, optional
        Opened from ``settings.registry_url`` when not given.
    """

    def __init__(self, settings: ServeSettings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or Registry(settings.registry_url,
                                             artifact_dir=settings.artifact_dir)
        self.metrics = ServingMetrics()
        self.auth_throttle = AuthThrottle(allowed=settings.auth_failures_allowed)
        self.auth_client_labels: set[str] = set()  # addresses named in the auth metrics
        self.stats = InferenceStats(window_s=settings.stats_window_s)
        # Predictions run here so the event loop keeps accepting requests meanwhile.
        self.executor = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2),
                                           thread_name_prefix="fleetlearn-predict")
        self.cache = ModelCache(
            self.registry,
            max_models=settings.max_models,
            max_bytes=int(settings.max_cache_mb * 2**20),
            refresh_s=settings.refresh_s,
            batcher=self._make_batcher,
            on_load=self._loaded,
            on_evict=self._evicted,
            on_failure=self._load_failed,
            trusted=settings.trusted_types,
        )
        self._keys: dict[str, tuple[ApiKey | None, float]] = {}
        self._key_used: dict[int, datetime] = {}
        self._auth_checked = 0.0
        self._auth_required = self._decide_auth()
        self._flusher: asyncio.Task[None] | None = None
        self.started = time.time()

    # -------------------------------------------------------------- cache hooks

    def _make_batcher(self, predictor: Predictor, name: str, version: int) -> MicroBatcher:
        def on_batch(requests: int, rows: int) -> None:
            self.metrics.batch_requests.labels(name, str(version)).observe(requests)
            self.metrics.batch_rows.labels(name, str(version)).observe(rows)

        return MicroBatcher(predictor, max_rows=self.settings.batch_max_rows,
                            max_wait_ms=self.settings.batch_wait_ms, executor=self.executor,
                            on_batch=on_batch)

    def _loaded(self, loaded: LoadedModel) -> None:
        mv = loaded.version
        self.metrics.load_seconds.labels(mv.name, str(mv.version)).observe(loaded.load_s)
        self._cache_gauges()
        log.info("loaded %s in %.3f s (compiled preprocessing: %s)", mv.ref, loaded.load_s,
                 loaded.predictor.compiled_reason)

    def _load_failed(self, mv: ModelVersion, reason: str) -> None:
        self.metrics.load_failures.labels(mv.name, str(mv.version), reason).inc()

    def _evicted(self, loaded: LoadedModel) -> None:
        self.metrics.cache_evictions.inc()
        loaded.batcher.close()
        self._cache_gauges()

    def _cache_gauges(self) -> None:
        self.metrics.cache_models.set(len(self.cache))
        self.metrics.cache_bytes.set(self.cache.size_bytes)

    # ------------------------------------------------------------------- auth

    def _decide_auth(self) -> bool:
        return keys_required(self.settings, self.registry)

    @property
    def auth_required(self) -> bool:
        """Whether requests need a key (``auto`` mode re-checks every few seconds)."""
        if self.settings.auth == "auto" and is_loopback(self.settings.host):
            now = time.monotonic()
            if now - self._auth_checked > KEY_CACHE_S:
                self._auth_checked = now
                try:
                    self._auth_required = self.registry.has_active_keys()
                except RegistryUnavailableError as exc:  # keep the last answer meanwhile
                    log.warning("registry unavailable, keeping the auth decision: %s", exc)
        return self._auth_required

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key for ``secret`` (cached for a few seconds), or None."""
        now = time.monotonic()
        # Cached by the key's sha256, never by the key itself: no secret is kept here.
        digest = hash_key(secret)
        hit = self._keys.get(digest)
        if hit is not None and hit[1] > now:
            key = hit[0]
        else:
            try:
                key = self.registry.authenticate_key(secret)
            except RegistryUnavailableError:
                # The registry is restarting: a key it accepted a moment ago still
                # counts (the last answer, kept until the registry answers again);
                # an unknown one gets the 503.
                if hit is None:
                    raise
                return self._used(hit[0])
            if len(self._keys) > 10_000:  # bound memory against floods of bad keys
                self._keys.clear()
            self._keys[digest] = (key, now + KEY_CACHE_S)
        return self._used(key)

    def _used(self, key: ApiKey | None) -> ApiKey | None:
        if key is not None:
            self._key_used[key.id] = datetime.now(UTC)
        return key

    # ------------------------------------------------------------- life cycle

    def preload(self) -> None:
        """Load the models named in ``settings.preload`` (raises on the first bad one)."""
        for ref in self.settings.preload:
            name, version, alias = parse_model_ref(ref)
            self.cache.load_now(self.cache.resolve(name, version, alias))

    def flush(self) -> None:
        """Write changed statistics windows and key usage to the registry."""
        self.stats.sample_process()
        windows = self.stats.take_dirty()
        try:
            self.registry.record_inference_stats(windows)
        except Exception:
            self.stats.mark_dirty(windows)
            raise
        used, self._key_used = self._key_used, {}
        try:
            self.registry.touch_api_keys(used)
        except Exception:
            self._key_used.update(used)
            raise

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_flush_s)
            try:
                await asyncio.to_thread(self.flush)
            except Exception as exc:  # noqa: BLE001 - a registry hiccup must not stop serving
                log.warning("could not write inference statistics: %s", exc)

    async def start(self) -> None:
        """Start background work (the periodic statistics flush)."""
        await asyncio.to_thread(self.preload)
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def stop(self) -> None:
        """Stop background work, flush statistics one last time, release resources."""
        if self._flusher is not None:
            self._flusher.cancel()
        for loaded in self.cache.cached():
            loaded.batcher.close()
        try:
            await asyncio.to_thread(self.flush)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not write inference statistics at shutdown: %s", exc)
        self.executor.shutdown(wait=False, cancel_futures=True)

    def describe(self) -> dict[str, Any]:
        """What the server is and how it is configured (for ``/v1/info``)."""
        return {
            "version": __version__,
            "replica": self.stats.replica,
            "registry": self.registry.url,
            "auth_required": self.auth_required,
            "started_at": datetime.fromtimestamp(self.started, UTC).isoformat(),
            "max_rows": self.settings.max_rows,
            "cache": {"models": len(self.cache), "bytes": self.cache.size_bytes,
                      "max_models": self.settings.max_models,
                      "max_bytes": int(self.settings.max_cache_mb * 2**20)},
        }
