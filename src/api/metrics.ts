/** Prometheus metrics: request count/latency by route and status, store latency. */
import { Counter, Histogram, Registry } from 'prom-client'

export interface Metrics {
  observeRequest(method: string, route: string, status: number, seconds: number): void
  observeStore(op: string, seconds: number): void
  readonly contentType: string
  render(): Promise<string>
}

export function newMetrics(): Metrics {
  const registry = new Registry()
  const requests = new Counter({
    name: 'sgwall_http_requests_total',
    help: 'HTTP requests by method, route and status',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  })
  const latency = new Histogram({
    name: 'sgwall_http_request_duration_seconds',
    help: 'HTTP request latency by method and route',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  })
  const store = new Histogram({
    name: 'sgwall_store_duration_seconds',
    help: 'Store transaction latency by operation',
    labelNames: ['op'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  })
  // Label children by their values, looked up by one string (prom-client hashes label objects on every call).
  const children = new Map<string, unknown>()
  const child = <T extends { inc(): void } | { observe(v: number): void }>(key: string, make: () => T): T => {
    let c = children.get(key) as T | undefined
    if (!c) {
      c = make()
      if (children.size < 10_000) children.set(key, c)
    }
    return c
  }
  return {
    observeRequest(method, route, status, seconds) {
      child(`r ${method} ${route} ${status}`, () => requests.labels({ method, route, status: String(status) })).inc()
      child(`l ${method} ${route}`, () => latency.labels({ method, route })).observe(seconds)
    },
    observeStore(op, seconds) {
      child(`s ${op}`, () => store.labels({ op })).observe(seconds)
    },
    contentType: registry.contentType,
    render: () => registry.metrics(),
  }
}
