// What the parts of the machine module share (machine.service.ts builds them): the derived
// status, how a user's or a machine's request finds its machine, and how a machine's change is
// announced. A machine's status is derived from timestamps and from what it still holds, never stored.
import { Prisma } from "../../generated/prisma/client.js";
import { conflict, notFound, requireId, validationError } from "../../schema/errors.js";
import { jsonObject, name, tags } from "../../schema/validation.js";
import type { WorkspaceNeed } from "../shared/access.js";
import type { DomainDeps } from "../shared/deps.js";
import { noteEvent, noteStatus } from "../shared/live.js";
import type { RequestContext } from "../shared/request.js";
import type { WorkTx } from "../shared/unit-of-work.js";
import { HELD_TASK_STATUSES } from "../task/task-statuses.js";
import { LIVE_WORKER_STATUSES } from "../worker/worker-statuses.js";

export const machineStatuses = ["ONLINE", "OFFLINE", "DRAINING", "DRAINED", "DECOMMISSIONED"] as const;
export type MachineStatus = (typeof machineStatuses)[number];

const MAX_HARDWARE_BYTES = 16 * 1024;
const MAX_TAGS = 50;

export const nameSchema = name(100);
export const labelsSchema = tags("label", MAX_TAGS);
export const capabilitiesSchema = tags("capability", MAX_TAGS);
export const hardwareSchema = jsonObject<Prisma.InputJsonObject>(MAX_HARDWARE_BYTES);
export const groupSchema = name(100);

/** What statusOf needs of a machine row: the Machine.status field selects exactly this. */
export const machineStatusSelect = {
  decommissionedAt: true,
  drainingSince: true,
  lastHeartbeatAt: true,
  _count: {
    select: {
      tasks: { where: { status: { in: HELD_TASK_STATUSES } } },
      workers: { where: { status: { in: [...LIVE_WORKER_STATUSES] } } },
    },
  },
} satisfies Prisma.MachineSelect;

export interface MachineStatusRow {
  decommissionedAt: Date | null;
  drainingSince: Date | null;
  lastHeartbeatAt: Date | null;
  _count: { tasks: number; workers: number };
}

export interface MachineHooks {
  /**
   * A machine can take work it could not before (back online, approved, undrained, schedulable):
   * work that waits for a machine gets placed. Runs after the change commits.
   */
  capacityAdded?: (workspaceId: string) => Promise<void>;
}

export function createMachineKit(deps: DomainDeps, hooks: MachineHooks) {
  const { prisma, config } = deps;

  /**
   * For the live streams: the machine's status stream re-reads it, and the workspace stream gets
   * agent.status with the machine's status as it now is (and `approval` when that changed).
   */
  async function announceMachine(tx: WorkTx, machine: { id: string; workspaceId: string }, extra: Record<string, string> = {}) {
    noteStatus(tx, "MACHINE", machine.id, machine.workspaceId);
    noteEvent(tx, {
      workspaceId: machine.workspaceId,
      type: "agent.status",
      subjectType: "MACHINE",
      subjectId: machine.id,
      data: { machineId: machine.id, status: await describeStatus(tx, machine.id), ...extra },
    });
  }

  /** Placement is a follow-up: the machine's change stands even if placing waiting work fails. */
  async function capacityAdded(workspaceId: string) {
    try {
      await hooks.capacityAdded?.(workspaceId);
    } catch (error) {
      deps.log.error({ err: error, workspaceId }, "placing waiting work on new capacity failed");
    }
  }

  const offlineCutoff = () => new Date(Date.now() - config.domain.machineOfflineAfterSeconds * 1000);

  /** A machine the viewer may act on with `need`; a stranger gets the same NOT_FOUND as a missing id. */
  async function loadForUser(ctx: RequestContext, id: string, need: WorkspaceNeed) {
    const machine = await prisma.machine.findUnique({ where: { id: requireId(id, "machine") } });
    if (!machine) throw notFound("machine", id);
    await ctx.access.require(machine.workspaceId, need, { type: "machine", id });
    return machine;
  }

  /**
   * The machine an operation that both machines and users may call acts on: a machine acts on
   * itself (naming another is NOT_FOUND), a user names the machine and needs `need` in its workspace.
   */
  async function targetMachine(ctx: RequestContext, machineId: string | null | undefined, need: WorkspaceNeed, field: string) {
    if (ctx.viewer.kind === "machine") {
      if (machineId != null && machineId !== ctx.viewer.machineId) throw notFound("machine", machineId);
      return prisma.machine.findUniqueOrThrow({ where: { id: ctx.viewer.machineId } });
    }
    if (machineId == null) {
      throw validationError([{ field, message: "required unless the caller is the machine itself (spm_ credential)" }]);
    }
    return loadForUser(ctx, machineId, need);
  }

  /** What a conditional update on a live machine (decommissionedAt null) matching nothing means. */
  const decommissioned = (action: string, id: string) =>
    conflict(`Cannot ${action} machine ${id}: it is DECOMMISSIONED`, { status: "DECOMMISSIONED" });

  async function describeStatus(tx: WorkTx, id: string): Promise<MachineStatus> {
    const row = await tx.machine.findUniqueOrThrow({ where: { id }, select: machineStatusSelect });
    return statusOf(row);
  }

  function statusOf(machine: MachineStatusRow): MachineStatus {
    if (machine.decommissionedAt) return "DECOMMISSIONED";
    if (machine.drainingSince) return machine._count.tasks + machine._count.workers > 0 ? "DRAINING" : "DRAINED";
    return isOnline(machine) ? "ONLINE" : "OFFLINE";
  }

  function isOnline(machine: { lastHeartbeatAt: Date | null; decommissionedAt: Date | null }): boolean {
    return !machine.decommissionedAt && !!machine.lastHeartbeatAt && machine.lastHeartbeatAt >= offlineCutoff();
  }

  return { announceMachine, capacityAdded, offlineCutoff, loadForUser, targetMachine, decommissioned, describeStatus, statusOf, isOnline };
}

export type MachineKit = ReturnType<typeof createMachineKit>;
