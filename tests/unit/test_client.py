"""fleetlearn.Client and ``fleetlearn predict`` against a real uvicorn server on loopback.

The model is fitted here (no Ray) with fleetlearn's own preprocessing and registered
in a temporary registry, as training would.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from live_server import free_port, serving
from model_fixtures import iris_frame
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import fleetlearn
from fleetlearn.api import create_app
from fleetlearn.cli import main
from fleetlearn.client import Client, predictions_frame
from fleetlearn.data import build_preprocessor, load_dataset
from fleetlearn.errors import ApiError, FleetlearnError, ServerUnreachableError
from fleetlearn.registry import Registry
from fleetlearn.serving import ServeSettings

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass
class Server:
    url: str
    registry: Registry
    admin_key: str
    predict_key: str
    read_key: str
    iris_csv: Path


def _iris(folder: Path) -> Path:
    frame = iris_frame()
    frame.columns = [*FEATURES, "species"]
    path = folder / "iris.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("client")
    url = f"sqlite:///{folder}/registry.db"
    reg = Registry(url, artifact_dir=folder / "artifacts")
    csv = _iris(folder)
    ds = load_dataset(csv, "species")
    pipe = Pipeline([("pre", build_preprocessor(ds.schema, scale=True)),
                     ("model", LogisticRegression(max_iter=500))]).fit(ds.X, ds.y)
    reg.register_model("iris-logreg", estimator=pipe, input_schema=ds.schema.to_dict(),
                       params={"estimator": "sklearn.linear_model.LogisticRegression"},
                       metrics={"test": {"accuracy": 0.97}, "primary_metric": "accuracy"})
    _, admin = reg.create_api_key("admin", "admin")
    _, predict = reg.create_api_key("app", "predict")
    _, read = reg.create_api_key("viewer", "read")
    port = free_port()
    settings = ServeSettings(registry_url=url, artifact_dir=str(folder / "artifacts"),
                             data_dir=str(folder / "data"), port=port, max_rows=100)
    try:
        with serving(create_app(settings), port) as url:
            yield Server(url, reg, admin, predict, read, csv)
    finally:
        reg.close()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, server.admin_key) as c:
        yield c


def test_client_is_exported() -> None:
    assert "Client" in fleetlearn.__all__
    assert fleetlearn.Client is Client


def test_health_info_and_models(client: Client) -> None:
    assert client.health() == {"status": "ok"}
    assert client.ready()["status"] == "ready"
    assert client.info()["auth_required"] is True
    models = client.models()
    assert [m["name"] for m in models] == ["iris-logreg"]
    assert client.models(task="regression") == []
    versions = client.model_versions("iris-logreg")
    assert [v["version"] for v in versions["versions"]] == [1]
    one = client.model_version("iris-logreg", 1)
    assert one["input_schema"]["target"] == "species"


def test_predict_accepts_records_frames_and_columns(client: Client, server: Server) -> None:
    frame = pd.read_csv(server.iris_csv).drop(columns="species")
    first = frame.iloc[0].to_dict()
    by_records = client.predict("iris-logreg", [first])
    assert by_records["model"] == "iris-logreg"
    assert by_records["version"] == 1
    assert by_records["predictions"] == ["setosa"]
    by_columns = client.predict("iris-logreg", [list(first.values())], columns=list(first))
    assert by_columns["predictions"] == ["setosa"]
    sample = frame.iloc[[0, 60, 120]].copy()
    sample.iloc[1, 0] = np.nan  # missing values travel as null and are imputed
    answer = client.predict("iris-logreg:1", sample, return_proba=True)
    assert answer["predictions"] == ["setosa", "versicolor", "virginica"]
    assert answer["classes"] == ["setosa", "versicolor", "virginica"]
    assert sum(answer["probabilities"][0].values()) == pytest.approx(1.0)

    out = client.predict_frame("iris-logreg", sample, return_proba=True)
    assert list(out.columns) == ["prediction", "proba_setosa", "proba_versicolor",
                                 "proba_virginica"]
    assert list(out.index) == list(sample.index)
    assert out.attrs == {"model": "iris-logreg", "version": 1}
    assert predictions_frame(by_records).columns.tolist() == ["prediction"]


def test_input_errors_carry_the_servers_detail_and_every_problem(client: Client) -> None:
    with pytest.raises(ApiError) as caught:
        client.predict("iris-logreg", [{"sepal_length": "long", "sepal_width": 3.0}])
    err = caught.value
    assert isinstance(err, FleetlearnError)
    assert err.status == 422
    assert err.error == "InputError"
    assert str(err) == err.detail
    assert "iris-logreg" in err.detail
    assert len(err.errors) >= 3  # a wrong type and two missing columns
    assert all({"loc", "msg", "type"} <= set(p) for p in err.errors)


def test_not_found_and_roles_map_to_api_errors(server: Server) -> None:
    with Client(server.url, server.read_key) as reader:
        with pytest.raises(ApiError) as caught:
            reader.model_versions("iris-logreggg")
        assert caught.value.status == 404
        assert caught.value.error == "NotFoundError"
        assert "iris-logreg" in str(caught.value)  # the server's suggestion
        with pytest.raises(ApiError) as caught:
            reader.predict("iris-logreg", [{"sepal_length": 1.0}])
        assert caught.value.status == 403
        assert "'predict'" in str(caught.value)
    with Client(server.url, api_key="") as anonymous, pytest.raises(ApiError) as caught:
        anonymous.models()
    assert caught.value.status == 401
    assert "Authorization: Bearer" in str(caught.value)
    with Client(server.url, "flk_wrong") as wrong, pytest.raises(ApiError) as caught:
        wrong.models()
    assert caught.value.status == 401
    assert "Unknown or revoked" in str(caught.value)


def test_key_and_environment_defaults(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLEARN_URL", server.url)
    monkeypatch.setenv("FLEETLEARN_API_KEY", server.predict_key)
    with Client() as c:
        assert c.url == server.url
        assert c.predict("iris-logreg", [{"sepal_length": 5.1, "sepal_width": 3.5,
                                         "petal_length": 1.4, "petal_width": 0.2}]
                         )["predictions"] == ["setosa"]


def test_aliases_keys_stats_and_metrics(client: Client) -> None:
    moved = client.set_alias("iris-logreg", "production", 1)
    assert moved["aliases"] == ["production"]
    assert client.predict("iris-logreg@production", [
        {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
         "petal_width": 0.2}])["version"] == 1
    assert client.delete_alias("iris-logreg", "production") is None
    assert client.model_versions("iris-logreg")["aliases"] == {}

    created = client.create_key("ci", "read")
    assert created["key"].startswith("flk_")
    assert created["role"] == "read"
    assert "ci" in {k["name"] for k in client.keys()}
    assert client.revoke_key("ci")["revoked_at"] is not None
    assert "ci" not in {k["name"] for k in client.keys()}
    with pytest.raises(ApiError) as caught:
        client.create_key("bad", "superuser")
    assert caught.value.status == 422

    stats = client.stats(model="iris-logreg")
    assert stats["scope"] == "replica"
    assert any(m["model"] == "iris-logreg" for m in stats["models"])
    text = client.metrics()
    assert "fleetlearn_" in text
    assert "iris-logreg" in text


def test_cluster_of_a_server_without_one_is_local(client: Client) -> None:
    answer = client.cluster()
    assert answer["mode"] == "local"
    assert answer["nodes"] == []
    assert answer["address"] is None


def test_upload_and_run_requests(client: Client, server: Server) -> None:
    uploaded = client.upload_dataset(server.iris_csv, name="flowers")
    assert uploaded["name"] == "flowers.csv"
    assert uploaded["rows"] == 150
    assert "flowers.csv" in {d["name"] for d in client.datasets()}
    with pytest.raises(ApiError) as caught:
        client.start_run("flowers.csv", "colour", folds=3)
    assert caught.value.status == 422
    assert "Target column 'colour'" in str(caught.value)
    with pytest.raises(ApiError) as caught:
        client.start_run("flowers.csv", "species", schedule="sometimes")
    assert caught.value.status == 422
    assert caught.value.error == "ValidationError"
    assert "schedule" in str(caught.value)
    with pytest.raises(FleetlearnError, match="No file"):
        client.upload_dataset(server.iris_csv.with_name("missing.csv"))
    assert client.runs() == []
    with pytest.raises(ApiError) as caught:
        client.run("0123456789ab")
    assert caught.value.status == 404
    with pytest.raises(ApiError) as caught:
        client.resume_run("0123456789ab")
    assert (caught.value.status, caught.value.error) == (404, "NotFoundError")


def test_connection_refused_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url) as c, pytest.raises(ServerUnreachableError) as caught:
        c.health()
    message = str(caught.value)
    assert url in message
    assert "connection refused" in message
    assert "\n" not in message
    assert caught.value.status is None


def test_a_server_that_is_not_fleetlearn_is_named(tmp_path: Path) -> None:
    class Plain(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"<html>Bad Gateway</html>"
            self.send_response(502)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Plain)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        with Client(f"http://127.0.0.1:{httpd.server_port}") as c, \
                pytest.raises(ApiError) as caught:
            c.models()
        assert caught.value.status == 502
        assert "HTTP 502" in str(caught.value)
        assert "Bad Gateway" in str(caught.value)
    finally:
        httpd.shutdown()


def test_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(FleetlearnError, match="CA file .* not found"):
        Client("https://127.0.0.1:1", verify=str(tmp_path / "ca.pem"))


# ----------------------------------------------------------------- fleetlearn predict


def test_cli_predict_writes_predictions_next_to_the_rows(
        server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "pred.csv"
    code = main(["predict", "iris-logreg", str(server.iris_csv), "--proba", "-o", str(out),
                 "--url", server.url, "--api-key", server.predict_key, "--batch-size", "40"])
    assert code == 0, capsys.readouterr().err
    result = pd.read_csv(out)
    source = pd.read_csv(server.iris_csv)
    assert len(result) == 150
    assert list(result.columns) == [*source.columns, "prediction", "proba_setosa",
                                    "proba_versicolor", "proba_virginica"]
    pd.testing.assert_frame_equal(result[source.columns], source)
    assert (result["prediction"] == result["species"]).mean() > 0.9
    assert np.allclose(result.filter(like="proba_").sum(axis=1), 1.0)
    assert "150 prediction(s) by iris-logreg:1" in capsys.readouterr().err


def test_cli_predict_prints_a_table_without_output(
        server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = tmp_path / "few.parquet"
    pd.read_csv(server.iris_csv).drop(columns="species").iloc[[0, 100]].to_parquet(small)
    code = main(["predict", "iris-logreg", str(small), "--url", server.url,
                 "--api-key", server.predict_key])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "setosa" in captured.out
    assert "virginica" in captured.out
    assert "iris-logreg:1" in captured.out


def test_cli_predict_bad_rows_are_one_line_and_exit_2(
        server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = pd.read_csv(server.iris_csv).drop(columns="species").astype(object)
    frame.loc[47, "petal_width"] = "wide"  # in the second batch of 40 rows
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    code = main(["predict", "iris-logreg", str(bad), "--url", server.url,
                 "--api-key", server.predict_key, "--batch-size", "40",
                 "-o", str(tmp_path / "never.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: bad.csv:")
    assert len(err.splitlines()) == 1
    assert "47" in err  # the row counted from the start of the file, not of the batch
    assert not (tmp_path / "never.csv").exists()


def test_cli_predict_without_a_server_is_one_line(tmp_path: Path, server: Server,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = main(["predict", "iris-logreg", str(server.iris_csv), "--url", url])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (f"error: Cannot reach the fleetlearn server at {url}: connection refused. "
                   "Start it with 'fleetlearn serve', or check the URL (--url / "
                   "$FLEETLEARN_URL).")


def test_cli_models_verbs_ask_a_server_with_url(
        server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    """`models list|show|alias --url` read and write through the API, with its roles."""
    remote = ["--url", server.url, "--api-key", server.admin_key]
    assert main(["models", "list", *remote, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(m["name"], m["version"]) for m in listed] == [("iris-logreg", 1)]
    assert main(["models", "alias", "iris-logreg", "1", "remote-prod", *remote]) == 0
    capsys.readouterr()
    assert server.registry.aliases("iris-logreg")["remote-prod"] == 1
    assert main(["models", "show", "iris-logreg@remote-prod", *remote, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 1
    assert "remote-prod" in shown["aliases"]
    assert [c["name"] for c in shown["input_schema"]["columns"]] == FEATURES
    # A read key may list but not move aliases: one line, exit 2, nothing changed.
    read = ["--url", server.url, "--api-key", server.read_key]
    assert main(["models", "alias", "iris-logreg", "1", "other", *read]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "role" in err
    assert "other" not in server.registry.aliases("iris-logreg")
    assert main(["models", "show", "iris-logreg@missing", *read]) == 2
    assert "no alias 'missing'" in capsys.readouterr().err
    server.registry.delete_alias("iris-logreg", "remote-prod")
