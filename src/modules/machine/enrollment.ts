// Enrollment and credentials. A machine holds three secrets, each shown once and stored as a
// sha256: the enrollment token it registered with (spe_), its credential (spm_, the bearer it
// authenticates with) and a recovery secret (spr_, which gets it a new credential when the old one
// is lost). A machine joins with a token an admin made, or is registered by a user directly.
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
import { machineViewer } from "../../auth/viewer.js";
import type { MachineApproval, Prisma } from "../../generated/prisma/client.js";
import { isUniqueViolation } from "../../infra/db.js";
import { conflict, notAuthenticated, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";
import { id, idempotencyKey, int, name } from "../../schema/validation.js";
import { audit } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { noteStatus } from "../shared/live.js";
import type { RequestContext } from "../shared/request.js";
import type { WorkTx } from "../shared/unit-of-work.js";
import { capabilitiesSchema, groupSchema, hardwareSchema, labelsSchema, nameSchema, type MachineKit } from "./machine-common.js";

export const enrollmentTokenStatuses = ["ACTIVE", "USED", "EXPIRED", "REVOKED"] as const;
export type EnrollmentTokenStatus = (typeof enrollmentTokenStatuses)[number];

const DAY = 24 * 60 * 60;
const externalIdSchema = name(200);

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

export function createEnrollment(deps: DomainDeps, kit: MachineKit) {
  const { prisma, work } = deps;
  const { targetMachine, decommissioned } = kit;

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

  /** Frees the externalId held by a decommissioned machine, refuses one held by a live machine. */
  async function claimExternalId(tx: WorkTx, workspaceId: string, externalId: string | null | undefined) {
    if (!externalId) return;
    const holder = await tx.machine.findUnique({ where: { workspaceId_externalId: { workspaceId, externalId } } });
    if (!holder) return;
    if (!holder.decommissionedAt) throw externalIdTaken(externalId);
    // The unique key (workspaceId, externalId) would otherwise keep a re-installed host from
    // enrolling again; the decommissioned row keeps its name, hardware and history.
    await tx.machine.update({ where: { id: holder.id }, data: { externalId: null } });
  }

  async function createMachineRow(
    tx: WorkTx,
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

  return {
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

    async createEnrollmentToken(ctx: RequestContext, raw: unknown): Promise<{ id: string; token: string | null }> {
      const input = parseInput(createTokenInput, raw);
      const workspaceId = requireId(input.workspaceId, "workspace");
      const grant = await ctx.access.require(workspaceId, "admin");
      const token = generateSecret(ENROLLMENT_TOKEN_PREFIX);
      const expiresIn = input.expiresInSeconds ?? DAY;
      const created = await work.create({ viewer: ctx.viewer, operation: "createEnrollmentToken", key: input.idempotencyKey, input }, async (tx) => {
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
      await work.run(async (tx) => {
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
      const machine = await work.run(async (tx) => {
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
        await audit(tx, { viewer: machineViewer(created), requestId: ctx.requestId }, {
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
      const created = await work.create({ viewer: ctx.viewer, operation: "createMachine", key: input.idempotencyKey, input }, async (tx) => {
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

    /** A new credential; the old one stops working at once. A machine rotates its own, an admin any. */
    async rotateCredential(ctx: RequestContext, machineId: string | null | undefined) {
      const machine = await targetMachine(ctx, machineId, "admin", "machineId");
      const credential = generateSecret(MACHINE_CREDENTIAL_PREFIX);
      // The machine's assignment stream hears of it and ends: it was opened with the old credential.
      await work.run(async (tx) => {
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
      const machine = await work.run(async (tx) => {
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
        await audit(tx, { viewer: machineViewer(found), requestId: ctx.requestId }, {
          workspaceId: found.workspaceId,
          action: "machine.recoverCredential",
          targetType: "Machine",
          targetId: found.id,
        });
        return found;
      });
      return { id: machine.id, ...secrets };
    },
  };
}
