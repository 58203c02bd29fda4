"""Streamlit pieces more than one page draws."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

__all__ = ["paged_table"]


def paged_table(frame: pd.DataFrame, *, key: str, page_state: str, page: int, more: bool,
                caption: str, back: str, forward: str) -> Any:
    """A one-row-selectable table of one server page, with buttons to the pages before
    and after it (``back`` / ``forward`` label them; their widget keys are
    ``<key>-<label>``). Returns the table, whose ``selection`` holds the picked row."""
    table = st.dataframe(frame, hide_index=True, key=f"{key}-table", on_select="rerun",
                         selection_mode="single-row")
    left, middle, right = st.columns([1, 4, 1])
    if left.button(back, disabled=page == 0, icon=":material/chevron_left:",
                   key=f"{key}-{back.lower()}"):
        st.session_state[page_state] = page - 1
        st.rerun()
    middle.caption(f"Page {page + 1}: {caption}")
    if right.button(forward, disabled=not more, icon=":material/chevron_right:",
                    key=f"{key}-{forward.lower()}"):
        st.session_state[page_state] = page + 1
        st.rerun()
    return table
