// A machine's life in the fleet, as its admins steer it: name and labels, approval, schedulability,
// draining, and decommissioning, which hands its work back to the modules that own it.
import { z } from "zod";
import type { MachineApproval } from "../../generated/prisma/client.js";
import { conflict, parseInput } from "../../schema/errors.js";
import { name } from "../../schema/validation.js";
import { actorOf, audit, type Actor } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { noteStatus } from "../shared/live.js";
import type { RequestContext } from "../shared/request.js";
import type { WorkTx } from "../shared/unit-of-work.js";
import { groupSchema, labelsSchema, nameSchema, type MachineKit } from "./machine-common.js";

const updateInput = z.object({
  name: nameSchema.optional(),
  labels: labelsSchema.optional(),
  group: groupSchema.nullish(),
});
const approveInput = z.object({ approved: z.boolean(), group: groupSchema.nullish() });
const decommissionInput = z.object({ reason: name(500).nullish() });

type LostMachine = { id: string; name: string; workspaceId: string };

/** What the modules that own a machine's work do when it leaves the fleet, in the caller's unit of work. */
export interface DecommissionCapabilities {
  /** Tasks: ASSIGNED and SUSPENDED ones back to the queue, RUNNING ones failed. */
  releaseTasks(tx: WorkTx, machine: LostMachine, reason: string, actor: Actor, now: Date): Promise<{ requeuedTaskIds: string[]; failedTaskIds: string[] }>;
  /** Workers: failed, without a machine. */
  failWorkers(tx: WorkTx, machine: LostMachine, reason: string, actor: Actor, now: Date): Promise<{ failedWorkerIds: string[] }>;
  /** Services: live ones failed, every one without a machine. */
  detachServices(tx: WorkTx, machine: LostMachine, reason: string): Promise<{ services: number }>;
}

export function createLifecycle(deps: DomainDeps, kit: MachineKit, capabilities: DecommissionCapabilities) {
  const { work } = deps;
  const { loadForUser, decommissioned, announceMachine, capacityAdded, describeStatus } = kit;

  return {
    async update(ctx: RequestContext, id: string, raw: unknown) {
      const input = parseInput(updateInput, raw);
      const machine = await loadForUser(ctx, id, "admin");
      await work.run(async (tx) => {
        const { count } = await tx.machine.updateMany({
          where: { id, decommissionedAt: null },
          data: {
            ...(input.name !== undefined ? { name: input.name } : {}),
            ...(input.labels !== undefined ? { labels: input.labels } : {}),
            ...(input.group !== undefined ? { group: input.group } : {}),
          },
        });
        if (count === 0) throw decommissioned("update", id);
        noteStatus(tx, "MACHINE", id, machine.workspaceId);
        await audit(tx, ctx, { workspaceId: machine.workspaceId, action: "machine.update", targetType: "Machine", targetId: id, data: input });
      });
      return { id };
    },

    /** api-v1 approve/reject (is_approved, group). A rejected machine's credential is refused. */
    async approve(ctx: RequestContext, id: string, raw: unknown) {
      const input = parseInput(approveInput, raw);
      const machine = await loadForUser(ctx, id, "admin");
      const approval: MachineApproval = input.approved ? "APPROVED" : "REJECTED";
      await work.run(async (tx) => {
        const { count } = await tx.machine.updateMany({
          where: { id, decommissionedAt: null },
          data: { approval, ...(input.group !== undefined ? { group: input.group } : {}) },
        });
        if (count === 0) throw decommissioned(input.approved ? "approve" : "reject", id);
        if (machine.approval !== approval) await announceMachine(tx, machine, { approval });
        else noteStatus(tx, "MACHINE", id, machine.workspaceId);
        await audit(tx, ctx, {
          workspaceId: machine.workspaceId,
          action: input.approved ? "machine.approve" : "machine.reject",
          targetType: "Machine",
          targetId: id,
          data: { from: machine.approval, to: approval, ...(input.group !== undefined ? { group: input.group } : {}) },
        });
      });
      if (approval === "APPROVED") await capacityAdded(machine.workspaceId);
      return { id };
    },

    async setSchedulable(ctx: RequestContext, id: string, schedulable: boolean) {
      const machine = await loadForUser(ctx, id, "admin");
      await work.run(async (tx) => {
        const { count } = await tx.machine.updateMany({ where: { id, decommissionedAt: null }, data: { schedulable } });
        if (count === 0) throw decommissioned("change schedulability of", id);
        noteStatus(tx, "MACHINE", id, machine.workspaceId);
        await audit(tx, ctx, {
          workspaceId: machine.workspaceId,
          action: "machine.setSchedulable",
          targetType: "Machine",
          targetId: id,
          data: { schedulable },
        });
      });
      if (schedulable) await capacityAdded(machine.workspaceId);
      return { id };
    },

    /** Stops new work; what runs keeps running until it ends (the machine shows DRAINING, then DRAINED). */
    async drain(ctx: RequestContext, id: string) {
      const machine = await loadForUser(ctx, id, "write");
      await work.run(async (tx) => {
        const { count } = await tx.machine.updateMany({
          where: { id, decommissionedAt: null, drainingSince: null },
          data: { drainingSince: new Date() },
        });
        if (count === 0) {
          const status = await describeStatus(tx, id);
          throw conflict(`Cannot drain machine ${id}: it is ${status}`, { status });
        }
        await announceMachine(tx, machine);
        await audit(tx, ctx, { workspaceId: machine.workspaceId, action: "machine.drain", targetType: "Machine", targetId: id });
      });
      return { id };
    },

    async undrain(ctx: RequestContext, id: string) {
      const machine = await loadForUser(ctx, id, "write");
      await work.run(async (tx) => {
        const { count } = await tx.machine.updateMany({
          where: { id, decommissionedAt: null, drainingSince: { not: null } },
          data: { drainingSince: null },
        });
        if (count === 0) {
          const status = await describeStatus(tx, id);
          throw conflict(`Cannot undrain machine ${id}: it is ${status}${status === "DECOMMISSIONED" ? "" : ", not draining"}`, { status });
        }
        await announceMachine(tx, machine);
        await audit(tx, ctx, { workspaceId: machine.workspaceId, action: "machine.undrain", targetType: "Machine", targetId: id });
      });
      await capacityAdded(machine.workspaceId);
      return { id };
    },

    /**
     * Takes a machine out of the fleet for good, in one transaction: the work it was given but has
     * not started (ASSIGNED) or that waits for a person (SUSPENDED) goes back to the queue, RUNNING
     * work fails with the reason, its workers fail and lose their machine, its services fail and lose
     * their machine; then its credential stops working.
     */
    async decommission(ctx: RequestContext, id: string, raw: unknown) {
      const input = parseInput(decommissionInput, raw);
      const machine = await loadForUser(ctx, id, "admin");
      const reason = input.reason ?? `Machine ${machine.name} was decommissioned`;
      const actor = actorOf(ctx.viewer);
      return work.run(async (tx) => {
        const now = new Date();
        // First, so that a concurrent decommission waits on the row lock and then finds it done.
        const { count } = await tx.machine.updateMany({ where: { id, decommissionedAt: null }, data: { decommissionedAt: now, announcedOnline: false } });
        if (count === 0) throw decommissioned("decommission", id);
        // Each module releases what it owns, in this unit of work; their workspace events come
        // before the machine's own.
        const tasks = await capabilities.releaseTasks(tx, machine, reason, actor, now);
        const workers = await capabilities.failWorkers(tx, machine, reason, actor, now);
        const services = await capabilities.detachServices(tx, machine, reason);
        await announceMachine(tx, machine);

        const summary = { reason, ...tasks, ...workers, ...services };
        await audit(tx, ctx, { workspaceId: machine.workspaceId, action: "machine.decommission", targetType: "Machine", targetId: id, data: summary });
        return { id, ...summary };
      });
    },
  };
}
