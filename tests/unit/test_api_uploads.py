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


def test_same_name_same_content_is_idempotent_other_content_gets_a_name_of_its_own(
        api: TestClient, iris_csv: bytes, folders: dict[str, Path]) -> None:
    assert api.post("/v1/datasets", files={"file": ("iris.csv", iris_csv)}).status_code == 201
    again = api.post("/v1/datasets", files={"file": ("iris.csv", iris_csv)})
    assert again.status_code == 200
    assert again.json()["name"] == "iris.csv"
    assert again.json()["sha256"] == hashlib.sha256(iris_csv).hexdigest()

    # Other content under a taken file name: stored beside it, under the content's hash.
    changed = iris_csv + b"5.0,3.0,1.5,0.2,0\n"
    digest = hashlib.sha256(changed).hexdigest()
    r = api.post("/v1/datasets", files={"file": ("iris.csv", changed)})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == f"iris-{digest[:8]}.csv"
    assert r.json()["label"] == "iris.csv"
    assert r.json()["rows"] == 151
    assert (folders["data"] / "iris.csv").read_bytes() == iris_csv  # never replaced
    assert (folders["data"] / f"iris-{digest[:8]}.csv").read_bytes() == changed
    again = api.post("/v1/datasets", files={"file": ("iris.csv", changed)})
    assert (again.status_code, again.json()["name"]) == (200, f"iris-{digest[:8]}.csv")

    # A name asked for with the 'name' field is kept exactly, or refused.
    r = api.post("/v1/datasets", files={"file": ("iris.csv", changed)},
                 data={"name": "iris"})
    assert r.status_code == 409
    assert r.json()["error"] == "Conflict"
    assert "'iris.csv' already exists" in r.json()["detail"]
    r = api.post("/v1/datasets", files={"file": ("iris.csv", changed)},
                 data={"name": "iris_v2"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "iris_v2.csv"  # the suffix taken from the file
    assert _tables(folders["data"]) == sorted(["iris.csv", f"iris-{digest[:8]}.csv",
                                               "iris_v2.csv"])


@pytest.mark.parametrize(("filename", "stored"), [
    ("../evil.csv", "evil.csv"), ("sub/dir.csv", "dir.csv"), ("..\\evil.csv", "evil.csv"),
    (".hidden.csv", "hidden.csv"), ("a..csv", "a.csv"), ("", "table.csv"),
    ("Ventes 2024 (\u00e9t\u00e9).CSV", "Ventes_2024_ete.csv"), ("\u8868.csv", "table.csv"),
    ("report; rm -rf *.csv", "report_rm_-rf.csv"), ("x" * 300 + ".csv", "x" * 64 + ".csv"),
    ("iris", "iris.csv"), ("iris.xlsx", "iris_xlsx.csv"),
])
def test_the_server_chooses_the_stored_name_and_keeps_the_file_name_as_a_label(
        api: TestClient, iris_csv: bytes, folders: dict[str, Path], filename: str,
        stored: str) -> None:
    r = api.post("/v1/datasets", files={"file": (filename, iris_csv)})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == stored
    assert r.json()["label"] == filename[:255]
    assert _tables(folders["data"]) == [stored]  # nothing outside, no temporary file
    assert not (folders["data"].parent / "evil.csv").exists()
    listed = api.get("/v1/datasets").json()["data"]
    assert [(d["name"], d["label"]) for d in listed] == [(stored, r.json()["label"])]


def test_a_name_field_with_a_path_is_stored_under_its_last_part(
        api: TestClient, iris_csv: bytes, folders: dict[str, Path]) -> None:
    r = api.post("/v1/datasets", files={"file": ("iris.csv", iris_csv)},
                 data={"name": "../../flowers.csv"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "flowers.csv"
    assert _tables(folders["data"]) == ["flowers.csv"]


def test_the_suffix_follows_the_content_not_the_file_name(
        api: TestClient, tmp_path: Path, folders: dict[str, Path]) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]}).to_parquet(path)
    r = api.post("/v1/datasets", files={"file": ("really.csv", path.read_bytes())})
    assert r.status_code == 201, r.text
    assert (r.json()["name"], r.json()["rows"], r.json()["columns"]) == \
        ("really.parquet", 3, ["x", "y"])
    r = api.post("/v1/datasets", files={"file": ("text.parquet", b"x;y\n1;2\n3;4\n")})
    assert r.status_code == 201, r.text
    assert (r.json()["name"], r.json()["rows"], r.json()["columns"]) == \
        ("text.csv", 2, ["x", "y"])
    # A run trains on the stored name.
    assert sorted(d["name"] for d in api.get("/v1/datasets").json()["data"]) == \
        ["really.parquet", "text.csv"]


@pytest.mark.parametrize(("filename", "content", "says"), [
    ("empty.csv", b"", "the file is empty"),
    ("header.csv", b"a,b,c\n", "no rows"),
    ("zipped.csv", b"PK\x03\x04" + b"\x00" * 100, "compressed archive (zip"),
    ("table.xlsx", b"PK\x03\x04\x14\x00\x06\x00", ".xlsx and .docx files are zip"),
    ("t.csv.gz", b"\x1f\x8b\x08\x00" + b"\x00" * 50, "compressed archive (gzip)"),
    ("scan.csv", b"%PDF-1.7\n%\xe2\xe3\n1 0 obj", "a PDF document"),
    ("pic.csv", b"\x89PNG\r\n\x1a\n\x00\x00", "a PNG image"),
    ("prog.csv", b"\x7fELF\x02\x01\x01\x00", "a program (ELF)"),
    ("db.csv", b"SQLite format 3\x00\x10\x00", "an SQLite database"),
    ("rows.csv", b'[{"a": 1}, {"a": 2}]', "it is JSON"),
    ("page.csv", b"<!DOCTYPE html><html><body>hi</body></html>", "HTML or XML"),
    ("blob.csv", b"a,b\n1,\x00\x01\x02\n", "binary data"),
])
def test_content_that_is_not_a_table_is_422_and_not_kept(
        api: TestClient, folders: dict[str, Path], filename: str, content: bytes,
        says: str) -> None:
    r = api.post("/v1/datasets", files={"file": (filename, content)})
    assert r.status_code == 422, r.text
    assert says in r.json()["detail"]
    assert f"'{filename}'" in r.json()["detail"]  # names the upload, not a temp path
    assert ".upload-" not in r.json()["detail"]
    assert str(folders["data"]) not in r.json()["detail"]
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
