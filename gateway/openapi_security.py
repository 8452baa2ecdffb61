"""`/openapi.json` says how to authenticate and which API role each operation
needs, so generated clients (and the fuzz tests) know about the credentials.

The role is read from the route's own `RoleCheck` dependency, so the document
cannot drift from what the route enforces."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from stanch.gateway.api import RoleCheck

SCHEMES: dict[str, Any] = {
    "apiToken": {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "On-call API: a token from `access.tokens` in stanch.yaml, or an ID token "
            "from the identity provider in `access.oidc`. Only in the Authorization header."
        ),
    },
    "intakeToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": (
            "Alert intake: STANCH_ALERT_TOKEN in the URL, as Azure plain webhooks send it."
        ),
    },
    "intakeBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "Alert intake: STANCH_ALERT_TOKEN as a bearer token, or the Entra ID token of "
            "an Azure Monitor secure webhook."
        ),
    },
}
OPEN = {"/healthz"}  # no credential: load balancers probe it


def declare_security(app: FastAPI) -> None:
    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = SCHEMES
            roles = {
                (method.lower(), context.path_format): needed_role(context.original_route)
                for context in iter_route_contexts(app.routes)  # routers included, prefixed
                if isinstance(context.original_route, APIRoute)
                for method in context.methods or ()
            }
            for path, operations in schema.get("paths", {}).items():
                for method, operation in operations.items():
                    secure(operation, path, roles.get((method, path)))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def secure(operation: dict[str, Any], path: str, role: str | None) -> None:
    said = operation.get("description", "").strip()
    if path in OPEN:
        operation["security"] = []
        needs = "No credential needed."
    elif path == "/alerts":
        operation["security"] = [{"intakeToken": []}, {"intakeBearer": []}]
        needs = "Needs the intake token (`?token=` or bearer) or a secure-webhook Entra ID token."
    else:
        operation["security"] = [{"apiToken": []}]
        role = role or "viewer"
        needs = f"Needs the API role `{role}`" + ("." if role == "admin" else " or higher.")
        operation.setdefault("responses", {}).update(
            {
                "401": {"description": "no credential, or one this gateway does not know"},
                "403": {"description": "the credential's role is below what this needs"},
            }
        )
    operation["description"] = f"{said}\n\n{needs}".strip()


def needed_role(route: APIRoute) -> str | None:
    ranked = [check.minimum for check in role_checks(route.dependant)]
    return str(max(ranked, key=lambda r: r.rank)) if ranked else None


def role_checks(dependant: Dependant) -> Iterator[RoleCheck]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, RoleCheck):
            yield dependency.call
        yield from role_checks(dependency)
