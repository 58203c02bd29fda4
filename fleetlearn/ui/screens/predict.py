"""Predict: a form made from a version's input schema (the right widget per column
kind), or a CSV/Parquet file for a batch; predictions with class probabilities by
label, and the rows the server rejected with its own messages."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from fleetlearn.ui import _views as views
from fleetlearn.ui._session import call

RESULT_STATE = "predict_result"  # the last form answer: (ref, answer)
BATCH_STATE = "predict_batch"  # the last file's answer: ((ref, file id), (frame, result))

st.title("Predict")

models = call("list the models", lambda c: c.models(limit=1000)) or []
if not models:
    st.info("No model registered yet: train one first.")
    st.stop()
pick, version_pick = st.columns([3, 1])
name = pick.selectbox("Model", [m["name"] for m in models], key="predict-model")
answer = call(f"read model {name}", lambda c: c.model_versions(name))
numbers = sorted((v["version"] for v in answer.get("versions") or []), reverse=True)
aliases = {v: a for a, v in (answer.get("aliases") or {}).items()}
version = version_pick.selectbox(
    "Version", numbers, key=f"predict-version-{name}",
    format_func=lambda v: f"{v} ({aliases[v]})" if v in aliases else str(v))
detail = next(v for v in answer["versions"] if v["version"] == version)
ref = f"{name}:{version}"
fields = views.input_fields(detail)
classifier = (detail.get("input_schema") or {}).get("task") == "classification"

single, batch = st.tabs(["One row", "A file"])

with single, st.form(f"predict-form-{ref}"):
    values = {}
    for f in fields:
        key = f"pf-{ref}-{f.name}"
        if f.kind == "numeric":
            values[f.name] = st.number_input(f.name, value=None, key=key, format="%g",
                                             placeholder="empty: missing")
        elif f.kind == "boolean":
            values[f.name] = st.selectbox(f.name, [None, True, False], key=key,
                                          format_func=lambda v: "missing" if v is None
                                          else str(v).lower())
        elif f.kind == "categorical":
            values[f.name] = st.selectbox(f.name, [None, *f.categories], key=key,
                                          format_func=lambda v: "missing" if v is None
                                          else str(v))
        elif f.kind == "datetime":
            values[f.name] = st.date_input(f.name, value=None, key=key)
        else:
            values[f.name] = st.text_input(f.name, key=key) or None
    if st.form_submit_button("Predict", key=f"predict-submit-{ref}"):
        record = views.record_of(values, fields)
        result = call(f"predict with {ref}",
                      lambda c: c.predict(ref, [record], return_proba=classifier),
                      stop=False)
        st.session_state[RESULT_STATE] = (ref, result) if result is not None else None

held = st.session_state.get(RESULT_STATE)
if held is not None and held[0] == ref:
    result = held[1]
    with single:
        st.metric(f"prediction of {result['model']}:{result['version']}",
                  str(result["predictions"][0]))
        if result.get("probabilities"):
            st.dataframe(views.probabilities_frame(result), hide_index=True,
                         key="predict-probabilities")
        for note in result.get("unseen_categories") or []:
            st.caption(f"Unseen category: {note}")

with batch:
    upload = st.file_uploader("CSV, TSV or Parquet file of input rows (other columns, "
                              "the target too, are kept)", type=["csv", "tsv", "parquet"],
                              key=f"predict-file-{ref}")
    if upload is not None:
        done = st.session_state.get(BATCH_STATE)
        if done is not None and done[0] == (ref, upload.file_id):
            frame, out = done[1]  # this file was predicted already: no second request
        else:
            data = upload.getvalue()
            try:
                if upload.name.lower().endswith(".parquet"):
                    frame = pd.read_parquet(io.BytesIO(data))
                else:
                    frame = pd.read_csv(io.BytesIO(data), sep="\t" if upload.name.lower(
                        ).endswith(".tsv") else ",")
            except (ValueError, OSError) as exc:  # pandas' parser errors are ValueErrors
                st.error(f"Cannot read {upload.name} as a table: {exc}")
                st.stop()
            out = call(f"predict {len(frame)} row(s) with {ref}",
                       lambda c: views.predict_table(c, ref, frame, proba=classifier))
            st.session_state[BATCH_STATE] = ((ref, upload.file_id), (frame, out))
        if out.message:
            st.error(f"The server refused rows from row {out.problems['row'].min()}: "
                     f"{out.message}")
            st.dataframe(out.problems, hide_index=True, key="predict-problems")
        st.caption(f"{len(out.predictions)} of {len(frame)} row(s) predicted.")
        st.dataframe(out.predictions, hide_index=True, key="predict-batch")
        st.download_button("Download the predictions (CSV)",
                           out.predictions.to_csv(index=False), file_name="predictions.csv",
                           mime="text/csv", key="predict-download")
