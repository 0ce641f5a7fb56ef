// api-v1's open system rows (src/rest/api-v1/system.ts): the health check in the dialect's shape,
// and the server's Prometheus metrics under the dialect's path, both without credentials.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SPINDLE_VERSION } from "../../src/version.js";
import { signedInUser } from "../helpers/factories.js";
import { restClient } from "../helpers/rest.js";
import { backend, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const { success } = restClient(() => server, "detail");

describe(`api-v1 REST dialect, health and metrics (${backend})`, () => {
  it("GET /api/v1/health answers {status, service, version} without credentials", async () => {
    const health = await success("/api/v1/health");
    expect(Object.keys(health).sort()).toEqual(["service", "status", "version"]);
    expect(health.service).toBe("spindle");
    expect(health.version).toBe(SPINDLE_VERSION);
    // Degraded only while Redis (postgres+redis) is still connecting; the embedded pub/sub is always up.
    expect(backend === "embedded" ? ["ok"] : ["ok", "degraded"]).toContain(health.status);
    // The server's own report agrees, but for timing:
    const report = await (await fetch(`${server.url}/health`)).json();
    // Redis may finish connecting between the two reads (degraded, then ok), never the other way.
    expect(health.status === "degraded" ? ["degraded", "ok"] : ["ok"]).toContain(report.status);
  });

  it("GET /api/v1/health ignores a bearer token, even a bad one", async () => {
    expect((await success("/api/v1/health", { token: "not-a-token" })).service).toBe("spindle");
    expect((await success("/api/v1/health", { token: (await signedInUser(server)).accessToken })).service).toBe("spindle");
  });

  it("GET /api/v1/metrics answers the server's Prometheus text, as /metrics does, without credentials", async () => {
    // Something to count first: a REST request the metrics then show.
    await success("/api/v1/health");
    const res = await fetch(`${server.url}/api/v1/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toMatch(/^# HELP /m);
    expect(text).toMatch(/^# TYPE spindle_http_requests_total counter$/m);
    expect(text).toMatch(/^spindle_http_requests_total\{method="GET",route="rest",status="200"\} \d+$/m);
    expect(text).toMatch(/^spindle_process_process_cpu_user_seconds_total \d/m);

    // The same exposition /metrics gives: the same metric families, in the same order.
    const direct = await (await fetch(`${server.url}/metrics`)).text();
    const families = (exposition: string) => exposition.match(/^# TYPE \S+/gm);
    expect(families(text)).toEqual(families(direct));
  });
});
