"""Models: the registry's models (paged on the server), a model's versions, one
version's metrics, lineage and input schema; set or move an alias; delete a version
after a confirmation."""

from __future__ import annotations

import streamlit as st

from fleetlearn.ui import _views as views
from fleetlearn.ui._session import call
from fleetlearn.ui._widgets import paged_table

PAGE_STATE = "models_page"
DELETE_STATE = "models_delete"  # "name:version" waiting for its confirmation
DONE_STATE = "models_done"  # what the last action did, shown once after its rerun

st.title("Models")

done = st.session_state.pop(DONE_STATE, None)
if done:
    st.success(done)

page = int(st.session_state.get(PAGE_STATE, 0))
offset = page * views.PAGE_SIZE
models = call("list the models",
              lambda c: c.models(limit=views.PAGE_SIZE, offset=offset)) or []
_, more, label = views.page_window(page, len(models))
if not models and page == 0:
    st.info("No model registered yet: a finished training run registers one per "
            "(dataset, model).")
    st.stop()

table = paged_table(views.models_frame(models), key="models", page_state=PAGE_STATE, page=page,
                    more=more, caption=f"{label}, by name", back="Previous", forward="Next")
if not models:
    st.stop()

names = [m["name"] for m in models]
picked = table.selection.rows if table is not None and table.selection else []
name = st.selectbox("Model", names, index=picked[0] if picked else 0, key="models-pick")

answer = call(f"read model {name}", lambda c: c.model_versions(name))
aliases: dict[str, int] = answer.get("aliases") or {}
st.subheader(f"{name}: versions")
versions = views.versions_frame(answer)
st.dataframe(versions, hide_index=True, key="versions-table")
numbers = versions["version"].tolist()
version = st.selectbox("Version", numbers, key=f"version-pick-{name}")

detail = call(f"read {name}:{version}", lambda c: c.model_version(name, int(version)))
metrics_col, lineage_col = st.columns(2)
with metrics_col:
    st.markdown("**Test metrics** (held-out split)")
    st.dataframe(views.version_metrics_frame(detail), hide_index=True,
                 key=f"metrics-{name}-{version}")
with lineage_col:
    st.markdown("**Lineage**")
    for step, value in views.lineage_rows(detail):
        st.markdown(f"- {step}: `{value}`")
st.markdown("**Input schema**")
st.dataframe(views.schema_frame(detail), hide_index=True, key=f"schema-{name}-{version}")

st.subheader("Aliases")
if aliases:
    for alias, target in sorted(aliases.items()):
        text, remove = st.columns([4, 1])
        text.markdown(f"`{name}@{alias}` → version {target}")
        if remove.button("Remove", key=f"alias-remove-{alias}"):
            call(f"remove alias {alias}", lambda c, a=alias: c.delete_alias(name, a))
            st.session_state[DONE_STATE] = f"Alias {alias} of {name} removed."
            st.rerun()
else:
    st.caption("No alias points at a version of this model.")
with st.form(f"alias-form-{name}"):
    alias_name = st.text_input("Alias", placeholder="production", key="alias-name")
    alias_version = st.selectbox("points at version", numbers, key="alias-version")
    if st.form_submit_button("Set alias", key="alias-set"):
        alias_name = alias_name.strip()
        if not alias_name:
            st.error("Type the alias's name (e.g. production).")
        else:
            moved = call(f"set alias {alias_name}",
                         lambda c: c.set_alias(name, alias_name, int(alias_version)))
            st.session_state[DONE_STATE] = (f"{name}@{alias_name} now points at version "
                                            f"{moved['version']}.")
            st.rerun()

st.subheader("Delete")
ref = f"{name}:{version}"
if st.session_state.get(DELETE_STATE) == ref:
    held = [a for a, v in aliases.items() if v == int(version)]
    st.warning(f"Delete {ref}? Its artifact goes too (unless another version shares it)"
               + (f", and its alias(es) {', '.join(held)}" if held else "")
               + ". This cannot be undone.")
    sure, cancel = st.columns(2)
    if sure.button(f"Delete {ref}", type="primary", key="delete-confirm"):
        call(f"delete {ref}", lambda c: c.delete_model_version(name, int(version)))
        st.session_state.pop(DELETE_STATE, None)
        st.session_state[DONE_STATE] = f"{ref} deleted."
        st.rerun()
    if cancel.button("Keep it", key="delete-cancel"):
        st.session_state.pop(DELETE_STATE, None)
        st.rerun()
elif st.button(f"Delete version {version}…", key="delete-ask", icon=":material/delete:"):
    st.session_state[DELETE_STATE] = ref
    st.rerun()
