// Spunto's agent connection as a node uses it: a WebSocket on /api/agent/connect?token=<node token>
// that pushes the node's assignment when work is placed on it, takes its reports, and closes once
// the token is rotated. Real server, real sockets.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ownedWorkspace } from "../helpers/factories.js";
import { backend, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

async function api(path: string, token: string, method = "GET", body?: unknown) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

/** A socket and every frame it received, in order; `next` waits for the first unread frame matching. */
function connect(token: string) {
  const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}/api/agent/connect?token=${encodeURIComponent(token)}`);
  const frames: any[] = [];
  const waiters: (() => void)[] = [];
  let read = 0;
  ws.on("message", (data) => {
    frames.push(JSON.parse(data.toString()));
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  const opened = new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  async function next(match: (frame: any) => boolean = () => true, timeoutMs = 10_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (read < frames.length) {
        const frame = frames[read++];
        if (match(frame)) return frame;
      }
      if (Date.now() > deadline) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(frames)}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }
  const send = (message: unknown) => ws.send(JSON.stringify(message));
  return { ws, opened, closed, next, send };
}

/** An organization with a registered node (its token from POST .../nodes). */
async function orgWithNode() {
  const { owner, workspaceId: orgId } = await ownedWorkspace(server);
  const node = await api(`/api/orgs/${orgId}/nodes`, owner.accessToken, "POST", { name: "node-1", externalId: "host-1" });
  expect(node.status).toBe(201);
  return { token: owner.accessToken, orgId, node: node.body as { id: string; token: string } };
}

describe(`Spunto agent socket (${backend})`, () => {
  it("pushes the node's assignment when a worker is spawned for it, takes its reports, and closes when its token is rotated", async () => {
    const { token, orgId, node } = await orgWithNode();
    const socket = connect(node.token);
    await socket.opened;
    const first = await socket.next((f) => f.type === "assignment");
    expect(first).toMatchObject({ node: { id: node.id, workspaceId: orgId }, workers: [], services: [] });

    // The node reports in over the socket: now work can be placed on it.
    socket.send({ type: "heartbeat", id: "hb-1", input: { cpuPercent: 3, memoryPercent: 20, diskPercent: 40 } });
    const beat = await socket.next((f) => f.id === "hb-1");
    expect(beat).toMatchObject({ type: "result", data: { machine: { status: "ONLINE", acceptingWork: true } } });
    socket.send({ type: "ping" });
    expect(await socket.next((f) => f.type === "pong")).toEqual({ type: "pong" });

    const project = await api(`/api/orgs/${orgId}/projects`, token, "POST", { name: "Web" });
    const spawned = await api(`/api/orgs/${orgId}/projects/${project.body.id}/workers`, token, "POST", { name: "api", image: "nginx:1.27" });
    expect(spawned.status).toBe(201);
    const assigned = await socket.next((f) => f.type === "assignment" && f.workers.some((w: any) => w.id === spawned.body.id));
    expect(assigned.workers.find((w: any) => w.id === spawned.body.id)).toMatchObject({ name: "api", image: "nginx:1.27", status: "deploying", kind: "container" });

    // Its report runs as the node: the worker is RUNNING for everyone.
    const revision = assigned.workers[0].revision;
    socket.send({ type: "worker.status", id: 7, input: { workerId: spawned.body.id, status: "RUNNING", revision } });
    expect(await socket.next((f) => f.id === 7)).toMatchObject({ type: "result", data: { id: spawned.body.id, status: "RUNNING" } });
    const seen = await api(`/api/orgs/${orgId}/projects/${project.body.id}/workers/${spawned.body.id}`, token);
    expect(seen.body.status).toBe("running");

    // A report the node may not make is answered, not fatal.
    socket.send({ type: "worker.status", id: "bad", input: { workerId: spawned.body.id, status: "NOPE" } });
    expect(await socket.next((f) => f.id === "bad")).toMatchObject({ type: "error", code: expect.any(String) });
    socket.send({ type: "launch-missiles", id: "x", input: {} });
    expect(await socket.next((f) => f.id === "x")).toMatchObject({ type: "error", code: "VALIDATION" });

    const rotated = await api(`/api/orgs/${orgId}/nodes/${node.id}/token`, token, "POST");
    expect(rotated.status).toBe(200);
    const closed = await socket.closed;
    expect(closed.code).toBe(4401);
    expect(closed.reason).toMatch(/credential|rotated/i);

    // The new token connects; the old one is refused at the upgrade.
    const again = connect(rotated.body.token);
    await again.opened;
    expect(await again.next((f) => f.type === "assignment")).toMatchObject({ node: { id: node.id } });
    again.ws.close();
    const old = connect(node.token);
    await expect(old.opened).rejects.toThrow(/401/);
  });

  it("refuses a missing, malformed or user token at the upgrade, and answers a plain GET with 426", async () => {
    const { token } = await orgWithNode();
    for (const bad of ["", "spm_nonsense", token]) {
      const socket = connect(bad);
      await expect(socket.opened).rejects.toThrow(/401/);
    }
    const plain = await fetch(`${server.url}/api/agent/connect?token=x`);
    expect(plain.status).toBe(426);
    expect(await plain.json()).toEqual({ error: expect.stringContaining("WebSocket") });
  });

  it("closes when the node is deleted", async () => {
    const { token, orgId, node } = await orgWithNode();
    const socket = connect(node.token);
    await socket.opened;
    await socket.next((f) => f.type === "assignment");
    expect((await api(`/api/orgs/${orgId}/nodes/${node.id}`, token, "DELETE")).status).toBe(200);
    expect((await socket.closed).code).toBe(4401);
  });

  it("closes a socket that sends a frame that is not JSON", async () => {
    const { node } = await orgWithNode();
    const socket = connect(node.token);
    await socket.opened;
    socket.ws.send("hello?");
    expect((await socket.closed).code).toBe(4400);
  });
});
