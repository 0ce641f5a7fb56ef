// What system administrators do to accounts (api-web /api/admin/developers, api-v1 /admin/users):
// create a confirmed account (with or without an email; optionally straight into a workspace the
// administrator administers), change its names, role or password, reset its two-factor secret.
// Each writes an audit entry; the last administrator cannot be demoted.
import { z } from "zod";
import { hashPassword } from "../../auth/passwords.js";
import type { PrismaClient } from "../../generated/prisma/client.js";
import { conflict, notFound, parseInput, requireId } from "../../schema/errors.js";
import { audit } from "../shared/audit.js";
import type { RequestContext } from "../shared/request.js";
import type { UnitOfWork, WorkTx } from "../shared/unit-of-work.js";

const text = (max: number) => z.string().trim().max(max, `must be at most ${max} characters`).nullish();

const password = z.string().min(10, "must be at least 10 characters").max(256, "must be at most 256 characters");

const createInput = z.object({
  email: z.email("must be an email address").max(254).transform((v) => v.toLowerCase()).nullish(),
  username: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{2,31}$/, "must be 3-32 letters, digits, '_', '.' or '-', starting with a letter or digit")
    .transform((v) => v.toLowerCase()),
  password,
  displayName: text(64),
  gitName: text(128),
  gitEmail: z.email("must be an email address").max(254).nullish(),
  role: z.enum(["ADMIN", "USER"]).default("USER"),
  workspaceId: z.uuid("must be a workspace id").nullish(),
  workspaceRole: z.enum(["ADMIN", "MEMBER", "VIEWER"], "must be ADMIN, MEMBER or VIEWER").default("MEMBER"),
});

const updateInput = z.object({
  id: z.uuid("must be a user id"),
  displayName: text(64),
  gitName: text(128),
  gitEmail: z.email("must be an email address").max(254).nullish(),
  role: z.enum(["ADMIN", "USER"]).nullish(),
  password: password.nullish(),
});

export function createUserAdminService(deps: { prisma: PrismaClient; work: UnitOfWork; endSessionsOf(tx: WorkTx, userId: string, reason: string): Promise<void> }) {
  const { prisma, work } = deps;
  type Who = Pick<RequestContext, "viewer" | "requestId">;

  return {
    async createUser(who: Pick<RequestContext, "viewer" | "requestId" | "access">, raw: unknown) {
      const input = parseInput(createInput, raw);
      if (input.workspaceId) await who.access.require(input.workspaceId, "admin");
      const taken = await prisma.user.findFirst({
        where: { OR: [...(input.email ? [{ email: input.email }] : []), { username: input.username }] },
        select: { email: true },
      });
      if (taken) {
        const field = input.email && taken.email === input.email ? "email" : "username";
        throw conflict(`An account with this ${field} already exists`, { fields: [{ field: `input.${field}`, message: "already taken" }] });
      }
      const passwordHash = await hashPassword(input.password);
      return work.run(async (tx) => {
        const user = await tx.user.create({
          data: {
            email: input.email ?? null,
            username: input.username,
            passwordHash,
            displayName: input.displayName ?? null,
            gitName: input.gitName ?? null,
            gitEmail: input.gitEmail ?? null,
            role: input.role,
            emailVerifiedAt: input.email ? new Date() : null,
            // A new account made for a team starts in it: nobody's consent is skipped, the account is new.
            ...(input.workspaceId ? { defaultWorkspaceId: input.workspaceId, memberships: { create: { workspaceId: input.workspaceId, role: input.workspaceRole } } } : {}),
          },
        });
        await audit(tx, who, { workspaceId: null, action: "user.create", targetType: "User", targetId: user.id, data: { role: input.role } });
        if (input.workspaceId) {
          await audit(tx, who, {
            workspaceId: input.workspaceId,
            action: "member.add",
            targetType: "User",
            targetId: user.id,
            data: { role: input.workspaceRole, newAccount: true },
          });
        }
        return user;
      });
    },

    async updateUser(who: Who, raw: unknown) {
      const input = parseInput(updateInput, raw);
      const updated = await work.run(async (tx) => {
        const user = await tx.user.findUnique({ where: { id: input.id } });
        if (!user) throw notFound("user", input.id);
        if (input.role === "USER" && user.role === "ADMIN") {
          // Serialize demotions so two admins demoting each other cannot leave none.
          await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('spindle.admins'))`;
          const admins = await tx.user.count({ where: { role: "ADMIN" } });
          if (admins <= 1) throw conflict("This is the last administrator; make another one first", { fields: [{ field: "input.role", message: "last administrator" }] });
        }
        const data = {
          ...(input.displayName !== undefined ? { displayName: input.displayName } : {}),
          ...(input.gitName !== undefined ? { gitName: input.gitName } : {}),
          ...(input.gitEmail !== undefined ? { gitEmail: input.gitEmail } : {}),
          ...(input.role ? { role: input.role } : {}),
          ...(input.password ? { passwordHash: await hashPassword(input.password) } : {}),
        };
        const updated = await tx.user.update({ where: { id: user.id }, data });
        // The audit names what changed, never the password itself.
        await audit(tx, who, { workspaceId: null, action: "user.update", targetType: "User", targetId: user.id, data: Object.keys(data).map((k) => (k === "passwordHash" ? "password" : k)) });
        // The new password and the end of the user's sessions commit together.
        if (input.password) await deps.endSessionsOf(tx, user.id, "password reset by an administrator");
        return updated;
      });
      return updated;
    },

    async resetUserTotp(who: Who, id: string) {
      return work.run(async (tx) => {
        const user = await tx.user.findUnique({ where: { id: requireId(id, "user") } });
        if (!user) throw notFound("user", id);
        const updated = await tx.user.update({
          where: { id },
          data: { totpSecret: null, totpPendingSecret: null, totpLastStep: null },
        });
        await audit(tx, who, { workspaceId: null, action: "user.resetTotp", targetType: "User", targetId: id });
        return updated;
      });
    },
  };
}

export type UserAdminService = ReturnType<typeof createUserAdminService>;
