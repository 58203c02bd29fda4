"""The trained-model contract: fitted pipeline + input schema -> artifact -> predictor.

One place owns what a fleetlearn model is and how it travels:

* :func:`build_pipeline` makes the model as it is trained, stored and served:
  ``Pipeline([("preprocess", build_preprocessor(schema)), ("model", estimator)])``;
* :func:`dump_model` turns a fitted pipeline into an :class:`Artifact` (skops bytes
  and the exact type names they hold, which the registry records);
* :func:`load_predictor` loads artifact bytes with exact trust (every type on the
  registry's allow-list or opted in by exact name) into a :class:`Predictor`;
* :class:`Predictor` serves the pipeline under its schema, through the compiled numpy
  preprocessing of :func:`fleetlearn.data.compile_preprocessor` once that has matched
  the pipeline's own ``transform`` and ``predict`` on probe rows, else through the
  plain pipeline.

Examples
--------
>>> from fleetlearn.catalog import resolve_model
>>> from fleetlearn.data import example_datasets, load_dataset, parse_rows
>>> ds = load_dataset(example_datasets()["iris"])                      # doctest: +SKIP
>>> pipe = build_pipeline(resolve_model("knn", ds.task), ds.schema, 0).fit(ds.X, ds.y)
... # doctest: +SKIP
>>> predictor = load_predictor(dump_model(pipe).data, ds.schema)       # doctest: +SKIP
"""

from __future__ import annotations

from fleetlearn.model._artifact import Artifact, dump_model, load_predictor
from fleetlearn.model._pipeline import build_pipeline
from fleetlearn.model._predictor import Prediction, Predictor, probe_rows

__all__ = [
    "Artifact",
    "Prediction",
    "Predictor",
    "build_pipeline",
    "dump_model",
    "load_predictor",
    "probe_rows",
]
