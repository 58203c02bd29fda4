"""Bad input: one clear line, exit code 2, nothing written (and nothing damaged).

Every check here happens before Ray starts, which is why these are unit tests: the
autouse fixture makes any ``ray.init`` fail the test.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from fleetlearn.cli import main
from fleetlearn.registry import Registry


@pytest.fixture
def table(tmp_path: Path) -> Path:
    frame = pd.DataFrame({
        "age": [23, 45, 31, 52, 38, 27, 61, 44, 35, 29] * 3,
        "plan": ["basic", "pro", "plus"] * 10,
        "label": ["yes", "no"] * 15,
    })
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def registry_with_a_model(tmp_path: Path) -> Registry:
    """A registry that already holds one model, to check that errors damage nothing."""
    reg = Registry()
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    reg.register_model("existing", estimator=model, metrics={}, params={}, input_schema={})
    return reg


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    assert err.startswith("error: ")
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


@pytest.mark.parametrize(
    ("make_args", "words"),
    [
        (lambda t: [str(t.parent / "missing.csv"), "-t", "label"], ["missing.csv"]),
        (lambda t: [str(t), "-t", "lable"], ["'lable'", "Did you mean 'label'"]),
        (lambda t: [str(t), "-t", "label", "-m", "random_forrest"], ["random_forest"]),
        (lambda t: [str(t), "-t", "label", "-m", "svr"], ["svr", "regression"]),
        (lambda t: [str(t), "-t", "label", "-m", "random_forest:n_estimator=5"],
         ["n_estimator", "n_estimators"]),
        (lambda t: [str(t), "-t", "label", "-m", "random_forest:n_estimators=-3"],
         ["n_estimators", "-3"]),
        (lambda t: [str(t), "-t", "label", "-m", "sklearn.nope.Model"], ["sklearn.nope.Model"]),
        (lambda t: [str(t), "-t", "label", "--folds", "1"], ["folds", "[2, inf)"]),
        (lambda t: [str(t), "-t", "label", "--folds", "40"], ["fold"]),
        (lambda t: [str(t), "-t", "label", "--metric", "r2"], ["r2"]),
        (lambda t: [str(t), "-t", "label", "--task", "regresion"], ["regression"]),
        (lambda t: [str(t), "-t", "label", "--schedule", "sometimes"], ["sequential"]),
        (lambda t: [str(t)], ["--target"]),
        (lambda t: ["-t", "label"], ["No dataset"]),
        (lambda t: [str(t), "-t", "label", "--address", "127.0.0.1:1"],
         ["127.0.0.1:1", "ray start"]),
        (lambda t: [str(t), "-t", "label", "--registry",
                    "postgresql+psycopg://nobody@127.0.0.1:1/none"], ["127.0.0.1:1"]),
    ],
    ids=["missing-file", "missing-target", "unknown-model", "wrong-task-model",
         "unknown-param", "bad-param-value", "bad-dotted-path", "folds-1", "too-few-rows",
         "wrong-task-metric", "unknown-task", "unknown-schedule", "no-target", "no-data",
         "unreachable-ray", "unreachable-registry"],
)
def test_bad_train_input(capsys: pytest.CaptureFixture[str], table: Path,
                         registry_with_a_model: Registry, make_args, words: list[str]) -> None:
    code, err = run_cli(capsys, "train", *make_args(table))
    assert_one_line_error(code, err, *words)
    # Nothing half-written; what was stored is intact.
    assert registry_with_a_model.list_runs() == []
    assert registry_with_a_model.load_model("existing").predict([[3.0]]).tolist() == [1]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ["empty"]),
        (b"a,b,label\n", ["no rows"]),
        (b"\x00\x01\x02\xff\xfe garbage \x00", ["garbage.csv"]),
    ],
    ids=["empty-file", "header-only", "binary-garbage"],
)
def test_unreadable_tables(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes,
                           words: list[str]) -> None:
    path = tmp_path / "garbage.csv"
    path.write_bytes(content)
    code, err = run_cli(capsys, "train", str(path), "-t", "label")
    assert_one_line_error(code, err, *words)
    assert Registry().list_runs() == []


def test_single_class_target(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    pd.DataFrame({"x": range(30), "y": ["a"] * 30}).to_csv(path, index=False)
    code, err = run_cli(capsys, "train", str(path), "-t", "y")
    assert_one_line_error(code, err, "two classes", "'a'")


def test_second_bad_table_stops_the_whole_run_before_writing(
        capsys: pytest.CaptureFixture[str], table: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"x": range(30), "z": range(30)}).to_csv(bad, index=False)
    code, err = run_cli(capsys, "train", str(table), str(bad), "-t", "label")
    assert_one_line_error(code, err, "bad.csv", "'label'")
    assert Registry().list_runs() == []


def test_models_and_runs_errors(capsys: pytest.CaptureFixture[str],
                                registry_with_a_model: Registry) -> None:
    code, err = run_cli(capsys, "models", "show", "existin")
    assert_one_line_error(code, err, "existin", "Did you mean 'existing'")
    code, err = run_cli(capsys, "models", "alias", "existing", "7", "production")
    assert_one_line_error(code, err, "7")
    code, err = run_cli(capsys, "runs", "show", "abc123")
    assert_one_line_error(code, err, "abc123")
    code, err = run_cli(capsys, "models", "delete", "existing", "2", "--yes")
    assert_one_line_error(code, err, "2")
    assert registry_with_a_model.get_model_version("existing").version == 1


def test_alias_and_delete_through_the_cli(capsys: pytest.CaptureFixture[str],
                                          registry_with_a_model: Registry) -> None:
    reg = registry_with_a_model
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    reg.register_model("existing", estimator=model, metrics={}, params={}, input_schema={})
    assert main(["models", "alias", "existing", "1", "production"]) == 0
    assert reg.get_model_version("existing", alias="production").version == 1
    assert main(["models", "alias", "existing", "2", "production"]) == 0
    assert reg.aliases("existing") == {"production": 2}
    assert main(["models", "delete", "existing", "2", "--yes"]) == 0
    assert reg.aliases("existing") == {}
    assert [v.version for v in reg.list_models("existing")] == [1]
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    assert '"name": "existing"' in capsys.readouterr().out


def test_catalog_lists_both_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "--json"]) == 0
    import json

    entries = json.loads(capsys.readouterr().out)
    tasks = {(e["name"], e["task"]) for e in entries}
    assert ("random_forest", "classification") in tasks
    assert ("svr", "regression") in tasks
    assert sum(1 for e in entries if e["task"] == "classification") >= 8
    assert sum(1 for e in entries if e["task"] == "regression") >= 7


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["train", "--bogus"], ["No such option: --bogus"]),
        (["train", "x.csv", "--folds", "many"], ["--folds"]),
        (["runs", "show"], ["Missing argument"]),
        (["no-such-verb"], ["No such command"]),
    ],
    ids=["unknown-option", "bad-int", "missing-argument", "unknown-command"],
)
def test_usage_errors_show_usage_not_a_traceback(capsys: pytest.CaptureFixture[str],
                                                  args: list[str], words: list[str]) -> None:
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err + captured.out
    assert "Usage: fleetlearn" in captured.err
    for word in words:
        assert word in captured.err


def write_run_file(folder: Path, table: Path, **extra: object) -> Path:
    import yaml

    doc = {"datasets": [{"path": str(table), "target": "label"}], "folds": 3, **extra}
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_command_line_options_override_the_run_file(capsys: pytest.CaptureFixture[str],
                                                    table: Path,
                                                    registry_with_a_model: Registry) -> None:
    run_file = write_run_file(table.parent, table)
    # 40 folds on 30 rows is impossible: the error proves --folds replaced the file's 3.
    code, err = run_cli(capsys, "train", "--config", str(run_file), "--folds", "40")
    assert_one_line_error(code, err, "fold")
    code, err = run_cli(capsys, "train", "--config", str(run_file), "-m", "random_forrest")
    assert_one_line_error(code, err, "random_forest")
    assert registry_with_a_model.list_runs() == []


def test_target_with_a_run_file_is_refused(capsys: pytest.CaptureFixture[str],
                                           table: Path) -> None:
    run_file = write_run_file(table.parent, table)
    code, err = run_cli(capsys, "train", "--config", str(run_file), "-t", "label")
    assert_one_line_error(code, err, "--target", "run file")


def test_dataset_names_must_make_valid_model_names(capsys: pytest.CaptureFixture[str],
                                                   table: Path,
                                                   registry_with_a_model: Registry) -> None:
    run_file = write_run_file(table.parent, table)
    import yaml

    doc = yaml.safe_load(run_file.read_text())
    doc["datasets"][0]["name"] = "my people"
    run_file.write_text(yaml.safe_dump(doc))
    code, err = run_cli(capsys, "train", "--config", str(run_file))
    assert_one_line_error(code, err, "'my people'", "letters, digits")
    assert registry_with_a_model.list_runs() == []


def test_file_names_with_spaces_give_safe_dataset_names(table: Path) -> None:
    from fleetlearn.training import DatasetConfig, RunConfig, prepare

    spaced = table.parent / "my people (2024).v2.csv"
    spaced.write_bytes(table.read_bytes())
    prepared = prepare(RunConfig(datasets=[DatasetConfig(str(spaced), "label")], folds=3,
                                 models=["naive_bayes"]))
    assert prepared[0].name == "my_people_2024"
