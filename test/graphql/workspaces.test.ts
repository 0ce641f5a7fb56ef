import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkspaceRole } from "../../src/generated/prisma/client.js";
import {
  ChangeWorkspaceMemberRoleDocument,
  CreateApiKeyDocument,
  CreateWorkspaceDocument,
  DefaultWorkspaceDocument,
  DeleteWorkspaceDocument,
  RemoveWorkspaceMemberDocument,
  RenameWorkspaceDocument,
  SetDefaultWorkspaceDocument,
  WorkspaceByIdDocument,
  WorkspaceByLegacyIdDocument,
  WorkspaceMembersDocument,
  WorkspacesDocument,
  WorkspacesNestedDocument,
} from "../generated/graphql.js";
import { createUser, signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const as = (user: { accessToken: string } | string) => ({ token: typeof user === "string" ? user : user.accessToken });

async function createWorkspace(user: SignedIn, name = unique("ws")) {
  return ok(await server.execute(CreateWorkspaceDocument, { input: { name } }, as(user))).createWorkspace;
}

async function join(workspaceId: string, userId: string, role: WorkspaceRole) {
  await server.db.prisma.workspaceMember.create({ data: { workspaceId, userId, role } });
}

/** A workspace with an owner, an admin, a member and a viewer, all signed in. */
async function team() {
  const [owner, admin, member, viewer] = await Promise.all([1, 2, 3, 4].map(() => signedInUser(server)));
  const workspace = await createWorkspace(owner!);
  await join(workspace.id, admin!.id, "ADMIN");
  await join(workspace.id, member!.id, "MEMBER");
  await join(workspace.id, viewer!.id, "VIEWER");
  return { workspace, owner: owner!, admin: admin!, member: member!, viewer: viewer! };
}

async function auditEntries(workspaceId: string | null, action: string) {
  return server.db.prisma.auditEntry.findMany({ where: { workspaceId, action }, orderBy: { at: "asc" } });
}

describe(`workspace lifecycle (${backend})`, () => {
  it("makes the creator the owner and, for a first workspace, the default; records who did it", async () => {
    const user = await signedInUser(server);
    const first = await createWorkspace(user, "Trading desk");
    expect(first).toMatchObject({ name: "Trading desk", viewerRole: "OWNER" });
    const second = await createWorkspace(user);

    const listed = ok(await server.execute(WorkspacesDocument, { first: 10 }, as(user))).workspaces;
    expect(listed.totalCount).toBe(2);
    expect(listed.edges.map((e) => e.node.id)).toEqual([second.id, first.id]);
    expect(ok(await server.execute(DefaultWorkspaceDocument, {}, as(user))).defaultWorkspace?.id).toBe(first.id);

    const [entry] = await auditEntries(first.id, "workspace.create");
    expect(entry).toMatchObject({ actorType: "USER", actorId: user.id, userId: user.id, targetType: "Workspace", targetId: first.id, data: { name: "Trading desk" } });
    expect(entry!.requestId).toBeTruthy();
  });

  it("renames (admins) and records the old and new name", async () => {
    const { workspace, admin, member } = await team();
    const denied = errorOf(await server.execute(RenameWorkspaceDocument, { input: { id: workspace.id, name: "Nope" } }, as(member)));
    expect(denied).toMatchObject({ code: "FORBIDDEN", extensions: { requiredScope: "workspace:admin" } });

    const renamed = ok(await server.execute(RenameWorkspaceDocument, { input: { id: workspace.id, name: "  Research  " } }, as(admin)));
    expect(renamed.renameWorkspace).toMatchObject({ id: workspace.id, name: "Research", viewerRole: "ADMIN" });
    const [entry] = await auditEntries(workspace.id, "workspace.rename");
    expect(entry).toMatchObject({ actorId: admin.id, data: { from: workspace.name, to: "Research" } });

    const bad = errorOf(await server.execute(RenameWorkspaceDocument, { input: { id: workspace.id, name: " " } }, as(admin)));
    expect(bad.code).toBe("VALIDATION");
    expect(fieldsOf(bad)).toEqual(["input.name"]);
  });

  it("deletes (owner only) with everything in it; the record of the deletion stays", async () => {
    const { workspace, owner, admin } = await team();
    await server.db.prisma.project.create({ data: { workspaceId: workspace.id, key: "WEB", name: "Web" } });
    await server.db.prisma.graphBlock.create({ data: { workspaceId: workspace.id, id: "node_1", type: "code.worker", label: "W" } });

    const denied = errorOf(await server.execute(DeleteWorkspaceDocument, { id: workspace.id }, as(admin)));
    expect(denied).toMatchObject({ code: "FORBIDDEN", extensions: { requiredScope: "workspace:owner" } });

    expect(ok(await server.execute(DeleteWorkspaceDocument, { id: workspace.id }, as(owner))).deleteWorkspace).toBe(workspace.id);
    expect(errorOf(await server.execute(WorkspaceByIdDocument, { id: workspace.id }, as(owner))).code).toBe("NOT_FOUND");
    expect(await server.db.prisma.project.count({ where: { workspaceId: workspace.id } })).toBe(0);
    expect(await server.db.prisma.graphBlock.count({ where: { workspaceId: workspace.id } })).toBe(0);
    expect(await server.db.prisma.workspaceMember.count({ where: { workspaceId: workspace.id } })).toBe(0);
    const me = await server.db.prisma.user.findUniqueOrThrow({ where: { id: owner.id } });
    expect(me.defaultWorkspaceId).toBeNull();
    const [entry] = await server.db.prisma.auditEntry.findMany({ where: { action: "workspace.delete", targetId: workspace.id } });
    expect(entry).toMatchObject({ workspaceId: null, actorId: owner.id, data: { name: workspace.name } });
  });

  it("refuses bad input naming the field, and creates nothing", async () => {
    const user = await signedInUser(server);
    for (const name of ["", "   ", "x".repeat(101)]) {
      const error = errorOf(await server.execute(CreateWorkspaceDocument, { input: { name } }, as(user)));
      expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
      expect(fieldsOf(error)).toEqual(["input.name"]);
    }
    const badKey = errorOf(await server.execute(CreateWorkspaceDocument, { input: { name: "ok", idempotencyKey: "" } }, as(user)));
    expect(fieldsOf(badKey)).toEqual(["input.idempotencyKey"]);
    expect(await server.db.prisma.workspaceMember.count({ where: { userId: user.id } })).toBe(0);
  });
});

describe(`idempotent createWorkspace (${backend})`, () => {
  it("answers a retry with the same key with the same workspace, and a reused key with other input with CONFLICT", async () => {
    const user = await signedInUser(server);
    const key = unique("idem");
    const input = { name: "Once", idempotencyKey: key };
    const [a, b] = await Promise.all([
      server.execute(CreateWorkspaceDocument, { input }, as(user)),
      server.execute(CreateWorkspaceDocument, { input }, as(user)),
    ]);
    expect(ok(a).createWorkspace.id).toBe(ok(b).createWorkspace.id);
    const again = ok(await server.execute(CreateWorkspaceDocument, { input }, as(user))).createWorkspace;
    expect(again.id).toBe(ok(a).createWorkspace.id);

    const other = errorOf(await server.execute(CreateWorkspaceDocument, { input: { name: "Twice", idempotencyKey: key } }, as(user)));
    expect(other).toMatchObject({ code: "CONFLICT", status: 409 });
    expect(fieldsOf(other)).toEqual(["input.idempotencyKey"]);
    expect(await server.db.prisma.workspaceMember.count({ where: { userId: user.id } })).toBe(1);

    // Keys are per caller: another user with the same key gets their own workspace.
    const someoneElse = await signedInUser(server);
    const theirs = ok(await server.execute(CreateWorkspaceDocument, { input }, as(someoneElse))).createWorkspace;
    expect(theirs.id).not.toBe(again.id);
  });
});

describe(`seeing workspaces (${backend})`, () => {
  it("lists only the caller's workspaces; a stranger gets NOT_FOUND, like for an id that does not exist", async () => {
    const { workspace, viewer } = await team();
    const stranger = await signedInUser(server);
    const theirs = await createWorkspace(stranger);

    expect(ok(await server.execute(WorkspacesDocument, {}, as(viewer))).workspaces.edges.map((e) => e.node.id)).toEqual([workspace.id]);
    expect(ok(await server.execute(WorkspaceByIdDocument, { id: workspace.id }, as(viewer))).workspace.viewerRole).toBe("VIEWER");

    const foreign = errorOf(await server.execute(WorkspaceByIdDocument, { id: theirs.id }, as(viewer)));
    const missing = errorOf(await server.execute(WorkspaceByIdDocument, { id: randomUUID() }, as(viewer)));
    const malformed = errorOf(await server.execute(WorkspaceByIdDocument, { id: "not-a-uuid" }, as(viewer)));
    for (const error of [foreign, missing, malformed]) expect(error).toMatchObject({ code: "NOT_FOUND", status: 404 });
    expect(foreign.message.replace(theirs.id, "ID")).toBe(missing.message.replace(/[0-9a-f-]{36}/, "ID"));
  });

  it("workspaceByLegacyId finds a workspace by its integer id; a stranger's and an unknown one answer the same NOT_FOUND", async () => {
    const { workspace, viewer } = await team();
    const stranger = await signedInUser(server);
    const theirs = await createWorkspace(stranger);
    const legacyIdOf = async (id: string) => (await server.db.prisma.workspace.findUniqueOrThrow({ where: { id } })).legacyId;
    const [mine, foreignId] = [await legacyIdOf(workspace.id), await legacyIdOf(theirs.id)];

    expect(ok(await server.execute(WorkspaceByLegacyIdDocument, { legacyId: mine }, as(viewer))).workspaceByLegacyId).toEqual({
      id: workspace.id,
      legacyId: mine,
      name: workspace.name,
    });
    const foreign = errorOf(await server.execute(WorkspaceByLegacyIdDocument, { legacyId: foreignId }, as(viewer)));
    const missing = errorOf(await server.execute(WorkspaceByLegacyIdDocument, { legacyId: 2_000_000_000 }, as(viewer)));
    for (const error of [foreign, missing]) expect(error).toMatchObject({ code: "NOT_FOUND", status: 404 });
    expect(foreign.message).not.toContain(theirs.id);
    expect(foreign.message.replace(String(foreignId), "N")).toBe(missing.message.replace("2000000000", "N"));
  });

  it("a workspace-bound API key sees only its workspace, and cannot create workspaces", async () => {
    const user = await signedInUser(server);
    const a = await createWorkspace(user);
    const b = await createWorkspace(user);
    const { key } = ok(
      await server.execute(CreateApiKeyDocument, { input: { name: "bound", scopes: ["WRITE"], workspaceId: a.id } }, as(user)),
    ).createApiKey;

    expect(ok(await server.execute(WorkspacesDocument, {}, as(key))).workspaces.edges.map((e) => e.node.id)).toEqual([a.id]);
    expect(errorOf(await server.execute(WorkspaceByIdDocument, { id: b.id }, as(key))).code).toBe("NOT_FOUND");
    expect(ok(await server.execute(DefaultWorkspaceDocument, {}, as(key))).defaultWorkspace?.id).toBe(a.id);
    expect(errorOf(await server.execute(CreateWorkspaceDocument, { input: { name: "x" } }, as(key))).code).toBe("FORBIDDEN");
  });

  it("defaultWorkspace: none, the oldest membership, the chosen one, and back after leaving it; with the graph", async () => {
    const user = await signedInUser(server);
    expect(ok(await server.execute(DefaultWorkspaceDocument, {}, as(user))).defaultWorkspace).toBeNull();

    const other = await signedInUser(server);
    const older = await createWorkspace(other);
    const newer = await createWorkspace(other);
    await join(older.id, user.id, "MEMBER");
    await join(newer.id, user.id, "MEMBER");
    const first = ok(await server.execute(DefaultWorkspaceDocument, {}, as(user))).defaultWorkspace;
    expect(first).toMatchObject({ id: older.id, graph: { version: 0, blocks: [], edges: [] } });

    ok(await server.execute(SetDefaultWorkspaceDocument, { id: newer.id }, as(user)));
    expect(ok(await server.execute(DefaultWorkspaceDocument, {}, as(user))).defaultWorkspace?.id).toBe(newer.id);
    const [entry] = await auditEntries(newer.id, "workspace.setDefault");
    expect(entry).toMatchObject({ actorId: user.id, targetType: "User", targetId: user.id });

    ok(await server.execute(RemoveWorkspaceMemberDocument, { input: { workspaceId: newer.id, userId: user.id } }, as(user)));
    expect(ok(await server.execute(DefaultWorkspaceDocument, {}, as(user))).defaultWorkspace?.id).toBe(older.id);

    const stranger = await signedInUser(server);
    expect(errorOf(await server.execute(SetDefaultWorkspaceDocument, { id: older.id }, as(stranger))).code).toBe("NOT_FOUND");
  });
});

describe(`members (${backend})`, () => {
  it("only an owner changes an owner, makes one, or removes one", async () => {
    const { workspace, owner, admin, member } = await team();
    const promote = (by: SignedIn, userId: string, role: WorkspaceRole) =>
      server.execute(ChangeWorkspaceMemberRoleDocument, { input: { workspaceId: workspace.id, userId, role } }, as(by));
    expect(errorOf(await promote(admin, member.id, "OWNER")).code).toBe("FORBIDDEN");
    expect(errorOf(await promote(admin, owner.id, "MEMBER")).code).toBe("FORBIDDEN");
    expect(
      errorOf(await server.execute(RemoveWorkspaceMemberDocument, { input: { workspaceId: workspace.id, userId: owner.id } }, as(admin))).code,
    ).toBe("FORBIDDEN");

    expect(ok(await promote(owner, member.id, "ADMIN")).changeWorkspaceMemberRole.role).toBe("ADMIN");
    // An admin manages other non-owners.
    expect(ok(await promote(admin, member.id, "VIEWER")).changeWorkspaceMemberRole.role).toBe("VIEWER");
    const [entry] = await server.db.prisma.auditEntry.findMany({
      where: { workspaceId: workspace.id, action: "workspace.member.changeRole", actorId: admin.id },
    });
    expect(entry).toMatchObject({ targetId: member.id, data: { from: "ADMIN", to: "VIEWER" } });
  });

  it("never loses its last owner: demoting or removing it, even by itself, is a CONFLICT", async () => {
    const { workspace, owner } = await team();
    const demote = errorOf(
      await server.execute(ChangeWorkspaceMemberRoleDocument, { input: { workspaceId: workspace.id, userId: owner.id, role: "ADMIN" } }, as(owner)),
    );
    expect(demote).toMatchObject({ code: "CONFLICT", status: 409, extensions: { lastOwner: true } });
    expect(demote.message).toMatch(/last owner/);
    const leave = errorOf(await server.execute(RemoveWorkspaceMemberDocument, { input: { workspaceId: workspace.id, userId: owner.id } }, as(owner)));
    expect(leave).toMatchObject({ code: "CONFLICT", extensions: { lastOwner: true } });
    const roles = await server.db.prisma.workspaceMember.findMany({ where: { workspaceId: workspace.id, role: "OWNER" } });
    expect(roles.map((r) => r.userId)).toEqual([owner.id]);
  });

  it("two owners demoting each other at once: exactly one succeeds", async () => {
    const { workspace, owner } = await team();
    const second = await signedInUser(server);
    await join(workspace.id, second.id, "OWNER");
    const [a, b] = await Promise.all([
      server.execute(ChangeWorkspaceMemberRoleDocument, { input: { workspaceId: workspace.id, userId: second.id, role: "MEMBER" } }, as(owner)),
      server.execute(ChangeWorkspaceMemberRoleDocument, { input: { workspaceId: workspace.id, userId: owner.id, role: "MEMBER" } }, as(second)),
    ]);
    const outcomes = [a, b].map((r) => (r.errors?.length ? errorOf(r).code : "ok")).sort();
    // The loser was demoted first, so it is either refused as a non-owner or as the last owner.
    expect(outcomes[1]).toBe("ok");
    expect(["CONFLICT", "FORBIDDEN"]).toContain(outcomes[0]);
    expect(await server.db.prisma.workspaceMember.count({ where: { workspaceId: workspace.id, role: "OWNER" } })).toBe(1);
  });

  it("a removed member gets NOT_FOUND at once and loses its project memberships; members may leave", async () => {
    const { workspace, admin, member, viewer } = await team();
    const project = await server.db.prisma.project.create({
      data: { workspaceId: workspace.id, key: "API", name: "API", members: { create: { userId: member.id, role: "DEVELOPER" } } },
    });
    const removed = ok(await server.execute(RemoveWorkspaceMemberDocument, { input: { workspaceId: workspace.id, userId: member.id } }, as(admin)));
    expect(removed.removeWorkspaceMember).toEqual({ workspaceId: workspace.id, userId: member.id });
    expect(errorOf(await server.execute(WorkspaceByIdDocument, { id: workspace.id }, as(member))).code).toBe("NOT_FOUND");
    expect(await server.db.prisma.projectMember.count({ where: { projectId: project.id } })).toBe(0);
    expect(ok(await server.execute(WorkspacesDocument, {}, as(member))).workspaces.totalCount).toBe(0);
    const [entry] = await auditEntries(workspace.id, "workspace.member.remove");
    expect(entry).toMatchObject({ actorId: admin.id, targetId: member.id, data: { role: "MEMBER" } });

    // A viewer cannot remove others, but can leave.
    const other = await signedInUser(server);
    await join(workspace.id, other.id, "MEMBER");
    expect(
      errorOf(await server.execute(RemoveWorkspaceMemberDocument, { input: { workspaceId: workspace.id, userId: other.id } }, as(viewer))).code,
    ).toBe("FORBIDDEN");
    ok(await server.execute(RemoveWorkspaceMemberDocument, { input: { workspaceId: workspace.id, userId: viewer.id } }, as(viewer)));
    expect((await auditEntries(workspace.id, "workspace.member.leave"))[0]).toMatchObject({ actorId: viewer.id, targetId: viewer.id });

    const gone = errorOf(await server.execute(RemoveWorkspaceMemberDocument, { input: { workspaceId: workspace.id, userId: member.id } }, as(admin)));
    expect(gone.code).toBe("NOT_FOUND");
  });

  it("lists members in join order, filtered by role, with their users", async () => {
    const { workspace, owner, admin, member, viewer } = await team();
    const all = ok(await server.execute(WorkspaceMembersDocument, { id: workspace.id }, as(viewer))).workspace.members;
    expect(all.totalCount).toBe(4);
    expect(all.edges.map((e) => [e.node.user.id, e.node.role])).toEqual([
      [owner.id, "OWNER"],
      [admin.id, "ADMIN"],
      [member.id, "MEMBER"],
      [viewer.id, "VIEWER"],
    ]);
    const admins = ok(await server.execute(WorkspaceMembersDocument, { id: workspace.id, role: "ADMIN" }, as(viewer))).workspace.members;
    expect(admins.edges.map((e) => e.node.user.username)).toEqual([admin.username]);

    const page1 = ok(await server.execute(WorkspaceMembersDocument, { id: workspace.id, first: 3 }, as(viewer))).workspace.members;
    expect(page1.pageInfo.hasNextPage).toBe(true);
    const page2 = ok(
      await server.execute(WorkspaceMembersDocument, { id: workspace.id, first: 3, after: page1.pageInfo.endCursor }, as(viewer)),
    ).workspace.members;
    expect([...page1.edges, ...page2.edges].map((e) => e.node.user.id)).toEqual([owner.id, admin.id, member.id, viewer.id]);
    expect(page2.pageInfo.hasNextPage).toBe(false);
  });
});

describe(`statement counts (${backend})`, () => {
  it("workspaces { viewerRole members { user } projects } costs the same for 10 and 100 workspaces", async () => {
    const user = await signedInUser(server);
    const others = await Promise.all(Array.from({ length: 3 }, () => createUser(server)));
    const prisma = server.db.prisma;
    const ids: string[] = [];
    for (let i = 0; i < 105; i++) {
      const ws = await prisma.workspace.create({ data: { name: `ws ${i}` } });
      ids.push(ws.id);
    }
    await prisma.workspaceMember.createMany({
      data: ids.flatMap((workspaceId) => [
        { workspaceId, userId: user.id, role: "OWNER" as const },
        ...others.map((o) => ({ workspaceId, userId: o.id, role: "MEMBER" as const })),
      ]),
    });
    await prisma.project.createMany({ data: ids.flatMap((workspaceId) => [1, 2].map((n) => ({ workspaceId, key: `P${n}`, name: `P${n}` }))) });

    const run = async (n: number) => {
      const before = server.db.statements.count;
      // Inner pages of 10: pages of 100 inside a page of 100 are over the cost limit (README, "Cost").
      const data = ok(await server.execute(WorkspacesNestedDocument, { first: n, members: 10, projects: 10 }, as(user)));
      return { statements: server.db.statements.count - before, data };
    };
    await run(10);
    const small = await run(10);
    const large = await run(100);
    expect(small.data.workspaces.edges).toHaveLength(10);
    expect(large.data.workspaces.edges).toHaveLength(100);
    expect(large.data.workspaces.edges.every((e) => e.node.viewerRole === "OWNER" && e.node.members.edges.length === 4)).toBe(true);
    expect(large.data.workspaces.edges[0]!.node.projects.totalCount).toBe(2);
    expect(large.statements).toBe(small.statements);
  });
});
