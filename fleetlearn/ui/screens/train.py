"""Train: pick tables on the server (upload one, or add an example table), each with its
target; read what the server detects (the task, every column's kind); choose the models
from the catalog with their parameters, the folds and the schedule; start the run on
the server; watch its progress live (units done/total per dataset, best so far, time
left); cancel or resume it.

Everything outside the run's start is live (no form): the profile of a table is read
again when its target changes, and the model choices follow the detected tasks.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from fleetlearn.ui import _views as views
from fleetlearn.ui._session import call

RUN_STATE = "train_run"  # the id of the run started (or followed) here
UPLOAD_STATE = "train_upload"  # (file id, upload answer): one upload per file
#: A table just uploaded or added, to put among the picked ones on this run of the page.
ADDED_STATE = "train_added"
CATALOG_STATE = "train_catalog"  # the server's catalog, read once per session
PROFILE_STATE = "train_profiles"  # {(table, target): profile}: tables never change
TABLES_KEY = "train-tables"
TASKS = ["detect", "classification", "regression"]
#: Seconds between two looks at the run.
POLL_S = 2.0


def _added(name: str, target: str | None = None) -> None:
    st.session_state[ADDED_STATE] = name
    if target is not None:
        st.session_state[f"train-target-{name}"] = target


def _profile(name: str, target: str | None) -> dict[str, Any] | None:
    held = st.session_state.setdefault(PROFILE_STATE, {})
    if (name, target) not in held:
        answer = call(f"read the profile of {name}",
                      lambda c: c.dataset_profile(name, target), stop=False)
        if answer is None:
            return None
        held[(name, target)] = answer
    return held[(name, target)]


def _catalog() -> dict[str, Any]:
    if CATALOG_STATE not in st.session_state:
        st.session_state[CATALOG_STATE] = call("read the model catalog", lambda c: c.catalog())
    return st.session_state[CATALOG_STATE]


def _param_input(param: dict[str, Any], key: str, where: Any) -> Any:
    """One parameter's editor: a checkbox, a choice, a number or a text, at its default."""
    name, kind, default = param["name"], param["type"], param.get("default")
    label = f"{name} {param['range']}" if param.get("range") else name
    if kind == "bool":
        return where.checkbox(name, value=bool(default), key=key)
    if kind == "str":
        choices = list(param.get("choices") or [])
        if not choices:
            text = where.text_input(label, value="" if default is None else str(default),
                                    key=key)
            return None if text == "" and default is None else text
        if default not in choices:
            choices.insert(0, default)
        if param.get("nullable") and None not in choices:
            choices.append(None)
        return where.selectbox(label, choices, index=choices.index(default), key=key)
    cast = int if kind == "int" else float
    value = None if default is None else cast(default)
    bounds: dict[str, Any] = {}
    for bound, inside in (("minimum", lambda b: value is None or value >= b),
                          ("maximum", lambda b: value is None or value <= b)):
        if param.get(bound) is not None and inside(param[bound]):
            bounds["min_value" if bound == "minimum" else "max_value"] = cast(param[bound])
    # An empty box is None (the default of max_depth, max_leaf_nodes ...).
    unset = "None" if value is None else None
    if kind == "int":
        return where.number_input(label, value=value, step=1, key=key, placeholder=unset,
                                  **bounds)
    return where.number_input(label, value=value, format="%g", key=key, placeholder=unset,
                              **bounds)


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
        _added(sent["name"])
        st.success(f"Uploaded {sent['name']}: {sent['rows']} rows, "
                   f"{len(sent['columns'])} columns.")

# The tables first: a server that is down or refuses the key stops the page here, with
# one message.
tables = call("list the server's tables", lambda c: c.datasets()) or []
with st.expander("No table at hand? Add an example table to the server",
                 expanded=not tables):
    examples = call("list the example tables", lambda c: c.examples(), stop=False) or []
    if examples:
        described = {e["name"]: e for e in examples}
        example = st.selectbox("Example table", list(described), key="train-example")
        about = described[example]
        st.caption(f"{about['description']}; target {about['target']}"
                   f"{'; already on the server' if about['stored'] else ''}.")
        if st.button("Add it", key="train-example-add", icon=":material/add:"):
            added = call(f"add the example table {example}",
                         lambda c: c.add_example(example), stop=False)
            if added is not None:
                _added(added["name"], about["target"])
                st.success(f"{added['name']} is on the server: {added['rows']} rows.")
                tables = call("list the server's tables", lambda c: c.datasets()) or []
if not tables:
    st.info("The server's data folder holds no table yet: upload one, or add an example "
            "table above.")
    st.stop()
by_name = {t["name"]: t for t in tables}
names = list(by_name)
new = st.session_state.pop(ADDED_STATE, None)
# At first the table just added (uploaded, or an example), else the first one; later
# what the user picked, with a table just added among them.
first = [new] if new in by_name else [names[0]]
picked_before = [n for n in st.session_state.get(TABLES_KEY, first) if n in by_name]
if new in by_name and new not in picked_before:
    picked_before.append(new)
st.session_state[TABLES_KEY] = picked_before
picked = st.multiselect("Tables (one run trains on all of them)", names, key=TABLES_KEY)
if not picked:
    st.info("Pick at least one table.")
    st.stop()

# ------------------------------------------------------------- each table
chosen_tables: list[dict[str, Any]] = []
problems: list[str] = []
for name in picked:
    with st.container(border=True):
        columns = by_name[name].get("columns")
        if not columns:  # a file put in the data folder by hand: no upload record
            whole = _profile(name, None)
            columns = [c["name"] for c in whole["columns"]] if whole else []
        if not columns:
            problems.append(f"{name}: its columns could not be read")
            continue
        target_key, task_key = f"train-target-{name}", f"train-task-{name}"
        if st.session_state.get(target_key) not in columns:
            st.session_state[target_key] = columns[-1]
        left, right = st.columns([3, 1])
        target = left.selectbox(f"Target column of {name}", columns, key=target_key,
                                help="The server detects the task and every column's kind "
                                "as a run will; it says what it drops and why.")
        task = right.selectbox("Task", TASKS, key=task_key)
        profile = _profile(name, target)
        if profile is None:
            problems.append(f"{name}: the target {target} cannot be trained on")
            continue
        detected = profile["target"]["task"]
        st.markdown(f"**{name}**: {views.profile_summary(profile)}")
        if task != "detect" and task != detected:
            st.caption(f"Detected {detected}; trained as {task}, as chosen.")
        st.dataframe(views.profile_columns_frame(profile), hide_index=True,
                     key=f"train-kinds-{name}")
        chosen_tables.append({"name": name, "target": target,
                              "task": None if task == "detect" else task,
                              "detected": detected})

# ------------------------------------------------------------- models
st.subheader("Models")
advanced = st.text_area(
    "Advanced: model specs, one a line (e.g. random_forest:n_estimators=50 or a dotted "
    "path); when filled, every table trains these instead of the choices below",
    key="train-models")
specs = views.model_specs(advanced)
by_task: dict[str, list[Any]] = {}
tasks = sorted({t["task"] or t["detected"] for t in chosen_tables})
if tasks and specs is None:
    catalog = _catalog()
    for task in tasks:
        options, defaults = views.catalog_choices(catalog, task)
        models_key = f"train-models-{task}"
        if models_key not in st.session_state:
            st.session_state[models_key] = defaults
        chosen = st.multiselect(f"Models for {task} (the server's default set at first)",
                                options, key=models_key)
        if not chosen:
            problems.append(f"pick at least one model for {task}")
        values: dict[str, dict[str, Any]] = {}
        described = {m["name"]: m for m in catalog["models"]}
        for model in chosen:
            with st.expander(f"{model} ({task}): parameters"):
                text = (described[model].get("descriptions") or {}).get(task)
                if text:
                    st.caption(text)
                fields = views.param_fields(catalog, model, task)
                grid = st.columns(3)
                values[model] = {
                    p["name"]: _param_input(p, f"train-param-{task}-{model}-{p['name']}",
                                            grid[i % 3])
                    for i, p in enumerate(fields)}
        by_task[task] = views.model_entries(chosen, values, catalog, task)

# ------------------------------------------------------------- the run
folds, seed, schedule = st.columns(3)
n_folds = folds.number_input("Folds", min_value=2, max_value=50, value=5, key="train-folds")
n_seed = seed.number_input("Seed", min_value=0, value=0, key="train-seed")
how = schedule.selectbox("Schedule", ["concurrent", "sequential"], key="train-schedule")
for problem in problems:
    st.warning(f"Not ready: {problem}.")
start = st.button("Start training", key="train-start", type="primary",
                  disabled=bool(problems) or not chosen_tables)
if start:
    datasets = views.run_datasets(chosen_tables, None if specs else by_task)
    st.session_state["train_sent"] = {"datasets": datasets, "models": specs}
    started = call("start the run", lambda c: c.start_run(
        datasets, models=specs, folds=int(n_folds), seed=int(n_seed), schedule=how))
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
