"""Request-scoped dependencies: the shared components and the authenticated caller."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from services.settings import ApiSettings


@dataclass(frozen=True)
class Caller:
    """Who is calling: every query and listing is filtered to ``tenant`` (and ``access_tags``)."""

    tenant: str
    roles: frozenset[str]
    access_tags: tuple[str, ...] | None  # None: every chunk of the tenant


class AuthError(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


ALL_ROLES = frozenset({"reader", "ingester", "auditor", "admin"})


def authenticate(settings: ApiSettings, default_tenant: str, authorization: str | None,
                 api_key_header: str | None) -> Caller:
    """Map the presented API key to a caller; with no keys configured, local full access."""
    if not settings.keys:
        return Caller(default_tenant, ALL_ROLES, None)
    presented = api_key_header
    if authorization and authorization.lower().startswith("bearer "):
        presented = authorization[7:].strip()
    if not presented:
        raise AuthError(401, "Unauthorized", "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")
    for key in settings.keys:
        if hmac.compare_digest(key.key.get_secret_value().encode(), presented.encode()):
            admin = "admin" in key.roles
            roles = frozenset(key.roles) | ({"reader", "ingester", "auditor"} if admin else set())
            tags = None if admin or "*" in key.access_tags else key.access_tags
            return Caller(key.tenant, roles, tags)
    raise AuthError(401, "Unauthorized", "unknown API key")


def require_role(role: str) -> Callable[[Request], Caller]:
    """A dependency that yields the caller if it holds ``role`` (403 otherwise)."""

    def dependency(request: Request) -> Caller:
        caller: Caller = request.state.caller
        if role not in caller.roles:
            raise AuthError(403, "Forbidden", f"this API key lacks the {role!r} role")
        return caller

    return dependency
