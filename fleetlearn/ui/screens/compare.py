"""Compare: which models are really better across a run's datasets (average ranks,
Friedman, the Nemenyi critical-difference diagram), and how scores moved over runs
and versions (trends of a dataset or a model)."""

from __future__ import annotations

import streamlit as st

from fleetlearn.ui import _views as views
from fleetlearn.ui._session import call

#: Runs offered to pick from (the newest ones).
RECENT_RUNS = 50

st.title("Compare")

across_tab, trends_tab = st.tabs(["Across datasets", "Trends over time"])

with across_tab:
    runs = call("list the runs", lambda c: c.runs(limit=RECENT_RUNS)) or []
    if not runs:
        st.info("No run yet: start one with fleetlearn train, or on the Train page.")
    else:
        labels = {r["id"]: f"{r['id']} {r.get('name') or ''} ({r['status']})" for r in runs}
        run_id = st.selectbox("Run", list(labels), key="compare-run", format_func=labels.get)
        alpha = st.select_slider("Significance level α", options=[0.01, 0.05, 0.1],
                                 value=0.05, key="compare-alpha")
        compare = call(f"compare the models of run {run_id}",
                       lambda c: c.compare(run_id, alpha=alpha), stop=False) or {}
        tasks = views.across_datasets(compare)
        # The report's diagram, drawn by the server at the same α (one per task).
        diagrams = call(f"draw the critical-difference diagrams of run {run_id}",
                        lambda c: c.run_figures(run_id, kind="critical-difference",
                                                alpha=alpha), stop=False) if tasks else []
        figures = {str(f["key"]).removeprefix("cd-"): f for f in diagrams or []}
        for part in tasks:
            st.subheader(f"{part.task}: {part.datasets} datasets, on {part.metric}")
            st.markdown(part.friedman_text)
            if part.critical_difference is not None:
                st.caption(f"Critical difference (Nemenyi, α = {alpha:g}): "
                           f"{part.critical_difference:.2f} ranks. Models whose average "
                           "ranks differ by less share a group and a bar in the diagram.")
            if part.task in figures:
                st.plotly_chart(views.plotly_figure(figures[part.task]),
                                key=f"compare-cd-{part.task}")
            ranks_col, scores_col = st.columns([1, 2])
            ranks_col.dataframe(part.ranks, hide_index=True, key=f"compare-ranks-{part.task}")
            scores_col.dataframe(part.scores, hide_index=True,
                                 key=f"compare-scores-{part.task}")
            if part.dropped:
                st.caption("Left out (no score on every dataset): " + ", ".join(part.dropped))
        for note in compare.get("notes") or []:
            st.info(note)
        if compare and not tasks and not compare.get("notes"):
            st.info("This run has no task with two or more datasets to compare across.")

with trends_tab:
    models = call("list the models", lambda c: c.models(limit=1000)) or []
    datasets, names = views.trend_choices(models)
    if not models:
        st.info("No model registered yet: trends appear once runs have registered models.")
    else:
        by = st.radio("Follow", ["a dataset", "a model"], horizontal=True, key="trends-by")
        if by == "a dataset":
            chosen = st.selectbox("Dataset", datasets, key="trends-dataset")
            answer = call(f"read the trends of dataset {chosen}",
                          lambda c: c.trends(dataset=chosen), stop=False)
        else:
            chosen = st.selectbox("Model", names, key="trends-model")
            answer = call(f"read the trends of model {chosen}",
                          lambda c: c.trends(model=chosen), stop=False)
        if answer is not None:
            figure, points, summary = views.trends_view(answer)
            if points.empty:
                st.info(f"No scored version of {chosen} yet.")
            else:
                st.plotly_chart(figure, key="trends-figure")
                st.caption("One line per model (its versions' held-out test scores) and "
                           "the best of each run. 'improving': Kendall's τ of score vs "
                           "time in the better direction, p < 0.05 (3 points or more).")
                st.dataframe(summary, hide_index=True, key="trends-summary")
                with st.expander(f"Every point ({len(points)})"):
                    st.dataframe(points, hide_index=True, key="trends-points")
