"""``fleetlearn certs init|rotate|status``: a private CA and a cluster's certificates.

``init DIR`` makes the CA and the node and server certificates (see
:mod:`fleetlearn.security`); ``rotate DIR`` replaces the node and server certificates
with new ones signed by the same CA; ``status DIR`` lists each certificate with its
names and end date, warning 30 days ahead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetlearn.cli._common import JsonOpt, console, print_json, rows_table
from fleetlearn.security import CERT_DAYS, cert_status, init_certs, rotate_certs

app = typer.Typer(help="A private CA and the cluster's certificates: init, rotate, status.",
                  no_args_is_help=True)

DirArg = Annotated[Path, typer.Argument(help="The certificate folder (ca.crt, node.crt, "
                                             "server.crt and their keys).")]
SanOpt = Annotated[list[str] | None, typer.Option(
    "--san", help="One more DNS name or IP the certificates name (repeatable).")]
DaysOpt = Annotated[int, typer.Option(help="Days the node and server certificates last.")]


def _show(folder: Path, title: str) -> None:
    infos = cert_status(folder)
    console.print(rows_table([{
        "file": Path(c.file).name, "subject": c.subject.split(",")[0].removeprefix("CN="),
        "names": ", ".join(c.sans[:6]) + (f" (+{len(c.sans) - 6})" if len(c.sans) > 6 else ""),
        "not after": c.not_after, "days left": str(c.days_left),
        "warning": c.warning or ""} for c in infos], title=title))
    for c in infos:
        if c.warning:
            console.print(f"warning: {Path(c.file).name} {c.warning}", highlight=False)


@app.command("init")
def init_command(folder: DirArg, san: SanOpt = None, days: DaysOpt = CERT_DAYS,
                 json_out: JsonOpt = False) -> None:
    """Create a CA and node and server certificates signed by it (keys 0600)."""
    made = init_certs(folder, sans=san or [], days=days)
    if json_out:
        print_json([c.to_dict() for c in cert_status(made)])
        return
    _show(made, f"certificates in {made}")
    console.print(f"keep {made / 'ca.key'} private: it signs every certificate; "
                  f"renew with: fleetlearn certs rotate {made}", highlight=False)


@app.command("rotate")
def rotate_command(folder: DirArg, san: SanOpt = None, days: DaysOpt = CERT_DAYS,
                   json_out: JsonOpt = False) -> None:
    """Replace the node and server certificates with new ones signed by the same CA."""
    made = rotate_certs(folder, days=days, sans=san or [])
    if json_out:
        print_json([c.to_dict() for c in cert_status(made)])
        return
    _show(made, f"new certificates in {made}")
    console.print("restart the cluster's nodes to load them (fleetlearn cluster down / up)",
                  highlight=False)


@app.command("status")
def status_command(folder: DirArg, json_out: JsonOpt = False) -> None:
    """Each certificate: subject, names, end date, days left, a warning under 30 days."""
    if json_out:
        print_json([c.to_dict() for c in cert_status(folder)])
        return
    _show(Path(folder).expanduser().absolute(), f"certificates in {folder}")
