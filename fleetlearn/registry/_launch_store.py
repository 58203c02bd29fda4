"""Registry methods for the run launcher: training processes before their run exists.

A mixin of :class:`fleetlearn.registry.Registry` (it uses the store's sessions). An
API server writes a launch when it spawns ``fleetlearn train`` (status ``starting``),
then ``recorded`` once the child has written its run, or ``failed`` / ``cancelled``
when it ended before; every API process on the same registry reads it back.
"""

from __future__ import annotations

import sqlalchemy as sa

from fleetlearn.errors import ConfigError, NotFoundError
from fleetlearn.registry._entities import Launch
from fleetlearn.registry._schema import SqlLaunch, utcnow

__all__ = ["LAUNCH_STATUSES", "LaunchStoreMixin"]

LAUNCH_STATUSES = ("starting", "recorded", "failed", "cancelled")


def _launch(row: SqlLaunch) -> Launch:
    return Launch(run_id=row.run_id, pid=row.pid, host=row.host, log=row.log,
                  status=row.status, error=row.error, exit_code=row.exit_code,
                  created_at=row.created_at, updated_at=row.updated_at)


def _check_status(status: str) -> None:
    if status not in LAUNCH_STATUSES:
        raise ConfigError(f"The launch status must be one of {', '.join(LAUNCH_STATUSES)}; "
                          f"got '{status}'.")


class LaunchStoreMixin:
    """Launches of ``fleetlearn train`` processes by API servers."""

    def add_launch(self, run_id: str, pid: int, host: str, log: str) -> Launch:
        """Record a training process just spawned for ``run_id`` (status ``starting``).

        Examples
        --------
        >>> reg.add_launch("3f2a9c01b7de", 4242, "node-1", "/runs/3f2a9c01b7de.log")
        ... # doctest: +SKIP
        """
        now = utcnow()
        row = SqlLaunch(run_id=run_id, pid=int(pid), host=host, log=str(log),
                        status="starting", created_at=now, updated_at=now)
        with self._write() as s:  # type: ignore[attr-defined]
            s.add(row)
            s.flush()
            return _launch(row)

    def set_launch(self, run_id: str, status: str, *, error: str | None = None,
                   exit_code: int | None = None, pid: int | None = None) -> Launch:
        """Move a launch to ``status`` (with why it ended, when it did).

        Raises
        ------
        NotFoundError
            No launch of that run.
        """
        _check_status(status)
        with self._write() as s:  # type: ignore[attr-defined]
            row = s.get(SqlLaunch, run_id)
            if row is None:
                raise NotFoundError(f"No launch of run '{run_id}'.")
            row.status = status
            row.error = error
            row.exit_code = exit_code
            if pid is not None:
                row.pid = int(pid)
            row.updated_at = utcnow()
            return _launch(row)

    def get_launch(self, run_id: str) -> Launch | None:
        """The launch of ``run_id``, or None (a run not started through the API)."""
        with self._read() as s:  # type: ignore[attr-defined]
            row = s.get(SqlLaunch, run_id)
            return _launch(row) if row is not None else None

    def list_launches(self, status: str | None = None, limit: int = 100) -> list[Launch]:
        """Launches, newest first; only those in ``status`` when given."""
        query = sa.select(SqlLaunch).order_by(SqlLaunch.created_at.desc(), SqlLaunch.run_id)
        if status is not None:
            _check_status(status)
            query = query.where(SqlLaunch.status == status)
        with self._read() as s:  # type: ignore[attr-defined]
            return [_launch(r) for r in s.scalars(query.limit(limit))]
