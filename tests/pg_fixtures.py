"""PostgreSQL for the tests: fresh databases on the shared server, or a server of the
test's own, to stop and start at will.

:func:`shared_postgres_databases`: a factory of fresh, empty databases on the shared
PostgreSQL (``$FLEETLEARN_TEST_POSTGRES_URL``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``), all dropped afterwards. If it is
not reachable the test fails, unless ``FLEETLEARN_SKIP_POSTGRES=1`` says to skip.

The shared PostgreSQL on 127.0.0.1:5432 belongs to everyone on the machine and is never
restarted: a test that needs the registry to go away runs its own server
(:class:`OwnPostgres`: ``initdb`` + ``pg_ctl`` from the PostgreSQL 15 binaries) in a
temp folder on a free port, as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from live_server import free_port

__all__ = ["PG_ADMIN_URL", "OwnPostgres", "pg_binaries", "shared_postgres_databases"]

PG_ADMIN_URL = os.environ.get(
    "FLEETLEARN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_admin_engine() -> sa.Engine:
    engine = sa.create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        engine.dispose()
        if os.environ.get("FLEETLEARN_SKIP_POSTGRES") == "1":
            pytest.skip("PostgreSQL tests skipped (FLEETLEARN_SKIP_POSTGRES=1)")
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc.orig}). Start it, point "
            "FLEETLEARN_TEST_POSTGRES_URL at a server where you may CREATE DATABASE, or set "
            "FLEETLEARN_SKIP_POSTGRES=1 to skip these tests on purpose.",
            pytrace=False,
        )
    return engine


@contextmanager
def shared_postgres_databases() -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty databases on the shared PostgreSQL (their URLs), all
    dropped when the block ends."""
    admin = _postgres_admin_engine()
    created: list[str] = []

    def create() -> str:
        name = f"fleetlearn_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        created.append(name)
        return admin.url.set(database=name).render_as_string(hide_password=False)

    try:
        yield create
    finally:
        with admin.connect() as conn:
            for name in created:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

PG_BIN = Path(os.environ.get("FLEETLEARN_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def pg_binaries() -> str | None:
    """Why an own PostgreSQL cannot start here (a pytest skip reason), or None."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL binaries in {PG_BIN} (set FLEETLEARN_TEST_PG_BIN)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a 'postgres' user to run PostgreSQL as"
    return None


class OwnPostgres:
    """One PostgreSQL server: ``start()``, ``stop(mode)``, ``refuses()``, ``url``.

    Examples
    --------
    >>> pg = OwnPostgres.create()            # doctest: +SKIP
    >>> pg.stop("fast"); pg.refuses()        # doctest: +SKIP
    True
    """

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    @classmethod
    def create(cls) -> OwnPostgres:
        """initdb a fresh cluster in a temp folder and start it."""
        root = Path(tempfile.mkdtemp(prefix="flpg-", dir="/tmp"))
        root.chmod(0o755)  # the postgres user must reach its data folder
        pg = cls(root, free_port())
        pg.data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(pg.data, "postgres", "postgres")
            shutil.chown(root, "postgres", "postgres")
        pg._run("initdb", "-D", str(pg.data), "-A", "trust", "-U", "postgres", "--no-sync",
                "-E", "UTF8")
        pg.start()
        return pg

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(PG_BIN / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{tool} failed ({out.returncode}): {out.stderr or out.stdout}"
                               f"\n--- server log ---\n{self.server_log()}")
        return out

    def server_log(self) -> str:
        try:
            return self.log.read_text()[-3000:]
        except OSError:
            return ""

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
                "-c fsync=off -c max_connections=50")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w",
                  "-t", "60", "start")
        deadline = time.monotonic() + 30
        while self.refuses():
            assert time.monotonic() < deadline, f"PostgreSQL did not listen:\n{self.server_log()}"
            time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: like a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def refuses(self) -> bool:
        """Whether a TCP connect to the server's port is refused (nothing listens)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                return False
        except ConnectionRefusedError:
            return True

    def destroy(self) -> None:
        """Stop the server if it runs and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
