// api-v1's tasks as its own client uses them: plain HTTP with a bearer token, snake_case JSON,
// errors as {"detail"} (422 naming the field as sent). Every row of src/rest/api-v1/tasks.ts with
// its documented fields and its error paths (401, 403 for a read-only member, 404 for unknown,
// strangers' and other workspaces' ids, 422), and the round trips: create with an agent and find it
// by agent_id, PATCH then GET, cancel, stats, and a task a worker ran to completion or failure.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMachineDirect } from "../authz/world.js";
import { ClaimTasksDocument, CompleteTaskDocument, CreateAgentDocument, CreateTaskDocument, FailTaskDocument, StartTaskDocument } from "../generated/graphql.js";
import { addMember, ownedWorkspace, unique } from "../helpers/factories.js";
import { memberOf, restClient, type Call } from "../helpers/rest.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const { api, success, statusOf, expectStatus } = restClient(() => server, "detail");

/** A 422 whose message names `field` as the client sent it. */
const unprocessable = (path: string, call: Call, field: string) => expectStatus(path, call, 422, field);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NO_SUCH_ID = "00000000-0000-4000-8000-000000000000";
const TASK_FIELDS = [
  "agent_id",
  "completed_at",
  "created_at",
  "deadline",
  "description",
  "error",
  "id",
  "instructions",
  "priority",
  "required_tools",
  "result",
  "started_at",
  "status",
  "title",
  "updated_at",
  "worker_id",
];
const STATUSES = ["pending", "assigned", "running", "suspended", "completed", "failed", "cancelled"];
const PRIORITIES = ["low", "normal", "high", "urgent"];

function expectTask(task: any) {
  expect(Object.keys(task).sort()).toEqual(TASK_FIELDS);
  expect(task.id).toMatch(UUID);
  expect(STATUSES).toContain(task.status);
  expect(PRIORITIES).toContain(task.priority);
  expect(Array.isArray(task.required_tools)).toBe(true);
  expect(task.created_at).toMatch(ISO);
  expect(task.updated_at).toMatch(ISO);
}

const post = (token: string | undefined, body?: unknown, headers?: Record<string, string>): Call => ({ method: "POST", token, body, headers });
const patch = (token: string | undefined, body?: unknown): Call => ({ method: "PATCH", token, body });

/** A fresh workspace whose owner is signed in; `token` is the owner's. */
async function team() {
  const { owner, workspaceId } = await ownedWorkspace(server);
  return { owner, workspaceId, token: owner.accessToken };
}

const createTask = (token: string, body: Record<string, unknown> = {}) => success("/api/v1/tasks/", post(token, { title: unique("task"), ...body }), 201);

/** A machine of the workspace (approved, heard from) with an agent on it. */
async function agentOn(workspaceId: string, token: string) {
  const machine = await createMachineDirect(server, workspaceId);
  const agent = ok(await server.execute(CreateAgentDocument, { input: { machineId: machine.id, name: unique("agent") } }, { token })).createAgent;
  return { machine, agent };
}

/** The workspace's machine claims and starts the (only) task it may take; answers the lease. */
async function claimAndStart(machine: { credential: string }, taskId: string) {
  const as = { token: machine.credential };
  const [claimed] = ok(await server.execute(ClaimTasksDocument, { input: { limit: 1 } }, as)).claimTasks;
  expect(claimed?.id).toBe(taskId);
  const leaseToken = claimed!.leaseToken!;
  ok(await server.execute(StartTaskDocument, { input: { taskId, leaseToken } }, as));
  return leaseToken;
}

describe(`api-v1 REST dialect, tasks (${backend})`, () => {
  describe("POST /api/v1/tasks/", () => {
    it("creates a pending task (201) with every documented field; medium and critical are normal and urgent", async () => {
      const { token } = await team();
      const deadline = new Date(Date.now() + 86_400_000).toISOString();
      const task = await createTask(token, {
        description: "Summarise the logs",
        instructions: "Use the last hour only",
        priority: "critical",
        deadline,
        required_tools: ["python", "web"],
      });
      expectTask(task);
      expect(task).toMatchObject({
        description: "Summarise the logs",
        instructions: "Use the last hour only",
        status: "pending",
        priority: "urgent",
        agent_id: null,
        worker_id: null,
        required_tools: ["python", "web"],
        deadline,
        result: null,
        error: null,
        started_at: null,
        completed_at: null,
      });
      expect((await createTask(token, { priority: "Medium" })).priority).toBe("normal");
      expect((await createTask(token)).priority).toBe("normal");
      // Without a title, the description's first line is the title.
      expect((await success("/api/v1/tasks/", post(token, { description: "First line\nsecond" }), 201)).title).toBe("First line");
    });

    it("binds a task with agent_id to the agent's worker", async () => {
      const { token, workspaceId } = await team();
      const { machine, agent } = await agentOn(workspaceId, token);
      const task = await createTask(token, { agent_id: agent.id });
      expect(task).toMatchObject({ agent_id: agent.id, worker_id: machine.id, status: "pending" });
    });

    it("passes the Idempotency-Key through: a retry answers the first task", async () => {
      const { token } = await team();
      const key = unique("key");
      const body = { title: unique("once") };
      const first = await success("/api/v1/tasks/", post(token, body, { "idempotency-key": key }), 201);
      const again = await success("/api/v1/tasks/", post(token, body, { "idempotency-key": key }), 201);
      expect(again.id).toBe(first.id);
      expect((await success("/api/v1/tasks/", { token })).filter((t: any) => t.title === body.title)).toHaveLength(1);
    });

    it("answers 422 naming the field, 401 without a token, 403 for a read-only member", async () => {
      const { token, workspaceId } = await team();
      const other = await team();
      const { agent: strangersAgent } = await agentOn(other.workspaceId, other.token);
      await unprocessable("/api/v1/tasks/", post(token, { title: "x", priority: "asap" }), "body.priority");
      await unprocessable("/api/v1/tasks/", post(token, { title: "x", priority: 3 }), "body.priority");
      await unprocessable("/api/v1/tasks/", post(token, { title: "x", agent_id: "agent-7" }), "body.agent_id");
      await unprocessable("/api/v1/tasks/", post(token, { title: "x", agent_id: NO_SUCH_ID }), "body.agent_id");
      await unprocessable("/api/v1/tasks/", post(token, { title: "x", agent_id: strangersAgent.id }), "body.agent_id");
      await unprocessable("/api/v1/tasks/", post(token, { title: "x", deadline: "tomorrow" }), "body.deadline");
      await unprocessable("/api/v1/tasks/", post(token, { title: "x", deadline: "2001-01-01T00:00:00Z" }), "body.deadline");
      await unprocessable("/api/v1/tasks/", post(token, { title: "x", required_tools: "python" }), "body.required_tools");
      await unprocessable("/api/v1/tasks/", post(token, { description: "" }), "body.title");
      await unprocessable("/api/v1/tasks/", post(token, { title: "x".repeat(201) }), "body.title");
      expect(await statusOf("/api/v1/tasks/", post(undefined, { title: "x" }))).toBe(401);
      const viewer = await memberOf(server, workspaceId, "VIEWER");
      expect(await statusOf("/api/v1/tasks/", post(viewer.accessToken, { title: "x" }))).toBe(403);
    });
  });

  describe("GET /api/v1/tasks/", () => {
    it("lists the workspace's tasks newest first, filtered by status_filter, priority and agent_id", async () => {
      const { token, workspaceId } = await team();
      const { agent } = await agentOn(workspaceId, token);
      const low = await createTask(token, { priority: "low" });
      const forAgent = await createTask(token, { priority: "high", agent_id: agent.id });
      const cancelled = await createTask(token, { priority: "urgent" });
      await success(`/api/v1/tasks/${cancelled.id}/cancel`, post(token));
      // A stranger's task is never listed.
      await createTask((await team()).token);

      const all = await success("/api/v1/tasks/", { token });
      all.forEach(expectTask);
      expect(all.map((t: any) => t.id)).toEqual([cancelled.id, forAgent.id, low.id]);

      const ids = async (query: string) => (await success(`/api/v1/tasks/?${query}`, { token })).map((t: any) => t.id);
      expect(await ids("status_filter=pending")).toEqual([forAgent.id, low.id]);
      expect(await ids("status_filter=cancelled")).toEqual([cancelled.id]);
      expect(await ids("status_filter=Pending,cancelled")).toEqual([cancelled.id, forAgent.id, low.id]);
      expect(await ids("status_filter=completed")).toEqual([]);
      expect(await ids("priority=high")).toEqual([forAgent.id]);
      expect(await ids("priority=critical,low")).toEqual([cancelled.id, low.id]);
      expect(await ids(`agent_id=${agent.id}`)).toEqual([forAgent.id]);
      expect(await ids(`agent_id=${NO_SUCH_ID}`)).toEqual([]);
      expect(await ids(`agent_id=${agent.id}&status_filter=cancelled`)).toEqual([]);
      expect(await ids("limit=1&offset=1")).toEqual([forAgent.id]);
    });

    it(`answers 50 tasks unless limit says otherwise, pages past 100, and skips offset`, async () => {
      const { token, workspaceId } = await team();
      await server.db.prisma.task.createMany({ data: Array.from({ length: 130 }, (_, i) => ({ workspaceId, title: `bulk ${i}`, requiredCapabilities: [] })) });
      expect(await success("/api/v1/tasks/", { token })).toHaveLength(50);
      const many = await success("/api/v1/tasks/?limit=125", { token });
      expect(many).toHaveLength(125);
      expect(new Set(many.map((t: any) => t.id)).size).toBe(125);
      const rest = await success("/api/v1/tasks/?limit=1000&offset=120", { token });
      expect(rest.map((t: any) => t.id)).toEqual((await success("/api/v1/tasks/?limit=1000", { token })).slice(120).map((t: any) => t.id));
      expect(rest).toHaveLength(10);
    });

    it("answers 422 naming the query field, 401 without a token", async () => {
      const { token } = await team();
      await unprocessable("/api/v1/tasks/?status_filter=done", { token }, "query.status_filter");
      await unprocessable("/api/v1/tasks/?status_filter=succeeded", { token }, "query.status_filter");
      await unprocessable("/api/v1/tasks/?priority=meh", { token }, "query.priority");
      await unprocessable("/api/v1/tasks/?agent_id=7", { token }, "query.agent_id");
      await unprocessable("/api/v1/tasks/?limit=0", { token }, "query.limit");
      await unprocessable("/api/v1/tasks/?limit=1001", { token }, "query.limit");
      await unprocessable("/api/v1/tasks/?limit=ten", { token }, "query.limit");
      await unprocessable("/api/v1/tasks/?offset=-1", { token }, "query.offset");
      await unprocessable("/api/v1/tasks/?offset=10001", { token }, "query.offset");
      expect(await statusOf("/api/v1/tasks/")).toBe(401);
    });
  });

  describe("GET /api/v1/tasks/stats", () => {
    it("counts the workspace's tasks by every status and priority, zeros included", async () => {
      const { token } = await team();
      const empty = await success("/api/v1/tasks/stats", { token });
      expect(empty).toEqual({
        total: 0,
        by_status: Object.fromEntries(STATUSES.map((s) => [s, 0])),
        by_priority: Object.fromEntries(PRIORITIES.map((p) => [p, 0])),
      });
      await createTask(token, { priority: "high" });
      await createTask(token, { priority: "high" });
      const gone = await createTask(token, { priority: "low" });
      await success(`/api/v1/tasks/${gone.id}/cancel`, post(token));
      await createTask((await team()).token);
      const stats = await success("/api/v1/tasks/stats", { token });
      expect(stats).toEqual({
        total: 3,
        by_status: { pending: 2, assigned: 0, running: 0, suspended: 0, completed: 0, failed: 0, cancelled: 1 },
        by_priority: { low: 1, normal: 0, high: 2, urgent: 0 },
      });
      expect(Object.keys(stats.by_status)).toEqual(STATUSES);
      expect(await statusOf("/api/v1/tasks/stats")).toBe(401);
    });
  });

  describe("GET /api/v1/tasks/{id}", () => {
    it("answers a task a worker completed: completed, its result, the worker and the times", async () => {
      const { token, workspaceId } = await team();
      const machine = await createMachineDirect(server, workspaceId);
      const created = await createTask(token);
      const leaseToken = await claimAndStart(machine, created.id);
      const running = await success(`/api/v1/tasks/${created.id}`, { token });
      expect(running).toMatchObject({ status: "running", worker_id: machine.id, completed_at: null });
      expect(running.started_at).toMatch(ISO);

      ok(await server.execute(CompleteTaskDocument, { input: { taskId: created.id, leaseToken, output: { summary: "all good", lines: 3 } } }, { token: machine.credential }));
      const done = await success(`/api/v1/tasks/${created.id}`, { token });
      expectTask(done);
      expect(done).toMatchObject({ id: created.id, status: "completed", result: { summary: "all good", lines: 3 }, error: null, worker_id: machine.id });
      expect(done.completed_at).toMatch(ISO);
      expect((await success("/api/v1/tasks/?status_filter=completed", { token })).map((t: any) => t.id)).toEqual([created.id]);
    });

    it("answers a failed task with its error", async () => {
      const { token, workspaceId } = await team();
      const machine = await createMachineDirect(server, workspaceId);
      const created = await createTask(token);
      const leaseToken = await claimAndStart(machine, created.id);
      ok(await server.execute(FailTaskDocument, { input: { taskId: created.id, leaseToken, error: "disk full" } }, { token: machine.credential }));
      expect(await success(`/api/v1/tasks/${created.id}`, { token })).toMatchObject({ status: "failed", error: "disk full", result: null });
    });

    it("answers 404 for an unknown id, a stranger's task and a task of the caller's other workspace; 401 without a token", async () => {
      const { owner, token } = await team();
      const strangers = await createTask((await team()).token);
      // A workspace the owner joined later: api-v1 works in the first (the default), so its tasks are not found here.
      const later = await ownedWorkspace(server);
      await addMember(server, later.workspaceId, owner.id, "ADMIN");
      const elsewhere = ok(await server.execute(CreateTaskDocument, { input: { workspaceId: later.workspaceId, title: "elsewhere" } }, { token })).createTask;

      for (const id of [NO_SUCH_ID, "42", strangers.id, elsewhere.id]) {
        expect(await statusOf(`/api/v1/tasks/${id}`, { token })).toBe(404);
        expect(await statusOf(`/api/v1/tasks/${id}`, patch(token, { title: "mine now" }))).toBe(404);
        expect(await statusOf(`/api/v1/tasks/${id}/cancel`, post(token))).toBe(404);
      }
      expect(await statusOf(`/api/v1/tasks/${strangers.id}`)).toBe(401);
    });
  });

  describe("PATCH /api/v1/tasks/{id}", () => {
    it("changes only the fields sent; GET shows the change", async () => {
      const { token, workspaceId } = await team();
      const { machine, agent } = await agentOn(workspaceId, token);
      const task = await createTask(token, { description: "old", instructions: "keep", priority: "low", required_tools: ["a"] });

      const changed = await success(`/api/v1/tasks/${task.id}`, patch(token, { title: "Renamed", priority: "critical", description: null, agent_id: agent.id }));
      expectTask(changed);
      expect(changed).toMatchObject({ title: "Renamed", priority: "urgent", description: null, instructions: "keep", required_tools: ["a"], agent_id: agent.id, worker_id: machine.id });
      expect(await success(`/api/v1/tasks/${task.id}`, { token })).toEqual(changed);

      const retooled = await success(`/api/v1/tasks/${task.id}`, patch(token, { required_tools: ["b", "c"], agent_id: null }));
      expect(retooled).toMatchObject({ title: "Renamed", required_tools: ["b", "c"], agent_id: null, worker_id: null });
    });

    it("changes what decides where a task runs only while it is pending (409); status, result and error are not settable (422)", async () => {
      const { token, workspaceId } = await team();
      const machine = await createMachineDirect(server, workspaceId);
      const task = await createTask(token);
      await claimAndStart(machine, task.id);
      expect(await statusOf(`/api/v1/tasks/${task.id}`, patch(token, { instructions: "too late" }))).toBe(409);
      expect((await success(`/api/v1/tasks/${task.id}`, patch(token, { title: "Still renamable" }))).title).toBe("Still renamable");

      await unprocessable(`/api/v1/tasks/${task.id}`, patch(token, { status: "completed" }), "body.status");
      await unprocessable(`/api/v1/tasks/${task.id}`, patch(token, { result: { done: true } }), "body.result");
      await unprocessable(`/api/v1/tasks/${task.id}`, patch(token, { error: "x" }), "body.error");
    });

    it("answers 422 naming the field, 401 without a token, 403 for a read-only member", async () => {
      const { token, workspaceId } = await team();
      const task = await createTask(token);
      await unprocessable(`/api/v1/tasks/${task.id}`, patch(token, {}), "body");
      await unprocessable(`/api/v1/tasks/${task.id}`, patch(token, { priority: "soon" }), "body.priority");
      await unprocessable(`/api/v1/tasks/${task.id}`, patch(token, { title: "" }), "body.title");
      await unprocessable(`/api/v1/tasks/${task.id}`, patch(token, { title: null }), "body.title");
      await unprocessable(`/api/v1/tasks/${task.id}`, patch(token, { agent_id: NO_SUCH_ID }), "body.agent_id");
      await unprocessable(`/api/v1/tasks/${task.id}`, patch(token, { deadline: "2001-01-01T00:00:00Z" }), "body.deadline");
      await unprocessable(`/api/v1/tasks/${task.id}`, patch(token, { required_tools: [1] }), "body.required_tools");
      expect(await statusOf(`/api/v1/tasks/${task.id}`, patch(undefined, { title: "x" }))).toBe(401);
      const viewer = await memberOf(server, workspaceId, "VIEWER");
      expect(await statusOf(`/api/v1/tasks/${task.id}`, patch(viewer.accessToken, { title: "x" }))).toBe(403);
      // The viewer still reads it.
      expect((await success(`/api/v1/tasks/${task.id}`, { token: viewer.accessToken })).id).toBe(task.id);
    });
  });

  describe("POST /api/v1/tasks/{id}/cancel", () => {
    it("cancels a pending or running task with the reason; a finished one is 409", async () => {
      const { token, workspaceId } = await team();
      const task = await createTask(token);
      const cancelled = await success(`/api/v1/tasks/${task.id}/cancel`, post(token, { reason: "not needed" }));
      expectTask(cancelled);
      expect(cancelled).toMatchObject({ id: task.id, status: "cancelled", error: "Cancelled: not needed" });
      expect(cancelled.completed_at).toMatch(ISO);
      expect(await success(`/api/v1/tasks/${task.id}`, { token })).toEqual(cancelled);
      expect(await statusOf(`/api/v1/tasks/${task.id}/cancel`, post(token))).toBe(409);

      const machine = await createMachineDirect(server, workspaceId);
      const running = await createTask(token);
      await claimAndStart(machine, running.id);
      expect(await success(`/api/v1/tasks/${running.id}/cancel`, post(token))).toMatchObject({ status: "cancelled", error: "Cancelled", worker_id: machine.id });
    });

    it("answers 422 for a bad reason, 401 without a token, 403 for a read-only member", async () => {
      const { token, workspaceId } = await team();
      const task = await createTask(token);
      await unprocessable(`/api/v1/tasks/${task.id}/cancel`, post(token, { reason: 5 }), "body.reason");
      await unprocessable(`/api/v1/tasks/${task.id}/cancel`, post(token, { reason: "x".repeat(1001) }), "body.reason");
      expect(await statusOf(`/api/v1/tasks/${task.id}/cancel`, post(undefined))).toBe(401);
      const viewer = await memberOf(server, workspaceId, "VIEWER");
      expect(await statusOf(`/api/v1/tasks/${task.id}/cancel`, post(viewer.accessToken))).toBe(403);
      expect((await api(`/api/v1/tasks/${task.id}`, { token })).body.status).toBe("pending");
    });
  });
});
