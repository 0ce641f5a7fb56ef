// The legacy endpoint inventory against what the server answers: every core row of a built dialect
// has a route; every documented endpoint without one answers 501 in its dialect's error body (never
// 404, never a fake success); unknown paths stay 404; the OpenAPI document is valid 3.1 and lists
// every route and documented endpoint.
import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUILT_DIALECTS, legacyRoutes } from "../../src/rest/index.js";
import { readInventory, routerPath } from "../../src/rest/inventory.js";
import { DIALECTS } from "../../src/rest/route.js";
import { backend, startTestServer, type TestServer } from "../helpers/server.js";

const inventory = readInventory();
const key = (method: string, path: string) => `${method === "WS" ? "GET" : method} ${routerPath(path).replace(/:\w+/g, ":p")}`;
const routed = new Set(legacyRoutes.map((r) => key(r.method, r.path)));

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

/** A concrete URL for a documented path: each parameter gets a value no object has. */
const concrete = (path: string) => routerPath(path).replace(/:\w+/g, "no-such-id-0");

describe(`legacy endpoint inventory (${backend})`, () => {
  it("has every row of the seed documents' inventory", () => {
    expect(inventory.length).toBe(335);
  });

  it("routes every core row of each built dialect, and all five dialects are built", () => {
    expect([...BUILT_DIALECTS].sort()).toEqual([...DIALECTS].sort());
    const missing = inventory.filter((row) => BUILT_DIALECTS.includes(row.dialect) && row.scope === "core" && !routed.has(key(row.method, row.path)));
    expect(missing.map((r) => `${r.dialect} ${r.method} ${r.path}`)).toEqual([]);
  });

  it("answers 501 in the dialect's error body for every documented endpoint not built yet", async () => {
    const unbuilt = inventory.filter((row) => !routed.has(key(row.method, row.path)));
    expect(unbuilt.length).toBeGreaterThan(0);
    for (const row of unbuilt) {
      const method = row.method === "WS" ? "GET" : row.method;
      const res = await fetch(`${server.url}${concrete(row.path)}`, {
        method,
        headers: { "content-type": "application/json" },
        body: method === "GET" || method === "DELETE" ? undefined : "{}",
      });
      const body = await res.json();
      expect({ row: `${row.dialect} ${row.method} ${row.path}`, status: res.status }).toEqual({ row: `${row.dialect} ${row.method} ${row.path}`, status: 501 });
      const message = body.detail ?? body.error;
      expect(message).toContain("not built yet");
    }
  });

  it("answers 404 for paths no document has", async () => {
    for (const path of ["/api/nothing-here", "/workspaces/1/nothing", "/api/v1/no/such/thing"]) {
      expect((await fetch(`${server.url}${path}`)).status).toBe(404);
    }
  });

  it("serves a valid OpenAPI 3.1 document listing every route and documented endpoint", async () => {
    const res = await fetch(`${server.url}/api/openapi.json`);
    expect(res.status).toBe(200);
    const document = await res.json();
    expect(document.openapi).toBe("3.1.0");
    const validator = new Validator();
    const result = await validator.validate(document);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    const listed = new Set(
      Object.entries(document.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
        Object.keys(item).map((method) => key(method.toUpperCase(), path)),
      ),
    );
    const absent = inventory.filter((row) => !listed.has(key(row.method, row.path)));
    expect(absent.map((r) => `${r.method} ${r.path}`)).toEqual([]);
    for (const route of legacyRoutes) expect(listed.has(key(route.method, route.path))).toBe(true);
  });
});
