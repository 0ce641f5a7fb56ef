// Status streams over graphql-ws and SSE: a worker (status, coalesced ticks, end after DESTROYED), a
// task (state and stage, end when finished), a machine (online, offline through the presence sweep,
// drained, end when decommissioned), a deployment with its services (end when deleted); the end of
// the subjects' log sources; strangers refused and removed members cut off; a demoted member's open
// streams hide secrets from the next item on.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { addMember, createMachineDirect } from "../authz/world.js";
import {
  ChangeWorkspaceMemberRoleDocument,
  ClaimTasksDocument,
  CompleteTaskDocument,
  CreateDeploymentDocument,
  CreateTaskDocument,
  DecommissionMachineDocument,
  DeleteDeploymentDocument,
  DeployDeploymentDocument,
  DeploymentSecretsDocument,
  DeploymentStatusDocument,
  type DeploymentStatusSubscription,
  DeployWorkerDocument,
  DestroyWorkerDocument,
  DrainMachineDocument,
  MachineHeartbeatDocument,
  MachineStatusDocument,
  type MachineStatusSubscription,
  RedeployWorkerDocument,
  RemoveWorkspaceMemberDocument,
  ReportServiceStatusDocument,
  ReportTaskStageDocument,
  ReportWorkerStatusDocument,
  ReportWorkerTicksDocument,
  StartTaskDocument,
  TaskStatusDocument,
  UpdateServiceDocument,
  WorkerSecretsDocument,
  WorkerStatusDocument,
} from "../generated/graphql.js";
import { ownedWorkspace, signedInUser, unique } from "../helpers/factories.js";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { sseSubscribe, tracker, wsClient, wsSubscribe, type Inbox, type WsResult } from "../helpers/live.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
const t = tracker();
beforeAll(async () => {
  server = await startTestServer();
});
afterEach(() => t.closeAll());
afterAll(() => server?.close());

async function workspace(s: TestServer = server) {
  const { owner, workspace: ws } = await ownedWorkspace(s);
  return { workspaceId: ws.id, owner };
}

function subscribe<R, V>(token: string, document: TypedDocumentNode<R, V>, variables: V, s: TestServer = server) {
  return wsSubscribe(wsClient(s, t, { authorization: `Bearer ${token}` }), t, document, variables);
}

function dataOf<R>(result: WsResult<R>): R {
  if (result.errors?.length || !result.data) throw new Error(`Expected an item, got ${JSON.stringify(result)}`);
  return result.data;
}

async function refusedWith<R>(inbox: Inbox<WsResult<R>>): Promise<string | undefined> {
  const result = await inbox.next(10_000);
  expect(result.data ?? null).toBeNull();
  return result.errors?.[0]?.extensions?.code as string | undefined;
}

type Transport = "graphql-ws" | "SSE";

/** A subscription over either transport, read item by item (an error or the end fails the read). */
async function open<R, V>(transport: Transport, token: string, document: TypedDocumentNode<R, V>, variables: V): Promise<() => Promise<R>> {
  if (transport === "graphql-ws") {
    const inbox = subscribe(token, document, variables);
    return async () => dataOf(await inbox.next(10_000));
  }
  const sse = await sseSubscribe(server, t, document, { token, variables });
  return async () => {
    const event = await sse.events.next(10_000);
    if (event.event !== "next" || event.data.errors) throw new Error(`Expected an item, got ${JSON.stringify(event)}`);
    return event.data.data as R;
  };
}

/** A worker and a deployment with secrets in their env, and a MEMBER watching both. */
async function secretsFixture(transport: Transport) {
  const { workspaceId, owner } = await workspace();
  await createMachineDirect(server, workspaceId);
  const asOwner = { token: owner.accessToken };
  const worker = ok(
    await server.execute(DeployWorkerDocument, { input: { workspaceId, kind: "CONTAINER", name: "web", image: "nginx:1", env: { TOKEN: "worker-1" } } }, asOwner),
  ).deployWorker;
  const deployment = ok(
    await server.execute(
      CreateDeploymentDocument,
      { input: { workspaceId, name: unique("app"), services: [{ name: "api", image: "api:1", env: { TOKEN: "service-1" } }] } },
      asOwner,
    ),
  ).createDeployment;
  const member = await signedInUser(server);
  await addMember(server, workspaceId, member.id, "MEMBER");
  const workerItem = await open(transport, member.accessToken, WorkerSecretsDocument, { id: worker.id });
  const deploymentItem = await open(transport, member.accessToken, DeploymentSecretsDocument, { id: deployment.id });
  expect((await workerItem()).workerStatus.env).toEqual({ TOKEN: "worker-1" });
  expect((await deploymentItem()).deploymentStatus.services[0]!.env).toEqual({ TOKEN: "service-1" });
  /** New secret values, written by the owner: each stream gets an item for them. */
  const changeSecrets = async () => {
    ok(await server.execute(RedeployWorkerDocument, { input: { id: worker.id, env: { TOKEN: "worker-2" } } }, asOwner));
    ok(await server.execute(UpdateServiceDocument, { input: { id: deployment.services[0]!.id, env: { TOKEN: "service-2" } } }, asOwner));
  };
  return { workspaceId, owner, member, workerItem, deploymentItem, changeSecrets };
}

const logFinished = async (sourceId: string, s: TestServer = server) =>
  Boolean((await s.db.prisma.logSource.findUnique({ where: { sourceId } }))?.finishedAt);

describe(`workerStatus (${backend})`, () => {
  it("sends the worker now, then each change, coalesces tick reports, and ends after DESTROYED (its log ends too)", async () => {
    const { workspaceId, owner } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const worker = ok(
      await server.execute(DeployWorkerDocument, { input: { workspaceId, kind: "CONTAINER", name: "web", image: "nginx:1" } }, { token: owner.accessToken }),
    ).deployWorker;
    const stream = subscribe(owner.accessToken, WorkerStatusDocument, { id: worker.id });
    const status = async () => dataOf(await stream.next(10_000)).workerStatus;
    expect(await status()).toMatchObject({ id: worker.id, status: "DEPLOYING", machineId: machine.id, tickCount: 0 });

    const asMachine = { token: machine.credential };
    ok(await server.execute(ReportWorkerStatusDocument, { input: { workerId: worker.id, revision: worker.revision, status: "RUNNING" } }, asMachine));
    expect(await status()).toMatchObject({ status: "RUNNING" });

    for (let i = 0; i < 10; i++) {
      ok(await server.execute(ReportWorkerTicksDocument, { input: { workerId: worker.id, revision: worker.revision, ticks: 1, errors: 0 } }, asMachine));
    }
    const ticks = (await stream.until((r) => dataOf(r).workerStatus.tickCount === 10, 10_000)).map((r) => dataOf(r).workerStatus);
    // Ten reports within a second: the first is announced at once, the rest in one trailing notice.
    expect(ticks.length).toBeLessThanOrEqual(3);
    expect(ticks.map((w) => w.tickCount)).toEqual([...ticks.map((w) => w.tickCount)].sort((a, b) => a - b));

    ok(await server.execute(DestroyWorkerDocument, { id: worker.id }, { token: owner.accessToken }));
    expect(await status()).toMatchObject({ status: "DESTROYED" });
    expect(await stream.ended(5_000)).toEqual({ error: undefined });
    expect(await logFinished(worker.id)).toBe(true);
  }, 30_000);

  it("refuses a stranger with NOT_FOUND and cuts off a member removed from the workspace", async () => {
    const { workspaceId, owner } = await workspace();
    await createMachineDirect(server, workspaceId);
    const worker = ok(
      await server.execute(DeployWorkerDocument, { input: { workspaceId, kind: "CONTAINER", name: "web", image: "nginx:1" } }, { token: owner.accessToken }),
    ).deployWorker;
    const stranger = await signedInUser(server);
    expect(await refusedWith(subscribe(stranger.accessToken, WorkerStatusDocument, { id: worker.id }))).toBe("NOT_FOUND");

    const member = await signedInUser(server);
    await addMember(server, workspaceId, member.id, "VIEWER");
    const stream = subscribe(member.accessToken, WorkerStatusDocument, { id: worker.id });
    expect(dataOf(await stream.next(10_000)).workerStatus.status).toBe("DEPLOYING");
    ok(await server.execute(RemoveWorkspaceMemberDocument, { input: { workspaceId, userId: member.id } }, { token: owner.accessToken }));
    const last = await stream.next(10_000);
    expect(last.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect(await stream.ended(5_000)).toEqual({ error: undefined });
  }, 30_000);
});

describe(`secrets on open streams follow role changes (${backend})`, () => {
  for (const transport of ["graphql-ws", "SSE"] as const) {
    it(`a member demoted to viewer gets env as null from the next item on, over ${transport}`, async () => {
      const f = await secretsFixture(transport);
      ok(
        await server.execute(
          ChangeWorkspaceMemberRoleDocument,
          { input: { workspaceId: f.workspaceId, userId: f.member.id, role: "VIEWER" } },
          { token: f.owner.accessToken },
        ),
      );
      // The role is part of what a stream shows: the subject comes again at once, its secrets hidden.
      expect((await f.workerItem()).workerStatus.env).toBeNull();
      expect((await f.deploymentItem()).deploymentStatus.services[0]!.env).toBeNull();

      await f.changeSecrets();
      const worker = (await f.workerItem()).workerStatus;
      expect(worker).toMatchObject({ revision: 2, env: null });
      expect((await f.deploymentItem()).deploymentStatus.services[0]!.env).toBeNull();
    }, 30_000);
  }

  it("holds when the access notice is lost: the next item is read with the role as it is then", async () => {
    const f = await secretsFixture("graphql-ws");
    // Demoted behind pub/sub's back: no notice tells the stream.
    await server.db.prisma.workspaceMember.update({
      where: { workspaceId_userId: { workspaceId: f.workspaceId, userId: f.member.id } },
      data: { role: "VIEWER" },
    });
    await f.changeSecrets();
    expect((await f.workerItem()).workerStatus).toMatchObject({ revision: 2, env: null });
    expect((await f.deploymentItem()).deploymentStatus.services[0]!.env).toBeNull();
  }, 30_000);
});

describe(`taskStatus over SSE (${backend})`, () => {
  it("sends state and stage changes and ends when the task finished (its log ends too)", async () => {
    const { workspaceId, owner } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const task = ok(
      await server.execute(CreateTaskDocument, { input: { workspaceId, title: "build", stages: [{ name: "compile" }, { name: "test" }] } }, { token: owner.accessToken }),
    ).createTask;
    const sse = await sseSubscribe(server, t, TaskStatusDocument, { token: owner.accessToken, variables: { id: task.id } });
    expect(sse.status).toBe(200);
    const next = async () => {
      const event = await sse.events.next(10_000);
      expect(event.event).toBe("next");
      return event.data.data.taskStatus as { status: string; currentStageIndex: number | null; stages: { index: number; status: string }[] };
    };
    expect(await next()).toMatchObject({ status: "PENDING", stages: [{ status: "PENDING" }, { status: "PENDING" }] });

    const asMachine = { token: machine.credential };
    const [claimed] = ok(await server.execute(ClaimTasksDocument, { input: { limit: 1 } }, asMachine)).claimTasks;
    expect(await next()).toMatchObject({ status: "ASSIGNED" });
    const lease = { taskId: task.id, leaseToken: claimed!.leaseToken! };
    ok(await server.execute(StartTaskDocument, { input: lease }, asMachine));
    expect(await next()).toMatchObject({ status: "RUNNING" });
    ok(await server.execute(ReportTaskStageDocument, { input: { ...lease, stageIndex: 0, status: "RUNNING" } }, asMachine));
    expect(await next()).toMatchObject({ status: "RUNNING", currentStageIndex: 0, stages: [{ status: "RUNNING" }, { status: "PENDING" }] });
    ok(await server.execute(CompleteTaskDocument, { input: lease }, asMachine));
    expect(await next()).toMatchObject({ status: "SUCCEEDED" });
    const end = await sse.events.next(10_000);
    expect(end.event).toBe("complete");
    expect(await logFinished(task.id)).toBe(true);
  }, 30_000);
});

describe(`deploymentStatus (${backend})`, () => {
  it("sends the deployment with its services on each change and ends when it is deleted (the services' logs end)", async () => {
    const { workspaceId, owner } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const deployment = ok(
      await server.execute(CreateDeploymentDocument, { input: { workspaceId, name: unique("app"), services: [{ name: "web", image: "nginx:1" }] } }, { token: owner.accessToken }),
    ).createDeployment;
    const serviceId = deployment.services[0]!.id;
    const stream = subscribe(owner.accessToken, DeploymentStatusDocument, { id: deployment.id });
    const next = async () => dataOf<DeploymentStatusSubscription>(await stream.next(10_000)).deploymentStatus;
    expect(await next()).toMatchObject({ id: deployment.id, services: [{ id: serviceId, status: "STOPPED" }] });

    ok(await server.execute(DeployDeploymentDocument, { input: { id: deployment.id } }, { token: owner.accessToken }));
    expect(await next()).toMatchObject({ revision: 1, services: [{ status: "DEPLOYING" }] });
    ok(await server.execute(ReportServiceStatusDocument, { input: { serviceId, revision: 1, status: "RUNNING" } }, { token: machine.credential }));
    expect(await next()).toMatchObject({ services: [{ status: "RUNNING" }] });

    ok(await server.execute(DeleteDeploymentDocument, { id: deployment.id }, { token: owner.accessToken }));
    expect(await stream.ended(10_000)).toEqual({ error: undefined });
    expect(await logFinished(serviceId)).toBe(true);
  }, 30_000);
});

describe(`machineStatus and presence (${backend})`, () => {
  let fast: TestServer;
  beforeAll(async () => {
    fast = await startTestServer({ SPINDLE_MACHINE_OFFLINE_AFTER: "1" });
  });
  afterAll(() => fast?.close());

  const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it("announces online on the first heartbeat, offline through the sweep, drained, and ends when decommissioned", async () => {
    const { workspaceId, owner } = await workspace(fast);
    const machine = await createMachineDirect(fast, workspaceId);
    await fast.db.prisma.machine.update({ where: { id: machine.id }, data: { lastHeartbeatAt: null } });
    const stream = subscribe(owner.accessToken, MachineStatusDocument, { id: machine.id }, fast);
    const next = async () => dataOf<MachineStatusSubscription>(await stream.next(10_000)).machineStatus;
    const asMachine = { token: machine.credential };
    const presence = () =>
      fast.db.prisma.workspaceEvent.findMany({ where: { workspaceId, type: "agent.status", subjectId: machine.id }, orderBy: { cursor: "asc" } });

    expect(await next()).toMatchObject({ id: machine.id, status: "OFFLINE", approval: "APPROVED" });
    ok(await fast.execute(MachineHeartbeatDocument, { input: {} }, asMachine));
    expect(await next()).toMatchObject({ status: "ONLINE" });
    expect((await presence()).map((e) => e.data)).toEqual([{ machineId: machine.id, status: "ONLINE" }]);
    // A second heartbeat while online announces nothing.
    ok(await fast.execute(MachineHeartbeatDocument, { input: {} }, asMachine));
    expect(await presence()).toHaveLength(1);

    await wait(1_200);
    await fast.app.services.machines.sweepSilent();
    expect(await next()).toMatchObject({ status: "OFFLINE" });
    expect((await presence()).map((e) => e.data)).toEqual([
      { machineId: machine.id, status: "ONLINE" },
      { machineId: machine.id, status: "OFFLINE" },
    ]);
    // Already announced offline: another sweep changes nothing.
    expect(await fast.app.services.machines.sweepSilent()).toBe(0);

    ok(await fast.execute(MachineHeartbeatDocument, { input: {} }, asMachine));
    expect(await next()).toMatchObject({ status: "ONLINE" });
    ok(await fast.execute(DrainMachineDocument, { id: machine.id }, { token: owner.accessToken }));
    expect(await next()).toMatchObject({ status: "DRAINED" });
    ok(await fast.execute(DecommissionMachineDocument, { id: machine.id }, { token: owner.accessToken }));
    expect(await next()).toMatchObject({ status: "DECOMMISSIONED" });
    expect(await stream.ended(5_000)).toEqual({ error: undefined });
  }, 30_000);

  it("concurrent sweeps (as on several replicas) announce each silent machine exactly once", async () => {
    const { workspaceId } = await workspace(fast);
    const machines = await Promise.all(Array.from({ length: 6 }, () => createMachineDirect(fast, workspaceId)));
    await fast.db.prisma.machine.updateMany({
      where: { id: { in: machines.map((m) => m.id) } },
      data: { announcedOnline: true, lastHeartbeatAt: new Date(Date.now() - 10_000) },
    });
    const counts = await Promise.all([1, 2, 3].map(() => fast.app.services.machines.sweepSilent()));
    const more = await fast.app.services.machines.sweepSilent();
    expect(counts.reduce((a, b) => a + b, 0) + more).toBe(machines.length);
    const events = await fast.db.prisma.workspaceEvent.findMany({ where: { workspaceId, type: "agent.status" } });
    expect(events.map((e) => e.subjectId).sort()).toEqual(machines.map((m) => m.id).sort());
    expect(events.map((e) => Number(e.cursor)).sort((a, b) => a - b)).toEqual(machines.map((_, i) => i + 1));
  }, 30_000);

  it("refuses a stranger the machine, task and deployment streams with NOT_FOUND", async () => {
    const { workspaceId, owner } = await workspace(fast);
    const machine = await createMachineDirect(fast, workspaceId);
    const task = ok(await fast.execute(CreateTaskDocument, { input: { workspaceId, title: "x" } }, { token: owner.accessToken })).createTask;
    const deployment = ok(await fast.execute(CreateDeploymentDocument, { input: { workspaceId, name: unique("d") } }, { token: owner.accessToken })).createDeployment;
    const stranger = await signedInUser(fast);
    expect(await refusedWith(subscribe(stranger.accessToken, MachineStatusDocument, { id: machine.id }, fast))).toBe("NOT_FOUND");
    expect(await refusedWith(subscribe(stranger.accessToken, TaskStatusDocument, { id: task.id }, fast))).toBe("NOT_FOUND");
    expect(await refusedWith(subscribe(stranger.accessToken, DeploymentStatusDocument, { id: deployment.id }, fast))).toBe("NOT_FOUND");
    // A machine credential is not a user watching streams.
    expect(await refusedWith(subscribe(machine.credential, MachineStatusDocument, { id: machine.id }, fast))).toBe("FORBIDDEN");
  }, 30_000);
});
