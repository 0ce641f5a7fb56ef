// What another web site can make a signed-in browser do: nothing. CORS is an allow-list from
// SPINDLE_CORS_ORIGINS (default: same origin only), a foreign Origin is refused outright, and the
// session cookie is only set by a request no other site could have sent (login CSRF).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser, signedInUser } from "../helpers/factories.js";
import { backend, startTestServer, type TestServer } from "../helpers/server.js";

const APP = "https://app.example.test";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ SPINDLE_CORS_ORIGINS: APP });
});
afterAll(() => server?.close());

const me = JSON.stringify({ query: "{ me { id } }" });
const json = { "content-type": "application/json" };

describe(`CORS (${backend})`, () => {
  it("refuses a foreign origin with 403 and no CORS headers, cookie or not", async () => {
    const user = await signedInUser(server);
    for (const origin of ["https://evil.example", "https://evil.app.example.test", "null"]) {
      const res = await fetch(`${server.url}/graphql`, { method: "POST", headers: { ...json, origin, cookie: user.cookie }, body: me });
      expect(res.status).toBe(403);
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
      expect(res.headers.get("access-control-allow-credentials")).toBeNull();
      expect((await res.json()).errors[0].extensions.code).toBe("FORBIDDEN");
    }
    const preflight = await fetch(`${server.url}/graphql`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("lets a configured origin in with credentials, naming only that origin", async () => {
    const user = await signedInUser(server);
    const preflight = await fetch(`${server.url}/graphql`, {
      method: "OPTIONS",
      headers: { origin: APP, "access-control-request-method": "POST", "access-control-request-headers": "content-type,authorization" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(APP);
    expect(preflight.headers.get("access-control-allow-credentials")).toBe("true");
    const res = await fetch(`${server.url}/graphql`, { method: "POST", headers: { ...json, origin: APP, cookie: user.cookie }, body: me });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect((await res.json()).data.me.id).toBe(user.id);
  });

  it("serves its own origin without CORS headers", async () => {
    const host = new URL(server.url).host;
    const res = await fetch(`${server.url}/graphql`, { method: "POST", headers: { ...json, origin: `http://${host}` }, body: JSON.stringify({ query: "{ __typename }" }) });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("refuses a WebSocket upgrade from a foreign origin, and takes one from a configured origin", async () => {
    const { default: WebSocket } = await import("ws");
    const attempt = (origin: string) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(server.wsUrl, "graphql-transport-ws", { origin });
        ws.on("open", () => {
          ws.close();
          resolve(101);
        });
        ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
        ws.on("error", () => {});
      });
    expect(await attempt("https://evil.example")).toBe(403);
    expect(await attempt(APP)).toBe(101);
  });
});

describe(`login CSRF (${backend})`, () => {
  it("refuses a form-encoded or text/plain POST (what any site can send without a preflight): no session cookie", async () => {
    const user = await createUser(server);
    const mutation = `mutation { login(input: { login: "${user.email}", password: "${user.password}" }) { accessToken } }`;
    const bodies: [string, string][] = [
      ["application/x-www-form-urlencoded", new URLSearchParams({ query: mutation }).toString()],
      ["text/plain", JSON.stringify({ query: mutation })],
      ["multipart/form-data; boundary=x", `--x\r\nContent-Disposition: form-data; name="query"\r\n\r\n${mutation}\r\n--x--\r\n`],
    ];
    for (const [contentType, body] of bodies) {
      const res = await fetch(`${server.url}/graphql`, { method: "POST", headers: { "content-type": contentType }, body });
      expect(res.status).toBe(415);
      expect(res.headers.get("set-cookie")).toBeNull();
      expect((await res.json()).errors[0].extensions.code).toBe("UNSUPPORTED_MEDIA_TYPE");
    }
    expect(await server.db.prisma.session.count({ where: { userId: user.id } })).toBe(0);
  });

  it("sets the cookie on a JSON POST of login (a cross-site page cannot send one without a preflight)", async () => {
    const user = await createUser(server);
    const res = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ query: `mutation { login(input: { login: "${user.email}", password: "${user.password}" }) { accessToken } }` }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("set-cookie")).toMatch(/^spindle_session=/);
  });
});
