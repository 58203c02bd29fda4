"""Request and answer bodies of the REST API (what ``/openapi.json`` documents).

Families per resource, as ``XCreate`` (a request), ``XPublic`` (one answer),
``XsPublic`` (a list). Error bodies are in :mod:`fleetlearn.api.errors`. The run body is
not here: it is :class:`fleetlearn.training.RunRequest`, declared with the run's options.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "PREDICT_REQUEST_SCHEMA",
    "AliasUpdate",
    "CatalogModelPublic",
    "CatalogPublic",
    "ClusterNodePublic",
    "ColumnProfile",
    "DatasetProfile",
    "ExamplePublic",
    "ExamplesPublic",
    "ParamPublic",
    "TargetProfile",
    "ValueCount",
    "ClusterPublic",
    "DatasetProgress",
    "FailedAttempt",
    "DatasetPublic",
    "DatasetsPublic",
    "KeyCreate",
    "KeyCreated",
    "KeyPublic",
    "LeaderboardPublic",
    "LeaderboardRow",
    "ModelSummary",
    "ModelVersionPublic",
    "ModelVersionsPublic",
    "ModelsPublic",
    "PredictionPublic",
    "ProcessPublic",
    "RunFigurePublic",
    "RunFiguresPublic",
    "RunProgress",
    "RunPublic",
    "RunStarted",
    "RunSummary",
    "RunsPublic",
    "ResourceUse",
    "UnitFailure",
    "UnitRetry",
]


class ModelVersionPublic(BaseModel):
    """One registered version: lineage, metrics, parameters and input schema."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(examples=["iris-random_forest"])
    version: int = Field(examples=[3])
    aliases: list[str] = Field(examples=[["production"]])
    run_id: str | None = Field(examples=["3f2a9c01b7de"])
    trial_id: int | None
    dataset_id: int | None
    metrics: dict[str, Any] = Field(
        examples=[{"test": {"accuracy": 0.97}, "primary_metric": "accuracy"}])
    params: dict[str, Any]
    input_schema: dict[str, Any]
    artifact_digest: str
    artifact_size: int
    artifact_types: list[str] | None = Field(
        None, examples=[["numpy.ndarray", "sklearn.ensemble._forest.RandomForestClassifier"]],
        description="Every type the artifact holds, recorded at registration (sorted; "
        "null for versions registered before fleetlearn recorded them). Loading checks "
        "each against the exact allow-list.")
    tags: dict[str, Any]
    description: str | None
    created_at: str


class ModelSummary(BaseModel):
    """The latest version of a model (or the aliased one when filtering by alias)."""

    name: str
    version: int
    aliases: list[str]
    task: str | None
    dataset: str | None
    primary_metric: str | None
    test_score: float | None
    created_at: str


class ModelsPublic(BaseModel):
    data: list[ModelSummary]
    count: int


class ModelVersionsPublic(BaseModel):
    name: str
    aliases: dict[str, int] = Field(examples=[{"production": 2}])
    versions: list[ModelVersionPublic]


class PredictionPublic(BaseModel):
    """Predictions, in request order, and the exact version that answered."""

    model: str = Field(examples=["iris-random_forest"])
    version: int = Field(examples=[3])
    predictions: list[Any] = Field(examples=[["setosa"]])
    probabilities: list[dict[str, float]] | None = Field(
        None, examples=[[{"setosa": 0.98, "versicolor": 0.02, "virginica": 0.0}]],
        description="Per row, the probability of each class (when return_proba is true).")
    classes: list[Any] | None = Field(None, examples=[["setosa", "versicolor", "virginica"]])
    unseen_categories: dict[str, int] = Field(
        default_factory=dict, examples=[{"color": 1}],
        description="Per column, values never seen in training (accepted; the model "
                    "treats them as a rare category).")


class AliasUpdate(BaseModel):
    version: int = Field(ge=1, examples=[3])


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128, examples=["ci-deploy"])
    role: str = Field(examples=["predict"], pattern="^(read|predict|train|admin)$")


class KeyPublic(BaseModel):
    id: int
    name: str
    prefix: str = Field(examples=["flk_AbCd"])
    role: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class KeyCreated(KeyPublic):
    key: str = Field(description="The secret: shown once, never stored.")



class DatasetPublic(BaseModel):
    """A table in the server's data folder, usable by name in ``POST /v1/runs``."""

    name: str = Field(examples=["iris.csv"], description="The name the server stored it "
                      "under (letters, digits, '_', '-' and a suffix): give it to runs.")
    label: str | None = Field(default=None, examples=["iris.csv"], description="The file "
                              "name the client sent, kept as a label only (null for files "
                              "put in the data folder directly).")
    path: str = Field(examples=["/home/me/.fleetlearn/data/iris.csv"],
                      description="Where the server keeps it (runs may give this path too).")
    bytes: int = Field(examples=[4551])
    sha256: str | None = Field(examples=["9f3c...e1"], description="Known for uploads.")
    columns: list[str] | None = Field(
        examples=[["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]])
    rows: int | None = Field(examples=[150], description="Null when counting it would mean "
                             "reading a big text file whole.")
    uploaded_at: str | None = Field(examples=["2025-01-31T12:00:00+00:00"])


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


class ValueCount(BaseModel):
    value: str = Field(examples=["setosa"])
    count: int = Field(examples=[50])


class ColumnProfile(BaseModel):
    """One column as training would read it."""

    name: str = Field(examples=["petal_length"])
    kind: str = Field(examples=["numeric"], description="numeric, categorical, boolean or "
                      "datetime (a model sees it), or why it is left out: text, id-like, "
                      "constant, empty, high-cardinality, unsupported.")
    dtype: str = Field(examples=["float64"])
    used: bool = Field(description="Whether models see the column.")
    missing: int = Field(examples=[0])
    distinct: int | None = Field(examples=[43])
    note: str | None = Field(None, description="Why the column is left out.")
    top_values: list[ValueCount] | None = Field(
        None, description="Categorical and boolean columns: the most frequent values.")


class TargetProfile(BaseModel):
    """The target column: its detected task and its classes or value summary."""

    name: str = Field(examples=["species"])
    task: str = Field(examples=["classification"])
    missing: int = Field(examples=[0], description="Rows without a target (not trained on).")
    n_classes: int | None = Field(None, examples=[3])
    classes: list[ValueCount] | None = Field(None, description="The most frequent classes.")
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None


class DatasetProfile(BaseModel):
    """What training would make of a table in the server's data folder."""

    name: str = Field(examples=["iris.csv"])
    rows: int = Field(examples=[150])
    columns: list[ColumnProfile] = Field(description="Every column but the target.")
    kinds: dict[str, int] = Field(examples=[{"numeric": 4}], description="Columns per kind.")
    target: TargetProfile | None = Field(description="With ?target= only.")


class ExamplePublic(BaseModel):
    """An example table the server can write into its data folder."""

    name: str = Field(examples=["iris.csv"])
    target: str = Field(examples=["species"])
    description: str
    stored: bool = Field(description="Already in the data folder.")


class ExamplesPublic(BaseModel):
    data: list[ExamplePublic]
    count: int


class ParamPublic(BaseModel):
    """One parameter of a catalog model."""

    name: str = Field(examples=["n_estimators"])
    type: str = Field(examples=["int"], description="int, float, bool, str or other.")
    default: Any = Field(examples=[100], description="fleetlearn's default.")
    estimator_default: Any = Field(None, examples=[100])
    nullable: bool = Field(description="None (null) is allowed.")
    choices: list[str] | None = Field(None, description="The allowed strings.")
    minimum: float | None = Field(None, examples=[1])
    maximum: float | None = Field(None, description="Null: no upper bound.")
    range: str | None = Field(None, examples=["[1, inf)"])


class CatalogModelPublic(BaseModel):
    """A model of the catalog, for every task it has an entry for."""

    name: str = Field(examples=["random_forest"])
    tasks: list[str] = Field(examples=[["classification", "regression"]])
    description: str | None = Field(examples=["A random forest classifier."])
    descriptions: dict[str, str | None] = Field(description="By task.")
    estimators: dict[str, str] = Field(
        examples=[{"classification": "sklearn.ensemble.RandomForestClassifier"}])
    available: bool = Field(description="False when its optional extra is not installed.")
    extra: str | None = Field(examples=[None])
    in_default_set: list[str] = Field(description="The tasks whose default set holds it.")
    params: dict[str, list[ParamPublic]] = Field(description="By task.")


class CatalogPublic(BaseModel):
    models: list[CatalogModelPublic]
    defaults: dict[str, list[str]] = Field(
        examples=[{"classification": ["logistic_regression", "random_forest"]}],
        description="The models a run trains when it names none, by task.")


class RunStarted(BaseModel):
    """A run that passed every check and is starting in its own process."""

    id: str = Field(examples=["3f2a9c01b7de"])
    status: str = Field(examples=["starting"])
    units_total: int = Field(examples=[28], description="Units the run will train "
                             "(folds, final fits, learning curves).")
    warnings: list[str] = Field(examples=[["dropped column 'id': an identifier"]])
    log: str = Field(description="The training process's output, on the server.")


class DatasetProgress(BaseModel):
    units_done: int
    units_total: int


class UnitFailure(BaseModel):
    dataset: str
    model: str
    unit: str = Field(examples=["cv2"])
    error: str


class FailedAttempt(BaseModel):
    attempt: int = Field(examples=[1])
    node: str | None = Field(description="Ray node id; null when Ray had no record.")
    node_ip: str | None = Field(examples=["127.0.0.3"])
    error: str | None = Field(examples=["NODE_DIED"])


class UnitRetry(BaseModel):
    """A unit that Ray ran again because its worker or node was lost."""

    dataset: str
    model: str
    unit: str = Field(examples=["cv2"])
    status: str = Field(examples=["ok"])
    attempts: int = Field(examples=[2], description="Attempts, the last one included.")
    node: str | None = Field(description="Ray node id of the last attempt.")
    node_ip: str | None = Field(examples=["127.0.0.2"])
    failed_attempts: list[FailedAttempt]


class RunProgress(BaseModel):
    """Units are folds, final fits and learning curves; a trial is one model on one table."""

    units_done: int = Field(examples=[12])
    units_total: int = Field(examples=[28])
    trials_done: int = Field(examples=[2])
    trials_total: int = Field(examples=[5])
    fraction: float = Field(examples=[0.43])
    datasets: dict[str, DatasetProgress]
    failures: list[UnitFailure]
    retried: list[UnitRetry] = Field(
        description="Units run again after their worker or node was lost (Ray's retries).")


class ProcessPublic(BaseModel):
    """The training process of a run started through the API (from ``runs.launcher``)."""

    pid: int
    running: bool
    exit_code: int | None
    log: str
    host: str | None = Field(None, examples=["node-1"],
                             description="Where it runs: only a server there can cancel it.")
    started_at: str | None = None


class RunPublic(BaseModel):
    """A run: status, progress, and the training process when this server started it.

    ``status``: ``running``, ``finished``, ``failed``, ``interrupted`` (resumable with
    ``POST /v1/runs/{id}/resume`` or ``fleetlearn train --resume ID``; a run whose
    process died says "driver died"), or, before the training process has recorded the
    run, ``starting`` and ``cancelled``.
    """

    model_config = ConfigDict(extra="allow")

    id: str = Field(examples=["3f2a9c01b7de"])
    name: str | None = Field(examples=["iris-baseline"])
    status: str = Field(examples=["running"])
    error: str | None = None
    seed: int | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    datasets: list[dict[str, Any]] = Field(default_factory=list, examples=[[
        {"name": "iris", "rows": 150, "features": 4, "task": "classification",
         "target": "species"}]])
    progress: RunProgress | None = None
    config: dict[str, Any] | None = None
    process: ProcessPublic | None = None


class RunSummary(BaseModel):
    id: str
    name: str | None
    status: str
    created_at: str | None
    finished_at: str | None
    error: str | None
    datasets: list[str]


class RunsPublic(BaseModel):
    data: list[RunSummary]
    count: int


class LeaderboardRow(BaseModel):
    """One model on one table, ranked by the metric (NaN and missing values are null)."""

    model_config = ConfigDict(extra="allow")

    rank: float | None = Field(examples=[1])
    dataset: str = Field(examples=["iris"])
    metric: str = Field(examples=["accuracy"])
    model: str = Field(examples=["random_forest"])
    cv_mean: float | None = Field(examples=[0.96])
    cv_std: float | None = Field(examples=[0.02])
    test: float | None = Field(examples=[0.97])
    status: str = Field(examples=["ok"])


class LeaderboardPublic(BaseModel):
    run_id: str
    status: str
    rows: list[LeaderboardRow]


class RunFigurePublic(BaseModel):
    """One figure of a run's report as Plotly JSON (``plotly.io.from_json`` reads it back;
    in a browser, ``Plotly.newPlot(div, figure.data, figure.layout)``)."""

    kind: str = Field(examples=["roc"], description="fold-scores, training-curve, "
                      "learning-curve, cost-quality, confusion, roc, precision-recall, "
                      "predicted-vs-actual, residuals, importance, trends, "
                      "critical-difference or inference")
    dataset: str | None = Field(examples=["iris"], description="The dataset (its name in "
                                "the run); null for a figure of the whole run")
    model: str | None = Field(default=None, examples=["logistic_regression"],
                              description="The model of a per-model figure (a curve, the "
                              "confusion matrix and importance of the best model)")
    title: str = Field(examples=["iris: ROC curves (30 test rows)"])
    key: str = Field(examples=["roc-iris"], description="The figure's id in the HTML report")
    figure: dict[str, Any] = Field(description="Plotly JSON: {\"data\": [...], "
                                   "\"layout\": {...}}")


class RunFiguresPublic(BaseModel):
    run_id: str
    figures: list[RunFigurePublic]
    count: int


_VALUE = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"},
                    {"type": "null"}]}

#: The predict body, documented by hand: it is parsed without Pydantic for speed and
#: checked against each model's own input schema (see :func:`fleetlearn.serving.parse_rows`).
PREDICT_REQUEST_SCHEMA: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                # Exactly one layout: 'records', or 'columns' with 'data'.
                "oneOf": [
                    {"required": ["records"],
                     "not": {"anyOf": [{"required": ["columns"]}, {"required": ["data"]}]}},
                    {"required": ["columns", "data"], "not": {"required": ["records"]}},
                ],
                "properties": {
                    "records": {"type": "array", "minItems": 1,
                                "items": {"type": "object", "additionalProperties": _VALUE},
                                "description": "One object per row: {column: value}."},
                    "columns": {"type": "array", "items": {"type": "string"},
                                "description": "Column names, with 'data'."},
                    "data": {"type": "array", "minItems": 1,
                             "items": {"type": "array", "items": _VALUE},
                             "description": "Rows as lists in 'columns' order."},
                    "return_proba": {"type": "boolean", "default": False,
                                     "description": "Add class probabilities."},
                },
            },
            "examples": {
                "records": {"summary": "Rows as objects", "value": {
                    "records": [{"sepal_length": 5.1, "sepal_width": 3.5,
                                 "petal_length": 1.4, "petal_width": 0.2}],
                    "return_proba": True}},
                "columns": {"summary": "Columns and rows", "value": {
                    "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
                    "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}},
            },
        }
    },
}


class ResourceUse(BaseModel):
    """One of Ray's logical resources: what the node (or cluster) has, what tasks hold."""

    total: float = Field(examples=[2.0])
    used: float = Field(examples=[1.0])


class ClusterNodePublic(BaseModel):
    """A node as the head's GCS reports it (dead nodes stay listed)."""

    node_id: str
    ip: str = Field(examples=["127.0.0.2"])
    alive: bool
    is_head: bool
    state: str = Field(examples=["RUNNING"], description="RUNNING, IDLE, DRAINING or DEAD.")
    resources: dict[str, ResourceUse] = Field(
        description="'cpus', 'memory' and 'object_store' (bytes): Ray's logical resources, "
        "'used' is what running tasks and actors reserved.")
    start_time: float | None = None
    end_time: float | None = None
    death_reason: str | None = None


class ClusterPublic(BaseModel):
    """The Ray cluster this server runs against, as Ray sees it.

    ``mode`` is ``cluster`` when a cluster address is known (the server's
    ``ray_address``, ``RAY_ADDRESS``, the Ray this replica runs in, or the cluster
    ``fleetlearn cluster up`` recorded), ``local`` otherwise: runs use an embedded Ray
    of their own and there is nothing to list. A head that does not answer is
    ``reachable: false`` with the reason in ``error``.
    """

    mode: str = Field(examples=["cluster"])
    address: str | None = Field(None, examples=["127.0.1.1:41234"])
    source: str | None = Field(None, examples=["settings"], description=(
        "Where the address came from: settings, RAY_ADDRESS, ray, state file."))
    reachable: bool | None = Field(None, description=(
        "Cluster mode: whether the head answered; when false, 'error' says why and the "
        "node list is empty."))
    error: str | None = None
    nodes_alive: int = 0
    nodes_dead: int = 0
    resources: dict[str, ResourceUse] = Field(default_factory=dict, description=(
        "Summed over the alive nodes."))
    pending_tasks: int = Field(0, description="Tasks and actors waiting for resources.")
    pending_placement_groups: int = 0
    nodes: list[ClusterNodePublic] = Field(default_factory=list)
