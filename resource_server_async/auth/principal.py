"""The authenticated caller, as every later step of a request sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PrincipalKind = Literal["user", "service", "api_key"]


@dataclass(frozen=True, slots=True)
class Principal:
    id: str  # stable identity id (Globus identity id, or "api_key:<pk>")
    username: str  # e.g. "jdoe@anl.gov"; for keys, the key's name
    kind: PrincipalKind
    name: str = ""
    idp_domain: str = ""  # domain of the identity used (allowed_domains compares to this)
    groups: frozenset[str] = field(default_factory=frozenset)
    # Globus: which identity of the user's set authenticated this session (for audit).
    identity_source: str = ""
    # A personal API key acting as its owner: the key's id and its optional narrower scope
    # (empty = everything the owner may use).
    key_id: int | None = None
    key_models: frozenset[str] = field(default_factory=frozenset)
    key_clusters: frozenset[str] = field(default_factory=frozenset)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "kind": self.kind,
            "idp_domain": self.idp_domain,
            "groups": sorted(self.groups),
            "identity_source": self.identity_source,
        }
        if self.key_id is not None:
            body["personal_key"] = {
                "id": self.key_id,
                "models": sorted(self.key_models),
                "clusters": sorted(self.key_clusters),
            }
        return body

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Principal:
        """The inverse of `as_dict` (principals are cached as JSON)."""
        return cls(
            id=str(data["id"]),
            username=str(data["username"]),
            kind=data["kind"],
            name=str(data.get("name", "")),
            idp_domain=str(data.get("idp_domain", "")),
            groups=frozenset(data.get("groups", ())),
            identity_source=str(data.get("identity_source", "")),
            key_id=int(key["id"]) if (key := data.get("personal_key")) else None,
            key_models=frozenset(key["models"]) if key else frozenset(),
            key_clusters=frozenset(key["clusters"]) if key else frozenset(),
        )


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """What a personal key's row says of its owner, read with the key (auth/key_owners.py
    re-checks it; defined here so that key validation does not import the Globus SDK)."""

    key_id: int
    sealed_token: str
    principal: Principal  # groups as last stored; replaced by the re-check
