"""Overview: the cluster at a glance, recent runs, models holding an alias, traffic."""

from __future__ import annotations

import streamlit as st

from fleetlearn.ui import _views as views
from fleetlearn.ui._session import call

#: Runs shown here (the Runs page pages through all of them).
RECENT_RUNS = 10
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

st.subheader("Models holding an alias")
models = call("list the models", lambda c: c.models()) or []
aliased = [m for m in models if m.get("aliases")]
if aliased:
    st.dataframe(views.models_frame(aliased), hide_index=True, key="overview-aliased")
else:
    st.info(f"None of the {len(models)} model(s) holds an alias yet (Models page: set one).")
