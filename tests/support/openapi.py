"""A small validator for the part of OpenAPI 2.0 that Azure's REST API
specifications use in the response bodies azuresim gives: `$ref` (within a
document and across documents, relative to the referring file), `type`,
`properties`, `required`, `enum` (strict unless `x-ms-enum.modelAsString`),
`items`, `allOf`, `additionalProperties`, `format: date-time`.

Stricter than the SDKs on purpose: a property the schema does not declare is
reported (an emulator that grows fields the service never sends misleads the
tests written against it), unless the schema allows additional properties.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


@cache
def document(path: Path) -> dict[str, Any]:
    if not path.exists():  # a $ref into a document not vendored (yet)
        raise FileNotFoundError(f"{path} is referred to but not vendored (see specs/README.md)")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


@dataclass
class Schema:
    body: dict[str, Any]
    file: Path  # where its relative $refs start


def resolve(ref: str, base: Path) -> Schema:
    target, _, pointer = ref.partition("#")
    file = (base.parent / target).resolve() if target else base
    node: Any = document(file)
    for part in [p for p in pointer.split("/") if p]:
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return Schema(node, file)


def operation(spec: Path, path: str, method: str) -> dict[str, Any]:
    """The operation of `spec` at `path` (its template, as written) and `method`."""
    paths = document(spec)["paths"]
    if path not in paths or method.lower() not in paths[path]:
        raise KeyError(f"{spec.name} has no {method.upper()} {path}")
    found: dict[str, Any] = paths[path][method.lower()]
    return found


@dataclass(frozen=True)
class Route:
    spec: Path
    template: str  # the path as the spec writes it
    method: str

    @property
    def version(self) -> str:
        found: str = document(self.spec)["info"]["version"]
        return found


def route(specs: list[Path], method: str, path: str) -> Route:
    """The operation of `specs` that a concrete request (`path` without its
    query) is an instance of. ARM matches paths case-insensitively; a
    parameter that may hold slashes (`x-ms-skip-url-encoding`, and `{scope}`)
    matches them. Of several templates, ARM's own routing decides: the type
    after the last `/providers/{Namespace}` owns the request, so a template
    naming its namespace beats a generic one (`/{resourceId}`, or
    `.../providers/{resourceProviderNamespace}/...`); then the most literal."""
    found: list[tuple[tuple[bool, int], Route]] = []
    for spec in specs:
        for template, operations in document(spec)["paths"].items():
            if method.lower() not in operations:
                continue
            pattern, spans = _template_pattern(template, operations[method.lower()], spec)
            if pattern.fullmatch(path):
                literal = len(re.sub(r"\{[^}]+\}", "", template))
                named = list(re.finditer(r"/providers/[A-Za-z]", template))
                owner = named[-1].end() if named else 0
                generic = any(template.find("{" + name + "}", owner) >= 0 for name in spans)
                found.append(((not generic, literal), Route(spec, template, method.lower())))
    if not found:
        raise KeyError(f"no vendored spec has {method.upper()} {path}")
    return max(found, key=lambda f: f[0])[1]


def _template_pattern(
    template: str, operation: dict[str, Any], spec: Path
) -> tuple[re.Pattern[str], set[str]]:
    spans: set[str] = set()
    for parameter in operation.get("parameters", []):
        if "$ref" in parameter:
            try:
                parameter = resolve(parameter["$ref"], spec).body
            except FileNotFoundError:
                # The common types' parameters (api-version, subscriptionId,
                # resourceGroupName) never hold a slash; their documents need
                # not be vendored to match a path.
                continue
        # ARM's `{scope}` is a resource id whatever the document says (locks.json
        # leaves out x-ms-skip-url-encoding; the SDKs send it unquoted).
        if parameter.get("in") == "path" and (
            parameter.get("x-ms-skip-url-encoding") or parameter.get("name") == "scope"
        ):
            spans.add(parameter["name"])
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join(
        (".+" if p[1:-1] in spans else "[^/]+") if p.startswith("{") else re.escape(p)
        for p in parts
    )
    return re.compile(regex, re.IGNORECASE), spans


def response_schema(spec: Path, path: str, method: str, status: int | str) -> Schema:
    responses = operation(spec, path, method)["responses"]
    answer = responses.get(str(status)) or responses["default"]
    return Schema(answer["schema"], spec)


@dataclass
class Validation:
    ignore: list[str] = field(default_factory=list)  # fnmatch patterns of paths not checked
    problems: list[str] = field(default_factory=list)

    def check(self, value: Any, schema: Schema, where: str = "") -> list[str]:
        self._check(value, schema.body, schema.file, where)
        return self.problems

    def _check(self, value: Any, body: dict[str, Any], file: Path, where: str) -> None:
        if any(fnmatch.fnmatchcase(where, pattern) for pattern in self.ignore):
            return
        if "$ref" in body:
            target = resolve(body["$ref"], file)
            self._check(value, target.body, target.file, where)
            return
        if value is None:
            if not body.get("x-nullable"):
                self.problems.append(f"{where or '/'}: null where the spec has no x-nullable")
            return
        kind = body.get("type")
        if kind is None and ({"properties", "additionalProperties", "allOf"} & body.keys()):
            kind = "object"
        if kind in _TYPES and (
            not isinstance(value, _TYPES[kind]) or (kind != "boolean" and isinstance(value, bool))
        ):
            self.problems.append(f"{where or '/'}: {type(value).__name__}, the spec says {kind}")
            return
        if "enum" in body and not (body.get("x-ms-enum") or {}).get("modelAsString"):
            if value not in body["enum"]:
                self.problems.append(f"{where}: {value!r} is not one of {body['enum']}")
        if body.get("format") == "date-time" and not _DATE_TIME.match(str(value)):
            self.problems.append(f"{where}: {value!r} is not an RFC 3339 date-time")
        if kind == "array":
            for i, item in enumerate(value):
                self._check(item, body.get("items", {}), file, f"{where}/{i}")
        if kind == "object":
            self._object(value, body, file, where)

    def _object(self, value: dict[str, Any], body: dict[str, Any], file: Path, where: str) -> None:
        declared = _properties(body, file)
        for name in _required(body, file):
            if name not in value:
                self.problems.append(f"{where}/{name}: required by the spec, missing")
        extra = body.get("additionalProperties")
        for name, item in value.items():
            if name in declared:
                schema, origin = declared[name]
                self._check(item, schema, origin, f"{where}/{name}")
            elif isinstance(extra, dict):
                self._check(item, extra, file, f"{where}/{name}")
            elif extra is not True and declared:
                self.problems.append(f"{where}/{name}: not in the spec")


def _properties(body: dict[str, Any], file: Path) -> dict[str, tuple[dict[str, Any], Path]]:
    """Declared properties, with those of allOf parents and $ref'd schemas."""
    if "$ref" in body:
        target = resolve(body["$ref"], file)
        return _properties(target.body, target.file)
    found: dict[str, tuple[dict[str, Any], Path]] = {}
    for part in body.get("allOf", []):
        found.update(_properties(part, file))
    for name, schema in (body.get("properties") or {}).items():
        found[name] = (schema, file)
    return found


def _required(body: dict[str, Any], file: Path) -> set[str]:
    if "$ref" in body:
        target = resolve(body["$ref"], file)
        return _required(target.body, target.file)
    names = set(body.get("required", []))
    for part in body.get("allOf", []):
        names |= _required(part, file)
    return names
