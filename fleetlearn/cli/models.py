"""``fleetlearn models list|show|delete|alias``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from fleetlearn.cli._common import JsonOpt, RegistryOpt, console, print_json, rows_table

app = typer.Typer(help="Registered model versions: list, show, alias, delete.",
                  no_args_is_help=True)



def _primary(mv) -> str:  # noqa: ANN001
    metric = mv.metrics.get("primary_metric")
    value = mv.metrics.get("test", {}).get(metric) if metric else None
    return f"{metric}={value:.4f}" if value is not None else ""


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="Show every version of this model.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only models of this dataset.")] = None,
    task: Annotated[str | None, typer.Option(help="classification or regression.")] = None,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List models (latest version of each), or every version of NAME."""
    from fleetlearn.registry import Registry

    reg = Registry(registry)
    versions = reg.list_models(name=name, dataset=dataset, task=task)
    if json_out:
        print_json([v.to_dict() for v in versions])
        return
    if not versions:
        console.print("no models yet: fleetlearn train DATA.csv --target COLUMN")
        return
    rows = []
    for v in versions:
        rows.append({
            "name": v.name, "version": v.version,
            "aliases": ", ".join(v.aliases),
            "test score": _primary(v), "run": v.run_id or "",
            "size": f"{v.artifact_size / 1024:.0f} KiB",
            "created": v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        })
    console.print(rows_table(rows, title="models"))


@app.command("show")
def show_model(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME:VERSION")],
    version: Annotated[int | None, typer.Option(help="Version number.")] = None,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one version: metrics, parameters, lineage, input schema, artifact."""
    from fleetlearn.registry import Registry, parse_model_ref

    reg = Registry(registry)
    name, ref_version, alias = parse_model_ref(ref)
    mv = reg.get_model_version(name, version=version or ref_version, alias=alias)
    if json_out:
        print_json(mv.to_dict())
        return
    aliases = list(mv.aliases)
    console.print(f"[bold]{mv.name}[/] version {mv.version}"
                  + (f" ({', '.join(aliases)})" if aliases else ""))
    console.print(f"  created    {mv.created_at:%Y-%m-%d %H:%M:%S}")
    console.print(f"  lineage    run {mv.run_id}, trial {mv.trial_id}, dataset {mv.dataset_id}")
    console.print(f"  artifact   sha256 {mv.artifact_digest} ({mv.artifact_size} bytes)")
    console.print(f"  params     {json.dumps(mv.params)}")
    for metric, value in sorted(mv.metrics.get("test", {}).items()):
        console.print(f"  test {metric:<20} {value:.4f}")
    cols = mv.input_schema.get("columns", [])
    console.print(rows_table(
        [{"column": c["name"], "kind": c["kind"], "dtype": c["dtype"],
          "nullable": c["nullable"],
          "categories": ", ".join(map(str, c.get("categories") or []))[:60]} for c in cols],
        title=f"input schema (target '{mv.input_schema.get('target')}')"))


@app.command("alias")
def alias_model(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version the alias points to.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    registry: RegistryOpt = None,
) -> None:
    """Point ALIAS of NAME at VERSION (moving it if it exists)."""
    from fleetlearn.registry import Registry

    reg = Registry(registry)
    reg.set_alias(name, alias, version)
    console.print(f"{name}@{alias} -> version {version}")


@app.command("delete")
def delete_model(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Delete one version (and the aliases pointing to it)."""
    from fleetlearn.registry import Registry

    reg = Registry(registry)
    mv = reg.get_model_version(name, version=version)
    if not yes:
        if not typer.confirm(f"Delete {mv.name} version {mv.version}?"):
            console.print("nothing deleted")
            raise typer.Exit(1)
    reg.delete_model_version(name, version)
    console.print(f"deleted {name} version {version}")
