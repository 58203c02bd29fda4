"""A hand-written prediction server: the "bare endpoint" baseline of benchmarks/serving.py.

What a user writes without a serving framework: load the skops artifact once, accept
``{"records": [{column: value, ...}, ...]}``, call ``model.predict(pd.DataFrame(records))``
and return the labels. FastAPI with a typed body, a plain (threadpool) route, uvicorn
with uvloop and httptools, one worker. No validation beyond the body's type, no auth.

Usage::

    python benchmarks/_servers/bare_fastapi.py --artifact model.skops --name NAME --port 8101
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd
import skops.io as sio
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class Body(BaseModel):
    records: list[dict[str, float]]


def build_app(model: Any, name: str) -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(f"/v1/models/{name}/predict")
    def predict(body: Body) -> dict[str, list[Any]]:
        return {"predictions": model.predict(pd.DataFrame(body.records)).tolist()}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", required=True, help="skops file of the fitted pipeline")
    parser.add_argument("--name", required=True, help="model name in the route")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The benchmark wrote this artifact itself (fleetlearn's registry checked its types).
    model = sio.load(args.artifact, trusted=sio.get_untrusted_types(file=args.artifact))
    uvicorn.run(build_app(model, args.name), host=args.host, port=args.port, workers=1,
                loop="uvloop", http="httptools", log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
