"""Runs: every run (paged on the server), a run's leaderboard with the tied-with-best
marking and confidence intervals, its figures, and its HTML report to download."""

from __future__ import annotations

import streamlit as st

from fleetlearn.ui import _views as views
from fleetlearn.ui._session import call
from fleetlearn.ui._widgets import paged_table

PAGE_STATE = "runs_page"
REPORT_STATE = "runs_report"  # (run id, html): one report held at a time
FIGURES_STATE = "runs_figures"  # ((run id, status, units done), figures): one run's held

st.title("Runs")

page = int(st.session_state.get(PAGE_STATE, 0))
offset = page * views.PAGE_SIZE
runs = call("list the runs", lambda c: c.runs(limit=views.PAGE_SIZE, offset=offset)) or []
_, more, label = views.page_window(page, len(runs))
if not runs and page == 0:
    st.info("No run yet: start one with fleetlearn train, or POST /v1/runs.")
    st.stop()

table = paged_table(views.runs_frame(runs), key="runs", page_state=PAGE_STATE, page=page,
                    more=more, caption=f"{label}, newest first", back="Newer", forward="Older")
if not runs:
    st.stop()

ids = [r["id"] for r in runs]
picked = table.selection.rows if table is not None and table.selection else []
labels = {r["id"]: f"{r['id']} {r.get('name') or ''} ({r['status']})" for r in runs}
run_id = st.selectbox("Run", ids, index=picked[0] if picked else 0, key="runs-pick",
                      format_func=labels.get)

run = call(f"read run {run_id}", lambda c: c.run(run_id))
progress = run.get("progress") or {}
status, units, trials = st.columns(3)
status.metric("status", run["status"])
units.metric("units done", f"{progress.get('units_done', 0)} / {progress.get('units_total', 0)}")
trials.metric("trials done",
              f"{progress.get('trials_done', 0)} / {progress.get('trials_total', 0)}")
if run.get("error"):
    st.error(f"Run {run_id} stopped: {run['error']}")
for failure in progress.get("failures") or []:
    st.warning(f"{failure.get('dataset')} / {failure.get('model')} {failure.get('unit')}: "
               f"{failure.get('error')}")

rows = call(f"read the leaderboard of run {run_id}", lambda c: c.leaderboard(run_id)) or []
if not rows:
    st.info("No result yet: the leaderboard fills in as the run's units finish.")
    st.stop()


def draw(tabs: list[tuple[str, list]], where: str) -> None:
    if not tabs:
        return
    for tab, (_, part) in zip(st.tabs([label for label, _ in tabs]), tabs, strict=True):
        with tab:
            for item in part:
                st.plotly_chart(views.plotly_figure(item), key=f"{where}-{item['key']}")


# The leaderboard first: the figures take the server seconds to draw, and each
# dataset's go into the slot held for them below its table once they come.
st.subheader("Leaderboard")
st.caption("Ranked by the mean cross-validated score. 'tied with best': not significantly "
           "different from the best (corrected resampled t-test, Holm-adjusted, α = 0.05); "
           "the 95 % confidence interval is over the folds. Below each table, the "
           "dataset's figures: scores per fold, training and learning curves, fit time vs "
           "score, the held-out test split (confusion, ROC and precision-recall, or "
           "predicted vs actual and residuals), permutation importance, trends.")
slots: dict[str, object] = {}
for dataset in views.leaderboard_datasets(rows):
    st.markdown(f"**{dataset}**")
    st.dataframe(views.leaderboard_frame(rows, dataset), hide_index=True,
                 key=f"board-{dataset}")
    slots[dataset] = st.container()
run_slot = st.container()

# The figures are the report's, drawn by the server (GET /v1/runs/{id}/figures): held
# per run and progress, since every click on the page runs this script again and the
# test-split figures take the server seconds.
held_figures = st.session_state.get(FIGURES_STATE)
version = (run_id, run["status"], progress.get("units_done"))
if held_figures is not None and held_figures[0] == version:
    figures = held_figures[1]
else:
    with run_slot, st.spinner("The server is drawing the run's figures…"):
        figures = call(f"draw the figures of run {run_id}",
                       lambda c: c.run_figures(run_id), stop=False)
    if figures is not None:
        st.session_state[FIGURES_STATE] = (version, figures)
    figures = figures or []
for dataset, slot in slots.items():
    with slot:
        draw(views.figure_tabs(figures, dataset), f"fig-{dataset}")

compare = call(f"compare the models of run {run_id}", lambda c: c.compare(run_id),
               stop=False) or {}
run_wide = views.figure_tabs(figures, None)
with run_slot:
    if run_wide:
        st.subheader("Across datasets and serving")
        draw(run_wide, "fig-run")
    for note in compare.get("notes") or []:
        st.caption(note)

st.subheader("Report")
st.caption("Every figure above with the run's configuration, schemas and lineage, in one "
           "HTML file that opens offline.")
held = st.session_state.get(REPORT_STATE)
if held is not None and held[0] == run_id:
    st.download_button("Download the HTML report", held[1], file_name=f"report-{run_id}.html",
                       mime="text/html", icon=":material/download:")
elif st.button("Prepare the HTML report", icon=":material/description:",
                 key="report-prepare"):
    with st.spinner("The server is drawing the report…"):
        html = call(f"build the report of run {run_id}", lambda c: c.report(run_id))
    st.session_state[REPORT_STATE] = (run_id, html)
    st.rerun()
