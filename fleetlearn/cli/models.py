"""``fleetlearn models list|show|delete|alias``.

Imports of the registry, training, serving, reports and pandas sit inside each
command, not at the top: every verb (and ``fleetlearn --help``) imports all verb
modules, so a top-level import would make each of them pay for all the others.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from fleetlearn.cli._common import (
    ApiKeyOpt,
    JsonOpt,
    RegistryOpt,
    UrlOpt,
    console,
    print_json,
    rows_table,
)

app = typer.Typer(help="Registered model versions: list, show, alias, delete.",
                  no_args_is_help=True)


def _client(url: str, api_key: str | None):  # noqa: ANN202
    from fleetlearn.client import Client

    return Client(url, api_key=api_key)


def _score(metrics: dict) -> str:
    metric = metrics.get("primary_metric")
    value = (metrics.get("test") or {}).get(metric) if metric else None
    return f"{metric}={value:.4f}" if value is not None else ""


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="Show every version of this model.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only models of this dataset.")] = None,
    task: Annotated[str | None, typer.Option(help="classification or regression.")] = None,
    registry: RegistryOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List models (latest version of each), or every version of NAME."""
    from fleetlearn.registry import Registry

    if url:
        _list_remote(url, api_key, name, dataset, task, json_out)
        return
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
            "test score": _score(v.metrics), "run": v.run_id or "",
            "size": f"{v.artifact_size / 1024:.0f} KiB",
            "created": v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        })
    console.print(rows_table(rows, title="models"))


def _list_remote(url: str, api_key: str | None, name: str | None, dataset: str | None,
                 task: str | None, json_out: bool) -> None:
    with _client(url, api_key) as client:
        if name:
            rows = client.model_versions(name)["versions"]
        else:
            rows = client.models(dataset=dataset, task=task)
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print(f"no models on {url}")
        return
    console.print(rows_table([{
        "name": r["name"], "version": r["version"], "aliases": ", ".join(r.get("aliases", [])),
        "test score": _score(r["metrics"]) if "metrics" in r else (
            f"{r['primary_metric']}={r['test_score']:.4f}"
            if r.get("test_score") is not None else ""),
        "created": str(r.get("created_at", ""))[:19].replace("T", " "),
    } for r in rows], title=f"models on {url}"))


@app.command("show")
def show_model(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME:VERSION")],
    version: Annotated[int | None, typer.Option(help="Version number.")] = None,
    registry: RegistryOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one version: metrics, parameters, lineage, input schema, artifact."""
    from fleetlearn.registry import Registry, parse_model_ref

    name, ref_version, alias = parse_model_ref(ref)
    if url:
        with _client(url, api_key) as client:
            if version or ref_version:
                mv = client.model_version(name, version or ref_version)
            else:
                listing = client.model_versions(name)
                if alias is not None and alias not in listing["aliases"]:
                    from fleetlearn.errors import NotFoundError

                    known = ", ".join(sorted(listing["aliases"])) or "none"
                    raise NotFoundError(f"Model '{name}' has no alias '{alias}' on {url} "
                                        f"(aliases: {known}).")
                wanted = listing["aliases"][alias] if alias else listing["versions"][-1][
                    "version"]
                mv = client.model_version(name, wanted)
    else:
        mv = Registry(registry).get_model_version(name, version=version or ref_version,
                                                  alias=alias).to_dict()
    if json_out:
        print_json(mv)
        return
    _show(mv)


def _show(mv: dict) -> None:
    aliases = list(mv.get("aliases") or [])
    console.print(f"[bold]{mv['name']}[/] version {mv['version']}"
                  + (f" ({', '.join(aliases)})" if aliases else ""))
    console.print(f"  created    {str(mv['created_at'])[:19].replace('T', ' ')}")
    console.print(f"  lineage    run {mv['run_id']}, trial {mv['trial_id']}, "
                  f"dataset {mv['dataset_id']}")
    console.print(f"  artifact   sha256 {mv['artifact_digest']} ({mv['artifact_size']} bytes)")
    console.print(f"  params     {json.dumps(mv['params'])}")
    for metric, value in sorted((mv["metrics"].get("test") or {}).items()):
        if isinstance(value, int | float):
            console.print(f"  test {metric:<20} {value:.4f}")
    schema = mv["input_schema"]
    cols = schema.get("columns", [])
    console.print(rows_table(
        [{"column": c["name"], "kind": c["kind"], "dtype": c["dtype"],
          "nullable": c["nullable"],
          "categories": ", ".join(map(str, c.get("categories") or []))[:60]} for c in cols],
        title=f"input schema (target '{schema.get('target')}')"))


@app.command("alias")
def alias_model(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version the alias points to.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    registry: RegistryOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Point ALIAS of NAME at VERSION (moving it if it exists)."""
    from fleetlearn.registry import Registry

    if url:
        with _client(url, api_key) as client:
            client.set_alias(name, alias, version)
    else:
        Registry(registry).set_alias(name, alias, version)
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
