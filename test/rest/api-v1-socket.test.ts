// api-v1's event stream as its clients use it: a WebSocket on /api/v1/ws, authenticated by
// ?token= or by its first message, relaying the workspace's events in api-v1's meanings (machines
// are workers; Spindle's worker units are not sent), with ping, subscribe, resume by cursor, and
// the close codes for a credential that ends. Real server, real sockets; and the translation alone.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { API_V1_EVENT_TYPES, toApiV1Event, type SpindleEvent } from "../../src/rest/api-v1/socket.js";
import { createMachineDirect } from "../authz/world.js";
import {
  ClaimTasksDocument,
  CreateAgentDocument,
  CompleteTaskDocument,
  CreateApiKeyDocument,
  CurrentSessionDocument,
  DeployWorkerDocument,
  LogoutDocument,
  MachineHeartbeatDocument,
  PublishWorkspaceEventDocument,
  RemoveWorkspaceMemberDocument,
  ReportWorkerStatusDocument,
  RevokeSessionDocument,
  StartTaskDocument,
} from "../generated/graphql.js";
import { addMember, ownedWorkspace, signedInUser, unique } from "../helpers/factories.js";
import { Inbox, tracker } from "../helpers/live.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
const t = tracker();
beforeAll(async () => {
  server = await startTestServer();
});
afterEach(() => t.closeAll());
afterAll(() => server?.close());

type Frame = Record<string, any>;

/** A client socket: its frames in order, its close, or the HTTP answer that refused the upgrade. */
function connect(query: Record<string, string> = {}, on: TestServer = server) {
  const url = new URL(`${on.url.replace(/^http/, "ws")}/api/v1/ws`);
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  const ws = t.track(new WebSocket(url), (s) => s.terminate());
  const frames = new Inbox<Frame>("api-v1 socket");
  ws.on("message", (data) => frames.push(JSON.parse(String(data))));
  ws.on("error", () => {});
  const opened = new Promise<void>((resolve) => ws.once("open", () => resolve()));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => {
      frames.finish({ code });
      resolve({ code, reason: String(reason) });
    }),
  );
  const refused = new Promise<{ status: number; body: any }>((resolve) =>
    ws.once("unexpected-response", (request, response) => {
      let text = "";
      response.on("data", (chunk: Buffer) => (text += chunk.toString()));
      response.on("end", () => {
        resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) });
        request.destroy();
      });
    }),
  );
  return { ws, frames, opened, closed, refused, send: (message: unknown) => ws.send(JSON.stringify(message)) };
}
type Client = ReturnType<typeof connect>;

/** A connected client (its `connected` frame read). */
async function connected(query: Record<string, string>, on: TestServer = server) {
  const client = connect(query, on);
  const hello = await client.frames.next(10_000);
  expect(hello.type).toBe("connected");
  return Object.assign(client, { hello });
}

/** The frames up to the first one matching (that one last), failing if the stream ends first. */
const framesUntil = (client: Client, match: (frame: Frame) => boolean, timeoutMs = 15_000) => client.frames.until(match, timeoutMs);

async function notify(token: string, workspaceId: string, data: unknown) {
  return ok(await server.execute(PublishWorkspaceEventDocument, { input: { workspaceId, type: "notification", data } }, { token })).publishWorkspaceEvent;
}

/**
 * A task created by the owner over api-v1 (POST /api/v1/tasks/), then claimed, started and
 * completed by the workspace's machine (api-v1 has no route for that: workers report through
 * Spindle's machine API).
 */
async function runTask(ownerToken: string, machine: { credential: string }) {
  const title = unique("task");
  const res = await fetch(`${server.url}/api/v1/tasks/`, {
    method: "POST",
    headers: { authorization: `Bearer ${ownerToken}`, "content-type": "application/json" },
    body: JSON.stringify({ title }),
  });
  expect(res.status).toBe(201);
  const task = (await res.json()) as { id: string };
  const as = { token: machine.credential };
  const [claimed] = ok(await server.execute(ClaimTasksDocument, { input: { limit: 1 } }, as)).claimTasks;
  expect(claimed?.id).toBe(task.id);
  const leaseToken = claimed!.leaseToken!;
  ok(await server.execute(StartTaskDocument, { input: { taskId: task.id, leaseToken } }, as));
  ok(await server.execute(CompleteTaskDocument, { input: { taskId: task.id, leaseToken } }, as));
  return { id: task.id, title };
}

async function sessionIdOf(token: string) {
  const { sessions } = ok(await server.execute(CurrentSessionDocument, {}, { token }));
  return sessions.edges.find((edge) => edge.node.current)!.node.id;
}

describe(`api-v1 WebSocket: connecting (${backend})`, () => {
  it("authenticates by ?token=, says connected with the default workspace, answers pings and refuses unknown messages without closing", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const client = await connected({ token: owner.accessToken });
    expect(client.hello).toEqual({ type: "connected", workspace_id: workspaceId, user_id: owner.id });

    client.send({ type: "ping" });
    expect(await client.frames.next()).toEqual({ type: "pong" });
    client.send({ type: "launch" });
    expect(await client.frames.next()).toEqual({ type: "error", detail: expect.stringContaining("launch") });
    client.send({ type: "subscribe", event: "task.exploded" });
    const refused = await client.frames.next();
    expect(refused).toMatchObject({ type: "error" });
    for (const type of API_V1_EVENT_TYPES) expect(refused.detail).toContain(type);
    client.send({ type: "ping" });
    expect(await client.frames.next()).toEqual({ type: "pong" });
  });

  it("authenticates by the first message ({type: auth, token} or just {token}), within 10 s", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const typed = connect();
    await typed.opened;
    typed.send({ type: "ping" });
    expect(await typed.frames.next()).toEqual({ type: "pong" });
    typed.send({ type: "auth", token: owner.accessToken });
    expect(await typed.frames.next()).toEqual({ type: "connected", workspace_id: workspaceId, user_id: owner.id });

    // A message sent right behind the auth message is answered after it.
    const bare = connect();
    await bare.opened;
    bare.send({ token: owner.accessToken });
    bare.send({ type: "ping" });
    expect(await bare.frames.next()).toMatchObject({ type: "connected", workspace_id: workspaceId });
    expect(await bare.frames.next()).toEqual({ type: "pong" });

    const silent = connect();
    await silent.opened;
    const started = Date.now();
    expect((await silent.closed).code).toBe(4401);
    expect(Date.now() - started).toBeGreaterThan(9_000);
  }, 20_000);

  it("refuses a bad token with 401 at the upgrade, and a bad first message with 4401", async () => {
    const { workspaceId } = await ownedWorkspace(server);
    const machine = await createMachineDirect(server, workspaceId);
    for (const token of ["nonsense", "eyJhbGciOiJIUzI1NiJ9.e30.x", machine.credential]) {
      const refused = await connect({ token }).refused;
      expect(refused.status).toBe(401);
      expect(Object.keys(refused.body)).toEqual(["detail"]);
    }
    for (const first of [{ type: "auth", token: "nonsense" }, { type: "subscribe", event: "task.created" }, { type: "auth" }]) {
      const client = connect();
      await client.opened;
      client.send(first);
      expect((await client.closed).code).toBe(4401);
    }
  });

  it("closes 4400 on a frame that is not JSON, and 4404 without a workspace", async () => {
    const { owner } = await ownedWorkspace(server);
    const client = await connected({ token: owner.accessToken });
    client.ws.send("hello?");
    expect((await client.closed).code).toBe(4400);

    const loner = await signedInUser(server);
    expect((await connect({ token: loner.accessToken }).closed).code).toBe(4404);
    const stranger = await ownedWorkspace(server);
    expect((await connect({ token: loner.accessToken, workspace_id: stranger.workspaceId }).closed).code).toBe(4404);
  });

  it("takes an API key, and workspace_id for another of the caller's workspaces", async () => {
    const { owner } = await ownedWorkspace(server);
    const second = await server.db.prisma.workspace.create({ data: { name: unique("ws") } });
    await addMember(server, second.id, owner.id, "ADMIN");
    const { key } = ok(await server.execute(CreateApiKeyDocument, { input: { name: "stream", scopes: ["READ"] } }, { token: owner.accessToken })).createApiKey;
    const client = await connected({ token: key, workspace_id: second.id });
    expect(client.hello).toEqual({ type: "connected", workspace_id: second.id, user_id: owner.id });
    await notify(owner.accessToken, second.id, { text: "hi" });
    expect(await client.frames.next(10_000)).toMatchObject({ type: "notification", data: { text: "hi" } });
  });

  it("answers a plain GET with 426 in api-v1's error shape", async () => {
    const res = await fetch(`${server.url}/api/v1/ws`);
    expect(res.status).toBe(426);
    expect(await res.json()).toEqual({ detail: expect.stringContaining("WebSocket") });
  });
});

describe(`api-v1 WebSocket: events (${backend})`, () => {
  it("delivers task.created and task.completed in api-v1's shape, machines as workers, and not Spindle's worker units", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const machine = await createMachineDirect(server, workspaceId);
    const client = await connected({ token: owner.accessToken });

    ok(await server.execute(MachineHeartbeatDocument, { input: {} }, { token: machine.credential }));
    const task = await runTask(owner.accessToken, machine);
    // A worker unit deployed on the machine comes online: Spindle's worker.online, not api-v1's.
    const unit = ok(
      await server.execute(DeployWorkerDocument, { input: { workspaceId, kind: "CONTAINER", name: "web", image: "nginx:1" } }, { token: owner.accessToken }),
    ).deployWorker;
    ok(await server.execute(ReportWorkerStatusDocument, { input: { workerId: unit.id, revision: unit.revision, status: "RUNNING" } }, { token: machine.credential }));
    // An agent made on the machine: api-v1's agent.status.
    const agent = ok(await server.execute(CreateAgentDocument, { input: { machineId: machine.id, name: "coder" } }, { token: owner.accessToken })).createAgent;
    const sentinel = await notify(owner.accessToken, workspaceId, { text: "end" });

    const frames = await framesUntil(client, (f) => f.id === sentinel.cursor);
    expect(frames.filter((f) => f.type === "agent.status").map((f) => f.data)).toEqual([
      { agent_id: agent.id, worker_id: machine.id, name: "coder", status: "offline", action: "created" },
    ]);
    const online = frames.filter((f) => f.type === "worker.online");
    expect(online).toEqual([{ type: "worker.online", id: expect.any(String), data: { worker_id: machine.id, status: "online" }, timestamp: expect.any(String) }]);
    expect(frames.find((f) => f.type === "task.created")).toEqual({
      type: "task.created",
      id: expect.any(String),
      data: { task_id: task.id, title: task.title, status: "pending", priority: "normal", flow_id: null },
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    expect(frames.find((f) => f.type === "task.completed")).toMatchObject({ data: { task_id: task.id, status: "completed", action: "succeeded", attempt: 1 } });
    expect(frames.filter((f) => f.type === "task.updated").map((f) => f.data)).toEqual(
      expect.arrayContaining([expect.objectContaining({ task_id: task.id, action: "claimed", status: "assigned", worker_id: machine.id })]),
    );
    expect(JSON.stringify(frames)).not.toContain(unit.id);
    // Cursors rise one by one over what api-v1 is sent (the worker unit's event is the gap).
    const ids = frames.map((f) => Number(f.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(frames.at(-1)).toMatchObject({ type: "notification", data: { text: "end" } });
  });

  it("sends only the subscribed types once the client subscribes (a set; unsubscribe takes one out)", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const machine = await createMachineDirect(server, workspaceId);
    const client = await connected({ token: owner.accessToken });
    client.send({ type: "subscribe", event: "task.completed" });
    expect(await client.frames.next()).toEqual({ type: "subscribed", events: ["task.completed"] });

    const task = await runTask(owner.accessToken, machine);
    const completed = await client.frames.next(10_000);
    expect(completed).toMatchObject({ type: "task.completed", data: { task_id: task.id } });

    // Nothing else came before a notification, once notifications are wanted too (events are in cursor order).
    client.send({ type: "subscribe", event: "notification" });
    expect(await client.frames.next()).toEqual({ type: "subscribed", events: ["task.completed", "notification"] });
    const sentinel = await notify(owner.accessToken, workspaceId, { n: 1 });
    expect(await client.frames.next(10_000)).toMatchObject({ type: "notification", id: sentinel.cursor });

    client.send({ type: "unsubscribe", event: "task.completed" });
    expect(await client.frames.next()).toEqual({ type: "subscribed", events: ["notification"] });
    await runTask(owner.accessToken, machine);
    const last = await notify(owner.accessToken, workspaceId, { n: 2 });
    expect(await client.frames.next(10_000)).toMatchObject({ type: "notification", id: last.cursor });
  });

  it("sends a user nothing of a workspace they are not in", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const other = await ownedWorkspace(server);
    const client = await connected({ token: other.owner.accessToken });
    expect(client.hello.workspace_id).toBe(other.workspaceId);
    const machine = await createMachineDirect(server, workspaceId);
    await runTask(owner.accessToken, machine);
    await notify(owner.accessToken, workspaceId, { secret: true });
    const theirs = await notify(other.owner.accessToken, other.workspaceId, { mine: true });
    // Theirs is the first and only event they get.
    expect(await client.frames.next(10_000)).toMatchObject({ type: "notification", id: theirs.cursor, data: { mine: true } });
    expect(client.frames.pending).toEqual([]);
  });

  it("resumes after a cursor (query or auth message), replaying what came since", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const first = await notify(owner.accessToken, workspaceId, { n: 1 });
    await notify(owner.accessToken, workspaceId, { n: 2 });
    await notify(owner.accessToken, workspaceId, { n: 3 });

    const byQuery = await connected({ token: owner.accessToken, after: first.cursor });
    const replayed = [await byQuery.frames.next(10_000), await byQuery.frames.next(10_000)];
    expect(replayed.map((f) => f.data)).toEqual([{ n: 2 }, { n: 3 }]);
    expect(replayed.map((f) => Number(f.id))).toEqual([Number(first.cursor) + 1, Number(first.cursor) + 2]);
    // Then live ones.
    await notify(owner.accessToken, workspaceId, { n: 4 });
    expect((await byQuery.frames.next(10_000)).data).toEqual({ n: 4 });

    const byMessage = connect();
    await byMessage.opened;
    byMessage.send({ type: "auth", token: owner.accessToken, after: replayed[1]!.id });
    expect(await byMessage.frames.next()).toMatchObject({ type: "connected" });
    expect((await byMessage.frames.next(10_000)).data).toEqual({ n: 4 });

    expect((await connect({ token: owner.accessToken, after: "yesterday" }).closed).code).toBe(4400);
  });
});

describe(`api-v1 WebSocket: the credential ends (${backend})`, () => {
  it("closes 4401 when the session logs out", async () => {
    const { owner } = await ownedWorkspace(server);
    const client = await connected({ token: owner.accessToken });
    ok(await server.execute(LogoutDocument, {}, { token: owner.accessToken }));
    const closed = await client.closed;
    expect(closed.code).toBe(4401);
    expect(closed.reason).toMatch(/revoked/);
  });

  it("closes 4401 when the session is revoked, also for a client that authenticated by message", async () => {
    const { owner } = await ownedWorkspace(server);
    const client = connect();
    await client.opened;
    client.send({ type: "auth", token: owner.accessToken });
    await client.frames.next();
    ok(await server.execute(RevokeSessionDocument, { id: await sessionIdOf(owner.accessToken) }, { token: owner.accessToken }));
    expect((await client.closed).code).toBe(4401);
  });

  it("closes 4403 when the user is removed from the workspace", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const member = await signedInUser(server);
    await addMember(server, workspaceId, member.id, "MEMBER");
    const client = await connected({ token: member.accessToken });
    ok(await server.execute(RemoveWorkspaceMemberDocument, { input: { workspaceId, userId: member.id } }, { token: owner.accessToken }));
    const closed = await client.closed;
    expect(closed.code).toBe(4403);
    expect(closed.reason).toMatch(/no longer a member/);
  });
});

describe(`api-v1 WebSocket: an access token that expires (${backend})`, () => {
  let shortLived: TestServer;
  beforeAll(async () => {
    shortLived = await startTestServer({ ACCESS_TOKEN_TTL: "3" });
  });
  afterAll(() => shortLived?.close());

  it("closes 4401 when the access token expires, saying to refresh", async () => {
    const { owner } = await ownedWorkspace(shortLived);
    const client = await connected({ token: owner.accessToken }, shortLived);
    const closed = await client.closed;
    expect(closed.code).toBe(4401);
    expect(closed.reason).toMatch(/expired/);
  }, 20_000);
});

describe(`api-v1 WebSocket: server shutdown (${backend})`, () => {
  it("closes 1001 when the server shuts down", async () => {
    const stopping = await startTestServer();
    try {
      const { owner } = await ownedWorkspace(stopping);
      const client = await connected({ token: owner.accessToken }, stopping);
      await stopping.app.stop();
      expect((await client.closed).code).toBe(1001);
    } finally {
      await stopping.close();
    }
  }, 20_000);
});

describe("toApiV1Event", () => {
  const event = (type: string, subjectType: string | null, data: unknown): SpindleEvent => ({
    cursor: "7",
    type,
    subjectType,
    subjectId: "s",
    data,
    at: "2026-01-02T03:04:05.000Z",
  });
  const frame = (type: string, data: unknown) => ({ type, id: "7", data, timestamp: "2026-01-02T03:04:05.000Z" });

  it("says a machine's presence as worker.online or worker.offline", () => {
    expect(toApiV1Event(event("agent.status", "MACHINE", { machineId: "m", status: "ONLINE" }))).toEqual(frame("worker.online", { worker_id: "m", status: "online" }));
    expect(toApiV1Event(event("agent.status", "MACHINE", { machineId: "m", status: "OFFLINE" }))).toEqual(frame("worker.offline", { worker_id: "m", status: "offline" }));
    expect(toApiV1Event(event("agent.status", "MACHINE", { machineId: "m", status: "DECOMMISSIONED" }))?.type).toBe("worker.offline");
    expect(toApiV1Event(event("agent.status", "MACHINE", { machineId: "m", status: "DRAINING", approval: "APPROVED" }))).toEqual(
      frame("worker.online", { worker_id: "m", status: "draining", approval: "approved" }),
    );
  });

  it("keeps agent.status for agents, and drops Spindle's worker units", () => {
    expect(toApiV1Event(event("agent.status", "AGENT", { agentId: "a", machineId: "m", name: "coder", status: "BUSY" }))).toEqual(
      frame("agent.status", { agent_id: "a", worker_id: "m", name: "coder", status: "busy" }),
    );
    expect(toApiV1Event(event("worker.online", "WORKER", { workerId: "w", status: "RUNNING" }))).toBeNull();
    expect(toApiV1Event(event("worker.offline", "WORKER", { workerId: "w", status: "STOPPED", from: "RUNNING" }))).toBeNull();
  });

  it("snake-cases task data and passes published events as posted", () => {
    expect(toApiV1Event(event("task.failed", "TASK", { taskId: "t", action: "failed", status: "FAILED", attempt: 2, machineId: "m", error: "boom" }))).toEqual(
      frame("task.failed", { task_id: "t", action: "failed", status: "failed", attempt: 2, worker_id: "m", error: "boom" }),
    );
    expect(toApiV1Event(event("task.updated", "TASK", { taskId: "t", action: "stage", status: "RUNNING", stageIndex: 1 }))?.data).toEqual({
      task_id: "t",
      action: "stage",
      status: "running",
      stage_index: 1,
    });
    expect(toApiV1Event(event("system.alert", "WORKSPACE", { someKey: "as posted" }))).toEqual(frame("system.alert", { someKey: "as posted" }));
    expect(toApiV1Event(event("message.new", "WORKSPACE", ["any", "json"]))?.data).toEqual(["any", "json"]);
    expect(toApiV1Event(event("task.exploded", "TASK", {}))).toBeNull();
  });
});
