"""Per-principal limits set in the admin (LimitOverride rows), as the catalog holds them."""

from __future__ import annotations

from dataclasses import dataclass, field

from resource_server_async.auth.principal import Principal


@dataclass(frozen=True, slots=True)
class UserLimits:
    """Per-user limits that replace an endpoint's; None keeps the endpoint's, 0 = unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None


def user_limits(rpm: int | None, tpm: int | None, concurrent: int | None) -> UserLimits:
    return UserLimits(rpm, tpm, concurrent)


def _more_generous(a: int | None, b: int | None) -> int | None:
    if a is None or b is None:
        return b if a is None else a
    if a == 0 or b == 0:  # 0 = unlimited beats any number
        return 0
    return max(a, b)


@dataclass(frozen=True)
class LimitOverrides:
    """By principal id ("api_key:<pk>") and by Globus group id."""

    by_principal: dict[str, UserLimits] = field(default_factory=dict)
    by_group: dict[str, UserLimits] = field(default_factory=dict)

    def for_principal(self, principal: Principal) -> UserLimits | None:
        """The key's own limits, field by field, else the most generous of its groups'."""
        if not self.by_principal and not self.by_group:
            return None
        own = self.by_principal.get(principal.id)
        group: UserLimits | None = None
        if self.by_group:
            for name in principal.groups:
                found = self.by_group.get(name)
                if found is not None:
                    group = found if group is None else _combine(group, found)
        if own is None:
            return group
        if group is None:
            return own
        return UserLimits(
            own.rpm if own.rpm is not None else group.rpm,
            own.tpm if own.tpm is not None else group.tpm,
            own.concurrent if own.concurrent is not None else group.concurrent,
        )


def _combine(a: UserLimits, b: UserLimits) -> UserLimits:
    return UserLimits(
        _more_generous(a.rpm, b.rpm),
        _more_generous(a.tpm, b.tpm),
        _more_generous(a.concurrent, b.concurrent),
    )
