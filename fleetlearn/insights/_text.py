"""The one rule for showing a stored error in a list: its first line, cut to a limit."""

from __future__ import annotations

__all__ = ["ERROR_LINE_CHARS", "first_line"]

#: Longest error text a failure list shows (the CLI, the API and the report alike); the
#: whole error and its traceback stay in the journal (``trial_units.payload``).
ERROR_LINE_CHARS = 300


def first_line(error: str | None, limit: int = ERROR_LINE_CHARS) -> str:
    """The first non-blank line of ``error``, stripped, at most ``limit`` characters.

    A cut line ends with ``…`` so a reader knows there is more (in the journal).

    Parameters
    ----------
    error : str or None
        An error message, possibly with a traceback below it.
    limit : int
        The most characters returned (the ellipsis included).

    Returns
    -------
    str
        ``""`` when ``error`` is None or blank.

    Examples
    --------
    >>> first_line("ValueError: boom\\nTraceback (most recent call last): ...")
    'ValueError: boom'
    >>> first_line("x" * 10, limit=5)
    'xxxx…'
    >>> first_line(None)
    ''
    """
    if limit < 1:
        raise ValueError(f"The 'limit' parameter must be an int in the range [1, inf). Got "
                         f"{limit!r} instead.")
    line = next((part.strip() for part in (error or "").splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[:limit - 1] + "…"
