/**
 * Get-or-create for prom-client metrics on a given registry, so that two sinks (or a sink created
 * twice, as in tests) sharing one registry reuse a metric instead of failing on registration.
 */
import { Counter, Gauge, collectDefaultMetrics, type Registry } from 'prom-client';

export function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing as Counter<L>;
  return new Counter<L>({ name, help, labelNames, registers: [registry] });
}

export function gauge<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Gauge) return existing as Gauge<L>;
  return new Gauge<L>({ name, help, labelNames, registers: [registry] });
}

/**
 * prom-client's gauges that promtool refuses (a gauge may not end in `_total`): each repeats the
 * sum of its per-type sibling (`nodejs_active_handles{type}` and so on), so nothing is lost.
 */
const GAUGES_NAMED_LIKE_COUNTERS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * The standard Node process metrics (`process_cpu_seconds_total`, `nodejs_eventloop_lag_seconds`,
 * ...) under their standard names, unprefixed, so that stock Node dashboards find them.
 */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of GAUGES_NAMED_LIKE_COUNTERS) registry.removeSingleMetric(name);
}
