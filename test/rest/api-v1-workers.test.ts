// api-v1's workers (Spindle machines) as its own client uses them: plain HTTP with a bearer token (a
// user's, or the worker's own spm_ credential for heartbeats), snake_case JSON, errors as {"detail"}.
// Every row of src/rest/api-v1/workers.ts with its documented fields and error paths (401, 403 for
// non-administrators on the admin rows, 404 for unknown, strangers' and other workspaces' ids, 422),
// and the round trip: a member registers a worker, it heartbeats with its credential, a system
// administrator sees its metrics and approves it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMachineDirect } from "../authz/world.js";
import { CreateAgentDocument, CreateTaskDocument } from "../generated/graphql.js";
import { addMember, ownedWorkspace, signedInUser, unique } from "../helpers/factories.js";
import { memberOf, restClient, type Call } from "../helpers/rest.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const { success, statusOf, expectStatus } = restClient(() => server, "detail");

/** A 422 whose message names `field` as the client sent it. */
const unprocessable = (path: string, call: Call, field: string) => expectStatus(path, call, 422, field);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NO_SUCH_ID = "00000000-0000-4000-8000-000000000000";
const WORKER_FIELDS = [
  "agents",
  "approval",
  "cpu_cores",
  "cpu_usage_percent",
  "created_at",
  "disk_usage_percent",
  "group",
  "hostname",
  "id",
  "ip_address",
  "is_approved",
  "last_heartbeat",
  "max_agents",
  "memory_total_mb",
  "memory_usage_percent",
  "name",
  "os_info",
  "status",
];

function expectWorker(worker: any) {
  expect(Object.keys(worker).sort()).toEqual(WORKER_FIELDS);
  expect(worker.id).toMatch(UUID);
  expect(["online", "offline", "draining", "drained", "decommissioned"]).toContain(worker.status);
  expect(["pending", "approved", "rejected"]).toContain(worker.approval);
  expect(worker.is_approved).toBe(worker.approval === "approved");
  expect(worker.created_at).toMatch(ISO);
  expect(Array.isArray(worker.agents)).toBe(true);
}

const post = (token: string | undefined, body?: unknown, headers?: Record<string, string>): Call => ({ method: "POST", token, body, headers });
const patch = (token: string | undefined, body?: unknown): Call => ({ method: "PATCH", token, body });

/** A fresh workspace whose owner is signed in; `token` is the owner's. */
async function team() {
  const { owner, workspaceId } = await ownedWorkspace(server);
  return { owner, workspaceId, token: owner.accessToken };
}

const registration = (fields: Record<string, unknown> = {}) => ({
  name: unique("worker"),
  hostname: `${unique("host")}.lan`,
  ip_address: "10.0.0.7",
  max_agents: 4,
  cpu_cores: 8,
  memory_total_mb: 16384,
  os_info: "Ubuntu 24.04",
  ...fields,
});

const register = (token: string, fields: Record<string, unknown> = {}) => success("/api/v1/workers/register", post(token, registration(fields)), 201);

const heartbeat = (id: string, token: string, body: Record<string, unknown> = { cpu_usage_percent: 12.5, memory_usage_percent: 40, disk_usage_percent: 71 }) =>
  success(`/api/v1/workers/${id}/heartbeat`, post(token, body));

describe(`api-v1 REST dialect, workers (${backend})`, () => {
  describe("POST /api/v1/workers/register", () => {
    it("registers a workspace admin's worker approved (201), with its credential shown once", async () => {
      const { token } = await team();
      const body = registration({ os_info: { name: "Ubuntu", version: "24.04" } });
      const { credential, recovery_secret, ...worker } = await success("/api/v1/workers/register", post(token, body), 201);
      expectWorker(worker);
      expect(credential).toMatch(/^spm_/);
      expect(recovery_secret).toMatch(/^spr_/);
      expect(worker).toMatchObject({
        name: body.name,
        hostname: body.hostname,
        ip_address: "10.0.0.7",
        max_agents: 4,
        cpu_cores: 8,
        memory_total_mb: 16384,
        os_info: { name: "Ubuntu", version: "24.04" },
        is_approved: true,
        approval: "approved",
        group: null,
        status: "offline",
        last_heartbeat: null,
        cpu_usage_percent: null,
        memory_usage_percent: null,
        disk_usage_percent: null,
        agents: [],
      });
      // Only the name is needed; what is left out shows null.
      const bare = await success("/api/v1/workers/register", post(token, { name: unique("bare") }), 201);
      expect(bare).toMatchObject({ hostname: null, ip_address: null, max_agents: null, cpu_cores: null, memory_total_mb: null, os_info: null });
    });

    it("registers a member's worker pending approval; a read-only member gets 403, no token 401", async () => {
      const { workspaceId } = await team();
      const member = await memberOf(server, workspaceId, "MEMBER");
      const worker = await register(member.accessToken);
      expect(worker).toMatchObject({ is_approved: false, approval: "pending" });
      const viewer = await memberOf(server, workspaceId, "VIEWER");
      expect(await statusOf("/api/v1/workers/register", post(viewer.accessToken, registration()))).toBe(403);
      expect(await statusOf("/api/v1/workers/register", post(undefined, registration()))).toBe(401);
    });

    it("passes the Idempotency-Key through: a retry answers the same worker, without its secrets", async () => {
      const { token } = await team();
      const body = registration();
      const key = unique("key");
      const first = await success("/api/v1/workers/register", post(token, body, { "idempotency-key": key }), 201);
      const again = await success("/api/v1/workers/register", post(token, body, { "idempotency-key": key }), 201);
      expect(again.id).toBe(first.id);
      expect(again.credential).toBeNull();
      expect(first.credential).toMatch(/^spm_/);
    });

    it("answers 422 naming the field, and 409 for a hostname taken in the workspace", async () => {
      const { token } = await team();
      await unprocessable("/api/v1/workers/register", post(token, { hostname: "h" }), "body.name");
      await unprocessable("/api/v1/workers/register", post(token, registration({ name: "" })), "body.name");
      await unprocessable("/api/v1/workers/register", post(token, registration({ name: "n".repeat(101) })), "body.name");
      await unprocessable("/api/v1/workers/register", post(token, registration({ hostname: 7 })), "body.hostname");
      await unprocessable("/api/v1/workers/register", post(token, registration({ ip_address: "10.0.0.300" })), "body.ip_address");
      await unprocessable("/api/v1/workers/register", post(token, registration({ max_agents: 2.5 })), "body.max_agents");
      await unprocessable("/api/v1/workers/register", post(token, registration({ max_agents: -1 })), "body.max_agents");
      await unprocessable("/api/v1/workers/register", post(token, registration({ cpu_cores: "eight" })), "body.cpu_cores");
      await unprocessable("/api/v1/workers/register", post(token, registration({ memory_total_mb: -5 })), "body.memory_total_mb");
      await unprocessable("/api/v1/workers/register", post(token, registration({ os_info: 5 })), "body.os_info");
      await unprocessable("/api/v1/workers/register", post(token, registration({ os_info: "x".repeat(9000) })), "body.os_info");
      const taken = await register(token);
      await expectStatus("/api/v1/workers/register", post(token, registration({ hostname: taken.hostname })), 409, `hostname "${taken.hostname}"`);
    });
  });

  describe("POST /api/v1/workers/{id}/heartbeat", () => {
    it("records the usage with the worker's own credential: online, metrics, last_heartbeat", async () => {
      const { token } = await team();
      const { credential, id } = await register(token);
      const worker = await heartbeat(id, credential);
      expectWorker(worker);
      expect(worker).toMatchObject({ id, status: "online", cpu_usage_percent: 12.5, memory_usage_percent: 40, disk_usage_percent: 71 });
      expect(worker.last_heartbeat).toMatch(ISO);
      // Every figure is optional: a bare heartbeat says the worker is alive.
      expect(await heartbeat(id, credential, {})).toMatchObject({ status: "online", cpu_usage_percent: null });
    });

    it("with a credential, another worker's id is 404; with a user's token, any worker the user may change", async () => {
      const { token, workspaceId } = await team();
      const mine = await register(token);
      const sibling = await register(token);
      const strangers = await register((await team()).token);
      for (const id of [sibling.id, strangers.id, NO_SUCH_ID, "7"]) {
        expect(await statusOf(`/api/v1/workers/${id}/heartbeat`, post(mine.credential, {}))).toBe(404);
      }
      expect((await heartbeat(sibling.id, token, { cpu_usage_percent: 3 })).cpu_usage_percent).toBe(3);
      const member = await memberOf(server, workspaceId, "MEMBER");
      expect((await heartbeat(sibling.id, member.accessToken, { disk_usage_percent: 9 })).disk_usage_percent).toBe(9);

      for (const id of [strangers.id, NO_SUCH_ID, "7"]) expect(await statusOf(`/api/v1/workers/${id}/heartbeat`, post(token, {}))).toBe(404);
      const viewer = await memberOf(server, workspaceId, "VIEWER");
      expect(await statusOf(`/api/v1/workers/${mine.id}/heartbeat`, post(viewer.accessToken, {}))).toBe(403);
      expect(await statusOf(`/api/v1/workers/${mine.id}/heartbeat`, post(undefined, {}))).toBe(401);
      expect(await statusOf(`/api/v1/workers/${mine.id}/heartbeat`, post("spm_not-a-credential", {}))).toBe(401);
    });

    it("answers 422 naming the field", async () => {
      const { token } = await team();
      const { id, credential } = await register(token);
      await unprocessable(`/api/v1/workers/${id}/heartbeat`, post(credential, { cpu_usage_percent: 150 }), "body.cpu_usage_percent");
      await unprocessable(`/api/v1/workers/${id}/heartbeat`, post(credential, { memory_usage_percent: -1 }), "body.memory_usage_percent");
      await unprocessable(`/api/v1/workers/${id}/heartbeat`, post(credential, { disk_usage_percent: "full" }), "body.disk_usage_percent");
    });
  });

  describe("GET /api/v1/workers/{id}/tasks", () => {
    it("lists the pending tasks bound to the worker: its agents' and its own, not anyone's or another worker's", async () => {
      const { token, workspaceId } = await team();
      const worker = await register(token);
      const other = await register(token);
      const agent = ok(await server.execute(CreateAgentDocument, { input: { machineId: worker.id, name: unique("agent") } }, { token })).createAgent;
      const forAgent = await success("/api/v1/tasks/", post(token, { title: "for the agent", agent_id: agent.id }), 201);
      const forWorker = ok(await server.execute(CreateTaskDocument, { input: { workspaceId, title: "for the worker", targetMachineId: worker.id } }, { token })).createTask;
      const cancelled = await success("/api/v1/tasks/", post(token, { title: "cancelled", agent_id: agent.id }), 201);
      await success(`/api/v1/tasks/${cancelled.id}/cancel`, post(token));
      await success("/api/v1/tasks/", post(token, { title: "anyone's" }), 201);
      ok(await server.execute(CreateTaskDocument, { input: { workspaceId, title: "the other's", targetMachineId: other.id } }, { token }));

      const tasks = await success(`/api/v1/workers/${worker.id}/tasks`, { token });
      expect(tasks.map((t: any) => t.id)).toEqual([forWorker.id, forAgent.id]);
      expect(tasks.find((t: any) => t.id === forAgent.id)).toEqual(await success(`/api/v1/tasks/${forAgent.id}`, { token }));
      expect(tasks[0]).toMatchObject({ agent_id: null, worker_id: worker.id, status: "pending" });
      expect(tasks[1]).toMatchObject({ agent_id: agent.id, worker_id: worker.id, status: "pending" });
      // The same agent's task is found under agent_id too.
      expect((await success(`/api/v1/tasks/?agent_id=${agent.id}&status_filter=pending`, { token })).map((t: any) => t.id)).toEqual([forAgent.id]);
      expect(await success(`/api/v1/workers/${other.id}/tasks`, { token })).toHaveLength(1);
    });

    it("answers 404 for an unknown id, a stranger's worker and one of the caller's other workspace; 401 without a token", async () => {
      const { owner, token } = await team();
      const strangers = await register((await team()).token);
      const later = await ownedWorkspace(server);
      await addMember(server, later.workspaceId, owner.id, "ADMIN");
      const elsewhere = await createMachineDirect(server, later.workspaceId);
      for (const id of [NO_SUCH_ID, "7", strangers.id, elsewhere.id]) expect(await statusOf(`/api/v1/workers/${id}/tasks`, { token })).toBe(404);
      expect(await statusOf(`/api/v1/workers/${strangers.id}/tasks`)).toBe(401);
    });
  });

  describe("GET /api/v1/workers/overview", () => {
    it("counts the workspace's workers by status and approval, and its running and pending tasks", async () => {
      const { token, workspaceId } = await team();
      const zero = { total: 0, online: 0, offline: 0, draining: 0, drained: 0, pending_approval: 0, decommissioned: 0, running_tasks: 0, pending_tasks: 0 };
      expect(await success("/api/v1/workers/overview", { token })).toEqual(zero);
      const alive = await register(token);
      await heartbeat(alive.id, alive.credential);
      await register((await memberOf(server, workspaceId, "MEMBER")).accessToken);
      await success("/api/v1/tasks/", post(token, { title: "queued" }), 201);
      await register((await team()).token);
      expect(await success("/api/v1/workers/overview", { token })).toEqual({ ...zero, total: 2, online: 1, offline: 1, pending_approval: 1, pending_tasks: 1 });
      expect(await statusOf("/api/v1/workers/overview")).toBe(401);
    });
  });

  describe("admin: GET /api/v1/admin/workers, PATCH /api/v1/admin/workers/{id}/approve", () => {
    it("a member's worker: registered pending, heartbeats with its credential, shows its metrics to an administrator, is approved", async () => {
      const { workspaceId } = await team();
      const admin = await memberOf(server, workspaceId, "ADMIN", { systemAdmin: true });
      const member = await memberOf(server, workspaceId, "MEMBER");
      const registered = await register(member.accessToken, { os_info: "Debian 12" });
      expect(registered.is_approved).toBe(false);
      await heartbeat(registered.id, registered.credential, { cpu_usage_percent: 55.5, memory_usage_percent: 20, disk_usage_percent: 33 });
      const agent = ok(await server.execute(CreateAgentDocument, { input: { machineId: registered.id, name: "coder" } }, { token: admin.accessToken })).createAgent;

      const listed = await success("/api/v1/admin/workers", { token: admin.accessToken });
      listed.forEach(expectWorker);
      expect(listed.map((w: any) => w.id)).toEqual([registered.id]);
      expect(listed[0]).toMatchObject({
        hostname: registered.hostname,
        ip_address: "10.0.0.7",
        cpu_cores: 8,
        memory_total_mb: 16384,
        os_info: "Debian 12",
        max_agents: 4,
        status: "online",
        is_approved: false,
        approval: "pending",
        cpu_usage_percent: 55.5,
        memory_usage_percent: 20,
        disk_usage_percent: 33,
        agents: [{ id: agent.id, name: "coder", status: "offline" }],
      });
      expect(listed[0].last_heartbeat).toMatch(ISO);

      const approved = await success(`/api/v1/admin/workers/${registered.id}/approve`, patch(admin.accessToken, { is_approved: true, group: "gpu" }));
      expectWorker(approved);
      expect(approved).toMatchObject({ id: registered.id, is_approved: true, approval: "approved", group: "gpu" });
      expect((await success("/api/v1/admin/workers", { token: admin.accessToken }))[0]).toMatchObject({ is_approved: true, group: "gpu" });
      // Left out, the group stays; null clears it.
      expect(await success(`/api/v1/admin/workers/${registered.id}/approve`, patch(admin.accessToken, { is_approved: true }))).toMatchObject({ group: "gpu" });
      expect(await success(`/api/v1/admin/workers/${registered.id}/approve`, patch(admin.accessToken, { is_approved: true, group: null }))).toMatchObject({ group: null });
    });

    it("a rejected worker's credential is refused", async () => {
      const { workspaceId } = await team();
      const admin = await memberOf(server, workspaceId, "OWNER", { systemAdmin: true });
      const worker = await register(admin.accessToken);
      const rejected = await success(`/api/v1/admin/workers/${worker.id}/approve`, patch(admin.accessToken, { is_approved: false }));
      expect(rejected).toMatchObject({ is_approved: false, approval: "rejected" });
      expect(await statusOf(`/api/v1/workers/${worker.id}/heartbeat`, post(worker.credential, {}))).toBe(401);
    });

    it("pages through more workers than one GraphQL page holds", async () => {
      const { workspaceId } = await team();
      const admin = await memberOf(server, workspaceId, "ADMIN", { systemAdmin: true });
      for (let i = 0; i < 105; i++) await createMachineDirect(server, workspaceId);
      const listed = await success("/api/v1/admin/workers", { token: admin.accessToken });
      expect(listed).toHaveLength(105);
      expect(new Set(listed.map((w: any) => w.id)).size).toBe(105);
    });

    it("answers 403 to anyone but system administrators, 401 without a token", async () => {
      const { token, workspaceId } = await team();
      const worker = await register(token);
      // A workspace owner is not a system administrator.
      expect(await statusOf("/api/v1/admin/workers", { token })).toBe(403);
      expect(await statusOf(`/api/v1/admin/workers/${worker.id}/approve`, patch(token, { is_approved: true }))).toBe(403);
      // Nor is a worker's own credential.
      expect(await statusOf("/api/v1/admin/workers", { token: worker.credential })).toBe(403);
      expect(await statusOf("/api/v1/admin/workers")).toBe(401);
      expect(await statusOf(`/api/v1/admin/workers/${worker.id}/approve`, patch(undefined, { is_approved: true }))).toBe(401);
      // A system administrator who is a plain member of the workspace reads the list (as any member may)
      // but approves nothing: Spindle wants the admin role in the workspace for that.
      const plain = await memberOf(server, workspaceId, "MEMBER", { systemAdmin: true });
      expect((await success("/api/v1/admin/workers", { token: plain.accessToken })).map((w: any) => w.id)).toEqual([worker.id]);
      expect(await statusOf(`/api/v1/admin/workers/${worker.id}/approve`, patch(plain.accessToken, { is_approved: true }))).toBe(403);
      // A system administrator in no workspace has no workers to list.
      expect(await statusOf("/api/v1/admin/workers", { token: (await signedInUser(server, { role: "ADMIN" })).accessToken })).toBe(404);
    });

    it("approve answers 404 for an unknown id, a stranger's worker and one of another workspace; 422 naming the field", async () => {
      const { workspaceId } = await team();
      const admin = await memberOf(server, workspaceId, "ADMIN", { systemAdmin: true });
      const mine = await register(admin.accessToken);
      const strangers = await register((await team()).token);
      const later = await ownedWorkspace(server);
      await addMember(server, later.workspaceId, admin.id, "ADMIN");
      const elsewhere = await createMachineDirect(server, later.workspaceId);
      for (const id of [NO_SUCH_ID, "7", strangers.id, elsewhere.id]) {
        expect(await statusOf(`/api/v1/admin/workers/${id}/approve`, patch(admin.accessToken, { is_approved: true }))).toBe(404);
      }
      const approve = `/api/v1/admin/workers/${mine.id}/approve`;
      await unprocessable(approve, patch(admin.accessToken, {}), "body.is_approved");
      await unprocessable(approve, patch(admin.accessToken, { is_approved: "yes" }), "body.is_approved");
      await unprocessable(approve, patch(admin.accessToken, { is_approved: true, group: 5 }), "body.group");
      await unprocessable(approve, patch(admin.accessToken, { is_approved: true, group: "g".repeat(101) }), "body.group");
    });
  });
});
