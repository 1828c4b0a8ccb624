"""Prometheus exposition: read at scrape time from the catalog, so every process reports the same numbers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from snapdex.runtime import Runtime


class EvalCollector:
    """The live snapshot's metrics per tenant and active query set, from its newest finished run."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self):
        value = GaugeMetricFamily("snapdex_eval_metric", "IR metric of the live snapshot on a labelled query set",
                                  labels=["tenant", "query_set", "version", "snapshot", "metric"])
        latency = GaugeMetricFamily("snapdex_eval_latency_ms", "per-query latency of the evaluation run",
                                    labels=["tenant", "query_set", "snapshot", "quantile"])
        queries = GaugeMetricFamily("snapdex_eval_queries", "queries scored in the run",
                                    labels=["tenant", "query_set", "snapshot"])
        age = GaugeMetricFamily("snapdex_eval_run_timestamp_seconds", "when the run finished",
                                labels=["tenant", "query_set", "snapshot"])
        for tenant, snap, run in self.rt.evaluator.live_runs():
            short = snap[:12]
            for metric, v in run.metrics.items():
                value.add_metric([tenant, run.set_name, str(run.set_version), short, metric], v)
            for q, v in run.latency_ms.items():
                latency.add_metric([tenant, run.set_name, short, q], v)
            queries.add_metric([tenant, run.set_name, short], run.queries or 0)
            age.add_metric([tenant, run.set_name, short], run.finished_at or 0)
        held = GaugeMetricFamily("snapdex_snapshots_held", "built snapshots the gate held back", labels=["tenant"])
        for tenant in self.rt.manifest.tenants():
            verdicts = self.rt.evals.verdicts(tenant)
            n = sum(1 for s in self.rt.manifest.list(tenant)
                    if s.status == "candidate" and s.hash in verdicts and not verdicts[s.hash].passed)
            held.add_metric([tenant], n)
        yield from (value, latency, queries, age, held)


def registry_for(rt: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(EvalCollector(rt))
    return registry
