// api-v1's health check and Prometheus metrics (../shared/seeds/003, "Health"): both open, both the
// server's own (`/health`, `/metrics`) under the dialect's paths; no GraphQL behind either.
import { z } from "zod";
import { SPINDLE_VERSION } from "../../version.js";
import { Answer, RestError, type Route } from "../route.js";
import { OPEN, apiV1Route } from "./common.js";

/** Prometheus' text exposition format, as /metrics answers it. */
const PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";

export const apiV1SystemRoutes: Route[] = [
  apiV1Route({
    method: "GET",
    path: "/api/v1/health",
    summary: "Basic health check: status (ok, or degraded while pub/sub is down), service name and version. No auth required",
    auth: OPEN,
    response: z.object({
      status: z.enum(["ok", "degraded"]).describe("degraded: the database answers but pub/sub (live updates across servers) does not"),
      service: z.literal("spindle"),
      version: z.string().describe("Spindle's version"),
    }),
    async handler({ health }) {
      // Down means the database does not answer: 503 with the dialect's {"detail"}, as /health answers 503.
      const { status } = await health();
      if (status === "down") throw new RestError("SERVICE_UNAVAILABLE", "The database does not answer");
      return { status, service: "spindle" as const, version: SPINDLE_VERSION };
    },
  }),
  apiV1Route({
    method: "GET",
    path: "/api/v1/metrics",
    summary: "Prometheus metrics (text exposition format 0.0.4), the same as GET /metrics: Spindle's metric names, not the legacy server's. No auth required",
    auth: OPEN,
    produces: PROMETHEUS_TEXT,
    response: z.string().describe("Prometheus text exposition"),
    async handler({ metrics }) {
      const { contentType, text } = await metrics();
      return new Answer(text, { contentType });
    },
  }),
];
