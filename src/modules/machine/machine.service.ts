// Machines (Spunto "node", api-web "machine", api-v1 "worker") and their enrollment. A machine holds
// three secrets, each shown once and stored as a sha256: the enrollment token it registered with
// (spe_), its credential (spm_, the bearer it authenticates with) and a recovery secret (spr_, which
// gets it a new credential when the old one is lost). Liveness, draining and the fleet counts are
// derived from timestamps and from what the machine still holds, never stored as a status.
import { z } from "zod";
import {
  displayPrefix,
  ENROLLMENT_TOKEN_PREFIX,
  generateSecret,
  isWellFormedSecret,
  MACHINE_CREDENTIAL_PREFIX,
  MACHINE_RECOVERY_PREFIX,
} from "../../auth/api-key-format.js";
import { sha256 } from "../../auth/secrets.js";
import type { MachineViewer } from "../../auth/viewer.js";
import { isUniqueViolation } from "../../infra/db.js";
import { Prisma, type MachineApproval, type WorkerStatus } from "../../generated/prisma/client.js";
import { conflict, notAuthenticated, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";
import { id, idempotencyKey, int, jsonObject, name, number, tags } from "../../schema/validation.js";
import type { WorkspaceNeed } from "../shared/access.js";
import { actorOf, audit } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { idempotentCreate } from "../shared/idempotency.js";
import { noteLogSourcesFinished, noteStatus, noteEvent, noteEvents, type EventInput } from "../shared/live.js";
import { HELD_TASK_STATUSES } from "../task/task-statuses.js";
import { LIVE_SERVICE_STATUSES, LIVE_WORKER_STATUSES } from "../worker/worker-statuses.js";
import type { RequestContext } from "../shared/request.js";


export const machineStatuses = ["ONLINE", "OFFLINE", "DRAINING", "DRAINED", "DECOMMISSIONED"] as const;
export type MachineStatus = (typeof machineStatuses)[number];
export const enrollmentTokenStatuses = ["ACTIVE", "USED", "EXPIRED", "REVOKED"] as const;
export type EnrollmentTokenStatus = (typeof enrollmentTokenStatuses)[number];


const DAY = 24 * 60 * 60;
const MAX_HARDWARE_BYTES = 16 * 1024;
const MAX_TAGS = 50;

const nameSchema = name(100);
const labelsSchema = tags("label", MAX_TAGS);
const capabilitiesSchema = tags("capability", MAX_TAGS);
const hardwareSchema = jsonObject<Prisma.InputJsonObject>(MAX_HARDWARE_BYTES);
const externalIdSchema = name(200);
const groupSchema = name(100);
const percent = number(0, 100);

const createTokenInput = z.object({
  workspaceId: id,
  name: nameSchema,
  labels: labelsSchema.nullish(),
  expiresInSeconds: int(60, 30 * DAY, "must be 60 seconds to 30 days (2592000 seconds)").nullish(),
  idempotencyKey: idempotencyKey.nullish(),
});

const machineFields = {
  name: nameSchema,
  externalId: externalIdSchema.nullish(),
  capabilities: capabilitiesSchema.nullish(),
  labels: labelsSchema.nullish(),
  hardware: hardwareSchema.nullish(),
};
const registerInput = z.object({ token: z.string(), ...machineFields });
const createMachineInput = z.object({
  workspaceId: id,
  ...machineFields,
  group: groupSchema.nullish(),
  maxAgents: z.int("must be a whole number").min(0, "must be 0 or more").max(10_000, "must be at most 10000").nullish(),
  idempotencyKey: idempotencyKey.nullish(),
});

const heartbeatInput = z.object({
  machineId: id.nullish(),
  cpuPercent: percent.nullish(),
  memoryPercent: percent.nullish(),
  diskPercent: percent.nullish(),
  capabilities: capabilitiesSchema.nullish(),
  hardware: hardwareSchema.nullish(),
});

const updateInput = z.object({
  name: nameSchema.optional(),
  labels: labelsSchema.optional(),
  group: groupSchema.nullish(),
});
const approveInput = z.object({ approved: z.boolean(), group: groupSchema.nullish() });
const decommissionInput = z.object({ reason: name(500).nullish() });

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

export interface IssuedSecrets {
  id: string;
  credential: string;
  recoverySecret: string;
}

/** Null secrets when an idempotent retry replays the first answer: secrets are shown only once. */
export type ReplayableSecrets = IssuedSecrets | { id: string; credential: null; recoverySecret: null };

export function tokenStatusOf(token: { revokedAt: Date | null; usedAt: Date | null; expiresAt: Date }): EnrollmentTokenStatus {
  if (token.revokedAt) return "REVOKED";
  if (token.usedAt) return "USED";
  return token.expiresAt <= new Date() ? "EXPIRED" : "ACTIVE";
}

function externalIdTaken(externalId: string) {
  return conflict(`A machine with externalId "${externalId}" is already registered in this workspace`, {
    fields: [{ field: "input.externalId", message: "already registered in this workspace" }],
  });
}

const newSecrets = () => {
  const credential = generateSecret(MACHINE_CREDENTIAL_PREFIX);
  const recoverySecret = generateSecret(MACHINE_RECOVERY_PREFIX);
  return { credential, recoverySecret };
};

export interface MachineHooks {
  /**
   * A machine can take work it could not before (back online, approved, undrained, schedulable):
   * work that waits for a machine gets placed. Runs after the change commits.
   */
  capacityAdded?: (workspaceId: string) => Promise<void>;
}

export function createMachineService(deps: DomainDeps, hooks: MachineHooks = {}) {
  const { prisma, config } = deps;
  const live = deps.live;

  /**
   * For the live streams: the machine's status stream re-reads it, and the workspace stream gets
   * agent.status with the machine's status as it now is (and `approval` when that changed).
   */
  async function announceMachine(tx: Prisma.TransactionClient, machine: { id: string; workspaceId: string }, extra: Record<string, string> = {}) {
    noteStatus(tx, "MACHINE", machine.id, machine.workspaceId);
    await noteEvent(tx, {
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

  const busyWhere: Prisma.MachineWhereInput[] = [
    { tasks: { some: { status: { in: HELD_TASK_STATUSES } } } },
    { workers: { some: { status: { in: [...LIVE_WORKER_STATUSES] } } } },
  ];

  function statusWhere(status: MachineStatus, cutoff: Date): Prisma.MachineWhereInput {
    switch (status) {
      case "DECOMMISSIONED":
        return { decommissionedAt: { not: null } };
      case "ONLINE":
        return { decommissionedAt: null, drainingSince: null, lastHeartbeatAt: { gte: cutoff } };
      case "OFFLINE":
        return { decommissionedAt: null, drainingSince: null, OR: [{ lastHeartbeatAt: null }, { lastHeartbeatAt: { lt: cutoff } }] };
      case "DRAINING":
        return { decommissionedAt: null, drainingSince: { not: null }, OR: busyWhere };
      case "DRAINED":
        return { decommissionedAt: null, drainingSince: { not: null }, NOT: busyWhere };
    }
  }

  function tokenStatusWhere(status: EnrollmentTokenStatus, now: Date): Prisma.EnrollmentTokenWhereInput {
    switch (status) {
      case "REVOKED":
        return { revokedAt: { not: null } };
      case "USED":
        return { revokedAt: null, usedAt: { not: null } };
      case "EXPIRED":
        return { revokedAt: null, usedAt: null, expiresAt: { lte: now } };
      case "ACTIVE":
        return { revokedAt: null, usedAt: null, expiresAt: { gt: now } };
    }
  }

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

  /** A viewer standing for a machine, so its own registration is audited as the machine's act. */
  const asMachine = (machine: { id: string; workspaceId: string; approval: MachineApproval; credentialHash: string }): MachineViewer => ({
    kind: "machine",
    machineId: machine.id,
    workspaceId: machine.workspaceId,
    approved: machine.approval === "APPROVED",
    scopes: new Set(),
    credentialHash: machine.credentialHash,
  });

  /** Frees the externalId held by a decommissioned machine, refuses one held by a live machine. */
  async function claimExternalId(tx: Prisma.TransactionClient, workspaceId: string, externalId: string | null | undefined) {
    if (!externalId) return;
    const holder = await tx.machine.findUnique({ where: { workspaceId_externalId: { workspaceId, externalId } } });
    if (!holder) return;
    if (!holder.decommissionedAt) throw externalIdTaken(externalId);
    // The unique key (workspaceId, externalId) would otherwise keep a re-installed host from
    // enrolling again; the decommissioned row keeps its name, hardware and history.
    await tx.machine.update({ where: { id: holder.id }, data: { externalId: null } });
  }

  async function createMachineRow(
    tx: Prisma.TransactionClient,
    data: Omit<Prisma.MachineUncheckedCreateInput, "credentialPrefix" | "credentialHash" | "recoveryHash">,
    secrets: { credential: string; recoverySecret: string },
  ) {
    try {
      return await tx.machine.create({
        data: {
          ...data,
          credentialPrefix: displayPrefix(secrets.credential),
          credentialHash: sha256(secrets.credential),
          recoveryHash: sha256(secrets.recoverySecret),
        },
      });
    } catch (error) {
      if (isUniqueViolation(error) && data.externalId) throw externalIdTaken(data.externalId);
      throw error;
    }
  }

  async function describeStatus(tx: Prisma.TransactionClient, id: string): Promise<MachineStatus> {
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

  return {
    statusOf,
    isOnline,

    /** Machines of every workspace heard from within the offline window (api-web's public worker health count). */
    connectedCount(): Promise<number> {
      return prisma.machine.count({ where: { decommissionedAt: null, lastHeartbeatAt: { gte: offlineCutoff() } } });
    },

    /** Where-clause for a list filtered by derived statuses (OR of them). */
    statusFilter(statuses: readonly MachineStatus[]): Prisma.MachineWhereInput {
      const cutoff = offlineCutoff();
      return { OR: statuses.map((status) => statusWhere(status, cutoff)) };
    },

    tokenStatusFilter(statuses: readonly EnrollmentTokenStatus[]): Prisma.EnrollmentTokenWhereInput {
      const now = new Date();
      return { OR: statuses.map((status) => tokenStatusWhere(status, now)) };
    },

    async getEnrollmentToken(ctx: RequestContext, id: string) {
      const token = await prisma.enrollmentToken.findUnique({ where: { id: requireId(id, "enrollment token") } });
      if (!token) throw notFound("enrollment token", id);
      await ctx.access.requireToRead(token.workspaceId, "admin", { type: "enrollment token", id });
      return { id };
    },

    async requireMember(ctx: RequestContext, workspaceId: string) {
      await ctx.access.require(workspaceId, "read");
      return true;
    },

    /** Workspace admins may see enrollment tokens (and which token a machine came from). */
    /** For admin-only fields: the role is checked, so an admin's read-only key may read them. */
    async requireAdmin(ctx: RequestContext, workspaceId: string) {
      await ctx.access.requireToRead(workspaceId, "admin");
      return true;
    },

    async createEnrollmentToken(ctx: RequestContext, raw: unknown): Promise<{ id: string; token: string | null }> {
      const input = parseInput(createTokenInput, raw);
      const workspaceId = requireId(input.workspaceId, "workspace");
      const grant = await ctx.access.require(workspaceId, "admin");
      const token = generateSecret(ENROLLMENT_TOKEN_PREFIX);
      const expiresIn = input.expiresInSeconds ?? DAY;
      const created = await idempotentCreate(prisma, ctx.viewer, "createEnrollmentToken", input.idempotencyKey, input, async (tx) => {
        const row = await tx.enrollmentToken.create({
          data: {
            workspaceId,
            name: input.name,
            prefix: displayPrefix(token),
            tokenHash: sha256(token),
            labels: input.labels ?? [],
            createdById: grant.viewer.userId,
            expiresAt: new Date(Date.now() + expiresIn * 1000),
          },
        });
        await audit(tx, ctx, {
          workspaceId,
          action: "enrollmentToken.create",
          targetType: "EnrollmentToken",
          targetId: row.id,
          data: { name: row.name, labels: row.labels, expiresAt: row.expiresAt.toISOString() },
        });
        return row;
      });
      return { id: created.id, token: created.replayed ? null : token };
    },

    async revokeEnrollmentToken(ctx: RequestContext, id: string) {
      const token = await prisma.enrollmentToken.findUnique({ where: { id: requireId(id, "enrollment token") } });
      if (!token) throw notFound("enrollment token", id);
      await ctx.access.require(token.workspaceId, "admin", { type: "enrollment token", id });
      await prisma.$transaction(async (tx) => {
        const now = new Date();
        const { count } = await tx.enrollmentToken.updateMany({
          where: { id, revokedAt: null, usedAt: null, expiresAt: { gt: now } },
          data: { revokedAt: now },
        });
        if (count === 0) {
          const current = tokenStatusOf(await tx.enrollmentToken.findUniqueOrThrow({ where: { id } }));
          throw conflict(`Cannot revoke enrollment token ${id}: it is ${current}`, { status: current });
        }
        await audit(tx, ctx, { workspaceId: token.workspaceId, action: "enrollmentToken.revoke", targetType: "EnrollmentToken", targetId: id });
      });
      return { id };
    },

    /**
     * Registration with an enrollment token: the token is the credential, and is spent by a
     * conditional update, so of two registrations racing with one token exactly one wins. A failure
     * after that (a taken externalId) rolls back, leaving the token usable.
     */
    async register(ctx: RequestContext, raw: unknown): Promise<IssuedSecrets> {
      const token = (raw as { token?: unknown } | null)?.token;
      if (typeof token !== "string" || !isWellFormedSecret(ENROLLMENT_TOKEN_PREFIX, token)) {
        throw notAuthenticated("The enrollment token is malformed (check that it was copied whole; it starts with spe_)");
      }
      const input = parseInput(registerInput, raw);
      const secrets = newSecrets();
      const machine = await prisma.$transaction(async (tx) => {
        const now = new Date();
        const [spent] = await tx.enrollmentToken.updateManyAndReturn({
          where: { tokenHash: sha256(token), usedAt: null, revokedAt: null, expiresAt: { gt: now } },
          data: { usedAt: now },
          select: { id: true, workspaceId: true, labels: true },
        });
        if (!spent) {
          const found = await tx.enrollmentToken.findUnique({ where: { tokenHash: sha256(token) } });
          const status = found ? tokenStatusOf(found) : null;
          throw notAuthenticated(
            status === "USED"
              ? "The enrollment token has already been used; ask a workspace admin for a new one"
              : status === "REVOKED"
                ? "The enrollment token has been revoked; ask a workspace admin for a new one"
                : status === "EXPIRED"
                  ? "The enrollment token has expired; ask a workspace admin for a new one"
                  : "The enrollment token is not valid",
          );
        }
        await claimExternalId(tx, spent.workspaceId, input.externalId);
        const created = await createMachineRow(
          tx,
          {
            workspaceId: spent.workspaceId,
            name: input.name,
            externalId: input.externalId ?? null,
            capabilities: input.capabilities ?? [],
            labels: [...new Set([...spent.labels, ...(input.labels ?? [])])],
            hardware: input.hardware ?? {},
            // The admin who made the token vouched for whatever registers with it.
            approval: "APPROVED",
          },
          secrets,
        );
        await tx.enrollmentToken.update({ where: { id: spent.id }, data: { machineId: created.id } });
        await audit(tx, { viewer: asMachine(created), requestId: ctx.requestId }, {
          workspaceId: created.workspaceId,
          action: "machine.register",
          targetType: "Machine",
          targetId: created.id,
          data: { enrollmentTokenId: spent.id, name: created.name, externalId: created.externalId },
        });
        return created;
      });
      return { id: machine.id, ...secrets };
    },

    /**
     * A user registers a machine directly (Spunto "register node", api-v1 "register worker"):
     * workspace admins' machines are approved at once, members' wait for an admin (PENDING).
     */
    async create(ctx: RequestContext, raw: unknown): Promise<ReplayableSecrets> {
      const input = parseInput(createMachineInput, raw);
      const workspaceId = requireId(input.workspaceId, "workspace");
      const grant = await ctx.access.require(workspaceId, "write");
      const approval: MachineApproval = grant.role === "OWNER" || grant.role === "ADMIN" ? "APPROVED" : "PENDING";
      const secrets = newSecrets();
      const created = await idempotentCreate(prisma, ctx.viewer, "createMachine", input.idempotencyKey, input, async (tx) => {
        await claimExternalId(tx, workspaceId, input.externalId);
        const machine = await createMachineRow(
          tx,
          {
            workspaceId,
            name: input.name,
            externalId: input.externalId ?? null,
            capabilities: input.capabilities ?? [],
            labels: input.labels ?? [],
            hardware: input.hardware ?? {},
            group: input.group ?? null,
            maxAgents: input.maxAgents ?? null,
            approval,
          },
          secrets,
        );
        await audit(tx, ctx, {
          workspaceId,
          action: "machine.create",
          targetType: "Machine",
          targetId: machine.id,
          data: { name: machine.name, externalId: machine.externalId, approval },
        });
        return machine;
      });
      return created.replayed ? { id: created.id, credential: null, recoverySecret: null } : { id: created.id, ...secrets };
    },

    /**
     * Usage report; renews the lease of every task the machine still holds. A lease that already
     * ran out is not revived: that attempt is lost and the task may be someone else's by now.
     *
     * Two statements in the steady state (the hot path of a fleet): the machine row, updated with
     * its figures while reading what it was (was it announced online, when was it last heard), then
     * the leases of the tasks it holds. Only a machine coming back online does more: the flag flip,
     * its status notice and event, and the scheduler's look at waiting work.
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
      // Timestamps are stored as UTC wall time (timestamp without time zone), hence AT TIME ZONE.
      const [before] = await prisma.$queryRaw<{ lastHeartbeatAt: Date | null; announcedOnline: boolean }[]>`
        UPDATE "Machine" AS m
           SET "lastHeartbeatAt" = (now() AT TIME ZONE 'UTC'),
               "cpuPercent" = ${input.cpuPercent ?? null}::double precision,
               "memoryPercent" = ${input.memoryPercent ?? null}::double precision,
               "diskPercent" = ${input.diskPercent ?? null}::double precision,
               "capabilities" = COALESCE(${input.capabilities ?? null}::text[], m."capabilities"),
               "hardware" = COALESCE(${input.hardware ? JSON.stringify(input.hardware) : null}::jsonb, m."hardware"),
               "updatedAt" = (now() AT TIME ZONE 'UTC')
          FROM (SELECT "id", "lastHeartbeatAt", "announcedOnline" FROM "Machine" WHERE "id" = ${machine.id}::uuid FOR UPDATE) AS old
         WHERE m."id" = old."id" AND m."decommissionedAt" IS NULL
        RETURNING old."lastHeartbeatAt", old."announcedOnline"`;
      if (!before) {
        const gone = await prisma.machine.findUnique({ where: { id: machine.id }, select: { decommissionedAt: true } });
        throw gone ? decommissioned("record a heartbeat for", machine.id) : notFound("machine", machine.id);
      }
      const leased = await prisma.$queryRaw<{ id: string }[]>`
        UPDATE "Task"
           SET "leaseExpiresAt" = (now() AT TIME ZONE 'UTC') + make_interval(secs => ${leaseSeconds}::double precision)
         WHERE "machineId" = ${machine.id}::uuid
           AND "status" IN ('ASSIGNED', 'RUNNING', 'SUSPENDED')
           AND "leaseExpiresAt" > (now() AT TIME ZONE 'UTC')
        RETURNING "id"`;
      if (input.capabilities && before.announcedOnline) {
        // New capabilities may make waiting tasks claimable: the machine's assignment stream re-reads.
        await live.transaction(prisma, async (tx) => noteStatus(tx, "MACHINE", machine.id, machine.workspaceId));
      }
      if (!before.announcedOnline) {
        // Whichever replica flips the flag announces the machine online, once (the sweep in the
        // event module flips it back when the heartbeats stop).
        await live.transaction(prisma, async (tx) => {
          const flipped = await tx.machine.updateMany({ where: { id: machine.id, announcedOnline: false }, data: { announcedOnline: true } });
          if (flipped.count === 0) return;
          noteStatus(tx, "MACHINE", machine.id, machine.workspaceId);
          await noteEvent(tx, {
            workspaceId: machine.workspaceId,
            type: "agent.status",
            subjectType: "MACHINE",
            subjectId: machine.id,
            data: { machineId: machine.id, status: "ONLINE" },
          });
        });
      }
      const cameOnline = !before.lastHeartbeatAt || before.lastHeartbeatAt < offlineCutoff();
      if (cameOnline) await capacityAdded(machine.workspaceId);
      return {
        id: machine.id,
        leasedTaskIds: leased.map((row) => row.id),
        leaseSeconds,
        offlineAfterSeconds: config.domain.machineOfflineAfterSeconds,
      };
    },

    /** A new credential; the old one stops working at once. A machine rotates its own, an admin any. */
    async rotateCredential(ctx: RequestContext, machineId: string | null | undefined) {
      const machine = await targetMachine(ctx, machineId, "admin", "machineId");
      const credential = generateSecret(MACHINE_CREDENTIAL_PREFIX);
      // The machine's assignment stream hears of it and ends: it was opened with the old credential.
      await live.transaction(prisma, async (tx) => {
        const { count } = await tx.machine.updateMany({
          where: { id: machine.id, decommissionedAt: null },
          data: { credentialHash: sha256(credential), credentialPrefix: displayPrefix(credential), credentialRotatedAt: new Date() },
        });
        if (count === 0) throw decommissioned("rotate the credential of", machine.id);
        noteStatus(tx, "MACHINE", machine.id, machine.workspaceId);
        await audit(tx, ctx, { workspaceId: machine.workspaceId, action: "machine.rotateCredential", targetType: "Machine", targetId: machine.id });
      });
      return { id: machine.id, credential };
    },

    /**
     * The recovery secret proves the caller is the machine: it gets a new credential and a new
     * recovery secret (both old ones stop working). An unknown machine and a wrong secret get the
     * same answer, so the endpoint tells nothing about which machines exist.
     */
    async recover(ctx: RequestContext, raw: { machineId?: unknown; externalId?: unknown; recoverySecret?: unknown }): Promise<IssuedSecrets> {
      const refused = () => notAuthenticated("The recovery secret does not match this machine");
      const { machineId, externalId, recoverySecret } = raw;
      if (typeof recoverySecret !== "string" || !isWellFormedSecret(MACHINE_RECOVERY_PREFIX, recoverySecret)) {
        throw notAuthenticated("The recovery secret is malformed (check that it was copied whole; it starts with spr_)");
      }
      if ((machineId == null) === (externalId == null)) {
        throw validationError([{ field: "input.machineId", message: "give the machine's id or its externalId (one of them)" }]);
      }
      // The secret's hash is unique among machines; the id or externalId must name the same one.
      const which = typeof machineId === "string" && z.uuid().safeParse(machineId).success ? { id: machineId } : typeof externalId === "string" ? { externalId } : null;
      if (!which) throw refused();
      const secrets = newSecrets();
      const machine = await live.transaction(prisma, async (tx) => {
        const [found] = await tx.machine.findMany({ where: { ...which, recoveryHash: sha256(recoverySecret) }, take: 1 });
        if (!found) throw refused();
        if (found.decommissionedAt) throw notAuthenticated("This machine has been decommissioned");
        if (found.approval === "REJECTED") throw notAuthenticated("This machine was rejected by a workspace administrator");
        const { count } = await tx.machine.updateMany({
          where: { id: found.id, recoveryHash: sha256(recoverySecret), decommissionedAt: null },
          data: {
            credentialHash: sha256(secrets.credential),
            credentialPrefix: displayPrefix(secrets.credential),
            recoveryHash: sha256(secrets.recoverySecret),
            credentialRotatedAt: new Date(),
          },
        });
        // A concurrent recovery with the same secret spent it first.
        if (count === 0) throw refused();
        noteStatus(tx, "MACHINE", found.id, found.workspaceId);
        await audit(tx, { viewer: asMachine(found), requestId: ctx.requestId }, {
          workspaceId: found.workspaceId,
          action: "machine.recoverCredential",
          targetType: "Machine",
          targetId: found.id,
        });
        return found;
      });
      return { id: machine.id, ...secrets };
    },

    async update(ctx: RequestContext, id: string, raw: unknown) {
      const input = parseInput(updateInput, raw);
      const machine = await loadForUser(ctx, id, "admin");
      await live.transaction(prisma, async (tx) => {
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
      await live.transaction(prisma, async (tx) => {
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
      await live.transaction(prisma, async (tx) => {
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
      await live.transaction(prisma, async (tx) => {
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
      await live.transaction(prisma, async (tx) => {
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
      return live.transaction(prisma, async (tx) => {
        const now = new Date();
        // First, so that a concurrent decommission waits on the row lock and then finds it done.
        const { count } = await tx.machine.updateMany({ where: { id, decommissionedAt: null }, data: { decommissionedAt: now, announcedOnline: false } });
        if (count === 0) throw decommissioned("decommission", id);

        const requeued = await tx.task.updateManyAndReturn({
          where: { machineId: id, status: { in: ["ASSIGNED", "SUSPENDED"] } },
          data: { status: "PENDING", machineId: null, leaseToken: null, leaseExpiresAt: null },
          select: { id: true, attempt: true },
        });
        const failed = await tx.task.updateManyAndReturn({
          where: { machineId: id, status: "RUNNING" },
          data: { status: "FAILED", error: reason, finishedAt: now, leaseToken: null, leaseExpiresAt: null },
          select: { id: true, attempt: true },
        });
        const event = (task: { id: string; attempt: number }, type: string, message: string) => ({
          taskId: task.id,
          workspaceId: machine.workspaceId,
          type,
          message,
          data: { machineId: id, reason },
          attempt: task.attempt,
          actorType: actor.actorType,
          actorId: actor.actorId,
          at: now,
        });
        await tx.taskEvent.createMany({
          data: [
            ...requeued.map((task) => event(task, "task.requeued", `Back in the queue: machine ${machine.name} was decommissioned (${reason})`)),
            ...failed.map((task) => event(task, "task.failed", reason)),
          ],
        });

        // Locked, so that the transitions record the status each worker really left.
        const workers = await tx.$queryRaw<{ id: string; status: WorkerStatus }[]>`
          SELECT "id", "status"::text AS "status" FROM "Worker"
           WHERE "machineId" = ${id}::uuid AND "status" <> 'DESTROYED'
           FOR UPDATE`;
        if (workers.length > 0) {
          await tx.worker.updateMany({
            where: { id: { in: workers.map((w) => w.id) } },
            data: { status: "FAILED", statusReason: reason, machineId: null },
          });
          await tx.workerTransition.createMany({
            data: workers.map((w) => ({
              workerId: w.id,
              from: w.status,
              to: "FAILED" as const,
              action: "machine.decommission",
              reason,
              actorType: actor.actorType,
              actorId: actor.actorId,
              at: now,
            })),
          });
        }

        const failedServices = await tx.service.updateManyAndReturn({
          where: { machineId: id, status: { in: [...LIVE_SERVICE_STATUSES] } },
          data: { status: "FAILED", statusReason: reason, machineId: null },
          select: { id: true, deploymentId: true },
        });
        const detachedServices = await tx.service.updateManyAndReturn({
          where: { machineId: id },
          data: { machineId: null },
          select: { id: true, deploymentId: true },
        });

        // Live streams: every task, worker and service that moved, the machine itself, and the
        // workspace events (requeued tasks are task.updated, failed ones task.failed).
        const ws = machine.workspaceId;
        for (const task of [...requeued, ...failed]) noteStatus(tx, "TASK", task.id, ws);
        for (const worker of workers) noteStatus(tx, "WORKER", worker.id, ws);
        for (const service of [...failedServices, ...detachedServices]) {
          noteStatus(tx, "SERVICE", service.id, ws);
          noteStatus(tx, "DEPLOYMENT", service.deploymentId, ws);
        }
        await noteLogSourcesFinished(tx, failed.map((task) => ({ sourceId: task.id, sourceType: "TASK" as const, workspaceId: ws })));
        const events: EventInput[] = [
          ...requeued.map((task) => ({
            workspaceId: ws,
            type: "task.updated" as const,
            subjectType: "TASK",
            subjectId: task.id,
            data: { taskId: task.id, action: "requeued", status: "PENDING", machineId: id, reason },
          })),
          ...failed.map((task) => ({
            workspaceId: ws,
            type: "task.failed" as const,
            subjectType: "TASK",
            subjectId: task.id,
            data: { taskId: task.id, action: "failed", status: "FAILED", attempt: task.attempt, machineId: id, error: reason },
          })),
          ...workers
            .filter((w) => w.status === "RUNNING")
            .map((w) => ({
              workspaceId: ws,
              type: "worker.offline" as const,
              subjectType: "WORKER",
              subjectId: w.id,
              data: { workerId: w.id, status: "FAILED", from: "RUNNING", reason },
            })),
        ];
        await noteEvents(tx, events);
        await announceMachine(tx, machine);

        const summary = {
          reason,
          requeuedTaskIds: requeued.map((t) => t.id),
          failedTaskIds: failed.map((t) => t.id),
          failedWorkerIds: workers.map((w) => w.id),
          services: failedServices.length + detachedServices.length,
        };
        await audit(tx, ctx, { workspaceId: machine.workspaceId, action: "machine.decommission", targetType: "Machine", targetId: id, data: summary });
        return { id, ...summary };
      });
    },

    /** Fleet counts in one statement. Statuses partition the machines that are not decommissioned. */
    async fleetOverview(ctx: RequestContext, workspaceId: string) {
      await ctx.access.require(requireId(workspaceId, "workspace"), "read");
      const offlineAfter = config.domain.machineOfflineAfterSeconds;
      const [row] = await prisma.$queryRaw<Record<string, number>[]>`
        WITH m AS (
          SELECT "decommissionedAt" IS NOT NULL AS gone,
                 "drainingSince" IS NOT NULL AS draining,
                 "lastHeartbeatAt" >= (now() AT TIME ZONE 'UTC') - make_interval(secs => ${offlineAfter}::double precision) AS fresh,
                 "approval" = 'PENDING' AS pending,
                 EXISTS (SELECT 1 FROM "Task" t WHERE t."machineId" = "Machine"."id" AND t."status" IN ('ASSIGNED', 'RUNNING', 'SUSPENDED'))
                 OR EXISTS (SELECT 1 FROM "Worker" w WHERE w."machineId" = "Machine"."id" AND w."status" IN ('DEPLOYING', 'RUNNING')) AS busy
            FROM "Machine" WHERE "workspaceId" = ${workspaceId}::uuid
        )
        SELECT
          (SELECT count(*) FROM m WHERE NOT gone)::int AS "total",
          (SELECT count(*) FROM m WHERE NOT gone AND NOT draining AND fresh IS TRUE)::int AS "online",
          (SELECT count(*) FROM m WHERE NOT gone AND NOT draining AND fresh IS NOT TRUE)::int AS "offline",
          (SELECT count(*) FROM m WHERE NOT gone AND draining AND busy)::int AS "draining",
          (SELECT count(*) FROM m WHERE NOT gone AND draining AND NOT busy)::int AS "drained",
          (SELECT count(*) FROM m WHERE NOT gone AND pending)::int AS "pendingApproval",
          (SELECT count(*) FROM m WHERE gone)::int AS "decommissioned",
          (SELECT count(*) FROM "Task" WHERE "workspaceId" = ${workspaceId}::uuid AND "status" = 'RUNNING')::int AS "runningTasks",
          (SELECT count(*) FROM "Task" WHERE "workspaceId" = ${workspaceId}::uuid AND "status" = 'PENDING')::int AS "pendingTasks",
          (SELECT count(*) FROM "Worker" WHERE "workspaceId" = ${workspaceId}::uuid AND "status" IN ('DEPLOYING', 'RUNNING'))::int AS "liveWorkers"`;
      return row!;
    },
  };
}

export type MachineService = ReturnType<typeof createMachineService>;
