// The request path's budget in SQL statements (counted, never timed): an authenticated point read
// in at most 2 once the caller's credential is warm, a heartbeat in at most 2, the dashboard list in
// the same number for 10 and 100 workers; and the credential cache behind it never outlives a
// revocation, on any replica.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMachineDirect } from "../authz/world.js";
import { ownedWorkspace, signedInUser } from "../helpers/factories.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

const STATUS = "query($id: ID!) { worker(id: $id) { status tickCount errorCount lastTickAt } }";
const DASHBOARD = `query($id: ID!, $first: Int!) { workspace(id: $id) { workers(first: $first) { edges { node {
  name status machine { name status } transitions(first: 5) { edges { node { from to action at } } } } } } } }`;
const HEARTBEAT = "mutation { machineHeartbeat(input: { cpuPercent: 10, memoryPercent: 20, diskPercent: 30 }) { leaseSeconds leasedTaskIds } }";

async function seedWorkers(server: TestServer, workspaceId: string, machineId: string, count: number) {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const worker = await server.db.prisma.worker.create({
      data: {
        workspaceId,
        kind: "CONTAINER",
        name: `w${i}`,
        image: "busybox",
        status: "RUNNING",
        machineId,
        transitions: {
          create: Array.from({ length: 6 }, (_, n) => ({ from: n ? "DEPLOYING" : null, to: "RUNNING", action: `a${n}`, actorType: "SYSTEM" }) as const),
        },
      },
    });
    ids.push(worker.id);
  }
  return ids;
}

describe(`request path statement budget (${backend})`, () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  /** Runs `query` twice (the first warms the credential) and answers the second's statements. */
  async function warmStatements(query: string, variables: Record<string, unknown>, token: string) {
    ok(await server.post({ query, variables }, { token }));
    const before = server.db.statements.count;
    const data = ok(await server.post({ query, variables }, { token }));
    return { data, statements: server.db.statements.count - before };
  }

  it("answers an authenticated point read in at most 2 statements once the credential is warm (worker, machine, task, workspace, deployment, service, flow, project)", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const machine = await createMachineDirect(server, workspaceId);
    const [workerId] = await seedWorkers(server, workspaceId, machine.id, 1);
    const task = await server.db.prisma.task.create({ data: { workspaceId, title: "t" } });
    const deployment = await server.db.prisma.deployment.create({ data: { workspaceId, name: "d", services: { create: { workspaceId, name: "web", image: "nginx" } } }, include: { services: true } });
    const flow = await server.db.prisma.flow.create({ data: { workspaceId, name: "f" } });
    const project = await server.db.prisma.project.create({ data: { workspaceId, key: "P", name: "p" } });

    const reads: [string, Record<string, unknown>][] = [
      [STATUS, { id: workerId }],
      ["query($id: ID!) { machine(id: $id) { name status cpuPercent } }", { id: machine.id }],
      ["query($id: ID!) { task(id: $id) { title status priority } }", { id: task.id }],
      ["query($id: ID!) { workspace(id: $id) { name } }", { id: workspaceId }],
      ["query($id: ID!) { deployment(id: $id) { name revision } }", { id: deployment.id }],
      ["query($id: ID!) { service(id: $id) { name status } }", { id: deployment.services[0]!.id }],
      ["query($id: ID!) { flow(id: $id) { name } }", { id: flow.id }],
      ["query($id: ID!) { project(id: $id) { key name } }", { id: project.id }],
    ];
    for (const [query, variables] of reads) {
      const { data, statements } = await warmStatements(query, variables, owner.accessToken);
      expect(Object.values(data)[0]).not.toBeNull();
      expect(statements, query).toBeLessThanOrEqual(2);
    }

    const { key } = ok(
      await server.post({ query: "mutation { createApiKey(input: { name: \"ro\", scopes: [READ] }) { key } }" }, { token: owner.accessToken }),
    ).createApiKey;
    const viaKey = await warmStatements(STATUS, { id: workerId }, key);
    expect(viaKey.data.worker.status).toBe("RUNNING");
    expect(viaKey.statements).toBeLessThanOrEqual(2);

    // A stranger's warm point read is as cheap, and learns nothing.
    const stranger = await signedInUser(server);
    await server.post({ query: STATUS, variables: { id: workerId } }, { token: stranger.accessToken });
    const before = server.db.statements.count;
    const refused = await server.post({ query: STATUS, variables: { id: workerId } }, { token: stranger.accessToken });
    expect(refused.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect(server.db.statements.count - before).toBeLessThanOrEqual(2);
  });

  it("answers a point read of scalars (read without Prisma's engine) exactly as the Prisma-loaded list does", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const machine = await createMachineDirect(server, workspaceId);
    const worker = await server.db.prisma.worker.create({
      data: {
        workspaceId,
        kind: "CODE",
        name: "every type",
        blockId: "node_1",
        code: "def tick(ctx): pass",
        env: { A: "1", B: "two" },
        connectedBlocks: { in: ["node_0"] },
        status: "RUNNING",
        machineId: machine.id,
        tickCount: 7,
        lastTickAt: new Date("2026-11-30T12:34:56.789Z"),
        cpuPercent: 12.5,
        memoryBytes: 9_007_199_254_740_000n,
      },
    });
    const fields = `id name kind blockId code env connectedBlocks status statusReason revision tickCount errorCount
      lastTickAt cpuPercent memoryBytes machineId maxErrors autoHeal tickIntervalSeconds createdAt destroyedAt`;
    const point = ok(await server.post({ query: `query($id: ID!) { worker(id: $id) { ${fields} } }`, variables: { id: worker.id } }, { token: owner.accessToken }));
    const list = ok(
      await server.post({ query: `query($id: ID!) { workspace(id: $id) { workers(first: 1) { edges { node { ${fields} } } } } }`, variables: { id: workspaceId } }, { token: owner.accessToken }),
    );
    expect(point.worker).toEqual(list.workspace.workers.edges[0].node);
    expect(point.worker).toMatchObject({ lastTickAt: "2026-11-30T12:34:56.789Z", memoryBytes: 9_007_199_254_740_000, env: { A: "1", B: "two" } });

    const machineFields = "id name status labels capabilities cpuPercent lastHeartbeatAt approval createdAt";
    const pointMachine = ok(await server.post({ query: `query($id: ID!) { machine(id: $id) { ${machineFields} } }`, variables: { id: machine.id } }, { token: owner.accessToken }));
    const listMachine = ok(
      await server.post({ query: `query($id: ID!) { workspace(id: $id) { machines(first: 1) { edges { node { ${machineFields} } } } } }`, variables: { id: workspaceId } }, { token: owner.accessToken }),
    );
    expect(pointMachine.machine).toEqual(listMachine.workspace.machines.edges[0].node);
  });

  it("answers the dashboard (workers with machine and last 5 transitions) in as many statements for 100 as for 10", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const machine = await createMachineDirect(server, workspaceId);
    await seedWorkers(server, workspaceId, machine.id, 100);
    const count = async (first: number) => {
      const { data, statements } = await warmStatements(DASHBOARD, { id: workspaceId, first }, owner.accessToken);
      const edges = data.workspace.workers.edges;
      expect(edges).toHaveLength(first);
      expect(edges.every((e: any) => e.node.machine.name && e.node.transitions.edges.length === 5)).toBe(true);
      return statements;
    };
    expect(await count(100)).toBe(await count(10));
  });

  it("records a steady-state heartbeat in at most 2 statements, leases renewed", async () => {
    const { workspaceId } = await ownedWorkspace(server);
    const machine = await createMachineDirect(server, workspaceId);
    await server.db.prisma.machine.update({ where: { id: machine.id }, data: { announcedOnline: true } });
    const held = await server.db.prisma.task.create({
      data: { workspaceId, title: "held", status: "RUNNING", machineId: machine.id, attempt: 1, leaseExpiresAt: new Date(Date.now() + 60_000) },
    });
    const { data, statements } = await warmStatements(HEARTBEAT, {}, machine.credential);
    expect(data.machineHeartbeat.leasedTaskIds).toEqual([held.id]);
    expect(statements).toBeLessThanOrEqual(2);
    const stored = await server.db.prisma.machine.findUniqueOrThrow({ where: { id: machine.id } });
    expect([stored.cpuPercent, stored.memoryPercent, stored.diskPercent]).toEqual([10, 20, 30]);
  });
});

describe(`revocation reaches every replica on the very next request (${backend})`, () => {
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    // Replicas share the signing key, as they must in production.
    const JWT_SECRET = randomBytes(32).toString("base64url");
    a = await startTestServer({ JWT_SECRET });
    b = await startTestServer({ JWT_SECRET }, { sameDatabaseAs: a });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  const ME = "{ me { id } }";

  it("a signed-out session is refused by the other replica at once", async () => {
    const user = await signedInUser(a);
    for (const server of [a, b]) ok(await server.post({ query: ME }, { token: user.accessToken }));
    ok(await a.post({ query: "mutation { logout }" }, { token: user.accessToken }));
    for (const server of [b, a]) {
      const res = await server.post({ query: ME }, { token: user.accessToken });
      expect(res.errors?.[0]?.extensions?.code).toBe("NOT_AUTHENTICATED");
    }
  });

  it("a revoked API key is refused by the other replica at once", async () => {
    const user = await signedInUser(a);
    const created = ok(
      await a.post({ query: "mutation { createApiKey(input: { name: \"k\", scopes: [READ] }) { key apiKey { id } } }" }, { token: user.accessToken }),
    ).createApiKey;
    ok(await b.post({ query: ME }, { token: created.key }));
    ok(await a.post({ query: "mutation($id: ID!) { revokeApiKey(id: $id) { id } }", variables: { id: created.apiKey.id } }, { token: user.accessToken }));
    const res = await b.post({ query: ME }, { token: created.key });
    expect(res.errors?.[0]?.extensions?.code).toBe("NOT_AUTHENTICATED");
  });

  it("a rotated or decommissioned machine credential is refused by the other replica at once", async () => {
    const { owner, workspaceId } = await ownedWorkspace(a);
    const machine = await createMachineDirect(a, workspaceId);
    ok(await b.post({ query: HEARTBEAT }, { token: machine.credential }));
    const { credential } = ok(await a.post({ query: "mutation { rotateMachineCredential { credential } }" }, { token: machine.credential })).rotateMachineCredential;
    expect((await b.post({ query: HEARTBEAT }, { token: machine.credential })).errors?.[0]?.extensions?.code).toBe("NOT_AUTHENTICATED");

    ok(await b.post({ query: HEARTBEAT }, { token: credential }));
    ok(await a.post({ query: "mutation($id: ID!) { decommissionMachine(id: $id) { machine { id } } }", variables: { id: machine.id } }, { token: owner.accessToken }));
    expect((await b.post({ query: HEARTBEAT }, { token: credential })).errors?.[0]?.extensions?.code).toBe("NOT_AUTHENTICATED");
  });

  it("a changed system role reaches a warm session's scopes on the other replica at once", async () => {
    const admin = await signedInUser(a, { role: "ADMIN" });
    const demoter = await signedInUser(a, { role: "ADMIN" });
    const ADMIN_ONLY = "{ users(first: 1) { edges { node { id } } } }";
    ok(await b.post({ query: ADMIN_ONLY }, { token: admin.accessToken }));
    ok(await a.post({ query: "mutation($id: ID!) { updateUser(input: { id: $id, role: USER }) { role } }", variables: { id: admin.id } }, { token: demoter.accessToken }));
    const res = await b.post({ query: ADMIN_ONLY }, { token: admin.accessToken });
    expect(res.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
  });
});
