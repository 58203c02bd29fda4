"""The Streamlit side every page shares: this browser session's client, the API key
prompt, and API errors shown as messages instead of tracebacks.

The key comes from the GUI process's environment (``fleetlearn ui --key``) or from the
prompt, and is kept in ``st.session_state`` only: never in a URL, a query parameter or
the page.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import streamlit as st

from fleetlearn.client import DEFAULT_URL, Client
from fleetlearn.errors import ApiError, ServerUnreachableError

__all__ = ["api_url", "display_url", "client", "call", "ask_for_key", "show_error", "KEY_STATE",
           "CLIENT_STATE"]

T = TypeVar("T")

#: ``st.session_state`` entry of a key typed into the prompt (wins over the environment's).
KEY_STATE = "fleetlearn_api_key"
#: ``st.session_state`` entry of this session's client, with the key it was made with.
CLIENT_STATE = "fleetlearn_client"
#: Seconds the GUI waits for each answer: a page must not hang on a stuck server.
TIMEOUT_S = 15.0


def api_url() -> str:
    """The server the GUI talks to: ``$FLEETLEARN_URL`` (``fleetlearn ui --api``)."""
    return (os.environ.get("FLEETLEARN_URL") or DEFAULT_URL).rstrip("/")


def display_url(url: str) -> str:
    """``url`` without any user or password in it (for the page)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _key() -> str | None:
    typed = st.session_state.get(KEY_STATE)
    return typed if typed else (os.environ.get("FLEETLEARN_API_KEY") or None)


def client() -> Client:
    """This session's client (made again when the key changes)."""
    key = _key()
    held = st.session_state.get(CLIENT_STATE)
    if held is not None and held[0] == (api_url(), key):
        return held[1]
    if held is not None:
        held[1].close()
    made = Client(api_url(), key, timeout=TIMEOUT_S)
    st.session_state[CLIENT_STATE] = ((api_url(), key), made)
    return made


def ask_for_key(message: str) -> None:
    """The key prompt: the server's message, a password field, and a button."""
    st.error(message, icon=":material/key:")
    with st.form("api-key-form", clear_on_submit=True):
        typed = st.text_input("API key", type="password", key="api_key_input",
                              help="A key of this server (fleetlearn keys create). It is "
                              "kept for this browser session only.")
        if st.form_submit_button("Use this key", key="api-key-use") and typed.strip():
            st.session_state[KEY_STATE] = typed.strip()
            st.rerun()


def show_error(exc: ApiError, what: str) -> None:
    """One API error as a message on the page (the key prompt for a 401)."""
    if isinstance(exc, ServerUnreachableError):
        st.error(f"Cannot {what}: {exc}", icon=":material/cloud_off:")
    elif exc.status == 401:
        typed = bool(st.session_state.get(KEY_STATE)) or bool(os.environ.get(
            "FLEETLEARN_API_KEY"))
        lead = "The server refused this API key" if typed else "The server needs an API key"
        ask_for_key(f"{lead}: {exc.detail}")
    elif exc.status == 403:
        st.error(f"Not allowed to {what}: {exc.detail} Use a key with that role.",
                 icon=":material/block:")
    else:
        status = f" ({exc.status})" if exc.status else ""
        st.error(f"Cannot {what}{status}: {exc.detail}", icon=":material/error:")


def call(what: str, fn: Callable[[Client], T], *, stop: bool = True) -> T | None:
    """``fn(client())``, with any API error shown on the page.

    Parameters
    ----------
    what : str
        What the call does, for the message ("list the runs").
    stop : bool
        After an error, stop the page (``st.stop``); otherwise return None.
    """
    try:
        return fn(client())
    except ApiError as exc:
        show_error(exc, what)
        if stop:
            st.stop()
        return None
