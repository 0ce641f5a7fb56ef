// The AiSpinner dialect as its clients use it: plain HTTP, bearer tokens, snake_case JSON, integer
// workspace and user ids, {"detail": "..."} errors with 401/403/404/409/422. Every core row of
// ../shared/seeds/000 is exercised with the fields and types its document shows, plus the error
// paths of each family.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppendLogsDocument, LogoutDocument, ReportWorkerStatusDocument, ReportWorkerTicksDocument } from "../generated/graphql.js";
import { createMachineDirect } from "../authz/world.js";
import { addMember, createUser, latestEmailCode, ownedWorkspace, signedInUser, unique } from "../helpers/factories.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const prisma = () => server.db.prisma;

interface Answer {
  status: number;
  body: any;
}

/** One request as an AiSpinner client sends it. */
async function call(method: string, path: string, options: { token?: string; body?: unknown } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${server.url}${path}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  return { status: res.status, body: await res.json() };
}

/** An AiSpinner error: the status, and a body of exactly {"detail": "<text>"}. */
function expectDetail(answer: Answer, status: number, ...mentions: (string | RegExp)[]) {
  expect({ status: answer.status, body: answer.body }).toMatchObject({ status, body: { detail: expect.any(String) } });
  expect(Object.keys(answer.body)).toEqual(["detail"]);
  for (const text of mentions) expect(answer.body.detail).toMatch(text);
}

const legacyIdOf = async (workspaceId: string) =>
  (await prisma().workspace.findUniqueOrThrow({ where: { id: workspaceId }, select: { legacyId: true } })).legacyId;

/** A workspace with its owner (as an AiSpinner token) and its integer id. */
async function workspace() {
  const { owner, workspaceId } = await ownedWorkspace(server);
  return { owner, workspaceId, id: await legacyIdOf(workspaceId), token: owner.accessToken };
}

const jwtLifetimeSeconds = (token: string) => {
  const payload = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString());
  return payload.exp - payload.iat;
};

describe(`AiSpinner: sign-in and the user (${backend})`, () => {
  it("POST /login answers {access_token, token_type: bearer}; the token reads GET /me", async () => {
    const user = await createUser(server);
    const login = await call("POST", "/login", { body: { email: user.email, password: user.password } });
    expect(login.status).toBe(200);
    expect(login.body).toEqual({ access_token: expect.any(String), token_type: "bearer" });

    const me = await call("GET", "/me", { token: login.body.access_token });
    expect(me.status).toBe(200);
    const row = await prisma().user.findUniqueOrThrow({ where: { id: user.id } });
    expect(me.body).toEqual({ id: row.legacyId, email: user.email, nickname: user.username, plan: "free" });
    expect(Number.isInteger(me.body.id)).toBe(true);
  });

  it("the token lasts a working day without a refresh, and still ends with its session", async () => {
    const user = await createUser(server);
    const { access_token: token } = (await call("POST", "/login", { body: { email: user.email, password: user.password } })).body;
    expect(jwtLifetimeSeconds(token)).toBeGreaterThanOrEqual(8 * 60 * 60);
    expect(jwtLifetimeSeconds(token)).toBeLessThanOrEqual(server.config.auth.accessTokenMaxTtlSeconds);
    expect((await call("GET", "/me", { token })).status).toBe(200);

    ok(await server.execute(LogoutDocument, {}, { token }));
    expectDetail(await call("GET", "/me", { token }), 401, /session/);
  });

  it("login: wrong password is 401, a missing field is 422 naming it", async () => {
    const user = await createUser(server);
    expectDetail(await call("POST", "/login", { body: { email: user.email, password: "not the password" } }), 401);
    expectDetail(await call("POST", "/login", { body: { email: user.email } }), 422, "body.password");
  });

  it("GET /me: 401 without a token or with a bad one", async () => {
    expectDetail(await call("GET", "/me"), 401);
    expectDetail(await call("GET", "/me", { token: "not-a-jwt" }), 401);
  });

  it("POST /register/start mails a code; POST /register/confirm signs in like login", async () => {
    const nickname = unique("nick");
    const email = `${nickname}@example.test`;
    const start = await call("POST", "/register/start", { body: { email, password: "a long password", nickname } });
    expect(start.status).toBe(200);
    expect(start.body).toEqual({ message: expect.any(String), email, code_expires_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/) });

    const code = await latestEmailCode(server, email);
    expectDetail(await call("POST", "/register/confirm", { body: { email, code: code === "000000" ? "111111" : "000000" } }), 422, "body.code");
    const confirm = await call("POST", "/register/confirm", { body: { email, code } });
    expect(confirm.status).toBe(200);
    expect(confirm.body).toEqual({ access_token: expect.any(String), token_type: "bearer" });
    expect(jwtLifetimeSeconds(confirm.body.access_token)).toBeGreaterThanOrEqual(8 * 60 * 60);

    const me = (await call("GET", "/me", { token: confirm.body.access_token })).body;
    expect(me).toMatchObject({ email, nickname, plan: "free" });
    expect(Number.isInteger(me.id)).toBe(true);
  });

  it("register: a bad nickname or email is 422 naming the field as sent", async () => {
    expectDetail(await call("POST", "/register/start", { body: { email: `${unique("e")}@example.test`, password: "a long password", nickname: "x" } }), 422, "body.nickname");
    expectDetail(await call("POST", "/register/start", { body: { email: "nope", password: "a long password", nickname: unique("n") } }), 422, "body.email");
    expectDetail(await call("POST", "/register/start", { body: { email: `${unique("e")}@example.test`, nickname: unique("n") } }), 422, "body.password");
  });
});

describe(`AiSpinner: workspaces (${backend})`, () => {
  it("GET /workspaces lists every workspace of the caller, past one page, with integer ids", async () => {
    const user = await signedInUser(server);
    const names = Array.from({ length: 105 }, () => unique("ws"));
    await prisma().workspace.createMany({ data: names.map((name) => ({ name })) });
    const rows = await prisma().workspace.findMany({ where: { name: { in: names } } });
    await prisma().workspaceMember.createMany({ data: rows.map((w) => ({ workspaceId: w.id, userId: user.id, role: "MEMBER" as const })) });
    const foreign = await workspace();

    const list = await call("GET", "/workspaces", { token: user.accessToken });
    expect(list.status).toBe(200);
    expect(Array.isArray(list.body)).toBe(true);
    expect(list.body).toHaveLength(105);
    expect(new Set(list.body.map((w: { id: number }) => w.id))).toEqual(new Set(rows.map((w) => w.legacyId)));
    expect(list.body.map((w: { id: number }) => w.id)).not.toContain(foreign.id);
    const first = list.body[0];
    expect(first).toEqual({ id: expect.any(Number), name: expect.any(String), created_at: expect.any(String), updated_at: expect.any(String) });
    expect(Number.isInteger(first.id)).toBe(true);
    expectDetail(await call("GET", "/workspaces"), 401);
  });

  it("GET /workspaces/me answers the default workspace with its whole graph; none is 404", async () => {
    const ws = await workspace();
    await call("PUT", `/workspaces/${ws.id}/graph`, {
      token: ws.token,
      body: { version: 0, graph_json: { nodes: [{ id: "n1", type: "code.worker", data: { label: "W", x: 1, y: 2, cfg: {} } }], edges: [] } },
    });
    const me = await call("GET", "/workspaces/me", { token: ws.token });
    expect(me.status).toBe(200);
    expect(me.body).toEqual({
      id: ws.id,
      name: expect.any(String),
      created_at: expect.any(String),
      updated_at: expect.any(String),
      version: 1,
      graph_json: { nodes: [{ id: "n1", type: "code.worker", data: { label: "W", x: 1, y: 2, cfg: {} } }], edges: [] },
    });

    const loner = await signedInUser(server);
    expectDetail(await call("GET", "/workspaces/me", { token: loner.accessToken }), 404);
    expectDetail(await call("GET", "/workspaces/me"), 401);
  });
});

/** The document's example graph, with what a real client also keeps: extra node data, unknown types, edge styling. */
const exampleGraph = () => ({
  nodes: [
    { id: "node_abc123", type: "code.worker", data: { label: "My Worker", x: 100, y: 200, cfg: { tick_interval: 10 }, color: "#ff0", notes: { pinned: true } } },
    { id: "node_def456", type: "trading.bybit", data: { label: "Bybit", x: 300.5, y: -20, cfg: { api_key_id: 1 } } },
    { id: "monitor_1", type: "code.worker", data: { label: "Monitor", x: 0, y: 0, cfg: {}, collapsed: false, tags: ["a", "b"] } },
  ],
  edges: [
    { id: "edge_1", source: "node_abc123", target: "node_def456", sourceHandle: "out", animated: true, data: { weight: 2 } },
    { id: "edge_2", source: "node_abc123", target: "monitor_1", label: null },
  ],
});

describe(`AiSpinner: the graph (${backend})`, () => {
  it("GET of a new workspace's graph is version 0 with no nodes or edges", async () => {
    const ws = await workspace();
    const graph = await call("GET", `/workspaces/${ws.id}/graph`, { token: ws.token });
    expect(graph).toEqual({ status: 200, body: { version: 0, graph_json: { nodes: [], edges: [] } } });
  });

  it("a saved graph comes back exactly as sent: every data key, every edge key, unknown node types, node order", async () => {
    const ws = await workspace();
    const sent = exampleGraph();
    sent.nodes.reverse();
    const saved = await call("PUT", `/workspaces/${ws.id}/graph`, { token: ws.token, body: { version: 0, graph_json: sent } });
    expect(saved).toEqual({ status: 200, body: { version: 1, graph_json: sent } });
    expect(await call("GET", `/workspaces/${ws.id}/graph`, { token: ws.token })).toEqual({ status: 200, body: { version: 1, graph_json: sent } });
  });

  it("optimistic locking: a stale version is 409, the current one saves and bumps it", async () => {
    const ws = await workspace();
    const graph_json = exampleGraph();
    expect((await call("PUT", `/workspaces/${ws.id}/graph`, { token: ws.token, body: { version: 0, graph_json } })).body.version).toBe(1);
    expectDetail(await call("PUT", `/workspaces/${ws.id}/graph`, { token: ws.token, body: { version: 0, graph_json } }), 409, /version 1/);
    const again = await call("PUT", `/workspaces/${ws.id}/graph`, { token: ws.token, body: { version: 1, graph_json: { nodes: [], edges: [] } } });
    expect(again).toEqual({ status: 200, body: { version: 2, graph_json: { nodes: [], edges: [] } } });
  });

  it("a stranger's or an unknown workspace is 404; a viewer cannot save (403); no token is 401", async () => {
    const ws = await workspace();
    const stranger = await signedInUser(server);
    const viewer = await signedInUser(server);
    await addMember(server, ws.workspaceId, viewer.id, "VIEWER");
    const body = { version: 0, graph_json: { nodes: [], edges: [] } };
    expectDetail(await call("GET", `/workspaces/${ws.id}/graph`, { token: stranger.accessToken }), 404);
    expectDetail(await call("PUT", `/workspaces/${ws.id}/graph`, { token: stranger.accessToken, body }), 404);
    expectDetail(await call("GET", `/workspaces/99999999/graph`, { token: ws.token }), 404);
    expectDetail(await call("GET", `/workspaces/99999999999999999999/graph`, { token: ws.token }), 404);
    expect((await call("GET", `/workspaces/${ws.id}/graph`, { token: viewer.accessToken })).status).toBe(200);
    expectDetail(await call("PUT", `/workspaces/${ws.id}/graph`, { token: viewer.accessToken, body }), 403);
    expectDetail(await call("GET", `/workspaces/${ws.id}/graph`), 401);
  });

  it("bad input is 422 naming the field as the client sent it", async () => {
    const ws = await workspace();
    const put = (graph_json: unknown, version: unknown = 0) => call("PUT", `/workspaces/${ws.id}/graph`, { token: ws.token, body: { version, graph_json } });
    expectDetail(await call("GET", "/workspaces/abc/graph", { token: ws.token }), 422, "path.id");
    expectDetail(await put({ nodes: [], edges: [] }, "1"), 422, "body.version");
    expectDetail(await put({ nodes: [{ id: "a", type: "t", data: { x: "left" } }], edges: [] }), 422, "body.graph_json.nodes.0.data.x");
    expectDetail(await put({ nodes: [{ id: "a", type: "t", data: {} }], edges: [{ id: "e", source: "a", target: "nowhere" }] }), 422, "body.graph_json.edges.0.target");
    expectDetail(await put({ nodes: [{ id: "a b", type: "t", data: {} }], edges: [] }), 422, "body.graph_json.nodes.0.id");
    expectDetail(await put({ nodes: [{ id: "a", type: "t", data: { cfg: { big: "x".repeat(70_000) } } }], edges: [] }), 422, "body.graph_json.nodes.0.data.cfg");
    expectDetail(await put({ nodes: [{ id: "a", type: "t", data: { note: "nul \u0000" } }], edges: [] }), 422, "body.graph_json.nodes.0.data.note");
    expect((await call("GET", `/workspaces/${ws.id}/graph`, { token: ws.token })).body.version).toBe(0);
  });
});

describe(`AiSpinner: node configs (${backend})`, () => {
  it("GET answers the node's cfg as config_json; PUT replaces it, also in the graph", async () => {
    const ws = await workspace();
    await call("PUT", `/workspaces/${ws.id}/graph`, { token: ws.token, body: { version: 0, graph_json: exampleGraph() } });
    const path = `/workspaces/${ws.id}/nodes/node_abc123/config`;
    expect(await call("GET", path, { token: ws.token })).toEqual({
      status: 200,
      body: { workspace_id: ws.id, node_id: "node_abc123", config_json: { tick_interval: 10 } },
    });
    const config_json = { api_key_id: 1, tick_interval: 30 };
    expect(await call("PUT", path, { token: ws.token, body: { config_json } })).toEqual({
      status: 200,
      body: { workspace_id: ws.id, node_id: "node_abc123", config_json },
    });
    expect((await call("GET", path, { token: ws.token })).body.config_json).toEqual(config_json);
    const graph = (await call("GET", `/workspaces/${ws.id}/graph`, { token: ws.token })).body;
    expect(graph.version).toBe(2);
    expect(graph.graph_json.nodes[0].data).toEqual({ label: "My Worker", x: 100, y: 200, cfg: config_json, color: "#ff0", notes: { pinned: true } });
  });

  it("unknown node or stranger is 404; config_json must be an object (422); no token is 401", async () => {
    const ws = await workspace();
    await call("PUT", `/workspaces/${ws.id}/graph`, { token: ws.token, body: { version: 0, graph_json: exampleGraph() } });
    const stranger = await signedInUser(server);
    expectDetail(await call("GET", `/workspaces/${ws.id}/nodes/nope/config`, { token: ws.token }), 404);
    expectDetail(await call("PUT", `/workspaces/${ws.id}/nodes/nope/config`, { token: ws.token, body: { config_json: {} } }), 404);
    expectDetail(await call("GET", `/workspaces/${ws.id}/nodes/node_abc123/config`, { token: stranger.accessToken }), 404);
    expectDetail(await call("PUT", `/workspaces/${ws.id}/nodes/node_abc123/config`, { token: ws.token, body: { config_json: [1] } }), 422, "body.config_json");
    expectDetail(await call("GET", `/workspaces/${ws.id}/nodes/node_abc123/config`), 401);
  });
});

const STATUS_KEYS = ["status", "tick_count", "error_count", "tick_interval", "auto_heal", "max_errors", "last_tick_at"].sort();

describe(`AiSpinner: workers (${backend})`, () => {
  /** A workspace with a machine to run workers and a graph with a worker node. */
  async function withWorkerNode() {
    const ws = await workspace();
    const machine = await createMachineDirect(server, ws.workspaceId);
    await call("PUT", `/workspaces/${ws.id}/graph`, { token: ws.token, body: { version: 0, graph_json: exampleGraph() } });
    return { ...ws, machine, base: `/workers/${ws.id}/node_abc123` };
  }

  const deployBody = (id: number) => ({
    workspace_id: id,
    node_id: "node_abc123",
    code: "def setup(ctx): pass\ndef tick(ctx): ctx.log('hi')",
    tick_interval: 10,
    max_errors: 5,
    auto_heal: true,
    connected_blocks: { trading_node_id: "node_def456", monitor_node_ids: ["monitor_1"] },
  });

  it("deploy, run, status, logs, settings, stop and start, addressed by (workspace_id, node_id)", async () => {
    const t = await withWorkerNode();
    const deployed = await call("POST", "/workers/deploy", { token: t.token, body: deployBody(t.id) });
    expect(deployed.status).toBe(200);
    expect(deployed.body).toEqual({ status: "deploying", tick_count: 0, error_count: 0, tick_interval: 10, auto_heal: true, max_errors: 5, last_tick_at: null });
    const worker = await prisma().worker.findFirstOrThrow({ where: { workspaceId: t.workspaceId, blockId: "node_abc123" } });
    expect(worker).toMatchObject({ kind: "CODE", machineId: t.machine.id, connectedBlocks: deployBody(t.id).connected_blocks });

    const asMachine = { token: t.machine.credential };
    ok(await server.execute(ReportWorkerStatusDocument, { input: { workerId: worker.id, revision: 1, status: "RUNNING" } }, asMachine));
    ok(await server.execute(ReportWorkerTicksDocument, { input: { workerId: worker.id, revision: 1, ticks: 1234, errors: 0, lastTickAt: "2026-03-10T12:34:56Z" } }, asMachine));
    const status = await call("GET", `${t.base}/status`, { token: t.token });
    expect(status).toEqual({
      status: 200,
      body: { status: "running", tick_count: 1234, error_count: 0, tick_interval: 10, auto_heal: true, max_errors: 5, last_tick_at: "2026-03-10T12:34:56.000Z" },
    });

    const lines = [
      { level: "DEBUG" as const, message: "d1" },
      { level: "INFO" as const, message: "i1" },
      { level: "WARN" as const, message: "w1" },
      { level: "DEBUG" as const, message: "d2" },
      { level: "ERROR" as const, message: "e1" },
    ];
    ok(await server.execute(AppendLogsDocument, { input: { source: { type: "WORKER", id: worker.id }, sequence: "1", lines } }, asMachine));
    const logs = await call("GET", `${t.base}/logs?limit=2&level=info`, { token: t.token });
    expect(logs.status).toBe(200);
    expect(logs.body).toEqual({
      items: [
        { timestamp: expect.stringMatching(/Z$/), level: "warn", message: "w1" },
        { timestamp: expect.stringMatching(/Z$/), level: "error", message: "e1" },
      ],
    });
    expect((await call("GET", `${t.base}/logs`, { token: t.token })).body.items.map((i: { message: string }) => i.message)).toEqual(["d1", "i1", "w1", "d2", "e1"]);
    expect((await call("GET", `${t.base}/logs?level=WARNING`, { token: t.token })).body.items.map((i: { message: string }) => i.message)).toEqual(["w1", "e1"]);

    const patched = await call("PATCH", `${t.base}/settings`, { token: t.token, body: { tick_interval: 30, max_errors: 10, auto_heal: false } });
    expect(patched.status).toBe(200);
    expect(Object.keys(patched.body).sort()).toEqual(STATUS_KEYS);
    expect(patched.body).toMatchObject({ status: "running", tick_interval: 30, max_errors: 10, auto_heal: false, tick_count: 1234 });
    expect(await prisma().worker.findUniqueOrThrow({ where: { id: worker.id } })).toMatchObject({ revision: 1, status: "RUNNING" });

    expect(await call("POST", `${t.base}/stop`, { token: t.token })).toMatchObject({ status: 200, body: { status: "stopped" } });
    expectDetail(await call("POST", `${t.base}/stop`, { token: t.token }), 409, /STOPPED/);
    const started = await call("POST", `${t.base}/start`, { token: t.token });
    expect(started).toMatchObject({ status: 200, body: { status: "deploying", tick_interval: 30 } });
    expect(Object.keys(started.body).sort()).toEqual(STATUS_KEYS);

    const redeployed = await call("POST", "/workers/deploy", { token: t.token, body: { ...deployBody(t.id), code: "def tick(ctx): pass" } });
    expect(redeployed).toMatchObject({ status: 200, body: { status: "deploying" } });
    expect(await prisma().worker.count({ where: { workspaceId: t.workspaceId, blockId: "node_abc123" } })).toBe(1);
  });

  it("deploy errors: not the caller's workspace 404, a node not in the graph or a bad setting 422, no token 401", async () => {
    const t = await withWorkerNode();
    const stranger = await signedInUser(server);
    expectDetail(await call("POST", "/workers/deploy", { token: stranger.accessToken, body: deployBody(t.id) }), 404);
    expectDetail(await call("POST", "/workers/deploy", { token: t.token, body: deployBody(99999999) }), 404);
    expectDetail(await call("POST", "/workers/deploy", { token: t.token, body: { ...deployBody(t.id), node_id: "ghost" } }), 422, "body.node_id");
    expectDetail(await call("POST", "/workers/deploy", { token: t.token, body: { ...deployBody(t.id), tick_interval: 0 } }), 422, "body.tick_interval");
    expectDetail(await call("POST", "/workers/deploy", { token: t.token, body: { ...deployBody(t.id), workspace_id: "one" } }), 422, "body.workspace_id");
    expectDetail(await call("POST", "/workers/deploy", { body: deployBody(t.id) }), 401);
  });

  it("worker routes: no worker on the node or a stranger is 404, bad settings or query 422, no token 401", async () => {
    const t = await withWorkerNode();
    expect((await call("POST", "/workers/deploy", { token: t.token, body: deployBody(t.id) })).status).toBe(200);
    const stranger = await signedInUser(server);
    for (const [method, suffix] of [["POST", "start"], ["POST", "stop"], ["GET", "status"], ["GET", "logs"]] as const) {
      expectDetail(await call(method, `/workers/${t.id}/monitor_1/${suffix}`, { token: t.token }), 404, /monitor_1/);
      expectDetail(await call(method, `${t.base}/${suffix}`, { token: stranger.accessToken }), 404);
      expectDetail(await call(method, `${t.base}/${suffix}`), 401);
    }
    expectDetail(await call("PATCH", `${t.base}/settings`, { token: stranger.accessToken, body: { tick_interval: 5 } }), 404);
    expectDetail(await call("PATCH", `${t.base}/settings`, { token: t.token, body: {} }), 422, "tick_interval");
    expectDetail(await call("PATCH", `${t.base}/settings`, { token: t.token, body: { max_errors: 0 } }), 422, "body.max_errors");
    expectDetail(await call("GET", `${t.base}/logs?level=verbose`, { token: t.token }), 422, "query.level");
    expectDetail(await call("GET", `${t.base}/logs?limit=5000`, { token: t.token }), 422, "query.limit");
    expectDetail(await call("GET", `/workers/abc/node_abc123/status`, { token: t.token }), 422, "path.workspace_id");
  });
});
