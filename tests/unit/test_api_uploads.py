"""Dataset uploads and run requests through the REST API (no Ray: nothing trains here)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris

from fleetlearn.api import create_app
from fleetlearn.registry import Registry
from fleetlearn.serving import ServeSettings


@pytest.fixture
def iris_csv() -> bytes:
    frame = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    return frame.to_csv(index=False).encode()


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    return {"data": tmp_path / "data", "home": tmp_path / "home"}


def _settings(folders: dict[str, Path], **overrides: object) -> ServeSettings:
    home = folders["home"]
    return ServeSettings(registry_url=f"sqlite:///{home}/registry.db",
                         artifact_dir=str(home / "artifacts"), data_dir=str(folders["data"]),
                         **overrides)  # type: ignore[arg-type]


@pytest.fixture
def api(folders: dict[str, Path]) -> Iterator[TestClient]:
    folders["home"].mkdir(parents=True)
    with TestClient(create_app(_settings(folders))) as client:
        yield client


def _tables(folder: Path) -> list[str]:
    """Every file a user could see in the data folder, temporary ones included."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and not p.name.endswith(".json"))


def test_upload_stores_the_table_and_describes_it(api: TestClient, iris_csv: bytes,
                                                  folders: dict[str, Path]) -> None:
    r = api.post("/v1/datasets", files={"file": ("iris.csv", iris_csv, "text/csv")})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "iris.csv"
    assert body["bytes"] == len(iris_csv)
    assert body["sha256"] == hashlib.sha256(iris_csv).hexdigest()
    assert body["rows"] == 150
    assert body["columns"][-1] == "species"
    assert len(body["columns"]) == 5
    stored = folders["data"] / "iris.csv"
    assert stored.read_bytes() == iris_csv
    assert Path(body["path"]) == stored
    assert _tables(folders["data"]) == ["iris.csv"]  # no temporary file left behind

    listed = api.get("/v1/datasets").json()
    assert listed["count"] == 1
    assert listed["data"][0] == body


def test_upload_parquet_reports_columns_and_rows(api: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]}).to_parquet(path)
    r = api.post("/v1/datasets", files={"file": ("t.parquet", path.read_bytes())})
    assert r.status_code == 201, r.text
    assert r.json()["columns"] == ["x", "y"]
    assert r.json()["rows"] == 3


def test_same_name_same_content_is_idempotent_different_content_is_409(
        api: TestClient, iris_csv: bytes, folders: dict[str, Path]) -> None:
    assert api.post("/v1/datasets", files={"file": ("iris.csv", iris_csv)}).status_code == 201
    again = api.post("/v1/datasets", files={"file": ("iris.csv", iris_csv)})
    assert again.status_code == 200
    assert again.json()["sha256"] == hashlib.sha256(iris_csv).hexdigest()

    changed = iris_csv + b"5.0,3.0,1.5,0.2,0\n"
    r = api.post("/v1/datasets", files={"file": ("iris.csv", changed)})
    assert r.status_code == 409
    assert r.json()["error"] == "Conflict"
    assert "'iris.csv' already exists" in r.json()["detail"]
    assert (folders["data"] / "iris.csv").read_bytes() == iris_csv  # never replaced

    # The way out the message gives: another name (its suffix is taken from the file).
    r = api.post("/v1/datasets", files={"file": ("iris.csv", changed)},
                 data={"name": "iris_v2"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "iris_v2.csv"
    assert r.json()["rows"] == 151
    assert _tables(folders["data"]) == ["iris.csv", "iris_v2.csv"]


@pytest.mark.parametrize("filename", ["../evil.csv", "sub/dir.csv", "..\\evil.csv",
                                      ".hidden.csv", "a..csv"])
def test_path_tricks_are_refused_and_nothing_is_written(
        api: TestClient, iris_csv: bytes, folders: dict[str, Path], filename: str) -> None:
    r = api.post("/v1/datasets", files={"file": (filename, iris_csv)})
    assert r.status_code == 422
    assert r.json()["error"] == "ConfigError"
    assert "file name" in r.json()["detail"]
    assert _tables(folders["data"]) == []
    assert not (folders["data"].parent / "evil.csv").exists()


def test_a_name_field_with_a_path_is_refused(api: TestClient, iris_csv: bytes,
                                             folders: dict[str, Path]) -> None:
    r = api.post("/v1/datasets", files={"file": ("iris.csv", iris_csv)},
                 data={"name": "../../iris.csv"})
    assert r.status_code == 422
    assert "not a plain file name" in r.json()["detail"]
    assert _tables(folders["data"]) == []


@pytest.mark.parametrize(("filename", "content", "says"), [
    ("empty.csv", b"", "the file is empty"),
    ("header.csv", b"a,b,c\n", "no rows"),
    ("broken.parquet", b"this is not parquet", "as Parquet"),
    ("zipped.csv", b"PK\x03\x04" + b"\x00" * 100, "compressed"),
    ("notes.docx", b"hello", "must end in one of"),
])
def test_unreadable_tables_are_422_and_not_kept(api: TestClient, folders: dict[str, Path],
                                                filename: str, content: bytes,
                                                says: str) -> None:
    r = api.post("/v1/datasets", files={"file": (filename, content)})
    assert r.status_code == 422, r.text
    assert says in r.json()["detail"]
    if filename != "notes.docx":
        assert f"'{filename}'" in r.json()["detail"]  # names the upload, not a temp path
        assert ".upload-" not in r.json()["detail"]
    assert _tables(folders["data"]) == []
    assert api.get("/v1/datasets").json()["count"] == 0


def test_uploads_beyond_the_limit_are_413_and_not_kept(folders: dict[str, Path]) -> None:
    folders["home"].mkdir(parents=True)
    big = b"x,y\n" + b"1.0,2.0\n" * 20_000  # 160 kB, limit 64 KiB
    with TestClient(create_app(_settings(folders, upload_max_mb=1 / 16))) as api:
        r = api.post("/v1/datasets", files={"file": ("big.csv", big)})
        assert r.status_code == 413
        assert r.json()["error"] == "TooLarge"
        assert "0.0625 MiB" in r.json()["detail"]

        # Without a Content-Length (chunked): counted while streaming, refused the same way.
        boundary = "b0undary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode()

        def chunks() -> Iterator[bytes]:
            yield head
            for i in range(0, len(big), 8192):
                yield big[i:i + 8192]
            yield f"\r\n--{boundary}--\r\n".encode()

        r = api.post("/v1/datasets", content=chunks(),
                     headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413
        assert r.json()["error"] == "TooLarge"
        assert _tables(folders["data"]) == []

        small = b"x,y\n1,2\n3,4\n"
        assert api.post("/v1/datasets",
                        files={"file": ("small.csv", small)}).status_code == 201


def test_an_upload_that_is_not_multipart_is_415(api: TestClient, iris_csv: bytes) -> None:
    r = api.post("/v1/datasets", content=iris_csv, headers={"content-type": "text/csv"})
    assert r.status_code == 415
    assert "multipart/form-data" in r.json()["detail"]
    r = api.post("/v1/datasets", data={"name": "x.csv"})
    assert r.status_code in (415, 422)
    assert "file" in r.json()["detail"]


def test_uploads_need_the_train_role(folders: dict[str, Path], iris_csv: bytes) -> None:
    folders["home"].mkdir(parents=True)
    reg = Registry(f"sqlite:///{folders['home']}/registry.db",
                   artifact_dir=folders["home"] / "artifacts")
    _, reader = reg.create_api_key("viewer", "read")
    _, trainer = reg.create_api_key("trainer", "train")
    with TestClient(create_app(_settings(folders))) as api:
        files = {"file": ("iris.csv", iris_csv)}
        assert api.post("/v1/datasets", files=files).status_code == 401
        r = api.post("/v1/datasets", files=files,
                     headers={"authorization": f"Bearer {reader}"})
        assert r.status_code == 403
        assert "'train'" in r.json()["detail"]
        assert _tables(folders["data"]) == []
        r = api.post("/v1/datasets", files=files,
                     headers={"authorization": f"Bearer {trainer}"})
        assert r.status_code == 201
        # Reading the list is enough for a read key.
        r = api.get("/v1/datasets", headers={"authorization": f"Bearer {reader}"})
        assert r.json()["count"] == 1


def test_upload_route_is_documented_in_openapi(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    upload = spec["paths"]["/v1/datasets"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"]["format"] == "binary"
    assert {"201", "409", "413", "422"} <= set(upload["responses"])
    run = spec["paths"]["/v1/runs"]["post"]
    assert run["responses"]["202"]
    assert "examples" in spec["components"]["schemas"]["RunRequest"]
