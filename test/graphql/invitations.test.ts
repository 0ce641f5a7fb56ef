// Invitations, the only way into a workspace: an invite answers the same whatever the address (no
// enumeration), nobody joins without accepting (consent), and every way an invitation can end
// (accepted, declined, revoked, expired) is final. Strangers learn nothing; role rules hold.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkspaceRole } from "../../src/generated/prisma/client.js";
import {
  AcceptWorkspaceInvitationDocument,
  CreateApiKeyDocument,
  DeclineWorkspaceInvitationDocument,
  InviteWorkspaceMemberDocument,
  MyInvitationsDocument,
  RevokeWorkspaceInvitationDocument,
  WorkspaceByIdDocument,
  WorkspaceInvitationsDocument,
} from "../generated/graphql.js";
import { addMember, ownedWorkspace, signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const as = (user: { accessToken: string } | string) => ({ token: typeof user === "string" ? user : user.accessToken });

/** A workspace with a signed-in owner, admin and member. */
async function team() {
  const { owner, workspace } = await ownedWorkspace(server);
  const [admin, member] = await Promise.all([signedInUser(server), signedInUser(server)]);
  await addMember(server, workspace.id, admin.id, "ADMIN");
  await addMember(server, workspace.id, member.id, "MEMBER");
  return { workspaceId: workspace.id, owner, admin, member };
}

const invite = (by: SignedIn, workspaceId: string, email: string, role: WorkspaceRole = "MEMBER", idempotencyKey?: string) =>
  server.execute(InviteWorkspaceMemberDocument, { input: { workspaceId, email, role, idempotencyKey } }, as(by));

const accept = (by: SignedIn | string, id: string) => server.execute(AcceptWorkspaceInvitationDocument, { id }, as(by));
const decline = (by: SignedIn, id: string) => server.execute(DeclineWorkspaceInvitationDocument, { id }, as(by));
const revoke = (by: SignedIn, id: string) => server.execute(RevokeWorkspaceInvitationDocument, { id }, as(by));
const mine = async (user: SignedIn) => ok(await server.execute(MyInvitationsDocument, { first: 50 }, as(user))).myInvitations;
const isMember = async (workspaceId: string, userId: string) =>
  (await server.db.prisma.workspaceMember.count({ where: { workspaceId, userId } })) === 1;
const mailsTo = (to: string) => server.db.prisma.emailOutbox.findMany({ where: { to }, orderBy: { createdAt: "asc" } });

describe(`inviting answers the same for every address (${backend})`, () => {
  it("an address with an account, one without and a member's own: identical answers, the same SQL, one mail each, nobody joins", async () => {
    const { workspaceId, admin, member } = await team();
    const known = await signedInUser(server);
    const unknown = `${unique("nobody")}@example.test`;
    // Warm up the path once, so that each measured invite runs with the same caches.
    ok(await invite(admin, workspaceId, `${unique("warm")}@example.test`));

    const answers = [];
    for (const email of [known.email, unknown, member.email]) {
      const before = server.db.statements.count;
      const res = await invite(admin, workspaceId, email);
      answers.push({ res, email, statements: server.db.statements.count - before });
    }
    const shapes = answers.map(({ res, email }) => {
      expect(res.status).toBe(200);
      expect(res.errors).toBeUndefined();
      const { id, email: echoed, expiresAt, createdAt, ...rest } = ok(res).inviteWorkspaceMember;
      expect(echoed).toBe(email);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(new Date(expiresAt).getTime() - new Date(createdAt).getTime()).toBeGreaterThan(6 * 24 * 3600_000);
      return { keys: Object.keys(ok(res).inviteWorkspaceMember), headers: res.headers.get("content-type"), ...rest };
    });
    expect(shapes[1]).toEqual(shapes[0]);
    expect(shapes[2]).toEqual(shapes[0]);
    expect(shapes[0]).toMatchObject({ status: "PENDING", role: "MEMBER", respondedAt: null, workspace: { id: workspaceId } });
    // Same path: not one statement more or less for an address that has an account.
    expect(answers[1]!.statements).toBe(answers[0]!.statements);
    expect(answers[2]!.statements).toBe(answers[0]!.statements);

    expect(await isMember(workspaceId, known.id)).toBe(false);
    const bodies = [];
    for (const { email, res } of answers) {
      const mails = await mailsTo(email);
      expect(mails).toHaveLength(1);
      const invitation = ok(res).inviteWorkspaceMember;
      bodies.push(mails[0]!.body.replace(email, "<email>").replace(invitation.id, "<id>").replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/, "<time>"));
      expect(mails[0]!.subject).toBe("You are invited to a Spindle workspace");
    }
    expect(new Set(bodies).size).toBe(1);
    expect(bodies[0]).toContain(admin.username);
  });

  it("refuses a malformed address naming input.email", async () => {
    const { workspaceId, admin } = await team();
    const error = errorOf(await invite(admin, workspaceId, "not an address"));
    expect(error.code).toBe("VALIDATION");
    expect(fieldsOf(error)).toEqual(["input.email"]);
  });
});

describe(`consent: nobody joins until they accept (${backend})`, () => {
  it("the invitee sees the invitation (with the workspace's name) and joins with the invited role only by accepting, once", async () => {
    const { workspaceId, owner, admin } = await team();
    const invitee = await signedInUser(server);
    // The address as typed by the admin, in another case: addresses compare case-insensitively.
    const invitation = ok(await invite(admin, workspaceId, invitee.email.toUpperCase(), "VIEWER")).inviteWorkspaceMember;
    expect(invitation.email).toBe(invitee.email);

    expect(await isMember(workspaceId, invitee.id)).toBe(false);
    expect(errorOf(await server.execute(WorkspaceByIdDocument, { id: workspaceId }, as(invitee))).code).toBe("NOT_FOUND");
    const name = (await server.db.prisma.workspace.findUniqueOrThrow({ where: { id: workspaceId } })).name;
    const listed = await mine(invitee);
    expect(listed.totalCount).toBe(1);
    expect(listed.edges[0]!.node).toMatchObject({ id: invitation.id, role: "VIEWER", status: "PENDING", workspace: { id: workspaceId, name } });
    // Nobody else sees it among their own.
    expect((await mine(owner)).totalCount).toBe(0);

    const joined = ok(await accept(invitee, invitation.id)).acceptWorkspaceInvitation;
    expect(joined).toMatchObject({ role: "VIEWER", user: { id: invitee.id }, workspace: { id: workspaceId, name, viewerRole: "VIEWER" } });
    expect(ok(await server.execute(WorkspaceByIdDocument, { id: workspaceId }, as(invitee))).workspace.viewerRole).toBe("VIEWER");
    expect((await mine(invitee)).totalCount).toBe(0);

    const again = errorOf(await accept(invitee, invitation.id));
    expect(again).toMatchObject({ code: "CONFLICT", extensions: { invitationStatus: "ACCEPTED" } });
    expect(again.message).toContain("already accepted");

    const audit = await server.db.prisma.auditEntry.findMany({ where: { workspaceId, targetId: invitation.id }, orderBy: { at: "asc" } });
    expect(audit.map((a) => [a.action, a.actorId])).toEqual([
      ["workspace.invitation.create", admin.id],
      ["workspace.invitation.accept", invitee.id],
    ]);
    expect(audit[0]!.data).toMatchObject({ email: invitee.email, role: "VIEWER", renewed: false });
  });

  it("two accepts at once make one membership; the other is a CONFLICT", async () => {
    const { workspaceId, admin } = await team();
    const invitee = await signedInUser(server);
    const { id } = ok(await invite(admin, workspaceId, invitee.email)).inviteWorkspaceMember;
    const answers = await Promise.all(Array.from({ length: 4 }, () => accept(invitee, id)));
    const outcomes = answers.map((r) => (r.errors?.length ? errorOf(r).code : "ok")).sort();
    expect(outcomes).toEqual(["CONFLICT", "CONFLICT", "CONFLICT", "ok"]);
    expect(await isMember(workspaceId, invitee.id)).toBe(true);
  });

  it("declining ends it: no membership, and it can no longer be accepted", async () => {
    const { workspaceId, admin } = await team();
    const invitee = await signedInUser(server);
    const { id } = ok(await invite(admin, workspaceId, invitee.email)).inviteWorkspaceMember;
    expect(ok(await decline(invitee, id)).declineWorkspaceInvitation).toMatchObject({ id, status: "DECLINED" });
    expect((await mine(invitee)).totalCount).toBe(0);
    const late = errorOf(await accept(invitee, id));
    expect(late).toMatchObject({ code: "CONFLICT", extensions: { invitationStatus: "DECLINED" } });
    expect(late.message).toContain("declined");
    expect(errorOf(await decline(invitee, id)).code).toBe("CONFLICT");
    expect(await isMember(workspaceId, invitee.id)).toBe(false);
    expect(await server.db.prisma.auditEntry.count({ where: { action: "workspace.invitation.decline", targetId: id, actorId: invitee.id } })).toBe(1);
  });

  it("a member who accepts an invitation to their own workspace gets a CONFLICT and keeps their role", async () => {
    const { workspaceId, admin, member } = await team();
    const { id } = ok(await invite(admin, workspaceId, member.email, "ADMIN")).inviteWorkspaceMember;
    const error = errorOf(await accept(member, id));
    expect(error.code).toBe("CONFLICT");
    expect(error.message).toContain("already a member");
    const row = await server.db.prisma.workspaceMember.findUniqueOrThrow({ where: { workspaceId_userId: { workspaceId, userId: member.id } } });
    expect(row.role).toBe("MEMBER");
    expect(ok(await decline(member, id)).declineWorkspaceInvitation.status).toBe("DECLINED");
  });
});

describe(`revoking and expiry (${backend})`, () => {
  it("admins revoke an open invitation; the invitee can no longer accept it; revoking twice is a CONFLICT", async () => {
    const { workspaceId, admin, member } = await team();
    const invitee = await signedInUser(server);
    const { id } = ok(await invite(admin, workspaceId, invitee.email)).inviteWorkspaceMember;
    expect(errorOf(await revoke(member, id))).toMatchObject({ code: "FORBIDDEN", extensions: { requiredScope: "workspace:admin" } });
    expect(ok(await revoke(admin, id)).revokeWorkspaceInvitation).toMatchObject({ id, status: "REVOKED" });
    expect((await mine(invitee)).totalCount).toBe(0);
    const late = errorOf(await accept(invitee, id));
    expect(late).toMatchObject({ code: "CONFLICT", extensions: { invitationStatus: "REVOKED" } });
    expect(late.message).toContain("revoked");
    expect(errorOf(await revoke(admin, id)).code).toBe("CONFLICT");
    expect(await isMember(workspaceId, invitee.id)).toBe(false);
    expect(await server.db.prisma.auditEntry.count({ where: { action: "workspace.invitation.revoke", targetId: id, actorId: admin.id } })).toBe(1);
  });

  it("an expired invitation is not listed to the invitee and cannot be accepted; inviting again renews the same one", async () => {
    const { workspaceId, admin } = await team();
    const invitee = await signedInUser(server);
    const first = ok(await invite(admin, workspaceId, invitee.email, "VIEWER")).inviteWorkspaceMember;
    await server.db.prisma.workspaceInvitation.update({ where: { id: first.id }, data: { expiresAt: new Date(Date.now() - 1_000) } });

    expect((await mine(invitee)).totalCount).toBe(0);
    const late = errorOf(await accept(invitee, first.id));
    expect(late).toMatchObject({ code: "CONFLICT", extensions: { invitationStatus: "EXPIRED" } });
    expect(late.message).toContain("expired");
    const expired = ok(await server.execute(WorkspaceInvitationsDocument, { id: workspaceId, status: "EXPIRED" }, as(admin))).workspace.invitations;
    expect(expired.edges.map((e) => [e.node.id, e.node.status])).toEqual([[first.id, "EXPIRED"]]);

    const renewed = ok(await invite(admin, workspaceId, invitee.email, "MEMBER")).inviteWorkspaceMember;
    expect(renewed).toMatchObject({ id: first.id, status: "PENDING", role: "MEMBER" });
    expect(await server.db.prisma.workspaceInvitation.count({ where: { workspaceId, email: invitee.email } })).toBe(1);
    expect(ok(await accept(invitee, first.id)).acceptWorkspaceInvitation.role).toBe("MEMBER");
  });
});

describe(`one open invitation per address (${backend})`, () => {
  it("inviting again (in any case, at once, or retrying with a key) keeps one row; a retry with its key mails once", async () => {
    const { workspaceId, admin } = await team();
    const email = `${unique("twice")}@example.test`;
    const answers = await Promise.all([email, email.toUpperCase(), email, email].map((e) => invite(admin, workspaceId, e)));
    const ids = new Set(answers.map((r) => ok(r).inviteWorkspaceMember.id));
    expect(ids.size).toBe(1);
    expect(await server.db.prisma.workspaceInvitation.count({ where: { workspaceId, email } })).toBe(1);
    const entries = await server.db.prisma.auditEntry.findMany({ where: { workspaceId, action: "workspace.invitation.create" } });
    expect(entries.map((e) => (e.data as { renewed: boolean }).renewed).sort()).toEqual([false, true, true, true]);

    const keyed = `${unique("keyed")}@example.test`;
    const once = ok(await invite(admin, workspaceId, keyed, "VIEWER", "invite-1")).inviteWorkspaceMember;
    const retry = ok(await invite(admin, workspaceId, keyed, "VIEWER", "invite-1")).inviteWorkspaceMember;
    expect(retry).toEqual(once);
    expect(await mailsTo(keyed)).toHaveLength(1);
    expect(errorOf(await invite(admin, workspaceId, keyed, "ADMIN", "invite-1")).code).toBe("CONFLICT");
  });

  it("admins list invitations by state; members cannot", async () => {
    const { workspaceId, owner, admin, member } = await team();
    const a = ok(await invite(admin, workspaceId, `${unique("a")}@example.test`)).inviteWorkspaceMember;
    const b = ok(await invite(owner, workspaceId, `${unique("b")}@example.test`)).inviteWorkspaceMember;
    ok(await revoke(owner, a.id));
    const list = async (status?: "PENDING" | "REVOKED") =>
      ok(await server.execute(WorkspaceInvitationsDocument, { id: workspaceId, status, first: 10 }, as(admin))).workspace.invitations;
    expect((await list()).edges.map((e) => e.node.id)).toEqual([b.id, a.id]);
    expect((await list("PENDING")).edges.map((e) => e.node.id)).toEqual([b.id]);
    expect((await list("REVOKED")).totalCount).toBe(1);
    const refused = errorOf(await server.execute(WorkspaceInvitationsDocument, { id: workspaceId }, as(member)));
    expect(refused).toMatchObject({ code: "FORBIDDEN", extensions: { requiredScope: "workspace:admin" } });
  });
});

describe(`who may do what (${backend})`, () => {
  it("admins invite; only an owner invites an owner; members, viewers and strangers cannot", async () => {
    const { workspaceId, owner, admin, member } = await team();
    const viewer = await signedInUser(server);
    await addMember(server, workspaceId, viewer.id, "VIEWER");
    const stranger = await signedInUser(server);
    const email = `${unique("x")}@example.test`;
    expect(errorOf(await invite(admin, workspaceId, email, "OWNER"))).toMatchObject({ code: "FORBIDDEN", extensions: { requiredScope: "workspace:owner" } });
    expect(errorOf(await invite(member, workspaceId, email))).toMatchObject({ code: "FORBIDDEN", extensions: { requiredScope: "workspace:admin" } });
    expect(errorOf(await invite(viewer, workspaceId, email)).code).toBe("FORBIDDEN");
    expect(errorOf(await invite(stranger, workspaceId, email)).code).toBe("NOT_FOUND");
    expect(await server.db.prisma.workspaceInvitation.count({ where: { workspaceId } })).toBe(0);

    const invitee = await signedInUser(server);
    const { id } = ok(await invite(owner, workspaceId, invitee.email, "OWNER")).inviteWorkspaceMember;
    expect(ok(await accept(invitee, id)).acceptWorkspaceInvitation.role).toBe("OWNER");
  });

  it("someone else's invitation is NOT_FOUND to accept, decline or revoke, even for the inviting admin; API keys cannot answer", async () => {
    const { workspaceId, admin } = await team();
    const invitee = await signedInUser(server);
    const stranger = await signedInUser(server);
    const { id } = ok(await invite(admin, workspaceId, invitee.email)).inviteWorkspaceMember;
    for (const other of [stranger, admin]) {
      expect(errorOf(await accept(other, id)).code).toBe("NOT_FOUND");
      expect(errorOf(await decline(other, id)).code).toBe("NOT_FOUND");
    }
    expect(errorOf(await revoke(stranger, id)).code).toBe("NOT_FOUND");
    expect(errorOf(await revoke(invitee, id)).code).toBe("NOT_FOUND");
    for (const bad of [randomUUID(), "not-an-id"]) expect(errorOf(await accept(invitee, bad)).code).toBe("NOT_FOUND");
    expect((await mine(stranger)).totalCount).toBe(0);

    // Joining is the account holder's own act, in a signed-in session, not something a key does.
    const { createApiKey } = ok(await server.execute(CreateApiKeyDocument, { input: { name: "k", scopes: ["WRITE"] } }, as(invitee)));
    expect(errorOf(await accept(createApiKey.key, id)).code).toBe("FORBIDDEN");
    expect(await isMember(workspaceId, invitee.id)).toBe(false);
    expect(ok(await server.execute(AcceptWorkspaceInvitationDocument, { id }, as(invitee))).acceptWorkspaceInvitation.role).toBe("MEMBER");
  });
});
