// Presence: a machine's heartbeat (its figures, the leases of the work it holds, its coming back
// online), the periodic sweep that announces a silent machine offline, and who is connected.
import { z } from "zod";
import { AppError, notFound, parseInput } from "../../schema/errors.js";
import { id, number } from "../../schema/validation.js";
import type { Prisma } from "../../generated/prisma/client.js";
import type { DomainDeps } from "../shared/deps.js";
import { noteEvent, noteEvents, noteStatus } from "../shared/live.js";
import type { RequestContext } from "../shared/request.js";
import { capabilitiesSchema, hardwareSchema, type MachineKit } from "./machine-common.js";
import { unaudited } from "../shared/audit.js";

const percent = number(0, 100);

const heartbeatInput = z.object({
  machineId: id.nullish(),
  cpuPercent: percent.nullish(),
  memoryPercent: percent.nullish(),
  diskPercent: percent.nullish(),
  capabilities: capabilitiesSchema.nullish(),
  hardware: hardwareSchema.nullish(),
});

export interface PresenceCapabilities {
  /** The task module's statement renewing the leases of the tasks the machine holds (RETURNING "id"). */
  leaseRenewal(machineId: string, leaseSeconds: number): Prisma.Sql;
}

export function createPresence(deps: DomainDeps, kit: MachineKit, capabilities: PresenceCapabilities) {
  const { prisma, config, work, log } = deps;
  const { targetMachine, decommissioned, capacityAdded, offlineCutoff } = kit;

  const offlineAfterSeconds = () => config.domain.machineOfflineAfterSeconds;
  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<unknown> | undefined;

  const presence = {
    /** Machines of every workspace heard from within the offline window (api-web's public worker health count). */
    connectedCount(): Promise<number> {
      return prisma.machine.count({ where: { decommissionedAt: null, lastHeartbeatAt: { gte: offlineCutoff() } } });
    },

    /**
     * Usage report; renews the lease of every task the machine still holds. A lease that already
     * ran out is not revived: that attempt is lost and the task may be someone else's by now.
     *
     * One statement, in a unit of work: the machine row, updated with its figures while reading
     * what it was (was it announced online, when was it last heard), and the leases of the tasks
     * it holds (that part's text is the task module's, `leaseRenewal`). Only a machine coming back
     * online does more: its status notice and event, and, after commit, the scheduler's look at
     * waiting work.
     */
    async heartbeat(ctx: RequestContext, raw: unknown) {
      const input = parseInput(heartbeatInput, raw);
      let machine: { id: string; workspaceId: string };
      if (ctx.viewer.kind === "machine") {
        // The credential check (cached) already proved which machine this is, in which workspace.
        if (input.machineId != null && input.machineId !== ctx.viewer.machineId) throw notFound("machine", input.machineId);
        machine = { id: ctx.viewer.machineId, workspaceId: ctx.viewer.workspaceId };
      } else {
        machine = await targetMachine(ctx, input.machineId, "write", "input.machineId");
      }
      const leaseSeconds = config.domain.taskLeaseSeconds;
      const beat = await work.run(async (tx) => {
        unaudited(tx, "telemetry");
        // Timestamps are stored as UTC wall time (timestamp without time zone), hence AT TIME ZONE.
        // One statement: the machine row, updated with its figures (and marked announced online)
        // while reading what it was, and the leases (a decommissioned or unknown machine holds no
        // task, so none is renewed).
        const [before] = await tx.$queryRaw<{ lastHeartbeatAt: Date | null; announcedOnline: boolean; leased: string[] }[]>`
          WITH "beat" AS (
            UPDATE "Machine" AS m
               SET "lastHeartbeatAt" = (now() AT TIME ZONE 'UTC'),
                   "cpuPercent" = ${input.cpuPercent ?? null}::double precision,
                   "memoryPercent" = ${input.memoryPercent ?? null}::double precision,
                   "diskPercent" = ${input.diskPercent ?? null}::double precision,
                   "capabilities" = COALESCE(${input.capabilities ?? null}::text[], m."capabilities"),
                   "hardware" = COALESCE(${input.hardware ? JSON.stringify(input.hardware) : null}::jsonb, m."hardware"),
                   "announcedOnline" = true,
                   "updatedAt" = (now() AT TIME ZONE 'UTC')
              FROM (SELECT "id", "lastHeartbeatAt", "announcedOnline" FROM "Machine" WHERE "id" = ${machine.id}::uuid FOR UPDATE) AS old
             WHERE m."id" = old."id" AND m."decommissionedAt" IS NULL
            RETURNING old."lastHeartbeatAt", old."announcedOnline"
          ), "leased" AS (${capabilities.leaseRenewal(machine.id, leaseSeconds)})
          SELECT "beat".*, ARRAY(SELECT "id"::text FROM "leased") AS "leased" FROM "beat"`;
        if (!before) return null;
        if (input.capabilities && before.announcedOnline) {
          // New capabilities may make waiting tasks claimable: the machine's assignment stream re-reads.
          noteStatus(tx, "MACHINE", machine.id, machine.workspaceId);
        }
        if (!before.announcedOnline) {
          // Announced online once: the row is locked, so of two replicas' heartbeats only the first
          // reads the flag unset (sweepSilent below clears it when the heartbeats stop).
          noteStatus(tx, "MACHINE", machine.id, machine.workspaceId);
          noteEvent(tx, {
            workspaceId: machine.workspaceId,
            type: "agent.status",
            subjectType: "MACHINE",
            subjectId: machine.id,
            data: { machineId: machine.id, status: "ONLINE" },
          });
        }
        return before;
      });
      if (!beat) {
        const gone = await prisma.machine.findUnique({ where: { id: machine.id }, select: { decommissionedAt: true } });
        throw gone ? decommissioned("record a heartbeat for", machine.id) : notFound("machine", machine.id);
      }
      const cameOnline = !beat.lastHeartbeatAt || beat.lastHeartbeatAt < offlineCutoff();
      if (cameOnline) await capacityAdded(machine.workspaceId);
      return {
        id: machine.id,
        leasedTaskIds: beat.leased,
        leaseSeconds,
        offlineAfterSeconds: offlineAfterSeconds(),
      };
    },

    /**
     * Announces offline every machine that was announced online and has not sent a heartbeat within
     * SPINDLE_MACHINE_OFFLINE_AFTER. The conditional update flips each machine once, so with several
     * replicas sweeping, exactly one announces it; rows another transaction holds are skipped and
     * seen by the next sweep. Returns how many machines went offline.
     */
    async sweepSilent(): Promise<number> {
      return work.run(async (tx) => {
        unaudited(tx, "server");
        const gone = await tx.$queryRaw<{ id: string; workspaceId: string }[]>`
          WITH silent AS (
            SELECT "id" FROM "Machine"
             WHERE "announcedOnline" AND "decommissionedAt" IS NULL
               AND ("lastHeartbeatAt" IS NULL
                    OR "lastHeartbeatAt" < (now() AT TIME ZONE 'UTC') - make_interval(secs => ${offlineAfterSeconds()}::double precision))
             ORDER BY "id"
               FOR UPDATE SKIP LOCKED
          )
          UPDATE "Machine" m SET "announcedOnline" = false
            FROM silent WHERE m."id" = silent."id" AND m."announcedOnline"
          RETURNING m."id", m."workspaceId"`;
        for (const machine of gone) noteStatus(tx, "MACHINE", machine.id, machine.workspaceId);
        noteEvents(
          tx,
          gone.map((m) => ({
            workspaceId: m.workspaceId,
            type: "agent.status" as const,
            subjectType: "MACHINE",
            subjectId: m.id,
            data: { machineId: m.id, status: "OFFLINE" },
          })),
        );
        return gone.length;
      });
    },

    /** Starts the periodic sweep (every 5 s, or half the offline threshold if shorter). */
    startSweep() {
      if (sweepTimer) return;
      const everyMs = Math.max(500, Math.min(5_000, (offlineAfterSeconds() * 1000) / 2));
      sweepTimer = setInterval(() => {
        if (sweeping) return;
        sweeping = presence
          .sweepSilent()
          .catch((error: unknown) => {
            // A deadlock or an outage: the next sweep tries again.
            if (!(error instanceof AppError)) log.warn({ err: error }, "machine presence sweep failed");
          })
          .finally(() => {
            sweeping = undefined;
          });
      }, everyMs);
      sweepTimer.unref();
    },

    /** Stops the sweep, waiting for a running one. */
    async stopSweep() {
      if (sweepTimer) clearInterval(sweepTimer);
      sweepTimer = undefined;
      await sweeping;
    },
  };
  return presence;
}
