"""Health: ``/healthz`` (the process answers) and ``/readyz`` (ready for traffic). Public."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter

from fleetlearn.api.deps import StateDep
from fleetlearn.api.errors import error_response
from fleetlearn.errors import FleetlearnError
from fleetlearn.registry import parse_model_ref

__all__ = ["router"]

log = logging.getLogger("fleetlearn.serving")

router = APIRouter(tags=["health"])

_BACKGROUND: set[Any] = set()  # strong references: the loop keeps only weak ones


def _background_done(task: Any) -> None:
    _BACKGROUND.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("preloading failed: %s", task.exception())


@router.get("/healthz", summary="The process is alive", operation_id="healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The registry answers and preloaded models are in memory",
            operation_id="readyz")
async def readyz(state: StateDep) -> Any:
    try:
        stamp = await asyncio.to_thread(state.registry.version_stamp)
    except FleetlearnError as exc:
        return error_response(503, f"Registry not reachable: {exc}", "RegistryError")
    missing = []
    for ref in state.settings.preload:
        name, version, alias = parse_model_ref(ref)
        try:
            mv = state.cache.resolve(name, version, alias)
        except FleetlearnError as exc:
            return error_response(503, f"Preloaded model {ref}: {exc}", type(exc).__name__)
        if state.cache.peek(mv) is None:
            missing.append(ref)
            # Load it now (once, however many probes ask): a not-ready replica gets no
            # traffic, so after an alias moves nothing else would ever load the target.
            task = asyncio.ensure_future(state.cache.get(mv))
            _BACKGROUND.add(task)
            task.add_done_callback(_background_done)
    if missing:
        return error_response(503, f"Not loaded yet: {', '.join(missing)}.", "NotReady")
    return {"status": "ready", "registry_stamp": stamp, "models_loaded": len(state.cache)}
