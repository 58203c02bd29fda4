"""The GUI's entry point: ``streamlit run fleetlearn/ui/app.py`` (``fleetlearn ui``).

The frame around every page: the page menu (``st.navigation``) and the server the GUI
talks to. Each page is a script in ``screens/``.
"""

from __future__ import annotations

import streamlit as st

from fleetlearn import __version__
from fleetlearn.ui import PAGES_DIR
from fleetlearn.ui._session import KEY_STATE, api_url, display_url

st.set_page_config(page_title="fleetlearn", page_icon=":material/hub:", layout="wide")

page = st.navigation([
    st.Page(PAGES_DIR / "overview.py", title="Overview", icon=":material/dashboard:",
            default=True),
    st.Page(PAGES_DIR / "train.py", title="Train", icon=":material/model_training:"),
    st.Page(PAGES_DIR / "runs.py", title="Runs", icon=":material/leaderboard:"),
    st.Page(PAGES_DIR / "compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page(PAGES_DIR / "models.py", title="Models", icon=":material/inventory_2:"),
    st.Page(PAGES_DIR / "predict.py", title="Predict", icon=":material/online_prediction:"),
    st.Page(PAGES_DIR / "monitoring.py", title="Monitoring", icon=":material/monitoring:"),
])

with st.sidebar:
    st.caption(f"Server: {display_url(api_url())}")
    if st.session_state.get(KEY_STATE):
        if st.button("Forget the key typed here", icon=":material/key_off:"):
            del st.session_state[KEY_STATE]
            st.rerun()
    st.caption(f"fleetlearn {__version__}")

page.run()
