"""Request and response bodies of the REST API (what ``/openapi.json`` documents)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ErrorBody",
    "InputErrorBody",
    "ModelVersionPublic",
    "ModelSummary",
    "ModelsPublic",
    "ModelVersionsPublic",
    "PredictionPublic",
    "AliasUpdate",
    "KeyCreate",
    "KeyPublic",
    "KeyCreated",
    "PREDICT_REQUEST_SCHEMA",
]


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: what went wrong and what to do."""

    detail: str = Field(examples=["No model 'iris-rf'. Did you mean 'iris-random_forest'?"])
    error: str = Field(examples=["NotFoundError"])


class InputProblemPublic(BaseModel):
    loc: list[Any] = Field(examples=[["body", "records", 0, "petal_length"]])
    msg: str = Field(examples=["Row 0: expected a number, got 'long'."])
    type: str = Field(examples=["type"])


class InputErrorBody(BaseModel):
    """A predict request that does not fit the model: every problem found."""

    detail: str
    error: str = "InputError"
    errors: list[InputProblemPublic]
    more: int = Field(0, description="Problems found beyond those listed.")


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


_VALUE = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"},
                    {"type": "null"}]}

#: The predict body, documented by hand: it is parsed without Pydantic for speed and
#: checked against each model's own input schema (see ``fleetlearn.serving._inputs``).
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
