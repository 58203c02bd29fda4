"""Prediction inputs, as the API's routes import them.

The one implementation lives in :mod:`fleetlearn.data` (``parse_rows``, ``Rows``,
``InputError``): the same conversion rules as training, also behind
``fleetlearn.data.coerce_frame``. This module only keeps the serving-side import path.
"""

from __future__ import annotations

from fleetlearn.data import MAX_PROBLEMS, InputError, InputProblem, Rows, parse_rows

__all__ = ["InputProblem", "InputError", "Rows", "parse_rows", "MAX_PROBLEMS"]
