"""Log Analytics queries (`/v1/...`) and the metrics batch API.

KQL is not reimplemented: a query names its table first, and a small subset of
operators is applied (`where Col == 'x'`, `where Col > n`, `take n`, `count`),
enough for runbook checks. Anything else returns the table as seeded.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from stanch.azuresim.api_versions import check_api_version
from stanch.azuresim.arm import Request, Response
from stanch.azuresim.state import ArmError, SimState
from stanch.azuresim.world import Series, Table, Workspace

_WHERE = re.compile(r"^where\s+(\w+)\s*(==|!=|>=|<=|>|<|=~)\s*(.+)$", re.IGNORECASE)


def handle_logs(state: SimState, req: Request) -> Response:
    segs = req.segments
    if req.method != "POST" or len(segs) < 3 or segs[-1].lower() != "query":
        raise ArmError(404, "PathNotFoundError", f"The requested path does not exist: {req.path}")
    body = req.body if isinstance(req.body, dict) else {}
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ArmError(400, "BadArgumentError", "The request had some invalid properties: query")
    if segs[1].lower() == "workspaces":
        workspace = _workspace(state, segs[2])
        if workspace is None:
            raise ArmError(404, "WorkspaceNotFoundError", f"Workspace {segs[2]} not found")
        tables, resource_filter = workspace.tables, None
    else:
        resource_id = "/" + "/".join(segs[1:-1])
        resource = state.get(resource_id)
        own = _workspace(state, str(resource.properties.get("customerId") or ""))
        if resource.type.lower() == "microsoft.operationalinsights/workspaces" and own:
            # A workspace's own resource id: everything in it, as on Azure.
            tables, resource_filter = own.tables, None
        else:
            # Any other resource: every workspace's rows about that resource.
            tables = {n: t for w in state.world.workspaces.values() for n, t in w.tables.items()}
            resource_filter = resource_id.lower()
    return Response(200, {"tables": [run_query(tables, query, resource_filter)]})


def _workspace(state: SimState, workspace_id: str) -> Workspace | None:
    """A workspace by id (its resource's customerId), in any case."""
    wanted = workspace_id.lower()
    return next((w for k, w in state.world.workspaces.items() if k.lower() == wanted), None)


def run_query(tables: dict[str, Table], query: str, resource_filter: str | None) -> dict[str, Any]:
    stages = [s.strip() for s in query.split("|")]
    name = stages[0]
    table = next((t for n, t in tables.items() if n.lower() == name.lower()), None)
    if table is None:
        raise ArmError(
            400, "SemanticError", f"'{name}' could not be resolved to a table, function or column"
        )
    columns = [{"name": c.name, "type": c.type} for c in table.columns]
    names = [c.name.lower() for c in table.columns]
    rows = [list(r) for r in table.rows]
    if resource_filter and "_resourceid" in names:
        i = names.index("_resourceid")
        rows = [r for r in rows if str(r[i]).lower() == resource_filter]
    for stage in stages[1:]:
        where = _WHERE.match(stage)
        if where:
            column, op, raw = where.groups()
            if column.lower() not in names:
                raise ArmError(400, "SemanticError", f"Failed to resolve column '{column}'")
            i = names.index(column.lower())
            value = _literal(raw)
            rows = [r for r in rows if _compare(r[i], op, value)]
        elif stage.lower().startswith("take ") or stage.lower().startswith("limit "):
            rows = rows[: int(stage.split()[1])]
        elif stage.lower() == "count":
            columns, rows = [{"name": "Count", "type": "long"}], [[len(rows)]]
    return {"name": "PrimaryResult", "columns": columns, "rows": rows}


def _literal(raw: str) -> Any:
    raw = raw.strip()
    if raw[:1] in "'\"" and raw[-1:] == raw[:1]:
        return raw[1:-1]
    try:
        return float(raw)
    except ValueError:
        return raw


def _compare(cell: Any, op: str, value: Any) -> bool:
    if isinstance(value, float):
        try:
            cell = float(cell)
        except (TypeError, ValueError):
            return False
    elif op == "=~":
        return str(cell).lower() == str(value).lower()
    else:
        cell = str(cell)
    outcome: bool = {
        "==": cell == value,
        "!=": cell != value,
        ">": cell > value,
        "<": cell < value,
        ">=": cell >= value,
        "<=": cell <= value,
        "=~": cell == value,
    }[op]
    return outcome


def handle_metrics_batch(state: SimState, req: Request) -> Response:
    if req.method != "POST":
        raise ArmError(405, "MethodNotAllowed", "metrics:getBatch takes POST")
    if "api-version" not in req.query:
        raise ArmError(400, "MissingApiVersionParameter", "api-version is required")
    check_api_version("Microsoft.Insights/metrics", req.query["api-version"])
    names = [n for n in req.query.get("metricnames", "").split(",") if n]
    if not names:
        raise ArmError(400, "BadRequest", "metricnames is required")
    namespace = req.query.get("metricnamespace", "")
    aggregations = [a.lower() for a in req.query.get("aggregation", "average").split(",")]
    body = req.body if isinstance(req.body, dict) else {}
    resource_ids = body.get("resourceids") or []
    if not resource_ids:
        raise ArmError(400, "BadRequest", "resourceids is required")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    values = []
    for rid in resource_ids:
        resource = state.get(rid)
        series_by_name = {
            n.lower(): s
            for r, m in state.world.metrics.items()
            if r.lower() == rid.lower()
            for n, s in m.items()
        }
        metrics = []
        for name in names:
            series = series_by_name.get(name.lower())
            metrics.append(_metric(resource.id, name, series, aggregations, now))
        values.append(
            {
                "resourceid": resource.id,
                "starttime": req.query.get("starttime"),
                "endtime": req.query.get("endtime"),
                "interval": req.query.get("interval", "PT1M"),
                "namespace": namespace,
                "resourceregion": resource.location,
                "value": metrics,
            }
        )
    return Response(200, {"values": values})


def _metric(
    rid: str, name: str, series: Series | None, aggregations: list[str], now: datetime
) -> dict[str, Any]:
    points = []
    if series is not None:
        step = _iso_minutes(series.interval)
        start = now - step * (len(series.values) - 1)
        for i, v in enumerate(series.values):
            point: dict[str, Any] = {
                "timeStamp": (start + step * i).isoformat().replace("+00:00", "Z")
            }
            for agg in aggregations if v is not None else ():  # a gap: no aggregate, as on Azure
                point[
                    {
                        "average": "average",
                        "total": "total",
                        "maximum": "maximum",
                        "minimum": "minimum",
                        "count": "count",
                    }.get(agg, agg)
                ] = v
            points.append(point)
    return {
        "id": f"{rid}/providers/Microsoft.Insights/metrics/{name}",
        "type": "Microsoft.Insights/metrics",
        "name": {"value": name, "localizedValue": name},
        "displayDescription": "",
        "unit": series.unit if series else "Count",
        "timeseries": [{"metadatavalues": [], "data": points}],
        "errorCode": "Success",
    }


def _iso_minutes(interval: str) -> timedelta:
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?", interval.upper())
    if not match:
        return timedelta(minutes=1)
    h, m, s = (int(x or 0) for x in match.groups())
    return timedelta(hours=h, minutes=m, seconds=s) or timedelta(minutes=1)
