"""A minimal Ray Serve deployment of one model: the Ray Serve baseline of benchmarks/serving.py.

One replica of a deployment whose ``__call__`` reads the request's JSON
(``{"records": [...]}``), builds a DataFrame and calls ``predict`` - the pattern of Ray
Serve's scikit-learn example. Ray is started here, embedded (``address="local"``), with
the HOME and RAY_TMPDIR this process was given; the benchmark kills nothing but this
process tree. On SIGTERM or SIGINT: ``serve.shutdown()`` then ``ray.shutdown()``.

Usage::

    HOME=/tmp/x RAY_TMPDIR=/tmp/x python benchmarks/_servers/ray_serve_app.py \\
        --artifact model.skops --name NAME --port 8103
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", required=True, help="skops file of the fitted pipeline")
    parser.add_argument("--name", required=True, help="model name in the route")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()

    import ray
    from ray import serve
    from starlette.requests import Request

    @serve.deployment(num_replicas=1)
    class Model:
        def __init__(self, artifact: str) -> None:
            import skops.io as sio

            self.model = sio.load(artifact, trusted=sio.get_untrusted_types(file=artifact))

        async def __call__(self, request: Request) -> dict[str, Any]:
            import pandas as pd

            payload = await request.json()
            frame = pd.DataFrame(payload["records"])
            return {"predictions": self.model.predict(frame).tolist()}

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False,
             object_store_memory=80 * 2**20, log_to_driver=False)
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(Model.bind(args.artifact), name=args.name,
                  route_prefix=f"/v1/models/{args.name}/predict")
        print("READY", flush=True)
        stop.wait()
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
