"""Train: pick a table on the server (or upload one), its target, the models, folds and
schedule; start the run on the server; watch its progress live (units done/total per
dataset, best so far, time left); cancel or resume it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from fleetlearn.ui import _views as views
from fleetlearn.ui._session import call

RUN_STATE = "train_run"  # the id of the run started (or followed) here
UPLOAD_STATE = "train_upload"  # (file id, upload answer): one upload per file
#: Seconds between two looks at the run.
POLL_S = 2.0

st.title("Train")

upload = st.file_uploader("Upload a table to the server (CSV, TSV or Parquet)",
                          type=["csv", "tsv", "parquet"], key="train-upload")
if upload is not None:
    held = st.session_state.get(UPLOAD_STATE)
    if held is None or held[0] != upload.file_id:
        with tempfile.TemporaryDirectory(prefix="flui-") as tmp:
            path = Path(tmp) / Path(upload.name).name
            path.write_bytes(upload.getvalue())
            sent = call(f"upload {upload.name}", lambda c: c.upload_dataset(path))
        st.session_state[UPLOAD_STATE] = (upload.file_id, sent)
        st.success(f"Uploaded {sent['name']}: {sent['rows']} rows, "
                   f"{len(sent['columns'])} columns.")

tables = call("list the server's tables", lambda c: c.datasets()) or []
if not tables:
    st.info("The server's data folder holds no table yet: upload one above.")
    st.stop()
names = [t["name"] for t in tables]
held = st.session_state.get(UPLOAD_STATE)
default = names.index(held[1]["name"]) if held and held[1]["name"] in names else 0
with st.form("train-form"):
    name = st.selectbox("Table", names, index=default, key="train-table")
    columns = next(t for t in tables if t["name"] == name).get("columns") or []
    target = st.selectbox("Target column", columns, index=max(len(columns) - 1, 0),
                          key="train-target",
                          help="The server detects the task and every column's kind; "
                          "it says what it dropped and why.")
    task = st.selectbox("Task", ["detect", "classification", "regression"], key="train-task")
    models = st.text_area("Models (one a line, e.g. random_forest:n_estimators=50; empty: "
                          "the default set for the task)", key="train-models")
    folds, seed, schedule = st.columns(3)
    n_folds = folds.number_input("Folds", min_value=2, max_value=50, value=5, key="train-folds")
    n_seed = seed.number_input("Seed", min_value=0, value=0, key="train-seed")
    how = schedule.selectbox("Schedule", ["concurrent", "sequential"], key="train-schedule")
    start = st.form_submit_button("Start training", key="train-start", type="primary")
if start:
    started = call("start the run", lambda c: c.start_run(
        name, target, models=views.model_specs(models), folds=int(n_folds),
        seed=int(n_seed), schedule=how, task=None if task == "detect" else task))
    st.session_state[RUN_STATE] = started["id"]
    st.success(f"Run {started['id']} started: {started['units_total']} units.")
    for warning in started.get("warnings") or []:
        st.caption(warning)


@st.fragment(run_every=POLL_S)
def follow() -> None:
    run_id = st.session_state.get(RUN_STATE)
    if not run_id:
        return
    run = call(f"read run {run_id}", lambda c: c.run(run_id))
    view = views.run_progress_view(run)
    st.subheader(f"Run {run_id}: {view.status}")
    eta = f", about {view.eta_s:.0f} s left" if view.eta_s is not None else ""
    st.progress(view.fraction, text=f"{view.units_done} / {view.units_total} units{eta}")
    st.dataframe(view.datasets, hide_index=True, key="train-datasets")
    # A starting run has no row in the registry yet, so no leaderboard (404).
    rows = [] if view.status == "starting" else call(
        f"read the leaderboard of {run_id}", lambda c: c.leaderboard(run_id), stop=False) or []
    best = views.best_so_far(rows)
    if not best.empty:
        st.markdown("**Best so far**")
        st.dataframe(best, hide_index=True, key="train-best")
    if run.get("error"):
        st.error(f"Run {run_id}: {run['error']}")
    if view.status in ("starting", "running"):
        if st.button("Cancel the run", key="train-cancel", icon=":material/stop:"):
            call(f"cancel run {run_id}", lambda c: c.cancel_run(run_id))
            st.rerun(scope="fragment")
    elif view.status in ("interrupted", "failed"):
        if st.button("Resume the run", key="train-resume", icon=":material/play_arrow:"):
            call(f"resume run {run_id}", lambda c: c.resume_run(run_id))
            st.rerun(scope="fragment")
    elif view.status == "finished":
        st.success(f"Run {run_id} finished: its leaderboard and figures are on the Runs "
                   "page, its models on the Models page.")


follow()
