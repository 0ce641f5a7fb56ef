// Personal API keys (`spk_...`): shown once, stored as a hash, scoped, optionally bound to one
// workspace, with expiry and revocation. Only a signed-in user (not another key) manages them.
import { z } from "zod";
import type { PrismaClient } from "../../generated/prisma/client.js";
import { displayPrefix, generateApiKey } from "../../auth/api-key-format.js";
import { sha256 } from "../../auth/secrets.js";
import { MACHINE_ONLY_MESSAGE, type Viewer } from "../../auth/viewer.js";
import { forbidden, notAuthenticated, notFound, parseInput, requireId } from "../../schema/errors.js";
import { unaudited } from "../shared/audit.js";
import { noteAccount } from "../shared/live.js";
import type { RequestContext } from "../shared/request.js";
import type { UnitOfWork } from "../shared/unit-of-work.js";

const createInput = z.object({
  name: z.string().trim().min(1, "give the key a name").max(100, "must be at most 100 characters"),
  scopes: z.array(z.enum(["READ", "WRITE", "ADMIN"])).min(1, "choose at least one scope"),
  workspaceId: z.uuid("must be a workspace id").nullish(),
  expiresAt: z.date().nullish().refine((d) => !d || d > new Date(), "must be in the future"),
});

const isAdminRole = (role: string | null) => role === "ADMIN" || role === "OWNER";

function requireSession(viewer: Viewer) {
  if (viewer.kind === "anonymous") throw notAuthenticated();
  if (viewer.kind === "machine") throw forbidden(MACHINE_ONLY_MESSAGE);
  if (viewer.kind !== "session") {
    throw forbidden("API keys cannot create or revoke API keys; sign in with your password to manage keys", "session");
  }
  return viewer;
}

export function createApiKeyService(deps: { prisma: PrismaClient; work: UnitOfWork }) {
  const { prisma, work } = deps;

  return {
    /** A key bound to a workspace needs the caller to be its member (a stranger's workspace is not found). */
    async create(ctx: Pick<RequestContext, "viewer" | "access">, raw: unknown) {
      const me = requireSession(ctx.viewer);
      const input = parseInput(createInput, raw);
      if (input.scopes.includes("ADMIN") && me.role !== "ADMIN") {
        throw forbidden("Only administrators can create keys with the ADMIN scope", "admin");
      }
      if (input.workspaceId) await ctx.access.require(input.workspaceId, "read");
      const key = generateApiKey();
      const apiKey = await work.run(async (tx) => {
        unaudited(tx, "apiKey");
        const created = await tx.apiKey.create({
          data: {
            userId: me.userId,
            name: input.name,
            prefix: displayPrefix(key),
            keyHash: sha256(key),
            scopes: [...new Set(input.scopes)],
            workspaceId: input.workspaceId ?? null,
            expiresAt: input.expiresAt ?? null,
          },
        });
        noteAccount(tx, "API_KEY_CREATED", me.userId, created.id);
        return created;
      });
      return { apiKey, key };
    },

    /** The owner revokes their key; a workspace admin (Spunto) also any key bound to that workspace. */
    async revoke(ctx: Pick<RequestContext, "viewer" | "access">, id: string) {
      const me = requireSession(ctx.viewer);
      const existing = await prisma.apiKey.findUnique({ where: { id: requireId(id, "API key") } });
      const mayRevoke =
        existing && (existing.userId === me.userId || (existing.workspaceId !== null && isAdminRole(await ctx.access.roleIn(existing.workspaceId))));
      if (!existing || !mayRevoke) throw notFound("API key", id);
      if (existing.revokedAt) return existing;
      const apiKey = await work.run(async (tx) => {
        unaudited(tx, "apiKey");
        const revoked = await tx.apiKey.update({ where: { id }, data: { revokedAt: new Date() } });
        noteAccount(tx, "API_KEY_REVOKED", existing.userId, id);
        return revoked;
      });
      return apiKey;
    },
  };
}

export type ApiKeyService = ReturnType<typeof createApiKeyService>;
