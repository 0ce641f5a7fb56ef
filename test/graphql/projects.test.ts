import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkspaceRole } from "../../src/generated/prisma/client.js";
import {
  AddProjectMemberDocument,
  ArchiveProjectDocument,
  ChangeProjectMemberRoleDocument,
  CreateProjectDocument,
  CreateWorkspaceDocument,
  DeleteProjectDocument,
  ProjectByIdDocument,
  ProjectByKeyDocument,
  RemoveProjectMemberDocument,
  UnarchiveProjectDocument,
  UpdateProjectDocument,
  WorkspaceProjectsDocument,
  type CreateProjectInput,
} from "../generated/graphql.js";
import { createUser, signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const as = (user: { accessToken: string }) => ({ token: user.accessToken });

async function join(workspaceId: string, userId: string, role: WorkspaceRole) {
  await server.db.prisma.workspaceMember.create({ data: { workspaceId, userId, role } });
}

async function team() {
  const [owner, admin, member, viewer] = await Promise.all([1, 2, 3, 4].map(() => signedInUser(server)));
  const workspace = ok(await server.execute(CreateWorkspaceDocument, { input: { name: unique("ws") } }, as(owner!))).createWorkspace;
  await join(workspace.id, admin!.id, "ADMIN");
  await join(workspace.id, member!.id, "MEMBER");
  await join(workspace.id, viewer!.id, "VIEWER");
  return { workspaceId: workspace.id, owner: owner!, admin: admin!, member: member!, viewer: viewer! };
}

let sharedTeam: ReturnType<typeof team> | undefined;
/** One team for tests that create nothing in it. */
const shared = () => (sharedTeam ??= team());

async function createProject(user: SignedIn, workspaceId: string, extra: Partial<CreateProjectInput> = {}) {
  const input = { workspaceId, key: unique("K").toUpperCase(), name: "Project", ...extra };
  return ok(await server.execute(CreateProjectDocument, { input }, as(user))).createProject;
}

describe(`project lifecycle (${backend})`, () => {
  it("a member creates a project and becomes its maintainer; the key is stored upper-case; who and what are recorded", async () => {
    const { workspaceId, member } = await team();
    const project = await createProject(member, workspaceId, {
      key: " web ",
      name: "Web app",
      description: "The shop",
      repoUrl: "git@github.com:acme/web.git",
      pipeline: { stages: ["plan", "code", "review"], autoMerge: false },
      agentType: "claude-code",
    });
    expect(project).toMatchObject({
      key: "WEB",
      name: "Web app",
      description: "The shop",
      repoUrl: "git@github.com:acme/web.git",
      pipeline: { stages: ["plan", "code", "review"], autoMerge: false },
      agentType: "claude-code",
      archived: false,
      archivedAt: null,
    });
    const read = ok(await server.execute(ProjectByIdDocument, { id: project.id }, as(member))).project;
    expect(read.workspace.id).toBe(workspaceId);
    expect(read.members.edges.map((e) => [e.node.user.id, e.node.role])).toEqual([[member.id, "MAINTAINER"]]);

    const byKey = ok(await server.execute(ProjectByKeyDocument, { workspaceId, key: "web" }, as(member))).projectByKey;
    expect(byKey.id).toBe(project.id);

    const entry = await server.db.prisma.auditEntry.findFirstOrThrow({ where: { workspaceId, action: "project.create" } });
    expect(entry).toMatchObject({ actorType: "USER", actorId: member.id, targetType: "Project", targetId: project.id, data: { key: "WEB", name: "Web app" } });
  });

  it("refuses a key the workspace already uses, in any case, naming input.key; other workspaces may reuse it", async () => {
    const { workspaceId, owner } = await team();
    await createProject(owner, workspaceId, { key: "API" });
    const taken = errorOf(await server.execute(CreateProjectDocument, { input: { workspaceId, key: "api", name: "Again" } }, as(owner)));
    expect(taken).toMatchObject({ code: "CONFLICT", status: 409 });
    expect(fieldsOf(taken)).toEqual(["input.key"]);

    const elsewhere = await team();
    expect((await createProject(elsewhere.owner, elsewhere.workspaceId, { key: "API" })).key).toBe("API");
  });

  it("two creates of one key at once: one project, the other a CONFLICT on input.key", async () => {
    const { workspaceId, owner } = await team();
    const responses = await Promise.all(
      [1, 2, 3].map((n) => server.execute(CreateProjectDocument, { input: { workspaceId, key: "RACE", name: `n${n}` } }, as(owner))),
    );
    const errors = responses.filter((r) => r.errors?.length).map((r) => errorOf(r));
    expect(responses.length - errors.length).toBe(1);
    for (const error of errors) {
      expect(error.code).toBe("CONFLICT");
      expect(fieldsOf(error)).toEqual(["input.key"]);
    }
    expect(await server.db.prisma.project.count({ where: { workspaceId } })).toBe(1);
  });

  it("is idempotent: the same key answers the same project; other input with it is a CONFLICT", async () => {
    const { workspaceId, owner } = await team();
    const input = { workspaceId, key: "IDEM", name: "Once", idempotencyKey: unique("k") };
    const first = ok(await server.execute(CreateProjectDocument, { input }, as(owner))).createProject;
    const again = ok(await server.execute(CreateProjectDocument, { input }, as(owner))).createProject;
    expect(again.id).toBe(first.id);
    const other = errorOf(await server.execute(CreateProjectDocument, { input: { ...input, name: "Twice" } }, as(owner)));
    expect(other.code).toBe("CONFLICT");
    expect(fieldsOf(other)).toEqual(["input.idempotencyKey"]);
    expect(await server.db.prisma.project.count({ where: { workspaceId } })).toBe(1);
  });

  it.each([
    ["a key with spaces", { key: "MY KEY" }, "input.key"],
    ["a key starting with a digit", { key: "1ABC" }, "input.key"],
    ["an over-long key", { key: "A".repeat(21) }, "input.key"],
    ["an empty name", { name: " " }, "input.name"],
    ["a repo URL that is not one", { repoUrl: "not a url" }, "input.repoUrl"],
    ["a file: repo URL", { repoUrl: "file:///etc/passwd" }, "input.repoUrl"],
    ["a pipeline that is an array", { pipeline: [1, 2] }, "input.pipeline"],
    ["a pipeline that is a string", { pipeline: "fast" }, "input.pipeline"],
    ["a pipeline over 64 KiB", { pipeline: { blob: "x".repeat(70_000) } }, "input.pipeline"],
    ["a bad agent type", { agentType: "rm -rf" }, "input.agentType"],
    ["an over-long description", { description: "d".repeat(2001) }, "input.description"],
  ] as [string, Partial<CreateProjectInput>, string][])("refuses %s, naming the field", async (_what, extra, field) => {
    const { workspaceId, owner } = await shared();
    const input = { workspaceId, key: "OK", name: "ok", ...extra };
    const error = errorOf(await server.execute(CreateProjectDocument, { input }, as(owner)));
    expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
    expect(fieldsOf(error)).toEqual([field]);
    expect(await server.db.prisma.project.count({ where: { workspaceId } })).toBe(0);
  });

  it("accepts https, ssh and scp-like repository URLs", async () => {
    const { workspaceId, owner } = await team();
    for (const repoUrl of ["https://github.com/acme/a.git", "ssh://git@example.com:2222/acme/b.git", "git@gitlab.com:acme/c.git"]) {
      expect((await createProject(owner, workspaceId, { repoUrl })).repoUrl).toBe(repoUrl);
    }
  });

  it("viewers cannot create; strangers get NOT_FOUND for the workspace and its projects", async () => {
    const { workspaceId, owner, viewer } = await team();
    const denied = errorOf(await server.execute(CreateProjectDocument, { input: { workspaceId, key: "V", name: "v" } }, as(viewer)));
    expect(denied).toMatchObject({ code: "FORBIDDEN", extensions: { requiredScope: "workspace:member" } });

    const project = await createProject(owner, workspaceId, { key: "SECRET" });
    const stranger = await signedInUser(server);
    for (const response of [
      await server.execute(CreateProjectDocument, { input: { workspaceId, key: "S", name: "s" } }, as(stranger)),
      await server.execute(ProjectByIdDocument, { id: project.id }, as(stranger)),
      await server.execute(ProjectByKeyDocument, { workspaceId, key: "SECRET" }, as(stranger)),
      await server.execute(ProjectByIdDocument, { id: randomUUID() }, as(owner)),
      await server.execute(ProjectByKeyDocument, { workspaceId, key: "NOPE" }, as(owner)),
    ]) {
      expect(errorOf(response).code).toBe("NOT_FOUND");
    }
  });

  it("maintainers and admins update; developers cannot; null clears; omitted fields stay", async () => {
    const { workspaceId, admin, member } = await team();
    const project = await createProject(member, workspaceId, { description: "d", repoUrl: "https://x.test/r.git", agentType: "codex" });
    const developer = await signedInUser(server);
    await join(workspaceId, developer.id, "MEMBER");
    await server.db.prisma.projectMember.create({ data: { projectId: project.id, userId: developer.id, role: "DEVELOPER" } });

    const denied = errorOf(await server.execute(UpdateProjectDocument, { input: { id: project.id, name: "x" } }, as(developer)));
    expect(denied).toMatchObject({ code: "FORBIDDEN", extensions: { requiredScope: "project:maintainer" } });

    const byMaintainer = ok(
      await server.execute(UpdateProjectDocument, { input: { id: project.id, name: "Renamed", description: null, pipeline: { a: 1 } } }, as(member)),
    ).updateProject;
    expect(byMaintainer).toMatchObject({ name: "Renamed", description: null, repoUrl: "https://x.test/r.git", agentType: "codex", pipeline: { a: 1 } });

    const byAdmin = ok(await server.execute(UpdateProjectDocument, { input: { id: project.id, agentType: null } }, as(admin))).updateProject;
    expect(byAdmin).toMatchObject({ name: "Renamed", agentType: null });

    const bad = errorOf(await server.execute(UpdateProjectDocument, { input: { id: project.id, name: null, repoUrl: "nope" } }, as(admin)));
    expect(fieldsOf(bad).sort()).toEqual(["input.name", "input.repoUrl"]);

    const entries = await server.db.prisma.auditEntry.findMany({ where: { workspaceId, action: "project.update" }, orderBy: { at: "asc" } });
    expect(entries.map((e) => [e.actorId, e.data])).toEqual([
      [member.id, { fields: ["name", "description", "pipeline"] }],
      [admin.id, { fields: ["agentType"] }],
    ]);
  });

  it("archive and unarchive (admins): only legal transitions; an archived project cannot be updated", async () => {
    const { workspaceId, admin, member } = await team();
    const project = await createProject(member, workspaceId);
    expect(errorOf(await server.execute(ArchiveProjectDocument, { id: project.id }, as(member)))).toMatchObject({
      code: "FORBIDDEN",
      extensions: { requiredScope: "workspace:admin" },
    });
    const unarchiveActive = errorOf(await server.execute(UnarchiveProjectDocument, { id: project.id }, as(admin)));
    expect(unarchiveActive).toMatchObject({ code: "CONFLICT", extensions: { archived: false } });
    expect(unarchiveActive.message).toMatch(/not archived/);

    const archived = ok(await server.execute(ArchiveProjectDocument, { id: project.id }, as(admin))).archiveProject;
    expect(archived.archived).toBe(true);
    expect(archived.archivedAt).toBeTruthy();
    const twice = errorOf(await server.execute(ArchiveProjectDocument, { id: project.id }, as(admin)));
    expect(twice).toMatchObject({ code: "CONFLICT", extensions: { archived: true } });
    expect(twice.message).toMatch(/already archived/);
    const update = errorOf(await server.execute(UpdateProjectDocument, { input: { id: project.id, name: "x" } }, as(member)));
    expect(update.code).toBe("CONFLICT");
    expect(update.message).toMatch(/archived/);

    expect(ok(await server.execute(UnarchiveProjectDocument, { id: project.id }, as(admin))).unarchiveProject).toMatchObject({
      archived: false,
      archivedAt: null,
    });
    const actions = await server.db.prisma.auditEntry.findMany({ where: { workspaceId, targetId: project.id }, orderBy: { at: "asc" } });
    expect(actions.map((a) => a.action)).toEqual(["project.create", "project.archive", "project.unarchive"]);
  });

  it("lists projects newest first, filtered by archived and search", async () => {
    const { workspaceId, owner, viewer } = await team();
    await createProject(owner, workspaceId, { key: "WEB", name: "Storefront" });
    await createProject(owner, workspaceId, { key: "API", name: "Backend" });
    const old = await createProject(owner, workspaceId, { key: "OLD", name: "Legacy storefront" });
    ok(await server.execute(ArchiveProjectDocument, { id: old.id }, as(owner)));
    const list = async (vars: { archived?: boolean; search?: string }) => {
      const projects = ok(await server.execute(WorkspaceProjectsDocument, { id: workspaceId, ...vars }, as(viewer))).workspace.projects;
      return { total: projects.totalCount, keys: projects.edges.map((e) => e.node.key) };
    };
    expect(await list({})).toEqual({ total: 3, keys: ["OLD", "API", "WEB"] });
    expect(await list({ archived: false })).toEqual({ total: 2, keys: ["API", "WEB"] });
    expect(await list({ archived: true })).toEqual({ total: 1, keys: ["OLD"] });
    expect(await list({ search: "STOREFRONT" })).toEqual({ total: 2, keys: ["OLD", "WEB"] });
    expect(await list({ search: "ap" })).toEqual({ total: 1, keys: ["API"] });
    expect(await list({ search: "store", archived: false })).toEqual({ total: 1, keys: ["WEB"] });
  });

  it("deletes (admins): the project and its members go; a retry is NOT_FOUND", async () => {
    const { workspaceId, admin, member } = await team();
    const project = await createProject(member, workspaceId);
    expect(errorOf(await server.execute(DeleteProjectDocument, { id: project.id }, as(member))).code).toBe("FORBIDDEN");
    expect(ok(await server.execute(DeleteProjectDocument, { id: project.id }, as(admin))).deleteProject).toBe(project.id);
    expect(errorOf(await server.execute(ProjectByIdDocument, { id: project.id }, as(admin))).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(DeleteProjectDocument, { id: project.id }, as(admin))).code).toBe("NOT_FOUND");
    expect(await server.db.prisma.projectMember.count({ where: { projectId: project.id } })).toBe(0);
    const entry = await server.db.prisma.auditEntry.findFirstOrThrow({ where: { workspaceId, action: "project.delete" } });
    expect(entry).toMatchObject({ actorId: admin.id, targetId: project.id, data: { key: project.key } });
  });
});

describe(`project members (${backend})`, () => {
  it("maintainers add workspace members, change their role and remove them; every change is recorded", async () => {
    const { workspaceId, member, viewer } = await team();
    const project = await createProject(member, workspaceId);
    const added = ok(
      await server.execute(AddProjectMemberDocument, { input: { projectId: project.id, userId: viewer.id } }, as(member)),
    ).addProjectMember;
    expect(added).toMatchObject({ role: "DEVELOPER", user: { id: viewer.id }, project: { id: project.id } });

    const again = errorOf(await server.execute(AddProjectMemberDocument, { input: { projectId: project.id, userId: viewer.id } }, as(member)));
    expect(again.code).toBe("CONFLICT");
    expect(fieldsOf(again)).toEqual(["input.userId"]);

    const changed = ok(
      await server.execute(ChangeProjectMemberRoleDocument, { input: { projectId: project.id, userId: viewer.id, role: "VIEWER" } }, as(member)),
    ).changeProjectMemberRole;
    expect(changed.role).toBe("VIEWER");

    ok(await server.execute(RemoveProjectMemberDocument, { input: { projectId: project.id, userId: viewer.id } }, as(member)));
    const gone = errorOf(await server.execute(RemoveProjectMemberDocument, { input: { projectId: project.id, userId: viewer.id } }, as(member)));
    expect(gone.code).toBe("NOT_FOUND");

    const entries = await server.db.prisma.auditEntry.findMany({
      where: { workspaceId, targetId: project.id, action: { startsWith: "project.member." } },
      orderBy: { at: "asc" },
    });
    expect(entries.map((e) => [e.action, e.actorId, e.data])).toEqual([
      ["project.member.add", member.id, { userId: viewer.id, role: "DEVELOPER" }],
      ["project.member.changeRole", member.id, { userId: viewer.id, from: "DEVELOPER", to: "VIEWER" }],
      ["project.member.remove", member.id, { userId: viewer.id }],
    ]);
  });

  it("refuses users outside the workspace (VALIDATION on input.userId) and non-maintainers; anyone may leave", async () => {
    const { workspaceId, owner, member, viewer } = await team();
    const project = await createProject(owner, workspaceId);
    const outsider = await createUser(server);
    for (const userId of [outsider.id, randomUUID(), "nope"]) {
      const error = errorOf(await server.execute(AddProjectMemberDocument, { input: { projectId: project.id, userId } }, as(owner)));
      expect(error.code).toBe("VALIDATION");
      expect(fieldsOf(error)).toEqual(["input.userId"]);
    }
    const denied = errorOf(await server.execute(AddProjectMemberDocument, { input: { projectId: project.id, userId: viewer.id } }, as(member)));
    expect(denied).toMatchObject({ code: "FORBIDDEN", extensions: { requiredScope: "project:maintainer" } });

    ok(await server.execute(AddProjectMemberDocument, { input: { projectId: project.id, userId: viewer.id, role: "VIEWER" } }, as(owner)));
    ok(await server.execute(RemoveProjectMemberDocument, { input: { projectId: project.id, userId: viewer.id } }, as(viewer)));
    const left = await server.db.prisma.auditEntry.findFirstOrThrow({ where: { workspaceId, action: "project.member.leave" } });
    expect(left).toMatchObject({ actorId: viewer.id, data: { userId: viewer.id } });
  });
});

describe(`statement counts (${backend})`, () => {
  it("workspace { projects(first: N) { members { user } } } costs the same for N = 10 and 100", async () => {
    const { workspaceId, owner, member } = await team();
    const prisma = server.db.prisma;
    await prisma.project.createMany({ data: Array.from({ length: 105 }, (_, i) => ({ workspaceId, key: `P${i}`, name: `Project ${i}` })) });
    const projects = await prisma.project.findMany({ where: { workspaceId }, select: { id: true } });
    await prisma.projectMember.createMany({
      data: projects.flatMap((p) => [
        { projectId: p.id, userId: owner.id, role: "MAINTAINER" as const },
        { projectId: p.id, userId: member.id, role: "DEVELOPER" as const },
      ]),
    });
    const run = async (first: number) => {
      const before = server.db.statements.count;
      const data = ok(await server.execute(WorkspaceProjectsDocument, { id: workspaceId, first }, as(owner)));
      return { statements: server.db.statements.count - before, data };
    };
    await run(10);
    const small = await run(10);
    const large = await run(100);
    expect(small.data.workspace.projects.edges).toHaveLength(10);
    expect(large.data.workspace.projects.edges).toHaveLength(100);
    expect(large.data.workspace.projects.totalCount).toBe(105);
    expect(large.data.workspace.projects.edges.every((e) => e.node.members.edges.length === 2)).toBe(true);
    expect(large.statements).toBe(small.statements);
  });
});
