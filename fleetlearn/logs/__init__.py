"""Log lines a person or a log collector can read: ``--log-format text|json``.

- :func:`resolve_log_format`: the flag, else ``$FLEETLEARN_LOG_FORMAT``, else text;
- :func:`configure_logging`: one stderr handler for every logger (JSON in json mode);
- :func:`uvicorn_log_config`: the same for uvicorn's loggers, as ``uvicorn.run`` takes it;
- :func:`log_context` / :func:`bind_log_context`: ids (``run_id``, ``model``,
  ``version``, ``request_id``) every record made in the current context carries.

Examples
--------
>>> import logging
>>> with log_context(run_id="3f2a9c01b7de"):
...     logging.getLogger("fleetlearn.training").debug("goes out with run_id")
"""

from fleetlearn.logs._config import (
    LOG_FORMAT_ENV,
    LOG_FORMATS,
    JsonFormatter,
    active_log_format,
    configure_logging,
    logging_config,
    resolve_log_format,
    route_ray_logs,
    stdout_as_logs,
    uvicorn_log_config,
)
from fleetlearn.logs._context import (
    CONTEXT_FIELDS,
    bind_log_context,
    log_context,
    log_context_ids,
    request_started,
)

__all__ = [
    "CONTEXT_FIELDS",
    "LOG_FORMATS",
    "LOG_FORMAT_ENV",
    "JsonFormatter",
    "active_log_format",
    "bind_log_context",
    "configure_logging",
    "log_context",
    "log_context_ids",
    "logging_config",
    "request_started",
    "resolve_log_format",
    "route_ray_logs",
    "stdout_as_logs",
    "uvicorn_log_config",
]
