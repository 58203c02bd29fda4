"""Overview: the cluster at a glance, recent runs, every model version holding an alias
(paged on the server), traffic."""

from __future__ import annotations

import streamlit as st

from fleetlearn.ui import _views as views
from fleetlearn.ui._session import call
from fleetlearn.ui._widgets import paged_table

#: Runs shown here (the Runs page pages through all of them).
RECENT_RUNS = 10
ALIASED_PAGE_STATE = "overview_aliased_page"
#: Seconds of traffic the request and error rates are computed over.
TRAFFIC_WINDOW_S = 300.0

st.title("Overview")

cluster = views.cluster_summary(call("read the cluster", lambda c: c.cluster()) or {})
st.caption(cluster.headline)
nodes, dead, cpus, memory = st.columns(4)
nodes.metric("nodes alive", cluster.nodes_alive)
dead.metric("nodes dead", cluster.nodes_dead)
cpus.metric("CPUs in use", cluster.text("cpus"))
memory.metric("memory in use", cluster.text("memory"))

stats = call("read the serving statistics",
             lambda c: c.stats(window=TRAFFIC_WINDOW_S), stop=False) or {}
rps, error_rate = views.serving_totals(stats)
traffic, errors, served = st.columns(3)
traffic.metric(f"requests/s (last {TRAFFIC_WINDOW_S / 60:g} min)", f"{rps:.3g}")
errors.metric("error rate", f"{error_rate:.1f} %")
served.metric("model versions served", len(stats.get("models") or []))

st.subheader("Recent runs")
runs = call("list the runs", lambda c: c.runs(limit=RECENT_RUNS)) or []
if runs:
    st.dataframe(views.runs_frame(runs), hide_index=True, key="overview-runs")
else:
    st.info("No run yet: start one with fleetlearn train, or POST /v1/runs.")

st.subheader("Model versions holding an alias")
# Every such version, paged on the server (GET /v1/models?has_alias=true): a model whose
# aliases point at different versions is listed once per version.
page = int(st.session_state.get(ALIASED_PAGE_STATE, 0))
aliased = call("list the versions holding an alias", lambda c: c.models(
    has_alias=True, limit=views.PAGE_SIZE, offset=page * views.PAGE_SIZE)) or []
_, more, label = views.page_window(page, len(aliased))
if aliased or page > 0:
    paged_table(views.models_frame(aliased, version_label="version"), key="overview-aliased",
                page_state=ALIASED_PAGE_STATE, page=page, more=more,
                caption=f"{label}, by name and version", back="Previous", forward="Next")
else:
    st.info("No model version holds an alias yet (Models page: set one).")
