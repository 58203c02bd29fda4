"""The fleetlearn REST API (FastAPI): app factory, roles, error model, schemas, routes.

::

    api/
      app.py        create_app: routers, metrics middleware, error handlers, /docs
      deps.py       ReadKey, PredictKey, TrainKey, AdminKey, StateDep, LauncherDep
      errors.py     ErrorBody, HttpError, the one 422 formatter, FleetlearnError -> status
      schemas.py    request and answer bodies
      _uploads.py   streamed uploads and the server's data folder (not routes)
      routes/       health, models, predict, stats, keys, datasets, runs, insights

The prediction runtime it serves (model cache, predictor, batcher, state, settings,
Ray Serve) is :mod:`fleetlearn.serving`; runs are started by
:class:`fleetlearn.training.Launcher`.

>>> from fleetlearn.api import create_app
>>> from fleetlearn.serving import ServeSettings
>>> app = create_app(ServeSettings(port=8000))      # doctest: +SKIP
"""

from __future__ import annotations

from fleetlearn.api.app import create_app
from fleetlearn.api.errors import ErrorBody, HttpError, ORJSONResponse

__all__ = ["ErrorBody", "HttpError", "ORJSONResponse", "create_app"]
