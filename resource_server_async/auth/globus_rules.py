"""What a Globus introspection must show for the gateway to accept the token (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from globus_sdk.gare import GARE, GlobusAuthorizationParameters

from resource_server_async.auth.principal import Principal
from resource_server_async.errors import GatewayError

# The username domain of Globus client identities (service accounts).
CLIENT_IDENTITY_DOMAIN = "clients.auth.globus.org"
_LIST_SEPARATORS = re.compile(r"[\s;,]+")
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


@dataclass(frozen=True, slots=True)
class AuthRules:
    """The operator's Globus requirements, read once from settings."""

    client_id: str
    idp_domains: frozenset[str] = frozenset()
    policies: tuple[str, ...] = ()
    groups: frozenset[str] = frozenset()
    groups_per_idp: dict[str, frozenset[str]] = field(default_factory=dict)
    service_usernames: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls) -> AuthRules:
        return cls(
            client_id=settings.GLOBUS_APPLICATION_ID,
            idp_domains=frozenset(d.lower() for d in settings.AUTHORIZED_IDP_DOMAINS),
            policies=tuple(settings.GLOBUS_POLICIES),
            groups=frozenset(settings.GLOBUS_GROUPS),
            groups_per_idp=parse_groups_per_idp(settings.AUTHORIZED_GROUPS_PER_IDP),
            service_usernames=frozenset(
                str(u).lower() for u in settings.AUTHORIZED_GLOBUS_SERVICE_USERNAMES
            ),
        )


def parse_groups_per_idp(raw: Any) -> dict[str, frozenset[str]]:
    """{"domain": "g1,g2"} as deployments write it (a JSON list per domain is accepted too)."""
    if not isinstance(raw, dict):
        raise GatewayError(
            500,
            "auth_misconfigured",
            "AUTHORIZED_GROUPS_PER_IDP must be a JSON object {domain: groups}.",
        )
    parsed: dict[str, frozenset[str]] = {}
    for domain, groups in raw.items():
        items = groups if isinstance(groups, list) else _LIST_SEPARATORS.split(str(groups))
        parsed[str(domain).lower()] = frozenset(str(g).strip() for g in items if str(g).strip())
    return parsed


def domain_of(username: str) -> str:
    return username.rpartition("@")[2].lower() if "@" in username else ""


def check_token(data: dict[str, Any], rules: AuthRules, now: float) -> float:
    """Active, unexpired and meant for this gateway; returns the expiry (epoch seconds)."""
    if not data.get("active"):
        raise GatewayError(
            401,
            "invalid_token",
            "The access token is not active (it is unknown, revoked or expired). "
            "Get a new Globus access token for this gateway and retry.",
            headers=_INVALID_TOKEN,
        )
    exp = data.get("exp")
    expires_at = float(exp) if isinstance(exp, int | float) else now
    if expires_at <= now:
        raise GatewayError(
            401,
            "token_expired",
            "The access token has expired. Refresh it (or log in again) and retry.",
            headers=_INVALID_TOKEN,
        )
    audience = data.get("aud") or []
    if isinstance(audience, str):
        audience = [audience]
    if rules.client_id not in audience:
        raise GatewayError(
            401,
            "invalid_audience",
            "The access token was not issued for this gateway. Request a token for the "
            "gateway's scope (not another service's) and retry.",
            headers=_INVALID_TOKEN,
        )
    return expires_at


def identify(data: dict[str, Any], rules: AuthRules) -> Principal:
    """The identity the request runs as (groups are filled in later), after the session checks."""
    username = str(data.get("username") or "")
    if username.lower() in rules.service_usernames:
        # Client-credential identities have no login session, so session rules cannot apply.
        return Principal(
            id=str(data.get("sub") or data.get("client_id") or username),
            username=username,
            name=str(data.get("name") or username),
            kind="service",
            idp_domain=domain_of(username),
            identity_source="client_credentials",
        )
    if domain_of(username) == CLIENT_IDENTITY_DOMAIN:
        raise GatewayError(
            403,
            "service_account_not_allowed",
            f"The service account {username!r} is not allowed on this gateway. Ask the gateway "
            "operator to add it to AUTHORIZED_GLOBUS_SERVICE_USERNAMES.",
        )
    identity = _session_identity(data, rules)
    _check_policies(data, rules)
    return identity


def _identities(data: dict[str, Any]) -> list[dict[str, Any]]:
    detail = data.get("identity_set_detail") or []
    return [i for i in detail if isinstance(i, dict) and (i.get("sub") or i.get("id"))]


def _session_identities(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Identities of the user's set that authenticated in the current session, in set order."""
    session = data.get("session_info") or {}
    authentications = session.get("authentications") or {}
    if not isinstance(authentications, dict):
        return []
    idps = {a.get("idp") for a in authentications.values() if isinstance(a, dict)}
    found = []
    for identity in _identities(data):
        identity_id = identity.get("sub") or identity.get("id")
        # Sessions are keyed by identity id; match the identity provider as a fallback.
        if identity_id in authentications or identity.get("identity_provider") in idps:
            found.append(identity)
    return found


def _principal(identity: dict[str, Any], source: str) -> Principal:
    username = str(identity.get("username") or "")
    return Principal(
        id=str(identity.get("sub") or identity.get("id")),
        username=username,
        name=str(identity.get("name") or ""),
        kind="user",
        idp_domain=domain_of(username),
        identity_source=source,
    )


def _idp_source(identity: dict[str, Any]) -> str:
    return str(
        identity.get("identity_provider_display_name") or identity.get("identity_provider") or ""
    )


def _session_identity(data: dict[str, Any], rules: AuthRules) -> Principal:
    in_session = _session_identities(data)
    if rules.idp_domains:
        for identity in in_session:
            if domain_of(str(identity.get("username") or "")) in rules.idp_domains:
                return _principal(identity, _idp_source(identity))
        shown = ", ".join(str(i.get("username")) for i in in_session) or "no identity"
        raise authorization_required(
            "session_idp_not_allowed",
            f"This gateway requires a login with an identity from {_listed(rules.idp_domains)}; "
            f"your current Globus session has {shown}. Log in again with an allowed identity "
            "(Globus clients can do this automatically from authorization_parameters).",
            rules,
        )
    # Without an allow-list, the primary identity is used when it is in the session, else the
    # first identity that is, so that allowed_domains compares the identity actually used.
    primary = str(data.get("sub") or "")
    for identity in in_session:
        if (identity.get("sub") or identity.get("id")) == primary:
            return _principal(identity, _idp_source(identity))
    if in_session:
        return _principal(in_session[0], _idp_source(in_session[0]))
    username = str(data.get("username") or "")
    return Principal(
        id=primary or username,
        username=username,
        name=str(data.get("name") or ""),
        kind="user",
        idp_domain=domain_of(username),
        identity_source="primary identity",
    )


def _check_policies(data: dict[str, Any], rules: AuthRules) -> None:
    if not rules.policies:
        return
    evaluations = data.get("policy_evaluations") or {}
    failed = [
        policy
        for policy in rules.policies
        if not (isinstance(evaluations.get(policy), dict) and evaluations[policy].get("evaluation"))
    ]
    if failed:
        raise authorization_required(
            "session_policy_failed",
            "Your Globus session does not satisfy this gateway's authentication policy "
            "(for example a high-assurance login that timed out). Log in again "
            "(Globus clients can do this automatically from authorization_parameters).",
            rules,
            policies=failed,
        )


def authorization_required(
    code: str, message: str, rules: AuthRules, policies: list[str] | None = None
) -> GatewayError:
    """A 401 whose body is also a Globus Auth Requirements Error, for automatic re-login."""
    parameters = GlobusAuthorizationParameters(
        session_message=message,
        session_required_single_domain=sorted(rules.idp_domains) or None,
        session_required_policies=policies or (list(rules.policies) or None),
    )
    gare = GARE(code="AuthorizationRequired", authorization_parameters=parameters)
    return GatewayError(401, code, message, extra=gare.to_dict(), headers=dict(_INVALID_TOKEN))


def check_groups(principal: Principal, rules: AuthRules) -> None:
    """Gateway-wide group requirements: GLOBUS_GROUPS, then the per-IdP groups."""
    if rules.groups and principal.groups.isdisjoint(rules.groups):
        raise GatewayError(
            403,
            "not_in_required_group",
            "You are not a member of any Globus group this gateway requires. Ask the gateway "
            "operator which group to join, then retry.",
        )
    required = rules.groups_per_idp.get(principal.idp_domain)
    if required and principal.groups.isdisjoint(required):
        raise GatewayError(
            403,
            "not_in_idp_group",
            f"Users who log in with a {principal.idp_domain} identity must be a member of one "
            "of the Globus groups this gateway requires for that domain. Ask the gateway "
            "operator which group to join, then retry.",
        )


def with_groups(principal: Principal, groups: list[str]) -> Principal:
    return replace(principal, groups=frozenset(groups))


def _listed(domains: frozenset[str]) -> str:
    return ", ".join(sorted(domains))
