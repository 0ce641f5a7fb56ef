// Machines after enrollment: heartbeats and leases, liveness, approval, schedulability, drain,
// decommission, lists and fleet counts, and what a machine may (not) touch.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceStatus, TaskStatus, WorkerStatus, WorkspaceRole } from "../../src/generated/prisma/client.js";
import { addMember, createMachineDirect, machineSecrets } from "../authz/world.js";
import {
  ApproveMachineDocument,
  CurrentMachineDocument,
  CurrentMachineWorkspaceDocument,
  DecommissionMachineDocument,
  DrainMachineDocument,
  FleetOverviewDocument,
  MachineByIdDocument,
  MachineHeartbeatDocument,
  MachineInventoryDocument,
  MachineServicesDocument,
  RotateMachineCredentialDocument,
  SetMachineSchedulableDocument,
  UndrainMachineDocument,
  UpdateMachineDocument,
  WorkspaceMachinesDocument,
  WorkspaceMachineStatusesDocument,
  type WorkspaceMachinesQueryVariables,
} from "../generated/graphql.js";
import { ownedWorkspace, signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());


async function workspace(s: TestServer = server) {
  const { owner, workspace: ws } = await ownedWorkspace(s);
  return { workspaceId: ws.id, owner };
}

async function memberOf(workspaceId: string, role: WorkspaceRole): Promise<SignedIn> {
  const user = await signedInUser(server);
  await addMember(server, workspaceId, user.id, role);
  return user;
}

const inSeconds = (s: number) => new Date(Date.now() + s * 1000);

async function task(workspaceId: string, machineId: string | null, status: TaskStatus, leaseExpiresAt: Date | null = inSeconds(120)) {
  return server.db.prisma.task.create({
    data: {
      workspaceId,
      title: unique("task"),
      status,
      machineId,
      attempt: machineId ? 1 : 0,
      leaseToken: machineId ? randomUUID() : null,
      leaseExpiresAt: machineId ? leaseExpiresAt : null,
      startedAt: status === "RUNNING" ? new Date() : null,
    },
  });
}

async function worker(workspaceId: string, machineId: string | null, status: WorkerStatus) {
  return server.db.prisma.worker.create({ data: { workspaceId, kind: "CONTAINER", name: unique("worker"), image: "nginx", status, machineId } });
}

const as = (token: string) => ({ token });

describe(`heartbeats (${backend})`, () => {
  it("store usage and the time, and answer what the machine must know", async () => {
    const { workspaceId, owner } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    await server.db.prisma.machine.update({ where: { id: machine.id }, data: { lastHeartbeatAt: null } });
    const before = Date.now();
    const res = ok(
      await server.execute(
        MachineHeartbeatDocument,
        { input: { cpuPercent: 12.5, memoryPercent: 40, diskPercent: 99.9, capabilities: ["docker", "gpu"], hardware: { cpuCores: 16 } } },
        as(machine.credential),
      ),
    ).machineHeartbeat;
    expect(res.machine).toMatchObject({
      id: machine.id,
      cpuPercent: 12.5,
      memoryPercent: 40,
      diskPercent: 99.9,
      capabilities: ["docker", "gpu"],
      hardware: { cpuCores: 16 },
      status: "ONLINE",
      online: true,
      approval: "APPROVED",
      schedulable: true,
      draining: false,
      acceptingWork: true,
    });
    expect(Date.parse(res.machine.lastHeartbeatAt!)).toBeGreaterThanOrEqual(before - 1000);
    expect(res).toMatchObject({ leasedTaskIds: [], leaseSeconds: 300, offlineAfterSeconds: 60 });

    // Capabilities and hardware stay when a heartbeat leaves them out.
    const second = ok(await server.execute(MachineHeartbeatDocument, { input: { cpuPercent: 1 } }, as(machine.credential))).machineHeartbeat;
    expect(second.machine).toMatchObject({ cpuPercent: 1, memoryPercent: null, capabilities: ["docker", "gpu"], hardware: { cpuCores: 16 } });

    const seen = ok(await server.execute(MachineByIdDocument, { id: machine.id }, as(owner.accessToken))).machine;
    expect(seen.cpuPercent).toBe(1);
  });

  it("refuse out-of-range usage, naming each field, and change nothing", async () => {
    const { workspaceId } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const error = errorOf(
      await server.execute(
        MachineHeartbeatDocument,
        { input: { cpuPercent: 101, memoryPercent: -1, diskPercent: 50, hardware: "x" as unknown as Record<string, unknown> } },
        as(machine.credential),
      ),
    );
    expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
    expect(fieldsOf(error).sort()).toEqual(["input.cpuPercent", "input.hardware", "input.memoryPercent"]);
    const wrongType = await server.post(
      { query: "mutation { machineHeartbeat(input: { cpuPercent: \"lots\" }) { leaseSeconds } }" },
      as(machine.credential),
    );
    expect(wrongType.status).toBeLessThan(500);
    expect(wrongType.errors?.length).toBeGreaterThan(0);
    const row = await server.db.prisma.machine.findUniqueOrThrow({ where: { id: machine.id } });
    expect(row.cpuPercent).toBeNull();
  });

  it("renew the leases of the tasks the machine holds, but never revive an expired one", async () => {
    const { workspaceId } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const other = await createMachineDirect(server, workspaceId);
    const running = await task(workspaceId, machine.id, "RUNNING", inSeconds(5));
    const assigned = await task(workspaceId, machine.id, "ASSIGNED", inSeconds(5));
    const suspended = await task(workspaceId, machine.id, "SUSPENDED", inSeconds(5));
    const expired = await task(workspaceId, machine.id, "RUNNING", inSeconds(-5));
    const done = await task(workspaceId, machine.id, "SUCCEEDED", inSeconds(5));
    const someoneElses = await task(workspaceId, other.id, "RUNNING", inSeconds(5));

    const before = Date.now();
    const res = ok(await server.execute(MachineHeartbeatDocument, { input: {} }, as(machine.credential))).machineHeartbeat;
    expect([...res.leasedTaskIds].sort()).toEqual([running.id, assigned.id, suspended.id].sort());

    const rows = new Map((await server.db.prisma.task.findMany({ where: { workspaceId } })).map((t) => [t.id, t]));
    for (const id of [running.id, assigned.id, suspended.id]) {
      const lease = rows.get(id)!.leaseExpiresAt!.getTime();
      expect(lease).toBeGreaterThan(before + 290_000);
      expect(lease).toBeLessThan(Date.now() + 310_000);
    }
    expect(rows.get(expired.id)!.leaseExpiresAt).toEqual(expired.leaseExpiresAt);
    expect(rows.get(done.id)!.leaseExpiresAt).toEqual(done.leaseExpiresAt);
    expect(rows.get(someoneElses.id)!.leaseExpiresAt).toEqual(someoneElses.leaseExpiresAt);
  });

  it("a user with write access may report for a machine by id (api-v1); a viewer may not, a stranger gets NOT_FOUND", async () => {
    const { workspaceId } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const member = await memberOf(workspaceId, "MEMBER");
    const viewer = await memberOf(workspaceId, "VIEWER");
    const stranger = await signedInUser(server);
    const res = ok(await server.execute(MachineHeartbeatDocument, { input: { machineId: machine.id, cpuPercent: 3 } }, as(member.accessToken)));
    expect(res.machineHeartbeat.machine.cpuPercent).toBe(3);
    expect(errorOf(await server.execute(MachineHeartbeatDocument, { input: { machineId: machine.id } }, as(viewer.accessToken))).code).toBe("FORBIDDEN");
    expect(errorOf(await server.execute(MachineHeartbeatDocument, { input: { machineId: machine.id } }, as(stranger.accessToken))).code).toBe("NOT_FOUND");
    const missing = errorOf(await server.execute(MachineHeartbeatDocument, { input: {} }, as(member.accessToken)));
    expect(fieldsOf(missing)).toEqual(["input.machineId"]);
  });
});

describe(`liveness (${backend})`, () => {
  it("a machine goes OFFLINE once no heartbeat came within SPINDLE_MACHINE_OFFLINE_AFTER", async () => {
    const quick = await startTestServer({ SPINDLE_MACHINE_OFFLINE_AFTER: "1" });
    try {
      const { workspaceId, owner } = await workspace(quick);
      const machine = await createMachineDirect(quick, workspaceId);
      const beat = ok(await quick.execute(MachineHeartbeatDocument, { input: {} }, as(machine.credential))).machineHeartbeat;
      expect(beat).toMatchObject({ offlineAfterSeconds: 1, machine: { status: "ONLINE", online: true } });
      expect(ok(await quick.execute(FleetOverviewDocument, { workspaceId }, as(owner.accessToken))).fleetOverview).toMatchObject({ online: 1, offline: 0 });

      await new Promise((resolve) => setTimeout(resolve, 1300));
      const later = ok(await quick.execute(MachineByIdDocument, { id: machine.id }, as(owner.accessToken))).machine;
      expect(later).toMatchObject({ status: "OFFLINE", online: false });
      const offline = ok(await quick.execute(WorkspaceMachinesDocument, { id: workspaceId, status: ["OFFLINE"] }, as(owner.accessToken)));
      expect(offline.workspace.machines.edges.map((e) => e.node.id)).toEqual([machine.id]);
      expect(ok(await quick.execute(FleetOverviewDocument, { workspaceId }, as(owner.accessToken))).fleetOverview).toMatchObject({ online: 0, offline: 1 });

      ok(await quick.execute(MachineHeartbeatDocument, { input: {} }, as(machine.credential)));
      expect(ok(await quick.execute(MachineByIdDocument, { id: machine.id }, as(owner.accessToken))).machine.status).toBe("ONLINE");
    } finally {
      await quick.close();
    }
  });
});

describe(`approval (${backend})`, () => {
  it("rejecting refuses the machine's credential; approving again lets it back in; the group is set on the way", async () => {
    const { workspaceId, owner } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const rejected = ok(await server.execute(ApproveMachineDocument, { id: machine.id, approved: false }, as(owner.accessToken))).approveMachine;
    expect(rejected).toMatchObject({ approval: "REJECTED", acceptingWork: false });
    const refused = errorOf(await server.execute(CurrentMachineDocument, {}, as(machine.credential)));
    expect(refused.code).toBe("NOT_AUTHENTICATED");
    expect(refused.message).toMatch(/rejected/);

    const approved = ok(await server.execute(ApproveMachineDocument, { id: machine.id, approved: true, group: "gpu" }, as(owner.accessToken))).approveMachine;
    expect(approved).toMatchObject({ approval: "APPROVED", group: "gpu", acceptingWork: true });
    ok(await server.execute(CurrentMachineDocument, {}, as(machine.credential)));
    const audits = await server.db.prisma.auditEntry.findMany({ where: { targetId: machine.id }, orderBy: { at: "asc" } });
    expect(audits.map((a) => a.action)).toEqual(["machine.reject", "machine.approve"]);

    const cleared = ok(await server.execute(ApproveMachineDocument, { id: machine.id, approved: true, group: null }, as(owner.accessToken))).approveMachine;
    expect(cleared.group).toBeNull();
  });

  it("is for workspace admins", async () => {
    const { workspaceId } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const member = await memberOf(workspaceId, "MEMBER");
    const error = errorOf(await server.execute(ApproveMachineDocument, { id: machine.id, approved: false }, as(member.accessToken)));
    expect(error).toMatchObject({ code: "FORBIDDEN", extensions: { requiredScope: "workspace:admin" } });
  });
});

describe(`updating, schedulability and drain (${backend})`, () => {
  it("an admin renames, relabels and regroups; bad input names the field", async () => {
    const { workspaceId, owner } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const updated = ok(
      await server.execute(UpdateMachineDocument, { id: machine.id, input: { name: "renamed", labels: ["a", "b", "a"], group: "g1" } }, as(owner.accessToken)),
    ).updateMachine;
    expect(updated).toMatchObject({ name: "renamed", labels: ["a", "b"], group: "g1" });
    const partial = ok(await server.execute(UpdateMachineDocument, { id: machine.id, input: { group: null } }, as(owner.accessToken))).updateMachine;
    expect(partial).toMatchObject({ name: "renamed", labels: ["a", "b"], group: null });
    const error = errorOf(await server.execute(UpdateMachineDocument, { id: machine.id, input: { name: "", labels: ["x y"] } }, as(owner.accessToken)));
    expect(fieldsOf(error).sort()).toEqual(["input.labels.0", "input.name"]);
  });

  it("an unschedulable machine accepts no work but keeps its status", async () => {
    const { workspaceId, owner } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const off = ok(await server.execute(SetMachineSchedulableDocument, { id: machine.id, schedulable: false }, as(owner.accessToken))).setMachineSchedulable;
    expect(off).toMatchObject({ schedulable: false, acceptingWork: false, status: "ONLINE", draining: false });
    const beat = ok(await server.execute(MachineHeartbeatDocument, { input: {} }, as(machine.credential))).machineHeartbeat;
    expect(beat.machine).toMatchObject({ schedulable: false, acceptingWork: false });
    const on = ok(await server.execute(SetMachineSchedulableDocument, { id: machine.id, schedulable: true }, as(owner.accessToken))).setMachineSchedulable;
    expect(on).toMatchObject({ schedulable: true, acceptingWork: true });
    const filtered = ok(await server.execute(WorkspaceMachinesDocument, { id: workspaceId, schedulable: false }, as(owner.accessToken)));
    expect(filtered.workspace.machines.totalCount).toBe(0);
  });

  it("drain shows DRAINING while the machine holds work and DRAINED once it is empty; undrain brings it back", async () => {
    const { workspaceId, owner } = await workspace();
    const member = await memberOf(workspaceId, "MEMBER");
    const machine = await createMachineDirect(server, workspaceId);
    const running = await task(workspaceId, machine.id, "RUNNING");
    const live = await worker(workspaceId, machine.id, "RUNNING");

    const drained = ok(await server.execute(DrainMachineDocument, { id: machine.id }, as(member.accessToken))).drainMachine;
    expect(drained).toMatchObject({ status: "DRAINING", draining: true, acceptingWork: false });
    expect(drained.drainingSince).not.toBeNull();
    const beat = ok(await server.execute(MachineHeartbeatDocument, { input: {} }, as(machine.credential))).machineHeartbeat;
    expect(beat.machine).toMatchObject({ draining: true, acceptingWork: false, status: "DRAINING" });

    await server.db.prisma.task.update({ where: { id: running.id }, data: { status: "SUCCEEDED" } });
    expect(ok(await server.execute(MachineByIdDocument, { id: machine.id }, as(owner.accessToken))).machine.status).toBe("DRAINING");
    await server.db.prisma.worker.update({ where: { id: live.id }, data: { status: "STOPPED" } });
    expect(ok(await server.execute(MachineByIdDocument, { id: machine.id }, as(owner.accessToken))).machine.status).toBe("DRAINED");
    const list = ok(await server.execute(WorkspaceMachinesDocument, { id: workspaceId, status: ["DRAINED"] }, as(owner.accessToken)));
    expect(list.workspace.machines.edges.map((e) => e.node.id)).toEqual([machine.id]);
    expect(ok(await server.execute(WorkspaceMachinesDocument, { id: workspaceId, status: ["DRAINING"] }, as(owner.accessToken))).workspace.machines.totalCount).toBe(0);

    const again = errorOf(await server.execute(DrainMachineDocument, { id: machine.id }, as(owner.accessToken)));
    expect(again).toMatchObject({ code: "CONFLICT", extensions: { status: "DRAINED" } });
    expect(again.message).toBe(`Cannot drain machine ${machine.id}: it is DRAINED`);

    const back = ok(await server.execute(UndrainMachineDocument, { id: machine.id }, as(member.accessToken))).undrainMachine;
    expect(back).toMatchObject({ status: "ONLINE", draining: false, drainingSince: null, acceptingWork: true });
    const undrainAgain = errorOf(await server.execute(UndrainMachineDocument, { id: machine.id }, as(owner.accessToken)));
    expect(undrainAgain).toMatchObject({ code: "CONFLICT", extensions: { status: "ONLINE" } });

    const viewer = await memberOf(workspaceId, "VIEWER");
    expect(errorOf(await server.execute(DrainMachineDocument, { id: machine.id }, as(viewer.accessToken))).code).toBe("FORBIDDEN");
  });
});

describe(`decommissioning (${backend})`, () => {
  it("requeues assigned and suspended tasks, fails running ones and the machine's workers and services, in one go", async () => {
    const { workspaceId, owner } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const bystander = await createMachineDirect(server, workspaceId);
    const assigned = await task(workspaceId, machine.id, "ASSIGNED");
    const suspended = await task(workspaceId, machine.id, "SUSPENDED");
    const running = await task(workspaceId, machine.id, "RUNNING");
    await server.db.prisma.taskStage.createMany({
      data: [
        { taskId: running.id, index: 0, name: "fetch", status: "SUCCEEDED" },
        { taskId: running.id, index: 1, name: "build", status: "RUNNING" },
        { taskId: running.id, index: 2, name: "ship", status: "PENDING" },
      ],
    });
    const succeeded = await task(workspaceId, machine.id, "SUCCEEDED");
    const elsewhere = await task(workspaceId, bystander.id, "RUNNING");
    const liveWorker = await worker(workspaceId, machine.id, "RUNNING");
    const stoppedWorker = await worker(workspaceId, machine.id, "STOPPED");
    const destroyedWorker = await worker(workspaceId, machine.id, "DESTROYED");
    const deployment = await server.db.prisma.deployment.create({ data: { workspaceId, name: unique("dep") } });
    const service = await server.db.prisma.service.create({
      data: { workspaceId, deploymentId: deployment.id, name: "web", status: "RUNNING", machineId: machine.id },
    });

    const res = ok(await server.execute(DecommissionMachineDocument, { id: machine.id, reason: "disk died" }, as(owner.accessToken))).decommissionMachine;
    expect([...res.requeuedTaskIds].sort()).toEqual([assigned.id, suspended.id].sort());
    expect(res.failedTaskIds).toEqual([running.id]);
    expect([...res.failedWorkerIds].sort()).toEqual([liveWorker.id, stoppedWorker.id].sort());
    expect(res.machine).toMatchObject({ status: "DECOMMISSIONED", online: false, acceptingWork: false });
    expect(res.machine.decommissionedAt).not.toBeNull();

    const tasks = new Map((await server.db.prisma.task.findMany({ where: { workspaceId } })).map((t) => [t.id, t]));
    for (const id of [assigned.id, suspended.id]) {
      expect(tasks.get(id)).toMatchObject({ status: "PENDING", machineId: null, leaseToken: null, leaseExpiresAt: null });
    }
    expect(tasks.get(running.id)).toMatchObject({ status: "FAILED", error: "disk died", leaseToken: null });
    expect(tasks.get(running.id)!.finishedAt).not.toBeNull();
    // Its stages end as a reported failure ends them: the one under way failed, the rest skipped.
    const stages = await server.db.prisma.taskStage.findMany({ where: { taskId: running.id }, orderBy: { index: "asc" } });
    expect(stages.map((s) => [s.name, s.status, s.error])).toEqual([
      ["fetch", "SUCCEEDED", null],
      ["build", "FAILED", "disk died"],
      ["ship", "SKIPPED", null],
    ]);
    expect(tasks.get(succeeded.id)).toMatchObject({ status: "SUCCEEDED", machineId: machine.id });
    expect(tasks.get(elsewhere.id)).toMatchObject({ status: "RUNNING", machineId: bystander.id });

    const events = await server.db.prisma.taskEvent.findMany({ where: { workspaceId } });
    expect(events.map((e) => [e.taskId, e.type]).sort()).toEqual(
      [
        [assigned.id, "task.requeued"],
        [suspended.id, "task.requeued"],
        [running.id, "task.failed"],
      ].sort(),
    );
    expect(events.every((e) => e.actorType === "USER" && e.actorId === owner.id && e.attempt === 1)).toBe(true);
    expect(events.find((e) => e.type === "task.failed")!.message).toBe("disk died");

    const workers = new Map((await server.db.prisma.worker.findMany({ where: { workspaceId } })).map((w) => [w.id, w]));
    for (const id of [liveWorker.id, stoppedWorker.id]) {
      expect(workers.get(id)).toMatchObject({ status: "FAILED", statusReason: "disk died", machineId: null });
    }
    expect(workers.get(destroyedWorker.id)).toMatchObject({ status: "DESTROYED", machineId: machine.id });
    const transitions = await server.db.prisma.workerTransition.findMany({ where: { workerId: { in: [liveWorker.id, stoppedWorker.id] } } });
    expect(transitions.map((t) => [t.workerId, t.from, t.to, t.action]).sort()).toEqual(
      [
        [liveWorker.id, "RUNNING", "FAILED", "machine.decommission"],
        [stoppedWorker.id, "STOPPED", "FAILED", "machine.decommission"],
      ].sort(),
    );
    expect(transitions.every((t) => t.actorType === "USER" && t.actorId === owner.id && t.reason === "disk died")).toBe(true);

    expect(await server.db.prisma.service.findUniqueOrThrow({ where: { id: service.id } })).toMatchObject({ status: "FAILED", machineId: null, statusReason: "disk died" });

    const refused = errorOf(await server.execute(CurrentMachineDocument, {}, as(machine.credential)));
    expect(refused.code).toBe("NOT_AUTHENTICATED");
    const audit = await server.db.prisma.auditEntry.findFirstOrThrow({ where: { action: "machine.decommission", targetId: machine.id } });
    expect(audit).toMatchObject({ actorType: "USER", actorId: owner.id, workspaceId });
  });

  it("twice is a CONFLICT, and so is every change to a decommissioned machine", async () => {
    const { workspaceId, owner } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    ok(await server.execute(DecommissionMachineDocument, { id: machine.id }, as(owner.accessToken)));
    const attempts = [
      await server.execute(DecommissionMachineDocument, { id: machine.id }, as(owner.accessToken)),
      await server.execute(DrainMachineDocument, { id: machine.id }, as(owner.accessToken)),
      await server.execute(UndrainMachineDocument, { id: machine.id }, as(owner.accessToken)),
      await server.execute(ApproveMachineDocument, { id: machine.id, approved: true }, as(owner.accessToken)),
      await server.execute(SetMachineSchedulableDocument, { id: machine.id, schedulable: false }, as(owner.accessToken)),
      await server.execute(UpdateMachineDocument, { id: machine.id, input: { name: "x" } }, as(owner.accessToken)),
      await server.execute(RotateMachineCredentialDocument, { machineId: machine.id }, as(owner.accessToken)),
      await server.execute(MachineHeartbeatDocument, { input: { machineId: machine.id } }, as(owner.accessToken)),
    ];
    for (const attempt of attempts) {
      const error = errorOf(attempt);
      expect(error).toMatchObject({ code: "CONFLICT", extensions: { status: "DECOMMISSIONED" } });
      expect(error.message).toContain(machine.id);
    }
    expect(await server.db.prisma.auditEntry.count({ where: { targetId: machine.id } })).toBe(1);
  });

  it("two decommissions at once: exactly one wins", async () => {
    const { workspaceId, owner } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    await task(workspaceId, machine.id, "RUNNING");
    const results = await Promise.all([1, 2, 3].map(() => server.execute(DecommissionMachineDocument, { id: machine.id }, as(owner.accessToken))));
    expect(results.filter((r) => !r.errors?.length)).toHaveLength(1);
    expect(await server.db.prisma.taskEvent.count({ where: { workspaceId } })).toBe(1);
  });

  it("is for workspace admins", async () => {
    const { workspaceId } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const member = await memberOf(workspaceId, "MEMBER");
    expect(errorOf(await server.execute(DecommissionMachineDocument, { id: machine.id }, as(member.accessToken))).code).toBe("FORBIDDEN");
    const row = await server.db.prisma.machine.findUniqueOrThrow({ where: { id: machine.id } });
    expect(row.decommissionedAt).toBeNull();
  });
});

describe(`who sees and touches a machine (${backend})`, () => {
  it("a machine sees itself only, never another machine or another workspace", async () => {
    const { workspaceId } = await workspace();
    const other = await workspace();
    const me = await createMachineDirect(server, workspaceId);
    const sibling = await createMachineDirect(server, workspaceId);
    const foreign = await createMachineDirect(server, other.workspaceId);
    for (const target of [sibling.id, foreign.id]) {
      const beat = errorOf(await server.execute(MachineHeartbeatDocument, { input: { machineId: target, cpuPercent: 50 } }, as(me.credential)));
      expect(beat.code).toBe("NOT_FOUND");
      expect(errorOf(await server.execute(RotateMachineCredentialDocument, { machineId: target }, as(me.credential))).code).toBe("NOT_FOUND");
      expect(errorOf(await server.execute(MachineByIdDocument, { id: target }, as(me.credential))).code).toBe("FORBIDDEN");
    }
    expect(errorOf(await server.execute(DrainMachineDocument, { id: me.id }, as(me.credential))).code).toBe("FORBIDDEN");
    expect(errorOf(await server.execute(FleetOverviewDocument, { workspaceId }, as(me.credential))).code).toBe("FORBIDDEN");
    const rows = await server.db.prisma.machine.findMany({ where: { id: { in: [sibling.id, foreign.id] } } });
    expect(rows.every((r) => r.cpuPercent === null)).toBe(true);
    // Its own heartbeat, naming itself, is fine; its workspace's other objects stay out of reach.
    ok(await server.execute(MachineHeartbeatDocument, { input: { machineId: me.id } }, as(me.credential)));
    const workspaceField = await server.execute(CurrentMachineWorkspaceDocument, {}, as(me.credential));
    expect(errorOf(workspaceField).code).toBe("FORBIDDEN");
  });

  it("a stranger gets NOT_FOUND, like for an id that does not exist; lists hold no foreign machines", async () => {
    const { workspaceId, owner } = await workspace();
    const other = await workspace();
    const mine = await createMachineDirect(server, workspaceId);
    await createMachineDirect(server, other.workspaceId);
    const stranger = errorOf(await server.execute(MachineByIdDocument, { id: mine.id }, as(other.owner.accessToken)));
    const missing = errorOf(await server.execute(MachineByIdDocument, { id: randomUUID() }, as(other.owner.accessToken)));
    const garbage = errorOf(await server.execute(MachineByIdDocument, { id: "not-an-id" }, as(other.owner.accessToken)));
    for (const error of [stranger, missing, garbage]) expect(error.code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(DrainMachineDocument, { id: mine.id }, as(other.owner.accessToken))).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(FleetOverviewDocument, { workspaceId }, as(other.owner.accessToken))).code).toBe("NOT_FOUND");
    const list = ok(await server.execute(WorkspaceMachinesDocument, { id: workspaceId }, as(owner.accessToken)));
    expect(list.workspace.machines.edges.map((e) => e.node.id)).toEqual([mine.id]);
  });
});

describe(`lists and counts (${backend})`, () => {
  it("filters machines by status, approval, group, label, capability and search; decommissioned ones only on request", async () => {
    const { workspaceId, owner } = await workspace();
    const prisma = server.db.prisma;
    const gpu = await createMachineDirect(server, workspaceId, { capabilities: ["docker", "cuda"] });
    await prisma.machine.update({ where: { id: gpu.id }, data: { name: "GPU-box-1", externalId: "gpu1.lan", labels: ["eu", "gpu"], group: "ml" } });
    const pending = await createMachineDirect(server, workspaceId);
    await prisma.machine.update({ where: { id: pending.id }, data: { approval: "PENDING", labels: ["us"], lastHeartbeatAt: null } });
    const gone = await createMachineDirect(server, workspaceId);
    await prisma.machine.update({ where: { id: gone.id }, data: { decommissionedAt: new Date() } });

    const ids = async (vars: Omit<WorkspaceMachinesQueryVariables, "id">) =>
      ok(await server.execute(WorkspaceMachinesDocument, { id: workspaceId, ...vars }, as(owner.accessToken))).workspace.machines.edges.map((e) => e.node.id);
    expect((await ids({})).sort()).toEqual([gpu.id, pending.id].sort());
    expect(await ids({ status: ["DECOMMISSIONED"] })).toEqual([gone.id]);
    expect(await ids({ status: ["ONLINE"] })).toEqual([gpu.id]);
    expect((await ids({ status: ["ONLINE", "OFFLINE"] })).sort()).toEqual([gpu.id, pending.id].sort());
    expect(await ids({ approval: ["PENDING"] })).toEqual([pending.id]);
    expect(await ids({ group: "ml" })).toEqual([gpu.id]);
    expect(await ids({ label: "us" })).toEqual([pending.id]);
    expect(await ids({ capability: "cuda" })).toEqual([gpu.id]);
    expect(await ids({ search: "gpu-BOX" })).toEqual([gpu.id]);
    expect(await ids({ search: "GPU1.LAN" })).toEqual([gpu.id]);
    expect(await ids({ search: "nothing" })).toEqual([]);

    const page = ok(await server.execute(WorkspaceMachinesDocument, { id: workspaceId, first: 1 }, as(owner.accessToken))).workspace.machines;
    expect(page).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: true } });
    const next = ok(await server.execute(WorkspaceMachinesDocument, { id: workspaceId, first: 1, after: page.pageInfo.endCursor }, as(owner.accessToken)));
    expect(next.workspace.machines.edges.map((e) => e.node.id)).toEqual([gpu.id]);
    expect(page.edges[0]!.node.id).toBe(pending.id);

    const tooMany = errorOf(await server.execute(WorkspaceMachinesDocument, { id: workspaceId, first: 101 }, as(owner.accessToken)));
    expect(tooMany.code).toBe("VALIDATION");
  });

  it("shows a machine's inventory: its workers and tasks, filtered by status", async () => {
    const { workspaceId, owner } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const running = await worker(workspaceId, machine.id, "RUNNING");
    await worker(workspaceId, machine.id, "DESTROYED");
    await worker(workspaceId, null, "RUNNING");
    const t = await task(workspaceId, machine.id, "RUNNING");
    const inv = ok(await server.execute(MachineInventoryDocument, { id: machine.id, workerStatus: ["RUNNING", "DEPLOYING"] }, as(owner.accessToken))).machine;
    expect(inv.workers).toMatchObject({ totalCount: 1, edges: [{ node: { id: running.id } }] });
    expect(inv.tasks).toMatchObject({ totalCount: 1, edges: [{ node: { id: t.id } }] });
    const all = ok(await server.execute(MachineInventoryDocument, { id: machine.id }, as(owner.accessToken))).machine;
    expect(all.workers.totalCount).toBe(2);
    const finished = ok(await server.execute(MachineInventoryDocument, { id: machine.id, taskStatus: ["SUCCEEDED"] }, as(owner.accessToken))).machine;
    expect(finished.tasks.totalCount).toBe(0);
  });

  it("counts the fleet", async () => {
    const { workspaceId, owner } = await workspace();
    const prisma = server.db.prisma;
    const online = await createMachineDirect(server, workspaceId);
    const offline = await createMachineDirect(server, workspaceId);
    await prisma.machine.update({ where: { id: offline.id }, data: { lastHeartbeatAt: new Date(Date.now() - 3600_000), approval: "PENDING" } });
    const draining = await createMachineDirect(server, workspaceId);
    await prisma.machine.update({ where: { id: draining.id }, data: { drainingSince: new Date() } });
    await task(workspaceId, draining.id, "RUNNING");
    const drained = await createMachineDirect(server, workspaceId);
    await prisma.machine.update({ where: { id: drained.id }, data: { drainingSince: new Date() } });
    const gone = await createMachineDirect(server, workspaceId);
    await prisma.machine.update({ where: { id: gone.id }, data: { decommissionedAt: new Date(), approval: "PENDING" } });
    await task(workspaceId, null, "PENDING");
    await task(workspaceId, null, "PENDING");
    await task(workspaceId, online.id, "RUNNING");
    await worker(workspaceId, online.id, "RUNNING");
    await worker(workspaceId, null, "DEPLOYING");
    await worker(workspaceId, online.id, "STOPPED");
    // Another workspace's rows count nowhere here.
    const other = await workspace();
    await createMachineDirect(server, other.workspaceId);
    await task(other.workspaceId, null, "PENDING");

    const statementsFor = async (id: string, token: string) => {
      const before = server.db.statements.count;
      const answer = ok(await server.execute(FleetOverviewDocument, { workspaceId: id }, as(token))).fleetOverview;
      return { answer, statements: server.db.statements.count - before };
    };
    const empty = await workspace();
    const baseline = await statementsFor(empty.workspaceId, empty.owner.accessToken);
    expect(baseline.answer.total).toBe(0);
    const { answer: counts, statements } = await statementsFor(workspaceId, owner.accessToken);
    expect(statements).toBe(baseline.statements);
    expect(counts).toEqual({
      total: 4,
      online: 1,
      offline: 1,
      draining: 1,
      drained: 1,
      pendingApproval: 1,
      decommissioned: 1,
      runningTasks: 2,
      pendingTasks: 2,
      liveWorkers: 2,
    });
  });

  it("lists machines with their status and worker counts in a constant number of statements", async () => {
    const { workspaceId, owner } = await workspace();
    const prisma = server.db.prisma;
    const machines = Array.from({ length: 105 }, (_, i) => {
      return {
        id: randomUUID(),
        workspaceId,
        name: `m${i}`,
        ...machineSecrets().columns,
        lastHeartbeatAt: new Date(),
        drainingSince: i % 3 === 0 ? new Date() : null,
      };
    });
    await prisma.machine.createMany({ data: machines });
    await prisma.worker.createMany({
      data: machines.flatMap((m) => [
        { workspaceId, kind: "CONTAINER" as const, name: `${m.name}-w1`, status: "RUNNING" as const, machineId: m.id },
        { workspaceId, kind: "CONTAINER" as const, name: `${m.name}-w2`, status: "STOPPED" as const, machineId: m.id },
      ]),
    });
    await prisma.task.createMany({
      data: machines.map((m) => ({ workspaceId, title: `${m.name}-t`, status: "RUNNING" as const, machineId: m.id })),
    });

    const countFor = async (first: number) => {
      const before = server.db.statements.count;
      const data = ok(await server.execute(WorkspaceMachineStatusesDocument, { id: workspaceId, first }, as(owner.accessToken)));
      expect(data.workspace.machines.edges).toHaveLength(first);
      for (const { node } of data.workspace.machines.edges) {
        expect(node.workers.totalCount).toBe(2);
        expect(["ONLINE", "DRAINING"]).toContain(node.status);
      }
      return server.db.statements.count - before;
    };
    // The first request also checks the token in the database; later ones find it cached.
    await countFor(10);
    const ten = await countFor(10);
    const hundred = await countFor(100);
    expect(hundred).toBe(ten);
  });
});

describe(`services placed on a machine (Spunto inventory) (${backend})`, () => {
  /** A deployment of the workspace with one service per entry, placed where each says. */
  async function deploymentWith(workspaceId: string, services: { name: string; machineId: string | null; status: ServiceStatus }[]) {
    return server.db.prisma.deployment.create({
      data: { workspaceId, name: unique("deployment"), services: { create: services.map((s) => ({ workspaceId, image: "nginx", ...s })) } },
      include: { services: true },
    });
  }

  it("lists the services placed on the machine by name, of any deployment, filtered by status", async () => {
    const { workspaceId, owner } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const sibling = await createMachineDirect(server, workspaceId);
    const shop = await deploymentWith(workspaceId, [
      { name: "web", machineId: machine.id, status: "RUNNING" },
      { name: "api", machineId: machine.id, status: "DEPLOYING" },
      { name: "jobs", machineId: sibling.id, status: "RUNNING" },
      { name: "idle", machineId: null, status: "STOPPED" },
    ]);
    const blog = await deploymentWith(workspaceId, [{ name: "cms", machineId: machine.id, status: "FAILED" }]);
    const id = (deployment: typeof shop, name: string) => deployment.services.find((s) => s.name === name)!.id;

    const services = async (status?: ServiceStatus[], token = owner.accessToken) =>
      ok(await server.execute(MachineServicesDocument, { id: machine.id, status }, as(token))).machine.services;
    expect(await services()).toEqual([
      { id: id(shop, "api"), name: "api", status: "DEPLOYING", machineId: machine.id, deploymentId: shop.id },
      { id: id(blog, "cms"), name: "cms", status: "FAILED", machineId: machine.id, deploymentId: blog.id },
      { id: id(shop, "web"), name: "web", status: "RUNNING", machineId: machine.id, deploymentId: shop.id },
    ]);
    expect((await services(["RUNNING", "DEPLOYING"])).map((s) => s.name)).toEqual(["api", "web"]);
    expect(await services(["STOPPED"])).toEqual([]);
    const viewer = await memberOf(workspaceId, "VIEWER");
    expect((await services(undefined, viewer.accessToken)).map((s) => s.name)).toEqual(["api", "cms", "web"]);
    expect(ok(await server.execute(MachineServicesDocument, { id: sibling.id }, as(owner.accessToken))).machine.services.map((s) => s.name)).toEqual(["jobs"]);

    const stranger = (await workspace()).owner;
    expect(errorOf(await server.execute(MachineServicesDocument, { id: machine.id }, as(stranger.accessToken))).code).toBe("NOT_FOUND");
  });
});
