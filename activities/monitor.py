"""Logs and metrics, through `azure-monitor-query` (LogsQueryClient) and
`azure-monitor-querymetrics` (MetricsClient)."""

from __future__ import annotations

from typing import Any

from azure.monitor.query import LogsQueryPartialResult, LogsQueryResult, LogsTable
from temporalio import activity
from temporalio.exceptions import ApplicationError

from stanch.activities.azure_clients import AzureClients
from stanch.activities.azure_errors import INVALID_REQUEST, azure_call
from stanch.activities.heartbeats import heartbeating
from stanch.models.azure import (
    KqlQuery,
    MetricPoint,
    MetricSeries,
    MetricsQuery,
    MetricsResult,
    QueryColumn,
    QueryResult,
    QueryTable,
)


class MonitorActivities:
    def __init__(self, azure: AzureClients) -> None:
        self._azure = azure

    @activity.defn
    async def run_kql(self, query: KqlQuery) -> QueryResult:
        """Read-only: safe to retry. A partial result is returned, flagged, not
        raised: a runbook may still decide on the rows it has."""
        if (query.workspace_id is None) == (query.resource_id is None):
            raise ApplicationError(
                "give exactly one of workspace_id or resource_id",
                type=INVALID_REQUEST,
                non_retryable=True,
            )
        logs = self._azure.logs()
        target = query.workspace_id or query.resource_id
        async with azure_call(f"query logs of {target}"):
            # A query may run for minutes (Log Analytics allows up to 10).
            if query.workspace_id:
                result = await heartbeating(
                    logs.query_workspace(query.workspace_id, query.query, timespan=query.timespan)
                )
            else:
                assert query.resource_id is not None
                result = await heartbeating(
                    logs.query_resource(query.resource_id, query.query, timespan=query.timespan)
                )
        if isinstance(result, LogsQueryPartialResult):
            return QueryResult(
                tables=[_table(t) for t in result.partial_data or []],
                partial=True,
                partial_error=str(getattr(result.partial_error, "message", result.partial_error)),
            )
        assert isinstance(result, LogsQueryResult)
        return QueryResult(tables=[_table(t) for t in result.tables])

    @activity.defn
    async def read_metrics(self, query: MetricsQuery) -> MetricsResult:
        """Read-only: safe to retry."""
        client = self._azure.metrics(query.region)
        aggregation = query.aggregation.lower()
        async with azure_call(f"read metrics {', '.join(query.names)}"):
            results = await heartbeating(
                client.query_resources(
                    resource_ids=query.resource_ids,
                    metric_namespace=query.namespace,
                    metric_names=query.names,
                    timespan=query.timespan,
                    granularity=query.interval,
                    aggregations=[query.aggregation],
                )
            )
        series = []
        # MetricsQueryResult carries no resource id: results come in request order.
        for resource_id, result in zip(query.resource_ids, results, strict=False):
            for metric in result.metrics:
                points = [
                    MetricPoint(at=point.timestamp, value=getattr(point, aggregation, None))
                    for ts in metric.timeseries
                    for point in ts.data
                ]
                series.append(
                    MetricSeries(
                        resource_id=resource_id,
                        name=metric.name,
                        unit=str(metric.unit),
                        points=points,
                    )
                )
        return MetricsResult(series=series)


def _table(table: LogsTable) -> QueryTable:
    columns = [
        QueryColumn(name=name, type=str(kind))
        for name, kind in zip(table.columns, table.columns_types or [], strict=False)
    ]
    rows: list[list[Any]] = [list(row) for row in table.rows]
    return QueryTable(name=table.name, columns=columns, rows=rows)
