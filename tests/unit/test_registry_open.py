"""Opening a registry: configuration defaults, URL errors, SQLite settings, migrations."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fleetlearn import config
from fleetlearn.errors import RegistryError
from fleetlearn.registry import Registry, head_revision
from fleetlearn.registry._schema import Base

REGISTRY_TABLES = {
    "runs",
    "launches",
    "datasets",
    "run_datasets",
    "trials",
    "trial_units",
    "model_versions",
    "api_keys",
    "inference_stats",
    "aliases",
}


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


# ------------------------------------------------------------------------ config


def test_config_defaults_follow_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLEETLEARN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLEETLEARN_REGISTRY_URL", raising=False)
    monkeypatch.delenv("FLEETLEARN_ARTIFACTS", raising=False)
    assert config.fleetlearn_home() == tmp_path / "home"
    assert (tmp_path / "home").is_dir()
    assert config.default_registry_url() == f"sqlite:///{tmp_path / 'home' / 'registry.db'}"
    assert config.default_artifact_dir() == tmp_path / "home" / "artifacts"

    monkeypatch.setenv("FLEETLEARN_REGISTRY_URL", "postgresql+psycopg://db/reg")
    monkeypatch.setenv("FLEETLEARN_ARTIFACTS", str(tmp_path / "shared"))
    assert config.default_registry_url() == "postgresql+psycopg://db/reg"
    assert config.default_artifact_dir() == tmp_path / "shared"


def test_registry_without_arguments_uses_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLEETLEARN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLEETLEARN_REGISTRY_URL", raising=False)
    monkeypatch.delenv("FLEETLEARN_ARTIFACTS", raising=False)
    with Registry() as reg:
        assert reg.url == f"sqlite:///{tmp_path / 'home' / 'registry.db'}"
        assert reg.artifacts.root == tmp_path / "home" / "artifacts"
        reg.create_run({}, seed=0)
    assert (tmp_path / "home" / "registry.db").is_file()


# ---------------------------------------------------------------------- URL errors


def test_unreachable_postgres_fails_fast_with_a_clear_message() -> None:
    start = time.monotonic()
    with pytest.raises(RegistryError) as info:
        Registry("postgresql+psycopg://alice:s3cret@127.0.0.1:1/registry")
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "postgresql+psycopg://alice:***@127.0.0.1:1/registry" in message
    assert "s3cret" not in message
    assert "Is PostgreSQL running" in message
    assert "FLEETLEARN_REGISTRY_URL" in message


def test_plain_postgresql_scheme_uses_psycopg() -> None:
    with pytest.raises(RegistryError, match="postgresql\\+psycopg://127.0.0.1:1/x"):
        Registry("postgresql://127.0.0.1:1/x")


def test_unparseable_url_error_still_masks_the_password() -> None:
    with pytest.raises(RegistryError, match="registry URL") as info:
        Registry("postgresql://bob:hunter2@db:notaport/reg")
    assert "hunter2" not in str(info.value)
    assert "bob:***@db" in str(info.value)


@pytest.mark.parametrize("url", ["mysql://u@h/db", "nosuchdb://x", "not a url"])
def test_unsupported_url_is_a_registry_error(url: str) -> None:
    with pytest.raises(RegistryError, match="registry URL"):
        Registry(url)


def test_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "registry.db").write_text("hello, I am a text file " * 100)
    with pytest.raises(RegistryError, match="registry.db"):
        Registry(_sqlite_url(tmp_path), artifact_dir=tmp_path)


def test_in_memory_sqlite_works() -> None:
    with Registry("sqlite://", artifact_dir="/nonexistent-unused") as reg:
        run = reg.create_run({}, seed=0)
        assert reg.get_run(run.id) == run


# -------------------------------------------------------------------- SQLite setup


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    with Registry(_sqlite_url(tmp_path), artifact_dir=tmp_path) as reg:
        with reg._engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
            }
    assert pragma == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 1,  # NORMAL
        "busy_timeout": 30000,
    }


# ---------------------------------------------------------------------- migrations


def test_migrations_create_exactly_the_registry_tables(tmp_path: Path) -> None:
    Registry(_sqlite_url(tmp_path), artifact_dir=tmp_path).close()
    engine = sa.create_engine(_sqlite_url(tmp_path))
    try:
        assert set(sa.inspect(engine).get_table_names()) == REGISTRY_TABLES | {"alembic_version"}
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head_revision()
            # The ORM mapping and the migrated schema agree (no pending autogenerate diff).
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()


def test_reopening_keeps_data(tmp_path: Path) -> None:
    with Registry(_sqlite_url(tmp_path), artifact_dir=tmp_path) as reg:
        run = reg.create_run({"k": "v"}, seed=3)
    with Registry(_sqlite_url(tmp_path), artifact_dir=tmp_path) as reg:
        assert reg.get_run(run.id).config == {"k": "v"}


def test_registry_from_a_newer_fleetlearn_is_refused(tmp_path: Path) -> None:
    Registry(_sqlite_url(tmp_path), artifact_dir=tmp_path).close()
    engine = sa.create_engine(_sqlite_url(tmp_path))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    engine.dispose()
    with pytest.raises(RegistryError, match="upgrade fleetlearn"):
        Registry(_sqlite_url(tmp_path), artifact_dir=tmp_path)


def test_migrations_ship_inside_the_package() -> None:
    # Package-relative paths: what pyproject's package-data must include in the wheel.
    import fleetlearn.registry as pkg

    migrations = Path(pkg.__file__).parent / "migrations"
    assert (migrations / "env.py").is_file()
    assert (migrations / "script.py.mako").is_file()
    assert (migrations / "versions" / "0001_initial.py").is_file()


def test_registry_public_api_is_exported() -> None:
    import fleetlearn.registry as pkg

    for name in pkg.__all__:
        assert hasattr(pkg, name), name
