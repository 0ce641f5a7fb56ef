// The flows dialect as its own client uses it: plain HTTP with the session cookie, snake_case JSON,
// prefixed ids (wf_, run_, ws_), lists as {items}, errors as {"error"} with 400/401/403/404. Every
// core row of ../shared/seeds/004 is called here, with its error paths.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppendLogsDocument, CreateTaskDocument } from "../generated/graphql.js";
import { addMember, createUser, ownedWorkspace, signIn, type SignedIn } from "../helpers/factories.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const prisma = () => server.db.prisma;

interface Call {
  method?: string;
  body?: unknown;
  /** The Cookie header a browser sends back. */
  cookie?: string;
  token?: string;
  headers?: Record<string, string>;
}

async function api(path: string, { method = "GET", body, cookie, token, headers = {} }: Call = {}) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
      ...(cookie ? { cookie } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  return { status: res.status, body: (await res.json()) as any, headers: res.headers };
}

/** An error answer: the status, and the one `error` string flows' clients read. */
async function failure(path: string, call: Call = {}) {
  const { status, body } = await api(path, call);
  expect(Object.keys(body)).toEqual(["error"]);
  expect(typeof body.error).toBe("string");
  return { status, error: body.error as string };
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/;
const hex = (uuid: string) => uuid.replaceAll("-", "");
const wf = (uuid: string) => `wf_${hex(uuid)}`;
const run_ = (uuid: string) => `run_${hex(uuid)}`;
const ws = (uuid: string) => `ws_${hex(uuid)}`;
const uuidOf = (prefixed: string) => {
  const h = prefixed.split("_").pop()!;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

/** A signed-in owner of a fresh workspace, with the cookie a browser keeps from POST /api/auth/login. */
async function owner() {
  const { owner: user, workspaceId } = await ownedWorkspace(server);
  const login = await api("/api/auth/login", { method: "POST", body: { email: user.email, password: user.password } });
  expect(login.status).toBe(200);
  const cookie = login.headers.getSetCookie().find((c) => c.startsWith("spindle_session="))!.split(";")[0]!;
  return { user, workspaceId, cookie };
}

async function memberOf(workspaceId: string, role: "ADMIN" | "MEMBER" | "VIEWER"): Promise<SignedIn> {
  const user = await signIn(server, await createUser(server));
  await addMember(server, workspaceId, user.id, role);
  return user;
}

const steps = '{ "steps": [ {"name": "fetch"}, {"name": "publish", "requiresConfirmation": true} ], "layout": {"zoom": 1} }';

async function createFlow(cookie: string, body: Record<string, unknown> = {}) {
  const res = await api("/api/flows", { method: "POST", cookie, body: { name: "My Flow", definition_json: steps, ...body } });
  expect(res.status).toBe(201);
  return res.body;
}

function expectFlow(flow: any) {
  expect(Object.keys(flow).sort()).toEqual(["created_at", "definition_json", "id", "name", "status", "updated_at", "version", "workspace_id"]);
  expect(flow.id).toMatch(/^wf_[0-9a-f]{32}$/);
  expect(flow.workspace_id).toMatch(/^ws_[0-9a-f]{32}$/);
  expect(["draft", "active", "archived"]).toContain(flow.status);
  expect(Number.isInteger(flow.version)).toBe(true);
  expect(typeof flow.definition_json).toBe("string");
  expect(flow.created_at).toMatch(ISO);
  expect(flow.updated_at).toMatch(ISO);
}

function expectRun(run: any) {
  expect(Object.keys(run).sort()).toEqual([
    "duration_ms",
    "error_text",
    "finished_at",
    "id",
    "output",
    "started_at",
    "status",
    "triggered_by",
    "workflow_id",
    "workflow_name",
  ]);
  expect(run.id).toMatch(/^run_[0-9a-f]{32}$/);
  expect(run.workflow_id).toMatch(/^wf_[0-9a-f]{32}$/);
  expect(["pending", "running", "success", "failed"]).toContain(run.status);
  for (const key of ["started_at", "finished_at"]) if (run[key] !== null) expect(run[key]).toMatch(ISO);
}

function expectLog(entry: any) {
  expect(Object.keys(entry).sort()).toEqual(["id", "level", "message", "run_id", "step", "ts"]);
  expect(entry.run_id).toMatch(/^run_[0-9a-f]{32}$/);
  expect(entry.ts).toMatch(ISO);
}

describe(`flows REST dialect (${backend})`, () => {
  describe("auth over the session cookie", () => {
    it("POST /api/auth/login sets the session cookie and answers the user", async () => {
      const { owner: user } = await ownedWorkspace(server);
      const res = await api("/api/auth/login", { method: "POST", body: { email: user.email, password: user.password } });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ ok: true, user: { id: user.id, email: user.email, username: user.username, name: user.username } });
      expect(res.body.expires_at).toMatch(ISO);
      const cookie = res.headers.getSetCookie().find((c) => c.startsWith("spindle_session="));
      expect(cookie).toMatch(/HttpOnly/i);
      expect(cookie).toMatch(/SameSite=Lax/i);
    });

    it("refuses a wrong password (401), a missing one (400) and a form post, which could come from any site", async () => {
      const { owner: user } = await ownedWorkspace(server);
      expect((await failure("/api/auth/login", { method: "POST", body: { email: user.email, password: "wrong-password" } })).status).toBe(401);
      const missing = await failure("/api/auth/login", { method: "POST", body: { email: user.email } });
      expect(missing.status).toBe(400);
      expect(missing.error).toContain("body.password");
      const form = await fetch(`${server.url}/api/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: `email=${encodeURIComponent(user.email)}&password=${encodeURIComponent(user.password)}`,
      });
      expect(form.status).toBe(415);
      expect(form.headers.getSetCookie()).toEqual([]);
    });

    it("GET /api/auth/session answers the session and user with the cookie alone; DELETE ends it", async () => {
      const { user, cookie } = await owner();
      const session = await api("/api/auth/session", { cookie });
      expect(session.status).toBe(200);
      expect(session.body.user).toEqual({ id: user.id, email: user.email, username: user.username, name: user.username });
      expect(session.body.session).toMatchObject({ id: expect.any(String) });
      expect(session.body.session.created_at).toMatch(ISO);
      expect(session.body.session.expires_at).toMatch(ISO);
      expect(await prisma().session.findUniqueOrThrow({ where: { id: session.body.session.id } })).toMatchObject({ userId: user.id, revokedAt: null });

      const logout = await api("/api/auth/session", { method: "DELETE", cookie });
      expect(logout).toMatchObject({ status: 200, body: { ok: true } });
      expect(logout.headers.getSetCookie().find((c) => c.startsWith("spindle_session="))).toMatch(/Expires=Thu, 01 Jan 1970/);
      expect((await failure("/api/auth/session", { cookie })).status).toBe(401);
      expect((await failure("/api/flows", { cookie })).status).toBe(401);
    });

    it("answers 401 without credentials, on every route but login and health", async () => {
      expect((await failure("/api/auth/session")).status).toBe(401);
      expect((await failure("/api/auth/session", { method: "DELETE" })).status).toBe(401);
      expect((await failure("/api/flows")).status).toBe(401);
      expect((await failure("/api/flows", { method: "POST", body: { name: "x" } })).status).toBe(401);
      expect((await failure(`/api/workflows/${wf(randomUUID())}`)).status).toBe(401);
      expect((await failure("/api/runs")).status).toBe(401);
      expect((await failure("/api/logs")).status).toBe(401);
    });

    it("counts the cookie on a POST only when no other site could have sent it (a JSON body)", async () => {
      const { workspaceId, cookie } = await owner();
      const form = await fetch(`${server.url}/api/flows`, {
        method: "POST",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        body: "name=forged",
      });
      expect(form.status).toBe(415);
      const flow = await createFlow(cookie, { status: "active" });
      // A body-less POST is what a cross-site form can send: without a JSON content type the cookie does not count.
      const bare = await fetch(`${server.url}/api/workflows/${flow.id}/run`, { method: "POST", headers: { cookie } });
      expect(bare.status).toBe(401);
      expect(await prisma().flow.count({ where: { workspaceId, name: "forged" } })).toBe(0);
      expect(await prisma().task.count({ where: { workspaceId } })).toBe(0);
      expect((await api(`/api/workflows/${flow.id}/run`, { method: "POST", cookie, body: {} })).status).toBe(201);
    });

    it("also takes a bearer token", async () => {
      const { owner: user } = await ownedWorkspace(server);
      const res = await api("/api/flows", { token: user.accessToken });
      expect(res).toMatchObject({ status: 200, body: { items: [] } });
    });
  });

  describe("flows", () => {
    it("POST /api/flows creates a flow and keeps definition_json exactly as sent, its steps derived", async () => {
      const { workspaceId, cookie } = await owner();
      const flow = await createFlow(cookie, { status: "active" });
      expectFlow(flow);
      expect(flow).toMatchObject({ name: "My Flow", status: "active", version: 1, workspace_id: ws(workspaceId), definition_json: steps });
      const row = await prisma().flow.findUniqueOrThrow({ where: { id: uuidOf(flow.id) } });
      expect(row).toMatchObject({ workspaceId, status: "ACTIVE", definitionText: steps });
      expect(row.definition).toEqual(JSON.parse(steps));

      const draft = await createFlow(cookie, { name: "Legacy", definition_json: '{"nodes":[{"id":"n1"}],"edges":[]}', status: undefined });
      expect(draft).toMatchObject({ status: "draft", definition_json: '{"nodes":[{"id":"n1"}],"edges":[]}' });
      expect((await prisma().flow.findUniqueOrThrow({ where: { id: uuidOf(draft.id) } })).definition).toEqual({ steps: [] });

      const bare = await createFlow(cookie, { definition_json: undefined });
      expect(bare.definition_json).toBe('{"steps":[]}');
      expect(await prisma().auditEntry.count({ where: { workspaceId, action: "flow.create" } })).toBe(3);
    });

    it("POST /api/flows refuses bad input with 400 naming the field, and a viewer with 403", async () => {
      const { workspaceId, cookie } = await owner();
      const notJson = await failure("/api/flows", { method: "POST", cookie, body: { name: "f", definition_json: "{steps: [" } });
      expect(notJson).toMatchObject({ status: 400 });
      expect(notJson.error).toContain("definition_json");
      const object = await failure("/api/flows", { method: "POST", cookie, body: { name: "f", definition_json: { steps: [] } } });
      expect(object.error).toContain("body.definition_json");
      const empty = await failure("/api/flows", { method: "POST", cookie, body: { name: " " } });
      expect(empty).toMatchObject({ status: 400 });
      expect(empty.error).toContain("body.name");
      expect((await failure("/api/flows", { method: "POST", cookie, body: { name: "f", status: "paused" } })).error).toContain("body.status");
      expect((await failure("/api/flows", { method: "POST", cookie, body: { definition_json: "{}" } })).error).toContain("body.name");
      const viewer = await memberOf(workspaceId, "VIEWER");
      expect((await failure("/api/flows", { method: "POST", token: viewer.accessToken, body: { name: "f", workspace_id: ws(workspaceId) } })).status).toBe(403);
      expect(await prisma().flow.count({ where: { workspaceId } })).toBe(0);
    });

    it("POST /api/flows takes an Idempotency-Key", async () => {
      const { workspaceId, cookie } = await owner();
      const headers = { "idempotency-key": randomUUID() };
      const first = await api("/api/flows", { method: "POST", cookie, headers, body: { name: "once" } });
      const again = await api("/api/flows", { method: "POST", cookie, headers, body: { name: "once" } });
      expect(again.body.id).toBe(first.body.id);
      expect(await prisma().flow.count({ where: { workspaceId } })).toBe(1);
    });

    it("GET /api/flows lists every flow of the default workspace, or of workspace_id, as {items}", async () => {
      const { workspaceId, cookie, user } = await owner();
      await prisma().flow.createMany({ data: Array.from({ length: 105 }, (_, i) => ({ workspaceId, name: `flow ${i}` })) });
      const all = await api("/api/flows", { cookie });
      expect(all.status).toBe(200);
      expect(Object.keys(all.body)).toEqual(["items"]);
      expect(all.body.items).toHaveLength(105);
      all.body.items.forEach(expectFlow);
      expect(new Set(all.body.items.map((f: any) => f.id)).size).toBe(105);

      const other = await prisma().workspace.create({ data: { name: "second" } });
      await addMember(server, other.id, user.id, "MEMBER");
      const created = await createFlow(cookie, { workspace_id: ws(other.id) });
      expect(created.workspace_id).toBe(ws(other.id));
      expect((await api(`/api/flows?workspace_id=${ws(other.id)}`, { cookie })).body.items.map((f: any) => f.id)).toEqual([created.id]);

      const stranger = await prisma().workspace.create({ data: { name: "not mine" } });
      expect((await failure(`/api/flows?workspace_id=${ws(stranger.id)}`, { cookie })).status).toBe(404);
      expect((await failure("/api/flows?workspace_id=ws_nonsense", { cookie })).status).toBe(404);
      expect((await failure(`/api/flows?workspace_id=${hex(other.id)}`, { cookie })).status).toBe(404);
    });

    it("answers 404 for a user in no workspace", async () => {
      const lonely = await signIn(server, await createUser(server));
      expect((await failure("/api/flows", { token: lonely.accessToken })).status).toBe(404);
    });

    it("GET /api/workflows/:id answers the flow; malformed, unknown and strangers' ids are 404", async () => {
      const { cookie } = await owner();
      const flow = await createFlow(cookie);
      const got = await api(`/api/workflows/${flow.id}`, { cookie });
      expect(got).toMatchObject({ status: 200, body: flow });
      expect((await api(`/api/workflows/${flow.id.toUpperCase().replace("WF_", "wf_")}`, { cookie })).body.id).toBe(flow.id);
      for (const id of ["wf_123", "nonsense", uuidOf(flow.id), hex(uuidOf(flow.id)), `run_${hex(uuidOf(flow.id))}`, wf(randomUUID())]) {
        expect((await failure(`/api/workflows/${id}`, { cookie })).status).toBe(404);
      }
      const stranger = await owner();
      expect((await failure(`/api/workflows/${flow.id}`, { cookie: stranger.cookie })).status).toBe(404);
      expect((await failure(`/api/workflows/${flow.id}`, { method: "PUT", cookie: stranger.cookie, body: { name: "mine" } })).status).toBe(404);
      expect((await failure(`/api/workflows/${flow.id}`, { method: "DELETE", cookie: stranger.cookie })).status).toBe(404);
    });

    it("PUT /api/workflows/:id changes name, definition_json (a new version) and status", async () => {
      const { cookie } = await owner();
      const flow = await createFlow(cookie);
      const text = '{"steps":[{"name":"only"}]}';
      const renamed = await api(`/api/workflows/${flow.id}`, { method: "PUT", cookie, body: { name: "Renamed", definition_json: text } });
      expect(renamed.status).toBe(200);
      expectFlow(renamed.body);
      expect(renamed.body).toMatchObject({ id: flow.id, name: "Renamed", version: 2, definition_json: text, status: "draft" });
      // The whole object sent back, as editors do: the same status and text are no change.
      const same = await api(`/api/workflows/${flow.id}`, { method: "PUT", cookie, body: { ...renamed.body } });
      expect(same.body).toMatchObject({ version: 2, status: "draft" });
      const spaced = await api(`/api/workflows/${flow.id}`, { method: "PUT", cookie, body: { definition_json: '{ "steps": [ {"name": "only"} ] }' } });
      expect(spaced.body).toMatchObject({ version: 3, definition_json: '{ "steps": [ {"name": "only"} ] }' });

      expect((await api(`/api/workflows/${flow.id}`, { method: "PUT", cookie, body: { status: "active" } })).body.status).toBe("active");
      const archived = await api(`/api/workflows/${flow.id}`, { method: "PUT", cookie, body: { name: "Final", status: "archived" } });
      expect(archived.body).toMatchObject({ name: "Final", status: "archived" });
      const frozen = await failure(`/api/workflows/${flow.id}`, { method: "PUT", cookie, body: { name: "again" } });
      expect(frozen).toMatchObject({ status: 400 });
      expect(frozen.error).toMatch(/ARCHIVED/);
      expect((await failure(`/api/workflows/${flow.id}`, { method: "PUT", cookie, body: { status: "active" } })).error).toMatch(/it is ARCHIVED/);
      const back = await api(`/api/workflows/${flow.id}`, { method: "PUT", cookie, body: { name: "Revived", status: "draft" } });
      expect(back.body).toMatchObject({ name: "Revived", status: "draft" });
    });

    it("PUT /api/workflows/:id refuses bad input with 400 naming the field", async () => {
      const { cookie } = await owner();
      const flow = await createFlow(cookie);
      expect((await failure(`/api/workflows/${flow.id}`, { method: "PUT", cookie, body: { definition_json: "not json" } })).error).toContain("body.definition_json");
      expect((await failure(`/api/workflows/${flow.id}`, { method: "PUT", cookie, body: { name: "" } })).error).toContain("body.name");
      expect((await failure(`/api/workflows/${flow.id}`, { method: "PUT", cookie, body: {} })).status).toBe(400);
    });

    it("DELETE /api/workflows/:id deletes for workspace admins (JSON answer); members get 403", async () => {
      const { workspaceId, cookie } = await owner();
      const flow = await createFlow(cookie);
      const member = await memberOf(workspaceId, "MEMBER");
      expect((await failure(`/api/workflows/${flow.id}`, { method: "DELETE", token: member.accessToken })).status).toBe(403);
      expect(await api(`/api/workflows/${flow.id}`, { method: "DELETE", cookie })).toMatchObject({ status: 200, body: { ok: true } });
      expect((await failure(`/api/workflows/${flow.id}`, { cookie })).status).toBe(404);
      expect((await failure(`/api/workflows/${flow.id}`, { method: "DELETE", cookie })).status).toBe(404);
    });
  });

  describe("runs", () => {
    it("POST /api/workflows/:id/run queues a pending run of an active flow, once per Idempotency-Key", async () => {
      const { workspaceId, cookie } = await owner();
      const flow = await createFlow(cookie, { status: "active" });
      const headers = { "idempotency-key": randomUUID() };
      const res = await api(`/api/workflows/${flow.id}/run`, { method: "POST", cookie, headers, body: { input: { date: "2026-01-01" }, triggered_by: "webhook" } });
      expect(res.status).toBe(201);
      expectRun(res.body);
      expect(res.body).toMatchObject({
        workflow_id: flow.id,
        workflow_name: "My Flow",
        status: "pending",
        triggered_by: "webhook",
        duration_ms: null,
        started_at: null,
        finished_at: null,
        output: null,
        error_text: null,
      });
      const again = await api(`/api/workflows/${flow.id}/run`, { method: "POST", cookie, headers, body: { input: { date: "2026-01-01" }, triggered_by: "webhook" } });
      expect(again.body.id).toBe(res.body.id);
      expect(await prisma().task.count({ where: { workspaceId } })).toBe(1);
      expect(await prisma().task.findUniqueOrThrow({ where: { id: uuidOf(res.body.id) } })).toMatchObject({ flowId: uuidOf(flow.id), input: { date: "2026-01-01" } });

      const draft = await createFlow(cookie);
      const refused = await failure(`/api/workflows/${draft.id}/run`, { method: "POST", cookie, body: {} });
      expect(refused).toMatchObject({ status: 400 });
      expect(refused.error).toMatch(/not ACTIVE/);
      expect((await failure(`/api/workflows/${wf(randomUUID())}/run`, { method: "POST", cookie, body: {} })).status).toBe(404);
      expect((await failure(`/api/workflows/${flow.id}/run`, { method: "POST", cookie, body: { triggered_by: "Cron Job" } })).error).toContain("body.triggered_by");
    });

    it("POST /api/runs records a run executed elsewhere, as the client reports it", async () => {
      const { workspaceId, cookie, user } = await owner();
      const flow = await createFlow(cookie, { status: "active" });
      const res = await api("/api/runs", {
        method: "POST",
        cookie,
        body: { workflow_id: flow.id, status: "success", triggered_by: "schedule", started_at: "2026-01-01T00:00:00Z", duration_ms: 1240, output: { rows: 3 } },
      });
      expect(res.status).toBe(201);
      expectRun(res.body);
      expect(res.body).toMatchObject({
        workflow_id: flow.id,
        workflow_name: "My Flow",
        status: "success",
        triggered_by: "schedule",
        duration_ms: 1240,
        started_at: "2026-01-01T00:00:00.000Z",
        finished_at: "2026-01-01T00:00:01.240Z",
        output: { rows: 3 },
        error_text: null,
      });
      const failed = await api("/api/runs", {
        method: "POST",
        cookie,
        body: { workflow_id: flow.id, status: "failed", started_at: "2026-01-02T10:00:00+02:00", finished_at: "2026-01-02T10:00:05+02:00", error_text: "boom" },
      });
      expect(failed.body).toMatchObject({ status: "failed", error_text: "boom", duration_ms: 5000, started_at: "2026-01-02T08:00:00.000Z", triggered_by: "manual" });
      const running = await api("/api/runs", { method: "POST", cookie, body: { workflow_id: flow.id, status: "running" } });
      expect(running.body).toMatchObject({ status: "running", finished_at: null, duration_ms: null });
      expect(running.body.started_at).toMatch(ISO);

      const row = await prisma().task.findUniqueOrThrow({ where: { id: uuidOf(running.body.id) } });
      expect(row).toMatchObject({ status: "RUNNING", machineId: null, leaseExpiresAt: null, flowVersion: 1 });
      const audit = await prisma().auditEntry.findMany({ where: { workspaceId, action: "flow.recordRun" } });
      expect(audit).toHaveLength(3);
      expect(audit.every((a) => a.userId === user.id)).toBe(true);
    });

    it("POST /api/runs refuses bad input with 400 naming the field, and unknown flows with 404", async () => {
      const { workspaceId, cookie } = await owner();
      const flow = await createFlow(cookie, { status: "active" });
      const post = (body: Record<string, unknown>) => failure("/api/runs", { method: "POST", cookie, body: { workflow_id: flow.id, status: "success", ...body } });
      expect((await post({ status: "pending" })).error).toContain("body.status");
      expect((await post({ status: "running", finished_at: "2026-01-01T00:00:00Z" })).error).toContain("body.finished_at");
      expect((await post({ started_at: "2026-01-01T00:00:10Z", finished_at: "2026-01-01T00:00:00Z" })).error).toContain("body.finished_at");
      expect((await post({ started_at: "yesterday" })).error).toContain("body.started_at");
      expect((await post({ finished_at: "2999-01-01T00:00:00Z" })).error).toContain("body.finished_at");
      expect((await post({ duration_ms: -1 })).error).toContain("body.duration_ms");
      expect((await post({ error_text: "\u0000" })).error).toContain("body.error_text");
      expect((await post({ status: "success", workflow_id: "wf_nope" })).status).toBe(404);
      expect((await post({ workflow_id: wf(randomUUID()) })).status).toBe(404);
      const viewer = await memberOf(workspaceId, "VIEWER");
      expect((await failure("/api/runs", { method: "POST", token: viewer.accessToken, body: { workflow_id: flow.id, status: "success" } })).status).toBe(403);
      const stranger = await owner();
      expect((await failure("/api/runs", { method: "POST", cookie: stranger.cookie, body: { workflow_id: flow.id, status: "success" } })).status).toBe(404);
      expect(await prisma().task.count({ where: { workspaceId } })).toBe(0);
    });

    it("GET /api/runs lists runs newest first, by the four statuses, up to limit", async () => {
      const { workspaceId, cookie, user } = await owner();
      const flow = await createFlow(cookie, { status: "active" });
      const flowId = uuidOf(flow.id);
      const statuses = ["PENDING", "ASSIGNED", "RUNNING", "SUSPENDED", "SUCCEEDED", "FAILED", "CANCELLED"] as const;
      for (const [i, status] of statuses.entries()) {
        await prisma().task.create({ data: { workspaceId, flowId, flowVersion: 1, title: "My Flow", status, createdAt: new Date(Date.UTC(2026, 0, 1, 0, i)) } });
      }
      // A task that is no flow run is no run here.
      ok(await server.execute(CreateTaskDocument, { input: { workspaceId, title: "not a run" } }, { token: user.accessToken }));

      const all = await api("/api/runs", { cookie });
      expect(all.status).toBe(200);
      expect(Object.keys(all.body)).toEqual(["items"]);
      all.body.items.forEach(expectRun);
      expect(all.body.items.map((r: any) => r.status)).toEqual(["failed", "failed", "success", "running", "running", "pending", "pending"]);
      const byStatus = async (status: string) => (await api(`/api/runs?status=${status}`, { cookie })).body.items.length;
      expect([await byStatus("pending"), await byStatus("running"), await byStatus("success"), await byStatus("failed")]).toEqual([2, 2, 1, 2]);
      expect((await api("/api/runs?limit=2", { cookie })).body.items.map((r: any) => r.status)).toEqual(["failed", "failed"]);
      expect((await api("/api/runs?limit=2&offset=2", { cookie })).body.items.map((r: any) => r.status)).toEqual(["success", "running"]);

      expect((await failure("/api/runs?limit=0", { cookie })).error).toContain("query.limit");
      expect((await failure("/api/runs?limit=abc", { cookie })).error).toContain("query.limit");
      expect((await failure("/api/runs?status=succeeded", { cookie })).error).toContain("query.status");
    });

    it("GET /api/runs pages through more than one connection page", async () => {
      const { workspaceId, cookie } = await owner();
      const flow = await createFlow(cookie, { status: "active" });
      await prisma().task.createMany({
        data: Array.from({ length: 130 }, (_, i) => ({ workspaceId, flowId: uuidOf(flow.id), title: "My Flow", createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)) })),
      });
      const runs = (await api("/api/runs?limit=120", { cookie })).body.items;
      expect(runs).toHaveLength(120);
      expect(new Set(runs.map((r: any) => r.id)).size).toBe(120);
      expect((await api("/api/runs", { cookie })).body.items).toHaveLength(50);
    });

    it("GET /api/runs/:id answers a run; GET /api/runs/:id/steps its steps", async () => {
      const { workspaceId, cookie, user } = await owner();
      const flow = await createFlow(cookie, { status: "active" });
      const run = (await api(`/api/workflows/${flow.id}/run`, { method: "POST", cookie, body: {} })).body;
      const got = await api(`/api/runs/${run.id}`, { cookie });
      expect(got).toMatchObject({ status: 200, body: run });

      const stepsRes = await api(`/api/runs/${run.id}/steps`, { cookie });
      expect(stepsRes.status).toBe(200);
      expect(stepsRes.body.items).toEqual([
        { index: 0, name: "fetch", status: "pending", started_at: null, finished_at: null, duration_ms: null, output: null, error_text: null, logs: [] },
        { index: 1, name: "publish", status: "pending", started_at: null, finished_at: null, duration_ms: null, output: null, error_text: null, logs: [] },
      ]);
      await prisma().taskStage.update({
        where: { taskId_index: { taskId: uuidOf(run.id), index: 0 } },
        data: { status: "SUCCEEDED", startedAt: new Date("2026-01-01T00:00:00Z"), finishedAt: new Date("2026-01-01T00:00:02Z"), output: { ok: 1 } },
      });
      expect((await api(`/api/runs/${run.id}/steps`, { cookie })).body.items[0]).toEqual({
        index: 0,
        name: "fetch",
        status: "success",
        started_at: "2026-01-01T00:00:00.000Z",
        finished_at: "2026-01-01T00:00:02.000Z",
        duration_ms: 2000,
        output: { ok: 1 },
        error_text: null,
        logs: [],
      });

      // Entries written for a step come back under it; others only in the run's logs.
      for (const [step, message] of [["fetch", "fetched 12 rows"], [null, "run started"], ["publish", "waiting"], ["fetch", "done"]] as const) {
        expect((await api("/api/logs", { method: "POST", cookie, body: { run_id: run.id, message, step } })).status).toBe(201);
      }
      const withLogs = (await api(`/api/runs/${run.id}/steps`, { cookie })).body.items;
      expect(withLogs.map((s: any) => s.logs.map((l: any) => [l.step, l.message]))).toEqual([
        [["fetch", "fetched 12 rows"], ["fetch", "done"]],
        [["publish", "waiting"]],
      ]);
      expectLog(withLogs[0].logs[0]);

      const task = ok(await server.execute(CreateTaskDocument, { input: { workspaceId, title: "not a run" } }, { token: user.accessToken })).createTask;
      const stranger = await owner();
      for (const id of ["run_1", wf(uuidOf(run.id)), run_(randomUUID()), run_(task.id)]) {
        expect((await failure(`/api/runs/${id}`, { cookie })).status).toBe(404);
        expect((await failure(`/api/runs/${id}/steps`, { cookie })).status).toBe(404);
      }
      expect((await failure(`/api/runs/${run.id}`, { cookie: stranger.cookie })).status).toBe(404);
      expect((await failure(`/api/runs/${run.id}/steps`, { cookie: stranger.cookie })).status).toBe(404);
    });
  });

  describe("logs", () => {
    async function runOf(cookie: string) {
      const flow = await createFlow(cookie, { status: "active" });
      return (await api("/api/runs", { method: "POST", cookie, body: { workflow_id: flow.id, status: "success" } })).body;
    }

    it("POST /api/logs writes an entry to a run, even one recorded as finished", async () => {
      const { cookie } = await owner();
      const run = await runOf(cookie);
      const res = await api("/api/logs", { method: "POST", cookie, body: { run_id: run.id, level: "WARN", message: "slow step", ts: "2026-01-01T00:00:00Z" } });
      expect(res.status).toBe(201);
      expectLog(res.body);
      expect(res.body).toEqual({ id: `log_${hex(uuidOf(run.id))}_1`, run_id: run.id, level: "warn", message: "slow step", step: null, ts: "2026-01-01T00:00:00.000Z" });
      const plain = await api("/api/logs", { method: "POST", cookie, body: { run_id: run.id, message: "hello" } });
      expect(plain.body).toMatchObject({ level: "info", message: "hello" });
      const lines = await prisma().logLine.findMany({ where: { sourceId: uuidOf(run.id) }, orderBy: { cursor: "asc" } });
      expect(lines.map((l) => [l.level, l.message, l.at.toISOString()])).toEqual([
        ["WARN", "slow step", "2026-01-01T00:00:00.000Z"],
        ["INFO", "hello", plain.body.ts],
      ]);
    });

    it("POST /api/logs stores a retry with the same Idempotency-Key once", async () => {
      const { cookie } = await owner();
      const run = await runOf(cookie);
      for (const body of [{ run_id: run.id, message: "once" }, { run_id: run.id, message: "at a time", ts: "2026-01-01T00:00:00Z" }]) {
        const headers = { "idempotency-key": randomUUID() };
        const first = await api("/api/logs", { method: "POST", cookie, headers, body });
        const again = await api("/api/logs", { method: "POST", cookie, headers, body });
        expect(again.body).toEqual(first.body);
      }
      expect(await prisma().logLine.count({ where: { sourceId: uuidOf(run.id) } })).toBe(2);
    });

    it("POST /api/logs refuses bad input with 400 naming the field, other runs with 404", async () => {
      const { workspaceId, cookie, user } = await owner();
      const run = await runOf(cookie);
      expect((await failure("/api/logs", { method: "POST", cookie, body: { run_id: run.id } })).error).toContain("body.message");
      expect((await failure("/api/logs", { method: "POST", cookie, body: { run_id: run.id, message: "x", level: "verbose" } })).error).toContain("body.level");
      expect((await failure("/api/logs", { method: "POST", cookie, body: { run_id: run.id, message: "x", ts: "noon" } })).error).toContain("body.ts");
      expect((await failure("/api/logs", { method: "POST", cookie, body: { run_id: run.id, message: "a\u0000b" } })).error).toContain("body.message");
      expect((await failure("/api/logs", { method: "POST", cookie, body: { message: "x" } })).error).toContain("body.run_id");
      const task = ok(await server.execute(CreateTaskDocument, { input: { workspaceId, title: "not a run" } }, { token: user.accessToken })).createTask;
      for (const runId of ["run_x", run_(randomUUID()), run_(task.id)]) {
        expect((await failure("/api/logs", { method: "POST", cookie, body: { run_id: runId, message: "x" } })).status).toBe(404);
      }
      const stranger = await owner();
      expect((await failure("/api/logs", { method: "POST", cookie: stranger.cookie, body: { run_id: run.id, message: "x" } })).status).toBe(404);
      const viewer = await memberOf(workspaceId, "VIEWER");
      expect((await failure("/api/logs", { method: "POST", token: viewer.accessToken, body: { run_id: run.id, message: "x" } })).status).toBe(403);
    });

    it("GET /api/logs lists a run's entries, or every run's of the workspace, newest first, up to limit", async () => {
      const { workspaceId, cookie, user } = await owner();
      const first = await runOf(cookie);
      const second = await runOf(cookie);
      const write = (run: any, message: string, ts: string) => api("/api/logs", { method: "POST", cookie, body: { run_id: run.id, message, ts } });
      await write(first, "a1", "2026-01-01T00:00:01Z");
      await write(second, "b1", "2026-01-01T00:00:02Z");
      await write(first, "a2", "2026-01-01T00:00:03Z");
      await write(second, "b2", "2026-01-01T00:00:04Z");
      // Lines of a task that is no flow run are no run's logs.
      const task = ok(await server.execute(CreateTaskDocument, { input: { workspaceId, title: "not a run" } }, { token: user.accessToken })).createTask;
      ok(
        await server.execute(
          AppendLogsDocument,
          { input: { source: { type: "TASK", id: task.id }, sequence: "1", lines: [{ level: "INFO", message: "other", at: "2026-01-01T00:00:09Z" }] } },
          { token: user.accessToken },
        ),
      );

      const all = await api("/api/logs", { cookie });
      expect(all.status).toBe(200);
      expect(Object.keys(all.body)).toEqual(["items"]);
      all.body.items.forEach(expectLog);
      expect(all.body.items.map((l: any) => [l.message, l.run_id])).toEqual([
        ["b2", second.id],
        ["a2", first.id],
        ["b1", second.id],
        ["a1", first.id],
      ]);
      expect((await api("/api/logs?limit=3", { cookie })).body.items.map((l: any) => l.message)).toEqual(["b2", "a2", "b1"]);
      expect((await api(`/api/logs?run_id=${first.id}`, { cookie })).body.items.map((l: any) => l.message)).toEqual(["a2", "a1"]);
      expect((await api(`/api/logs?run_id=${second.id}&limit=1`, { cookie })).body.items.map((l: any) => l.message)).toEqual(["b2"]);

      expect((await failure("/api/logs?limit=1001", { cookie })).error).toContain("query.limit");
      expect((await failure(`/api/logs?run_id=${run_(task.id)}`, { cookie })).status).toBe(404);
      expect((await failure("/api/logs?run_id=nope", { cookie })).status).toBe(404);
      const stranger = await owner();
      expect((await failure(`/api/logs?run_id=${first.id}`, { cookie: stranger.cookie })).status).toBe(404);
      expect((await api("/api/logs", { cookie: stranger.cookie })).body.items).toEqual([]);
    });

    it("GET /api/logs/:runId answers all of a run's entries, oldest first", async () => {
      const { cookie, user } = await owner();
      const run = await runOf(cookie);
      const runId = uuidOf(run.id);
      const batch = (from: number, count: number) =>
        server.execute(
          AppendLogsDocument,
          { input: { source: { type: "TASK", id: runId }, sequence: String(from), lines: Array.from({ length: count }, (_, i) => ({ level: "INFO" as const, message: `line ${from + i}` })) } },
          { token: user.accessToken },
        );
      ok(await batch(1, 1000));
      ok(await batch(1001, 5));
      const res = await api(`/api/logs/${run.id}`, { cookie });
      expect(res.status).toBe(200);
      expect(res.body.items).toHaveLength(1005);
      expectLog(res.body.items[0]);
      expect(res.body.items.map((l: any) => l.message)).toEqual(Array.from({ length: 1005 }, (_, i) => `line ${i + 1}`));

      const empty = await runOf(cookie);
      expect((await api(`/api/logs/${empty.id}`, { cookie })).body).toEqual({ items: [] });
      expect((await failure("/api/logs/run_zz", { cookie })).status).toBe(404);
      expect((await failure(`/api/logs/${run.workflow_id}`, { cookie })).status).toBe(404);
      const stranger = await owner();
      expect((await failure(`/api/logs/${run.id}`, { cookie: stranger.cookie })).status).toBe(404);
    });
  });

  it("GET /api/health answers {ok, ts} without credentials", async () => {
    const res = await api("/api/health");
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(["ok", "ts"]);
    expect(res.body.ok).toBe(true);
    expect(res.body.ts).toMatch(ISO);
  });
});
