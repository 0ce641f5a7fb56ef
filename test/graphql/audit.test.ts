import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AddBlockDocument,
  AuditLogDocument,
  CreateApiKeyDocument,
  CreateProjectDocument,
  CreateWorkspaceDocument,
  RenameWorkspaceDocument,
  type AuditLogFilter,
} from "../generated/graphql.js";
import { signedInUser, unique } from "../helpers/factories.js";
import { backend, errorOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const as = (token: string | { accessToken: string }) => ({ token: typeof token === "string" ? token : token.accessToken });

/** A workspace with some history: created by its owner, a project by a member, a block by the owner's API key. */
async function history() {
  const [owner, admin, member] = await Promise.all([signedInUser(server), signedInUser(server), signedInUser(server)]);
  const workspaceId = ok(await server.execute(CreateWorkspaceDocument, { input: { name: unique("ws") } }, as(owner!))).createWorkspace.id;
  await server.db.prisma.workspaceMember.createMany({
    data: [
      { workspaceId, userId: admin!.id, role: "ADMIN" },
      { workspaceId, userId: member!.id, role: "MEMBER" },
    ],
  });
  const project = ok(await server.execute(CreateProjectDocument, { input: { workspaceId, key: "WEB", name: "Web" } }, as(member!))).createProject;
  const { key, apiKey } = ok(await server.execute(CreateApiKeyDocument, { input: { name: "ci", scopes: ["WRITE"] } }, as(owner!))).createApiKey;
  ok(await server.execute(AddBlockDocument, { input: { workspaceId, id: "node_1", type: "monitor" } }, as(key)));
  ok(await server.execute(RenameWorkspaceDocument, { input: { id: workspaceId, name: "Renamed" } }, as(admin!)));
  return { workspaceId, owner: owner!, admin: admin!, member: member!, projectId: project.id, apiKeyId: apiKey.id };
}

async function log(token: { accessToken: string } | string, workspaceId: string, filter?: AuditLogFilter, first = 20, after?: string) {
  return ok(await server.execute(AuditLogDocument, { workspaceId, filter, first, after }, as(token))).auditLog;
}

describe(`audit log (${backend})`, () => {
  it("shows who did what to which object, newest first, with the request id", async () => {
    const h = await history();
    const entries = (await log(h.admin, h.workspaceId)).edges.map((e) => e.node);
    expect(entries.map((e) => e.action)).toEqual(["workspace.rename", "graph.block.add", "project.create", "workspace.create"]);
    expect(entries[0]).toMatchObject({ actorType: "USER", actorId: h.admin.id, userId: h.admin.id, targetType: "Workspace", targetId: h.workspaceId });
    expect(entries[1]).toMatchObject({ actorType: "API_KEY", actorId: h.apiKeyId, userId: h.owner.id, targetType: "GraphBlock", targetId: "node_1", data: { version: 1, type: "monitor" } });
    expect(entries[2]).toMatchObject({ actorType: "USER", actorId: h.member.id, targetType: "Project", targetId: h.projectId, data: { key: "WEB", name: "Web" } });
    for (const entry of entries) {
      expect(entry.requestId).toBeTruthy();
      expect(new Date(entry.at).getTime()).toBeGreaterThan(0);
    }
    expect(new Set(entries.map((e) => e.requestId)).size).toBe(entries.length);
  });

  it("filters by action, action prefix, actor, user, target and time, and pages with cursors", async () => {
    const h = await history();
    const actions = async (filter: AuditLogFilter) => {
      const page = await log(h.owner, h.workspaceId, filter);
      expect(page.totalCount).toBe(page.edges.length);
      return page.edges.map((e) => e.node.action);
    };
    expect(await actions({ action: "project.create" })).toEqual(["project.create"]);
    expect(await actions({ actionPrefix: "workspace." })).toEqual(["workspace.rename", "workspace.create"]);
    expect(await actions({ actorType: "API_KEY" })).toEqual(["graph.block.add"]);
    expect(await actions({ actorId: h.member.id })).toEqual(["project.create"]);
    expect(await actions({ userId: h.owner.id })).toEqual(["graph.block.add", "workspace.create"]);
    expect(await actions({ targetType: "Workspace", targetId: h.workspaceId })).toEqual(["workspace.rename", "workspace.create"]);
    expect(await actions({ since: new Date(Date.now() + 60_000).toISOString() })).toEqual([]);
    expect(await actions({ until: new Date(Date.now() - 3_600_000).toISOString() })).toEqual([]);
    expect(await actions({ since: new Date(Date.now() - 3_600_000).toISOString(), until: new Date(Date.now() + 60_000).toISOString() })).toHaveLength(4);

    const first = await log(h.owner, h.workspaceId, undefined, 3);
    expect(first.totalCount).toBe(4);
    expect(first.pageInfo.hasNextPage).toBe(true);
    const rest = await log(h.owner, h.workspaceId, undefined, 3, first.pageInfo.endCursor!);
    expect([...first.edges, ...rest.edges].map((e) => e.node.action)).toEqual(["workspace.rename", "graph.block.add", "project.create", "workspace.create"]);
    expect(rest.pageInfo.hasNextPage).toBe(false);

    const both = errorOf(await server.execute(AuditLogDocument, { workspaceId: h.workspaceId, filter: { action: "a", actionPrefix: "b" } }, as(h.owner)));
    expect(both).toMatchObject({ code: "VALIDATION", extensions: { fields: [{ field: "filter.actionPrefix" }] } });
  });

  it("is for admins and owners only; strangers get NOT_FOUND and never see another workspace's entries", async () => {
    const h = await history();
    const other = await history();
    expect(errorOf(await server.execute(AuditLogDocument, { workspaceId: h.workspaceId }, as(h.member)))).toMatchObject({
      code: "FORBIDDEN",
      extensions: { requiredScope: "workspace:admin" },
    });
    expect(errorOf(await server.execute(AuditLogDocument, { workspaceId: h.workspaceId }, as(other.owner))).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(AuditLogDocument, { workspaceId: "nope" }, as(h.owner))).code).toBe("NOT_FOUND");

    const mine = await log(h.owner, h.workspaceId, undefined, 100);
    const theirTargets = new Set([other.workspaceId, other.projectId]);
    expect(mine.edges.some((e) => theirTargets.has(e.node.targetId ?? ""))).toBe(false);

    // Reading is a read: the owner's read-only key may.
    const { key } = ok(await server.execute(CreateApiKeyDocument, { input: { name: "ro", scopes: ["READ"] } }, as(h.owner))).createApiKey;
    expect((await log(key, h.workspaceId)).totalCount).toBe(4);
  });
});

describe(`statement counts (${backend})`, () => {
  it("runs the same number of SQL statements for 10 and 100 audit entries with every field and the total", async () => {
    const owner = await signedInUser(server);
    const workspaceId = ok(await server.execute(CreateWorkspaceDocument, { input: { name: unique("ws") } }, as(owner))).createWorkspace.id;
    // Entries of every kind of actor, each on its own target and request.
    const actorTypes = ["USER", "API_KEY", "MACHINE", "SYSTEM"] as const;
    const start = Date.now() - 3600_000;
    await server.db.prisma.auditEntry.createMany({
      data: Array.from({ length: 110 }, (_, i) => {
        const actorType = actorTypes[i % 4]!;
        return {
          workspaceId,
          actorType,
          actorId: actorType === "SYSTEM" ? null : actorType === "USER" ? owner.id : `actor-${i}`,
          userId: actorType === "USER" || actorType === "API_KEY" ? owner.id : null,
          action: `test.entry.${i % 5}`,
          targetType: "Project",
          targetId: `target-${i}`,
          data: { i },
          requestId: `request-${i}`,
          at: new Date(start + i * 1000),
        };
      }),
    });

    const count = async (first: number) => {
      const before = server.db.statements.count;
      const page = ok(await server.execute(AuditLogDocument, { workspaceId, first }, as(owner))).auditLog;
      const statements = server.db.statements.count - before;
      // The workspace's creation (just now) and the 110 entries (in the past hour), newest first.
      expect(page.totalCount).toBe(111);
      const [created, ...entries] = page.edges.map((e) => e.node);
      expect(created).toMatchObject({ action: "workspace.create", actorType: "USER", actorId: owner.id, targetId: workspaceId });
      expect(entries.map((e) => e.requestId)).toEqual(Array.from({ length: first - 1 }, (_, i) => `request-${109 - i}`));
      entries.forEach((entry, i) => expect(entry).toMatchObject({ actorType: actorTypes[(109 - i) % 4], targetId: `target-${109 - i}`, data: { i: 109 - i } }));
      expect(page.pageInfo.hasNextPage).toBe(true);
      return statements;
    };
    // The first request also checks the token in the database; later ones find it cached.
    await count(10);
    const ten = await count(10);
    const hundred = await count(100);
    expect(hundred).toBe(ten);
  });
});
