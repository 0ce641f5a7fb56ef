// Prometheus metrics, one registry per app (tests run several apps in one process).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "spindle_process_" });
  return {
    registry,
    httpRequests: new Counter({
      name: "spindle_http_requests_total",
      help: "HTTP requests by method, route and status",
      labelNames: ["method", "route", "status"] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: "spindle_http_request_duration_seconds",
      help: "HTTP request latency by route",
      labelNames: ["method", "route"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    graphqlOperations: new Counter({
      name: "spindle_graphql_operations_total",
      help: "GraphQL operations by type and transport",
      labelNames: ["type", "transport"] as const,
      registers: [registry],
    }),
    activeSubscriptions: new Gauge({
      name: "spindle_active_subscriptions",
      help: "GraphQL subscriptions streaming right now (WebSocket and SSE)",
      registers: [registry],
    }),
    websocketConnections: new Gauge({
      name: "spindle_websocket_connections",
      help: "Open graphql-ws connections",
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
