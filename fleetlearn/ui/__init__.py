"""The browser GUI: a Streamlit app that is a thin client of the REST API.

``fleetlearn ui --api URL`` runs ``streamlit run`` on :data:`APP_FILE` with the API's
URL and key in the child's environment (``FLEETLEARN_URL``, ``FLEETLEARN_API_KEY``,
what :class:`fleetlearn.Client` reads), never in a URL. Every page talks to the server
through :class:`fleetlearn.Client` only (never the registry, never Ray), so the GUI works
against a remote cluster exactly as against localhost.

Layout (skops keeps its Streamlit app thin and outside the library's logic; so here):

* ``_views``: plain functions, API answers in, tables (DataFrames), figures (the
  Plotly builders of :mod:`fleetlearn.reports`) and numbers out. No Streamlit: unit
  tested directly.
* ``_session``: the Streamlit side shared by every page: the client of this browser
  session, the API key prompt, API errors shown as messages.
* ``app.py``: the entry point (``st.navigation``), ``screens/*.py``: one script per page.

Streamlit is an optional dependency: ``pip install 'fleetlearn[ui]'``. Importing this
package does not import it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["APP_FILE", "PAGES_DIR", "require_streamlit"]

#: The script ``streamlit run`` is given.
APP_FILE = Path(__file__).with_name("app.py")
#: The page scripts (``st.Page`` files, relative to the app for ``AppTest.switch_page``).
# Not "pages/": Streamlit would also serve a folder of that name beside the app as
# pages of its own (its older multipage layout), bypassing app.py and st.navigation.
PAGES_DIR = APP_FILE.parent / "screens"


def require_streamlit() -> None:
    """Raise :class:`~fleetlearn.errors.ConfigError` with the install hint when Streamlit
    is missing.

    >>> require_streamlit()  # doctest: +SKIP
    """
    import importlib.util

    from fleetlearn.errors import ConfigError

    if importlib.util.find_spec("streamlit") is None:
        raise ConfigError("The GUI needs Streamlit, which is not installed: "
                          "pip install 'fleetlearn[ui]'.")
