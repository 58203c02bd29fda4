"""Registry methods for serving: API keys and persisted inference statistics.

A mixin of :class:`fleetlearn.registry.Registry` (it uses the store's sessions), kept
apart so the training store stays readable.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from fleetlearn.errors import ConfigError, NotFoundError
from fleetlearn.registry._entities import ApiKey
from fleetlearn.registry._schema import SqlApiKey, SqlInferenceStats, utcnow
from fleetlearn.security import check_role, generate_key, hash_key

__all__ = ["ServingStoreMixin"]


def _api_key(row: SqlApiKey) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        role=row.role,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class ServingStoreMixin:
    """API keys (hashes only) and inference statistics windows."""

    # -------------------------------------------------------------------- keys

    def create_api_key(self, name: str, role: str) -> tuple[ApiKey, str]:
        """Create a key; return its record and the secret, which is never stored.

        Examples
        --------
        >>> key, secret = reg.create_api_key("ci", "predict")       # doctest: +SKIP
        """
        check_role(role)
        name = (name or "").strip()
        if not name or len(name) > 128:
            raise ConfigError("A key name must be 1 to 128 characters, e.g. --name ci-deploy.")
        secret = generate_key()
        row = SqlApiKey(name=name, prefix=secret[:8], key_hash=hash_key(secret), role=role,
                        created_at=utcnow())
        with self._write() as s:  # type: ignore[attr-defined]
            s.add(row)
            s.flush()
            return _api_key(row), secret

    def list_api_keys(self, include_revoked: bool = False) -> list[ApiKey]:
        """Every key, newest first (revoked ones only when asked)."""
        query = sa.select(SqlApiKey).order_by(SqlApiKey.id.desc())
        if not include_revoked:
            query = query.where(SqlApiKey.revoked_at.is_(None))
        with self._read() as s:  # type: ignore[attr-defined]
            return [_api_key(r) for r in s.scalars(query)]

    def revoke_api_key(self, key: int | str) -> ApiKey:
        """Revoke a key by id, name or prefix (``flk_AbCd``); revoking twice is harmless.

        Raises
        ------
        NotFoundError
            No key, or several keys, match.
        """
        with self._write() as s:  # type: ignore[attr-defined]
            rows = list(s.scalars(sa.select(SqlApiKey)))
            text = str(key)
            found = [r for r in rows if str(r.id) == text or r.name == text
                     or (len(text) >= 6 and r.prefix.startswith(text[:8]))]
            if not found:
                raise NotFoundError(
                    f"No API key '{key}': see 'fleetlearn keys list' for ids, names and prefixes."
                )
            if len(found) > 1:
                raise NotFoundError(
                    f"'{key}' matches {len(found)} keys (ids "
                    f"{', '.join(str(r.id) for r in found)}): revoke one by its id."
                )
            row = found[0]
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _api_key(row)

    def authenticate_key(self, secret: str) -> ApiKey | None:
        """The active key whose hash matches ``secret``, or None (unknown or revoked)."""
        digest = hash_key(secret)
        with self._read() as s:  # type: ignore[attr-defined]
            row = s.scalars(sa.select(SqlApiKey).where(SqlApiKey.key_hash == digest)).first()
            # The lookup is by hash (its timing tells nothing of the key); the final
            # check compares in constant time all the same.
            if (row is None or row.revoked_at is not None
                    or not hmac.compare_digest(row.key_hash, digest)):
                return None
            return _api_key(row)

    def touch_api_keys(self, used: dict[int, datetime]) -> None:
        """Record when keys were last used (the server batches this, at most every minute)."""
        if not used:
            return
        with self._write() as s:  # type: ignore[attr-defined]
            for key_id, when in used.items():
                s.execute(sa.update(SqlApiKey).where(SqlApiKey.id == key_id)
                          .values(last_used_at=when))

    def has_active_keys(self) -> bool:
        """Whether any key is not revoked (serving then requires keys)."""
        with self._read() as s:  # type: ignore[attr-defined]
            return s.scalar(sa.select(sa.func.count(SqlApiKey.id))
                            .where(SqlApiKey.revoked_at.is_(None))) > 0

    # ------------------------------------------------------------ inference stats

    def record_inference_stats(self, windows: Iterable[dict[str, Any]]) -> None:
        """Upsert statistics windows, keyed by (replica, model, version, window_start).

        A replica rewrites its current window as it grows, so flushing is idempotent.
        """
        rows = [
            {
                "replica": str(w["replica"]),
                "model": str(w["model"]),
                "version": int(w["version"]),
                "window_start": w["window_start"],
                "window_s": float(w["window_s"]),
                "requests": int(w["requests"]),
                "errors": int(w["errors"]),
                "rows": int(w["rows"]),
                "latency_sum_ms": float(w["latency_sum_ms"]),
                "histogram": dict(w.get("histogram") or {}),
                "process": dict(w.get("process") or {}),
            }
            for w in windows
        ]
        if not rows:
            return
        stmt = self._insert(SqlInferenceStats)  # type: ignore[attr-defined]
        keys = ["replica", "model", "version", "window_start"]
        stmt = stmt.on_conflict_do_update(
            index_elements=keys,
            set_={c: getattr(stmt.excluded, c) for c in rows[0] if c not in keys},
        )
        with self._write() as s:  # type: ignore[attr-defined]
            s.execute(stmt, rows)

    def inference_stats(self, since: datetime | None = None, model: str | None = None,
                        version: int | None = None,
                        versions: Iterable[tuple[str, int]] | None = None
                        ) -> list[dict[str, Any]]:
        """Stored statistics windows (every replica), oldest first, as plain dicts.

        ``versions`` keeps only those ``(model, version)`` pairs (e.g. a run's models).
        """
        query = sa.select(SqlInferenceStats).order_by(SqlInferenceStats.window_start,
                                                      SqlInferenceStats.id)
        if since is not None:
            query = query.where(SqlInferenceStats.window_start >= since)
        if model is not None:
            query = query.where(SqlInferenceStats.model == model)
        if version is not None:
            query = query.where(SqlInferenceStats.version == version)
        if versions is not None:
            pairs = [(str(m), int(v)) for m, v in versions]
            if not pairs:
                return []
            query = query.where(sa.tuple_(SqlInferenceStats.model, SqlInferenceStats.version)
                                .in_(pairs))
        with self._read() as s:  # type: ignore[attr-defined]
            return [
                {c: getattr(r, c) for c in (
                    "replica", "model", "version", "window_start", "window_s", "requests",
                    "errors", "rows", "latency_sum_ms", "histogram", "process")}
                for r in s.scalars(query)
            ]
