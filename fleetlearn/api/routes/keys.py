"""API keys: list, create, revoke (role admin). Secrets are shown once, never stored."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from fleetlearn.api.deps import AdminKey, StateDep
from fleetlearn.api.schemas import KeyCreate, KeyCreated, KeyPublic
from fleetlearn.registry import ApiKey

__all__ = ["router"]

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def _key_public(key: ApiKey) -> dict[str, Any]:
    return key.to_dict()


@router.get("", response_model=list[KeyPublic], summary="List API keys (never the secrets)",
            operation_id="listKeys")
def list_keys(state: StateDep, _: AdminKey, include_revoked: bool = False) -> list[dict[str, Any]]:
    return [_key_public(k) for k in state.registry.list_api_keys(include_revoked)]


@router.post("", response_model=KeyCreated, status_code=201,
             summary="Create an API key (the secret is in this answer only)",
             operation_id="createKey")
def create_key(state: StateDep, _: AdminKey, body: KeyCreate) -> dict[str, Any]:
    key, secret = state.registry.create_api_key(body.name, body.role)
    return {**_key_public(key), "key": secret}


@router.delete("/{key}", response_model=KeyPublic,
               summary="Revoke a key by id, name or prefix", operation_id="revokeKey")
def revoke_key(state: StateDep, _: AdminKey, key: str) -> dict[str, Any]:
    return _key_public(state.registry.revoke_api_key(key))
