"""Monitoring: the Ray cluster's nodes and its resources in use vs total over time,
serving per model version (latency percentiles, throughput, error rate, the API
process's CPU and memory), and this machine's CPU, memory and disk. The panel refreshes
by itself (``st.fragment(run_every=...)``) without rerunning the page."""

from __future__ import annotations

import os

import streamlit as st

from fleetlearn.ui import _views as views
from fleetlearn.ui._session import call

#: Seconds between refreshes; ``$FLEETLEARN_UI_REFRESH_S`` (at least 1).
REFRESH_S = max(1.0, float(os.environ.get("FLEETLEARN_UI_REFRESH_S") or 5.0))
HISTORY_STATE = "monitoring_history"
#: Seconds of traffic the rates and recent percentiles cover.
WINDOW_S = 60.0

st.title("Monitoring")
st.caption(f"Refreshes every {REFRESH_S:g} s.")


@st.fragment(run_every=REFRESH_S)
def live_panel() -> None:
    snap = call("read the cluster and the serving statistics",
                lambda c: views.collect_monitoring(c, window=WINDOW_S))
    history = views.resource_history(st.session_state.get(HISTORY_STATE, []), snap.cluster,
                                     now=snap.taken_at)
    st.session_state[HISTORY_STATE] = history

    st.subheader("Ray cluster")
    cluster = views.cluster_summary(snap.cluster)
    st.caption(cluster.headline)
    if cluster.mode == "cluster" and cluster.reachable is not False:
        alive, dead, cpus, memory, store = st.columns(5)
        alive.metric("nodes alive", cluster.nodes_alive)
        dead.metric("nodes dead", cluster.nodes_dead)
        cpus.metric("CPUs in use", cluster.text("cpus"))
        memory.metric("memory in use", cluster.text("memory"))
        store.metric("object store in use", cluster.text("object_store"))
        st.dataframe(views.nodes_frame(snap.cluster), hide_index=True, key="nodes-table")
        if len(history) > 1:
            st.line_chart(views.resource_history_frame(history), y_label="% in use")

    st.subheader("Serving")
    serving = views.serving_frame(snap.stats)
    if serving.empty:
        st.caption("No prediction served by this server since it started.")
    else:
        st.dataframe(serving, hide_index=True, key="serving-table")
        figure = views.inference_figure_of(snap.stats)
        if figure is not None:
            st.plotly_chart(figure, key="serving-figure")

    st.subheader("This machine (the GUI's)")
    m = snap.machine
    cpu, memory, disk = st.columns(3)
    cpu.metric(f"CPU ({m.cpus} cores)", f"{m.cpu_percent:.0f} %")
    memory.metric("memory", f"{m.memory_percent:.0f} %",
                  help=f"{m.memory_used / views.GIB:.1f} of {m.memory_total / views.GIB:.1f} GiB")
    disk.metric(f"disk ({m.disk_path})", f"{m.disk_percent:.0f} %",
                help=f"{m.disk_used / views.GIB:.1f} of {m.disk_total / views.GIB:.1f} GiB")


live_panel()
