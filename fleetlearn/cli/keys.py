"""``fleetlearn keys create|list|revoke``: API keys for the REST API.

Imports of the registry, training, serving, reports and pandas sit inside each
command, not at the top: every verb (and ``fleetlearn --help``) imports all verb
modules, so a top-level import would make each of them pay for all the others.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fleetlearn.cli._common import JsonOpt, RegistryOpt, console, print_json, rows_table

app = typer.Typer(help="API keys for 'fleetlearn serve': create, list, revoke.",
                  no_args_is_help=True)



@app.command("create")
def create_key(
    role: Annotated[str, typer.Option(help="read, predict, train or admin (each includes "
                                      "the ones before).")],
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by; "
                                             "'<role>-key' by default.")] = None,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a key. The secret is printed once: only its hash is stored."""
    from fleetlearn.registry import Registry

    reg = Registry(registry)
    key, secret = reg.create_api_key(name or f"{role}-key", role)
    if json_out:
        print_json({**key.to_dict(), "key": secret})
        return
    console.print(f"created key {key.id} '{key.name}' with role {key.role}. Store it now, it "
                  "is not shown again:", highlight=False)
    print(secret)
    console.print("use it as: curl -H 'Authorization: Bearer <key>' ...", highlight=False)


@app.command("list")
def list_keys(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List keys (ids, names, roles, prefixes; never the secrets)."""
    from fleetlearn.registry import Registry

    keys = Registry(registry).list_api_keys(include_revoked=all_keys)
    if json_out:
        print_json([k.to_dict() for k in keys])
        return
    if not keys:
        console.print("no API keys: fleetlearn keys create --role predict")
        return
    console.print(rows_table([{
        "id": k.id, "name": k.name, "role": k.role, "prefix": k.prefix,
        "created": f"{k.created_at:%Y-%m-%d %H:%M}",
        "last used": f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never",
        "revoked": f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
    } for k in keys], title="API keys"))


@app.command("revoke")
def revoke_key(
    key: Annotated[str, typer.Argument(help="The key's id, name or prefix (flk_AbCd).")],
    registry: RegistryOpt = None,
) -> None:
    """Revoke a key: servers refuse it within 5 seconds."""
    from fleetlearn.registry import Registry

    revoked = Registry(registry).revoke_api_key(key)
    console.print(f"revoked key {revoked.id} '{revoked.name}' ({revoked.role})", highlight=False)
