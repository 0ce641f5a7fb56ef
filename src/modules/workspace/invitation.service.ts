// Invitations: the only way into a workspace. An admin invites an email address; nobody becomes a
// member until the person who reads that mailbox, signed in with a confirmed account for it,
// accepts. Inviting never looks the address up, so it answers the same, on the same path, whether
// or not the address has an account (or belongs to a member already: admins do not see members'
// email addresses, so the answer must not tell them).
import { z } from "zod";
import { requireUser } from "../../auth/viewer.js";
import { WorkspaceRole, type InvitationStatus, type Prisma } from "../../generated/prisma/client.js";
import { conflict, forbidden, notFound, parseInput, requireId } from "../../schema/errors.js";
import { audit } from "../shared/audit.js";
import type { MailingDeps } from "../shared/deps.js";
import { isUniqueViolation, lockWorkspace } from "./common.js";
import type { RequestContext } from "../shared/request.js";

/** How long an invitation can be accepted; inviting the address again renews it. */
export const INVITATION_TTL_MS = 7 * 24 * 60 * 60 * 1000;

const inviteInput = z.object({
  workspaceId: z.string(),
  email: z.email("must be an email address").max(254).transform((v) => v.toLowerCase()),
  role: z.enum(WorkspaceRole),
  idempotencyKey: z.string().nullish(),
});

/** What GraphQL shows: a pending invitation past its time is EXPIRED. */
export type InvitationState = InvitationStatus | "EXPIRED";

export const stateOf = (invitation: { status: InvitationStatus; expiresAt: Date }): InvitationState =>
  invitation.status === "PENDING" && invitation.expiresAt <= new Date() ? "EXPIRED" : invitation.status;

/** Rows in a state, for list filters (EXPIRED and PENDING are both stored as PENDING). */
export function stateFilter(state: InvitationState | null | undefined): Prisma.WorkspaceInvitationWhereInput {
  if (!state) return {};
  if (state === "EXPIRED") return { status: "PENDING", expiresAt: { lte: new Date() } };
  if (state === "PENDING") return { status: "PENDING", expiresAt: { gt: new Date() } };
  return { status: state };
}

/** Why an invitation can no longer be answered: CONFLICT with a sentence saying what to do. */
function notOpen(invitation: { status: InvitationStatus; expiresAt: Date }) {
  const state = stateOf(invitation);
  const why: Record<InvitationState, string> = {
    PENDING: "This invitation is still open",
    EXPIRED: `This invitation expired at ${invitation.expiresAt.toISOString()}; ask a workspace admin to invite you again`,
    ACCEPTED: "This invitation was already accepted",
    DECLINED: "This invitation was declined; ask a workspace admin to invite you again",
    REVOKED: "This invitation was revoked by a workspace admin",
  };
  return conflict(why[state], { invitationStatus: state });
}

export function createInvitationService(deps: MailingDeps) {
  const { prisma, work, mailer } = deps;

  /**
   * The invitee's answer, once: the conditional update lets exactly one of two simultaneous answers
   * through. Someone else's invitation is NOT_FOUND, as if it did not exist.
   */
  async function respond(ctx: RequestContext, rawId: string, answer: "ACCEPTED" | "DECLINED") {
    const id = requireId(rawId, "invitation");
    const userId = requireUser(ctx.viewer).userId;
    const email = await ctx.access.sessionEmail();
    const alreadyMember = (workspaceId: string) =>
      conflict(`You are already a member of workspace ${workspaceId}; decline this invitation, or ask an admin to change your role`);
    return work.run(async (tx) => {
      const invitation = await tx.workspaceInvitation.findUnique({ where: { id } });
      if (!invitation || !email || invitation.email !== email) throw notFound("invitation", id);
      const { workspaceId, role } = invitation;
      const now = new Date();
      const taken = await tx.workspaceInvitation.updateMany({
        where: { id, status: "PENDING", expiresAt: { gt: now } },
        data: { status: answer, respondedAt: now },
      });
      if (taken.count === 0) throw notOpen((await tx.workspaceInvitation.findUnique({ where: { id } })) ?? invitation);
      if (answer === "ACCEPTED") {
        if (await tx.workspaceMember.findUnique({ where: { workspaceId_userId: { workspaceId, userId } } })) throw alreadyMember(workspaceId);
        await tx.workspaceMember.create({ data: { workspaceId, userId, role } }).catch((error: unknown) => {
          throw isUniqueViolation(error) ? alreadyMember(workspaceId) : error;
        });
      }
      await audit(tx, ctx, {
        workspaceId,
        action: answer === "ACCEPTED" ? "workspace.invitation.accept" : "workspace.invitation.decline",
        targetType: "WorkspaceInvitation",
        targetId: id,
        data: { role },
      });
      return { id, workspaceId, userId };
    });
  }

  return {
    /**
     * Invites an address (admins; only an owner invites an owner) and mails it. One open invitation
     * per workspace and address: inviting again renews that one (role, inviter, expiry) and mails again.
     */
    async invite(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(inviteInput, raw);
      const workspaceId = requireId(input.workspaceId, "workspace");
      const grant = await ctx.access.require(workspaceId, "admin");
      if (input.role === "OWNER" && grant.role !== "OWNER") throw forbidden("Only an owner can invite an owner", "workspace:owner");
      const expiresAt = new Date(Date.now() + INVITATION_TTL_MS);
      const request = { workspaceId, email: input.email, role: input.role };
      const { id, replayed } = await work.create({ viewer: ctx.viewer, operation: "inviteWorkspaceMember", key: input.idempotencyKey, input: request }, async (tx) => {
        // Serializes invitations to the workspace, so two at once for one address make one row.
        if (!(await lockWorkspace(tx, workspaceId))) throw notFound("workspace", workspaceId);
        const open = await tx.workspaceInvitation.findFirst({ where: { workspaceId, email: input.email, status: "PENDING" }, select: { id: true } });
        const data = { role: input.role, invitedById: grant.viewer.userId, expiresAt };
        const invitation = open
          ? await tx.workspaceInvitation.update({ where: { id: open.id }, data })
          : await tx.workspaceInvitation.create({ data: { workspaceId, email: input.email, ...data } });
        await audit(tx, ctx, {
          workspaceId,
          action: "workspace.invitation.create",
          targetType: "WorkspaceInvitation",
          targetId: invitation.id,
          data: { email: input.email, role: input.role, renewed: open !== null },
        });
        return invitation;
      });
      if (!replayed) {
        const [workspace, inviter] = await Promise.all([
          prisma.workspace.findUniqueOrThrow({ where: { id: workspaceId }, select: { name: true } }),
          prisma.user.findUniqueOrThrow({ where: { id: grant.viewer.userId }, select: { username: true } }),
        ]);
        await mailer.send({
          to: input.email,
          subject: "You are invited to a Spindle workspace",
          body:
            `${inviter.username} invited ${input.email} to the Spindle workspace "${workspace.name}" as ${input.role.toLowerCase()}. ` +
            `Sign in with this address (or sign up with it first) to see the invitation under myInvitations, then accept it ` +
            `(acceptWorkspaceInvitation, id ${id}) or decline it. It expires at ${expiresAt.toISOString()}. ` +
            "If you did not expect it, ignore this message: nobody joins a workspace without accepting.",
        });
      }
      return { id };
    },

    /** Admins withdraw an open invitation (an expired one too); a stranger gets NOT_FOUND. */
    async revoke(ctx: RequestContext, rawId: string): Promise<{ id: string }> {
      const id = requireId(rawId, "invitation");
      const found = await prisma.workspaceInvitation.findUnique({ where: { id }, select: { workspaceId: true } });
      if (!found) throw notFound("invitation", id);
      const { workspaceId } = found;
      await ctx.access.require(workspaceId, "admin", { type: "invitation", id });
      await work.run(async (tx) => {
        const taken = await tx.workspaceInvitation.updateMany({ where: { id, status: "PENDING" }, data: { status: "REVOKED", respondedAt: new Date() } });
        if (taken.count === 0) throw notOpen(await tx.workspaceInvitation.findUniqueOrThrow({ where: { id } }));
        await audit(tx, ctx, { workspaceId, action: "workspace.invitation.revoke", targetType: "WorkspaceInvitation", targetId: id });
      });
      return { id };
    },

    /** The invitee joins with the invited role. */
    accept: (ctx: RequestContext, id: string) => respond(ctx, id, "ACCEPTED"),
    decline: (ctx: RequestContext, id: string) => respond(ctx, id, "DECLINED"),

    /** The viewer's open invitations: addressed to their confirmed email, pending, not expired. */
    async mine(ctx: RequestContext): Promise<Prisma.WorkspaceInvitationWhereInput> {
      const email = await ctx.access.sessionEmail();
      return email ? { email, ...stateFilter("PENDING") } : { id: { in: [] } };
    },

    /**
     * Who sees an invitation: the workspace's admins, and its invitee, who is not a member yet and
     * so sees the workspace only through it (its id and name: InvitedWorkspace).
     */
    async maySee(ctx: RequestContext, invitation: { workspaceId: string; email: string }): Promise<boolean> {
      const role = await ctx.access.roleIn(invitation.workspaceId);
      if (role === "OWNER" || role === "ADMIN") return true;
      return invitation.email === (await ctx.access.sessionEmail());
    },

    /** The workspace's admins list its invitations; others get FORBIDDEN naming the role. */
    async mayList(ctx: RequestContext, workspaceId: string): Promise<true> {
      await ctx.access.requireToRead(workspaceId, "admin");
      return true;
    },
  };
}

export type InvitationService = ReturnType<typeof createInvitationService>;
