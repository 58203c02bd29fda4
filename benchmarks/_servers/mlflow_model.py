"""Save the benchmark's fitted pipeline as an MLflow model (runs inside the MLflow venv).

Loads the very skops artifact fleetlearn registered and writes it with
``mlflow.sklearn.save_model``, with the signature inferred from sample rows (what a user
gets by passing ``input_example``), so ``mlflow models serve`` enforces its schema as it
normally does.

Usage::

    <mlflow-venv>/bin/python benchmarks/_servers/mlflow_model.py \\
        --artifact model.skops --sample rows.csv --out /tmp/mlflow-model
"""

from __future__ import annotations

import argparse
import inspect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", required=True, help="skops file of the fitted pipeline")
    parser.add_argument("--sample", required=True, help="CSV of input rows for the signature")
    parser.add_argument("--out", required=True, help="folder to write (must not exist)")
    args = parser.parse_args()

    import mlflow.sklearn
    import pandas as pd
    import skops.io as sio
    from mlflow.models import infer_signature

    model = sio.load(args.artifact, trusted=sio.get_untrusted_types(file=args.artifact))
    sample = pd.read_csv(args.sample)
    signature = infer_signature(sample, model.predict(sample))
    options = {}
    if "skops_trusted_types" in inspect.signature(mlflow.sklearn.save_model).parameters:
        # MLflow 3 saves scikit-learn models with skops and wants the non-default types
        # named (numpy.dtype here, fleetlearn's transformers in other pipelines).
        options["skops_trusted_types"] = sio.get_untrusted_types(file=args.artifact)
    mlflow.sklearn.save_model(model, args.out, signature=signature, **options)
    print(f"saved {type(model).__name__} to {args.out}")


if __name__ == "__main__":
    main()
