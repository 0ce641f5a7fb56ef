// api-web's projects, members and administration as its own client calls them: plain HTTP with a
// bearer token, camelCase JSON, integer developer ids, plain arrays for lists, errors as {"error"}
// with 400/401/403/404/409. Every row of src/rest/api-web/admin.ts is called here, with its error paths.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClaimTasksDocument, CreateApiKeyDocument, CreateMachineDocument, CreateProjectDocument, CreateTaskDocument, RegisterMachineDocument, TaskDetailsDocument } from "../generated/graphql.js";
import { addMember, createUser, ownedWorkspace, signIn, signedInUser, unique } from "../helpers/factories.js";
import { memberOf, restClient } from "../helpers/rest.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const { success, expectStatus } = restClient(() => server);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NO_SUCH_UUID = "00000000-0000-4000-8000-000000000000";

const legacyIdOf = async (userId: string) => (await server.db.prisma.user.findUniqueOrThrow({ where: { id: userId } })).legacyId;

/** A project made over GraphQL by `token`, who becomes its maintainer. */
async function createProject(token: string, workspaceId: string, extra: { key?: string; name?: string } = {}) {
  const key = extra.key ?? unique("P").toUpperCase().slice(0, 12);
  const { createProject: project } = ok(
    await server.execute(CreateProjectDocument, { input: { workspaceId, key, name: extra.name ?? `Project ${key}` } }, { token }),
  );
  return project;
}

/** A machine made over GraphQL by a workspace admin (approved), with its credential. */
async function createMachine(token: string, workspaceId: string) {
  const { createMachine } = ok(
    await server.execute(CreateMachineDocument, { input: { workspaceId, name: unique("machine"), externalId: unique("host") } }, { token }),
  );
  return { id: createMachine.machine.id, credential: createMachine.credential! };
}

function expectDeveloper(developer: any) {
  expect(Object.keys(developer).sort()).toEqual(["displayName", "email", "gitEmail", "gitName", "id", "name", "role", "totpEnabled"]);
  expect(Number.isInteger(developer.id)).toBe(true);
  expect(["admin", "user"]).toContain(developer.role);
}

function expectProject(project: any) {
  expect(Object.keys(project).sort()).toEqual(["agentType", "archived", "createdAt", "description", "id", "key", "name", "pipeline", "repoUrl", "updatedAt"]);
  expect(project.id).toMatch(UUID);
  expect(project.createdAt).toMatch(ISO);
  expect(project.updatedAt).toMatch(ISO);
}

function expectMember(member: any) {
  expect(Object.keys(member).sort()).toEqual(["developer", "developerId", "joinedAt", "projectKey", "role"]);
  expect(["maintainer", "developer", "viewer"]).toContain(member.role);
  expect(member.joinedAt).toMatch(ISO);
  expect(member.developer.id).toBe(member.developerId);
  expectDeveloper(member.developer);
}

function expectToken(token: any, extra: string[] = []) {
  expect(Object.keys(token).sort()).toEqual(
    ["createdAt", "expiresAt", "id", "labels", "machineId", "name", "prefix", "revokedAt", "status", "usedAt", ...extra].sort(),
  );
  expect(token.id).toMatch(UUID);
  expect(["active", "used", "expired", "revoked"]).toContain(token.status);
  expect(token.expiresAt).toMatch(ISO);
  expect(token.createdAt).toMatch(ISO);
}

function expectMachine(machine: any) {
  expect(Object.keys(machine).sort()).toEqual(
    [
      "acceptingWork",
      "approval",
      "capabilities",
      "cpuPercent",
      "createdAt",
      "decommissionedAt",
      "diskPercent",
      "draining",
      "drainingSince",
      "hardware",
      "id",
      "labels",
      "lastHeartbeatAt",
      "machineId",
      "memoryPercent",
      "name",
      "online",
      "schedulable",
      "status",
      "workerTokenId",
    ].sort(),
  );
  expect(machine.id).toMatch(UUID);
  expect(["online", "offline", "draining", "drained", "decommissioned"]).toContain(machine.status);
  expect(machine.createdAt).toMatch(ISO);
}

describe(`api-web projects, members and administration (${backend})`, () => {
  describe("projects", () => {
    it("GET /api/web/projects lists every project of the workspace; GET /api/web/projects/:key answers one, the key in any case", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const developer = await memberOf(server, workspaceId, "MEMBER");
      const first = await createProject(owner.accessToken, workspaceId, { name: "First" });
      const second = await createProject(owner.accessToken, workspaceId, { name: "Second" });

      const list = await success("/api/web/projects", { token: developer.accessToken });
      expect(Array.isArray(list)).toBe(true);
      list.forEach(expectProject);
      expect(list.map((p: any) => p.key).sort()).toEqual([first.key, second.key].sort());
      expect(list.find((p: any) => p.key === first.key)).toMatchObject({ id: first.id, name: "First", pipeline: {}, archived: false, repoUrl: null });

      const one = await success(`/api/web/projects/${second.key.toLowerCase()}`, { token: developer.accessToken });
      expectProject(one);
      expect(one).toMatchObject({ id: second.id, key: second.key, name: "Second", description: null, agentType: null });
    });

    it("answers 401 without a token, 404 for an unknown key and for another workspace's project", async () => {
      const { owner } = await ownedWorkspace(server);
      const other = await ownedWorkspace(server);
      const theirs = await createProject(other.owner.accessToken, other.workspaceId);
      await expectStatus("/api/web/projects", {}, 401);
      await expectStatus("/api/web/projects/ANY", {}, 401);
      await expectStatus("/api/web/projects/NOPE", { token: owner.accessToken }, 404);
      await expectStatus(`/api/web/projects/${theirs.key}`, { token: owner.accessToken }, 404);
    });

    it("PUT /api/web/projects/:projectKey changes the settings for a maintainer; a developer of the project gets 403; bad input is 400 naming the field", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const maintainer = await memberOf(server, workspaceId, "MEMBER");
      const developer = await memberOf(server, workspaceId, "MEMBER");
      const project = await createProject(maintainer.accessToken, workspaceId);
      await success(`/api/web/projects/${project.key}/members`, { method: "POST", token: maintainer.accessToken, body: { developerId: await legacyIdOf(developer.id) } }, 201);

      const settings = {
        name: "Renamed",
        description: "What it is",
        repoUrl: "https://git.example.test/team/repo.git",
        pipeline: { stages: ["build", "test"] },
        agentType: "claude-code",
      };
      const updated = await success(`/api/web/projects/${project.key.toLowerCase()}`, { method: "PUT", token: maintainer.accessToken, body: settings });
      expectProject(updated);
      expect(updated).toMatchObject({ id: project.id, key: project.key, ...settings });
      const cleared = await success(`/api/web/projects/${project.key}`, { method: "PUT", token: owner.accessToken, body: { description: null } });
      expect(cleared).toMatchObject({ name: "Renamed", description: null, repoUrl: settings.repoUrl });

      const body = { name: "Nope" };
      await expectStatus(`/api/web/projects/${project.key}`, { method: "PUT", token: developer.accessToken, body }, 403, "maintainer");
      await expectStatus(`/api/web/projects/${project.key}`, { method: "PUT", body }, 401);
      await expectStatus("/api/web/projects/NOPE", { method: "PUT", token: maintainer.accessToken, body }, 404);
      await expectStatus(`/api/web/projects/${project.key}`, { method: "PUT", token: maintainer.accessToken, body: { repoUrl: "not a url" } }, 400, "body.repoUrl");
      await expectStatus(`/api/web/projects/${project.key}`, { method: "PUT", token: maintainer.accessToken, body: { pipeline: "fast" } }, 400, "body.pipeline");
      await expectStatus(`/api/web/projects/${project.key}`, { method: "PUT", token: maintainer.accessToken, body: { name: "" } }, 400, "body.name");
    });
  });

  describe("project members", () => {
    it("a maintainer lists, adds (by integer developerId) and removes members; a co-member's git identity shows, their email and totpEnabled are null; the caller's own are filled", async () => {
      const { workspaceId } = await ownedWorkspace(server);
      const maintainer = await memberOf(server, workspaceId, "MEMBER");
      const developer = await memberOf(server, workspaceId, "MEMBER");
      await server.db.prisma.user.update({ where: { id: maintainer.id }, data: { gitName: "Maint Ainer", gitEmail: "maint@example.test", displayName: "Maint" } });
      await server.db.prisma.user.update({ where: { id: developer.id }, data: { gitName: "Dev Eloper", gitEmail: "dev@example.test" } });
      const project = await createProject(maintainer.accessToken, workspaceId);
      const path = `/api/web/projects/${project.key.toLowerCase()}/members`;
      const developerId = await legacyIdOf(developer.id);

      const added = await success(path, { method: "POST", token: maintainer.accessToken, body: { developerId, role: "Viewer" } }, 201);
      expectMember(added);
      expect(added).toMatchObject({ projectKey: project.key, developerId, role: "viewer" });
      expect(added.developer).toEqual({
        id: developerId,
        name: developer.username,
        displayName: null,
        email: null,
        gitName: "Dev Eloper",
        gitEmail: "dev@example.test",
        role: "user",
        totpEnabled: null,
      });

      const members = await success(path, { token: maintainer.accessToken });
      members.forEach(expectMember);
      expect(members.map((m: any) => [m.developerId, m.role])).toEqual([
        [await legacyIdOf(maintainer.id), "maintainer"],
        [developerId, "viewer"],
      ]);
      expect(members[0].developer).toMatchObject({
        name: maintainer.username,
        displayName: "Maint",
        email: maintainer.email,
        gitName: "Maint Ainer",
        gitEmail: "maint@example.test",
        totpEnabled: false,
      });
      expect(members[1].developer).toMatchObject({ name: developer.username, email: null, gitName: "Dev Eloper", gitEmail: "dev@example.test", totpEnabled: null });

      expect(await success(`${path}?developerId=${developerId}`, { method: "DELETE", token: maintainer.accessToken })).toEqual({ ok: true });
      expect((await success(path, { token: maintainer.accessToken })).map((m: any) => m.developerId)).toEqual([await legacyIdOf(maintainer.id)]);
      await expectStatus(`${path}?developerId=${developerId}`, { method: "DELETE", token: maintainer.accessToken }, 404, `${developerId}`);
    });

    it("a workspace admin who is not in the project manages its members, and sees others' git identity but not their email; a system administrator sees every private field", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const admin = await memberOf(server, workspaceId, "ADMIN");
      const sysadmin = await signIn(server, await createUser(server, { role: "ADMIN" }));
      await addMember(server, workspaceId, sysadmin.id, "ADMIN");
      await server.db.prisma.user.update({ where: { id: owner.id }, data: { gitEmail: "owner@example.test" } });
      const project = await createProject(owner.accessToken, workspaceId);
      const path = `/api/web/projects/${project.key}/members`;
      const added = await success(path, { method: "POST", token: admin.accessToken, body: { developerId: await legacyIdOf(admin.id) } }, 201);
      expect(added).toMatchObject({ role: "developer", developer: { name: admin.username, email: admin.email, totpEnabled: false } });
      const ownerAs = async (token: string) => (await success(path, { token })).find((m: any) => m.developer.name === owner.username).developer;
      expect(await ownerAs(admin.accessToken)).toMatchObject({ email: null, gitEmail: "owner@example.test", totpEnabled: null });
      expect(await ownerAs(sysadmin.accessToken)).toMatchObject({ email: owner.email, gitEmail: "owner@example.test", totpEnabled: false });
    });

    it("a system administrator's API key without the admin scope gets others' private fields (email, totpEnabled) as null, not an error; a co-member's git identity still shows", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const sysadmin = await signIn(server, await createUser(server, { role: "ADMIN" }));
      await addMember(server, workspaceId, sysadmin.id, "ADMIN");
      await server.db.prisma.user.update({ where: { id: owner.id }, data: { gitEmail: "owner@example.test" } });
      const project = await createProject(owner.accessToken, workspaceId);
      const { createApiKey } = ok(await server.execute(CreateApiKeyDocument, { input: { name: "cli", scopes: ["WRITE"] } }, { token: sysadmin.accessToken }));
      const path = `/api/web/projects/${project.key}/members`;
      const [seen] = await success(path, { token: createApiKey.key });
      expect(seen.developer).toMatchObject({ name: owner.username, email: null, gitEmail: "owner@example.test", totpEnabled: null });
      const added = await success(path, { method: "POST", token: createApiKey.key, body: { developerId: await legacyIdOf(sysadmin.id) } }, 201);
      expect(added.developer).toMatchObject({ name: sysadmin.username, totpEnabled: false });
    });

    it("needs the maintainer role (403, the list too), a token (401), a known key (404) and a workspace member's developerId (400)", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const developer = await memberOf(server, workspaceId, "MEMBER");
      const project = await createProject(owner.accessToken, workspaceId);
      const path = `/api/web/projects/${project.key}/members`;
      const developerId = await legacyIdOf(developer.id);
      await success(path, { method: "POST", token: owner.accessToken, body: { developerId } }, 201);

      await expectStatus(path, { token: developer.accessToken }, 403, "maintainer");
      await expectStatus(path, { method: "POST", token: developer.accessToken, body: { developerId } }, 403);
      // Not even to leave: api-web's member routes are the maintainers'.
      await expectStatus(`${path}?developerId=${developerId}`, { method: "DELETE", token: developer.accessToken }, 403);
      await expectStatus(path, {}, 401);
      await expectStatus(path, { method: "POST", body: { developerId } }, 401);
      await expectStatus(`${path}?developerId=1`, { method: "DELETE" }, 401);

      await expectStatus("/api/web/projects/NOPE/members", { token: owner.accessToken }, 404);
      const other = await ownedWorkspace(server);
      const theirs = await createProject(other.owner.accessToken, other.workspaceId);
      await expectStatus(`/api/web/projects/${theirs.key}/members`, { token: owner.accessToken }, 404);

      const stranger = await createUser(server);
      await expectStatus(path, { method: "POST", token: owner.accessToken, body: { developerId: await legacyIdOf(stranger.id) } }, 400, "body.developerId");
      await expectStatus(path, { method: "POST", token: owner.accessToken, body: { developerId: "seven" } }, 400, "body.developerId");
      await expectStatus(path, { method: "POST", token: owner.accessToken, body: {} }, 400, "body.developerId");
      await expectStatus(path, { method: "POST", token: owner.accessToken, body: { developerId, role: "boss" } }, 400, "body.role");
      await expectStatus(path, { method: "POST", token: owner.accessToken, body: { developerId } }, 409);
      await expectStatus(path, { method: "DELETE", token: owner.accessToken }, 400, "query.developerId");
      await expectStatus(`${path}?developerId=abc`, { method: "DELETE", token: owner.accessToken }, 400, "query.developerId");
    });
  });

  describe("admin: developers", () => {
    it("GET /api/admin/developers lists every account with every field, for system administrators only", async () => {
      const sysadmin = await signIn(server, await createUser(server, { role: "ADMIN" }));
      const user = await createUser(server);
      await server.db.prisma.user.update({ where: { id: user.id }, data: { gitName: "Git Name", gitEmail: "git@example.test", displayName: "Shown" } });
      const list = await success("/api/admin/developers", { token: sysadmin.accessToken });
      list.forEach(expectDeveloper);
      expect(list.find((d: any) => d.name === user.username)).toEqual({
        id: await legacyIdOf(user.id),
        name: user.username,
        displayName: "Shown",
        email: user.email,
        gitName: "Git Name",
        gitEmail: "git@example.test",
        role: "user",
        totpEnabled: false,
      });
      expect(list.find((d: any) => d.name === sysadmin.username)).toMatchObject({ role: "admin" });

      const { owner } = await ownedWorkspace(server);
      await expectStatus("/api/admin/developers", { token: owner.accessToken }, 403);
      await expectStatus("/api/admin/developers", {}, 401);
    });

    it("PUT /api/admin/developers/:id/reset-totp turns two-factor sign-in off and answers the developer", async () => {
      const sysadmin = await signIn(server, await createUser(server, { role: "ADMIN" }));
      const user = await createUser(server);
      await server.db.prisma.user.update({ where: { id: user.id }, data: { totpSecret: "JBSWY3DPEHPK3PXP" } });
      const id = await legacyIdOf(user.id);
      const path = `/api/admin/developers/${id}/reset-totp`;

      const { owner } = await ownedWorkspace(server);
      await expectStatus(path, { method: "PUT", token: owner.accessToken }, 403);
      await expectStatus(path, { method: "PUT" }, 401);
      await expectStatus("/api/admin/developers/999999999/reset-totp", { method: "PUT", token: sysadmin.accessToken }, 404);
      await expectStatus("/api/admin/developers/abc/reset-totp", { method: "PUT", token: sysadmin.accessToken }, 400, "path.id");

      const reset = await success(path, { method: "PUT", token: sysadmin.accessToken });
      expectDeveloper(reset);
      expect(reset).toMatchObject({ id, name: user.username, email: user.email, totpEnabled: false });
      expect((await server.db.prisma.user.findUniqueOrThrow({ where: { id: user.id } })).totpSecret).toBeNull();
    });
  });

  describe("developers: the workspace's list, and accounts made and changed by system administrators", () => {
    const password = "a-good-password-1";
    const developers = (token: string) => success("/api/web/projects/-/developers", { token });
    const byName = (list: any[], name: string) => list.find((d: any) => d.name === name);

    it("GET /api/web/projects/-/developers lists the workspace's members for any member: git identity for all, the email only for system administrators", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const viewer = await memberOf(server, workspaceId, "VIEWER");
      const sysadmin = await memberOf(server, workspaceId, "MEMBER", { systemAdmin: true });
      await server.db.prisma.user.update({ where: { id: owner.id }, data: { gitName: "Owner Git", gitEmail: "owner-git@example.test" } });
      const outsider = await ownedWorkspace(server);

      const list = await developers(viewer.accessToken);
      list.forEach(expectDeveloper);
      expect(list.map((d: any) => d.name).sort()).toEqual([owner.username, viewer.username, sysadmin.username].sort());
      expect(byName(list, owner.username)).toEqual({
        id: await legacyIdOf(owner.id),
        name: owner.username,
        displayName: null,
        email: null,
        gitName: "Owner Git",
        gitEmail: "owner-git@example.test",
        role: "user",
        totpEnabled: null,
      });
      expect(byName(list, sysadmin.username)).toMatchObject({ role: "admin", email: null });
      // The caller's own email is theirs to see.
      expect(byName(list, viewer.username).email).toBe(viewer.email);

      const asAdmin = await developers(sysadmin.accessToken);
      expect(byName(asAdmin, owner.username)).toMatchObject({ email: owner.email, gitEmail: "owner-git@example.test" });
      expect(byName(asAdmin, viewer.username).email).toBe(viewer.email);

      expect((await developers(outsider.owner.accessToken)).map((d: any) => d.name)).toEqual([outsider.owner.username]);
      await expectStatus("/api/web/projects/-/developers", {}, 401);
      await expectStatus("/api/web/projects/-/developers", { token: (await signedInUser(server)).accessToken }, 404);
    });

    it("POST /api/admin/developers makes an account without an email that signs in by name and is a member of the administrator's workspace at once", async () => {
      const { workspaceId } = await ownedWorkspace(server);
      const sysadmin = await memberOf(server, workspaceId, "ADMIN", { systemAdmin: true });
      const name = unique("dev");
      const body = { name, password, role: "developer", gitName: "New Dev", gitEmail: "new-dev@example.test" };
      const created = await success("/api/admin/developers", { method: "POST", token: sysadmin.accessToken, body }, 201);
      expectDeveloper(created);
      expect(created).toEqual({ id: expect.any(Number), name, displayName: null, email: null, gitName: "New Dev", gitEmail: "new-dev@example.test", role: "user", totpEnabled: false });
      expect(created.id).toBe(await legacyIdOf((await server.db.prisma.user.findUniqueOrThrow({ where: { username: name } })).id));

      const tokens = await success("/api/auth/login", { method: "POST", body: { username: name, password } });
      expect(typeof tokens.accessToken).toBe("string");
      expect(byName(await developers(tokens.accessToken), name)).toMatchObject({ id: created.id, gitEmail: "new-dev@example.test" });
      expect(byName(await developers(sysadmin.accessToken), name)).toMatchObject({ id: created.id, role: "user" });

      const project = await createProject(sysadmin.accessToken, workspaceId);
      const member = await success(`/api/web/projects/${project.key}/members`, { method: "POST", token: sysadmin.accessToken, body: { developerId: created.id } }, 201);
      expect(member).toMatchObject({ developerId: created.id, role: "developer", developer: { name } });

      const admin = await success("/api/admin/developers", { method: "POST", token: sysadmin.accessToken, body: { name: unique("adm"), password, role: "Admin" } }, 201);
      expect(admin).toMatchObject({ role: "admin", gitName: null, gitEmail: null, email: null });
    });

    it("POST /api/admin/developers by a system administrator who does not administer their workspace, or is in none, makes an account outside it", async () => {
      const { workspaceId } = await ownedWorkspace(server);
      const plainMember = await memberOf(server, workspaceId, "MEMBER", { systemAdmin: true });
      const name = unique("dev");
      const created = await success("/api/admin/developers", { method: "POST", token: plainMember.accessToken, body: { name, password } }, 201);
      expect(created).toMatchObject({ name, role: "user" });
      expect(byName(await developers(plainMember.accessToken), name)).toBeUndefined();

      const loner = await signIn(server, await createUser(server, { role: "ADMIN" }));
      const alone = await success("/api/admin/developers", { method: "POST", token: loner.accessToken, body: { name: unique("dev"), password } }, 201);
      expect(alone).toMatchObject({ role: "user", email: null });
    });

    it("POST /api/admin/developers: 403 for anyone but a system administrator (a workspace owner, a user in no workspace), 401 without a token, 400 naming the field, 409 for a taken name", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const sysadmin = await memberOf(server, workspaceId, "ADMIN", { systemAdmin: true });
      const body = { name: unique("dev"), password };
      await expectStatus("/api/admin/developers", { method: "POST", token: owner.accessToken, body }, 403);
      await expectStatus("/api/admin/developers", { method: "POST", token: (await signedInUser(server)).accessToken, body }, 403);
      await expectStatus("/api/admin/developers", { method: "POST", body }, 401);
      const post = (extra: Record<string, unknown>) => ({ method: "POST", token: sysadmin.accessToken, body: { ...body, ...extra } });
      await expectStatus("/api/admin/developers", post({ password: "short" }), 400, "body.password");
      await expectStatus("/api/admin/developers", post({ role: "boss" }), 400, "body.role");
      await expectStatus("/api/admin/developers", post({ name: "x" }), 400, "body.name");
      await expectStatus("/api/admin/developers", post({ gitEmail: "not an email" }), 400, "body.gitEmail");
      await expectStatus("/api/admin/developers", { method: "POST", token: sysadmin.accessToken, body: { password } }, 400, "body.name");
      // Nothing was made by the refused calls.
      expect(await server.db.prisma.user.findUnique({ where: { username: body.name } })).toBeNull();

      await success("/api/admin/developers", post({}), 201);
      await expectStatus("/api/admin/developers", post({}), 409, "username");
      await expectStatus("/api/admin/developers", post({ name: owner.username.toUpperCase() }), 409);
    });

    it("PUT /api/admin/developers/:id changes the git identity and role; a new password ends the developer's sessions and signs in", async () => {
      const { workspaceId } = await ownedWorkspace(server);
      const sysadmin = await memberOf(server, workspaceId, "ADMIN", { systemAdmin: true });
      const developer = await memberOf(server, workspaceId, "MEMBER");
      const id = await legacyIdOf(developer.id);
      const path = `/api/admin/developers/${id}`;

      const updated = await success(path, { method: "PUT", token: sysadmin.accessToken, body: { gitName: "Renamed Dev", gitEmail: "renamed@example.test", role: "admin" } });
      expectDeveloper(updated);
      expect(updated).toEqual({
        id,
        name: developer.username,
        displayName: null,
        email: developer.email,
        gitName: "Renamed Dev",
        gitEmail: "renamed@example.test",
        role: "admin",
        totpEnabled: false,
      });
      expect(await success(path, { method: "PUT", token: sysadmin.accessToken, body: { role: "developer", gitName: null } })).toMatchObject({ role: "user", gitName: null, gitEmail: "renamed@example.test" });

      expect(await success("/api/web/profile", { token: developer.accessToken })).toMatchObject({ id });
      const newPassword = "a-new-password-2";
      expect(await success(path, { method: "PUT", token: sysadmin.accessToken, body: { password: newPassword } })).toMatchObject({ id, name: developer.username });
      await expectStatus("/api/web/profile", { token: developer.accessToken }, 401);
      await expectStatus("/api/auth/refresh", { method: "POST", body: { refreshToken: developer.refreshToken } }, 401);
      await expectStatus("/api/auth/login", { method: "POST", body: { username: developer.username, password: developer.password } }, 401);
      const tokens = await success("/api/auth/login", { method: "POST", body: { username: developer.username, password: newPassword } });
      expect(await success("/api/web/profile", { token: tokens.accessToken })).toMatchObject({ id, username: developer.username, gitEmail: "renamed@example.test" });
      // The administrator's own session is untouched.
      await success("/api/web/profile", { token: sysadmin.accessToken });
    });

    it("PUT /api/admin/developers/:id: 400 for a name or a bad field, 404 for an unknown id, 400 for a non-integer one, 403 for anyone but a system administrator, 401 without a token", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const sysadmin = await memberOf(server, workspaceId, "ADMIN", { systemAdmin: true });
      const developer = await memberOf(server, workspaceId, "MEMBER");
      const path = `/api/admin/developers/${await legacyIdOf(developer.id)}`;
      const put = (body: unknown, token = sysadmin.accessToken) => ({ method: "PUT", token, body });

      await expectStatus(path, put({ name: "renamed" }), 400, "body.name");
      await expectStatus(path, put({ password: "short" }), 400, "body.password");
      await expectStatus(path, put({ role: "boss" }), 400, "body.role");
      await expectStatus(path, put({ gitEmail: "nope" }), 400, "body.gitEmail");
      await expectStatus("/api/admin/developers/999999999", put({ gitName: "x" }), 404);
      await expectStatus("/api/admin/developers/abc", put({ gitName: "x" }), 400, "path.id");
      await expectStatus(path, put({ gitName: "x" }, owner.accessToken), 403);
      await expectStatus(path, put({ gitName: "x" }, developer.accessToken), 403);
      await expectStatus(path, { method: "PUT", body: { gitName: "x" } }, 401);
      const unchanged = await server.db.prisma.user.findUniqueOrThrow({ where: { id: developer.id } });
      expect([unchanged.username, unchanged.gitName, unchanged.role]).toEqual([developer.username, null, "USER"]);
    });
  });

  describe("admin: projects", () => {
    it("a workspace admin creates, lists, updates and deletes projects", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const admin = await memberOf(server, workspaceId, "ADMIN");
      const key = unique("k").toUpperCase().slice(0, 10);
      const body = { key: key.toLowerCase(), name: "Admin made", repoUrl: "git@example.test:team/repo.git", pipeline: { deploy: true }, agentType: "codex", description: "d" };
      const created = await success("/api/admin/projects", { method: "POST", token: admin.accessToken, body, headers: { "idempotency-key": `k-${key}` } }, 201);
      expectProject(created);
      expect(created).toMatchObject({ ...body, key, archived: false });
      const replay = await success("/api/admin/projects", { method: "POST", token: admin.accessToken, body, headers: { "idempotency-key": `k-${key}` } }, 201);
      expect(replay.id).toBe(created.id);

      const list = await success("/api/admin/projects", { token: owner.accessToken });
      list.forEach(expectProject);
      expect(list.map((p: any) => p.id)).toEqual([created.id]);

      const updated = await success(`/api/admin/projects/${key.toLowerCase()}`, { method: "PUT", token: owner.accessToken, body: { pipeline: { stages: ["a"] }, name: "Renamed" } });
      expect(updated).toMatchObject({ id: created.id, name: "Renamed", pipeline: { stages: ["a"] }, repoUrl: body.repoUrl });

      expect(await success(`/api/admin/projects/${key}`, { method: "DELETE", token: admin.accessToken })).toEqual({ ok: true });
      await expectStatus(`/api/web/projects/${key}`, { token: admin.accessToken }, 404);
      await expectStatus(`/api/admin/projects/${key}`, { method: "DELETE", token: admin.accessToken }, 404);
    });

    it("needs the admin role in the workspace (403 for a member, even a project maintainer), a token (401); 400 names the field; 404 for unknown and foreign keys", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const member = await memberOf(server, workspaceId, "MEMBER");
      const mine = await createProject(member.accessToken, workspaceId);
      const path = `/api/admin/projects/${mine.key}`;
      await expectStatus("/api/admin/projects", { token: member.accessToken }, 403, "admin");
      await expectStatus("/api/admin/projects", { method: "POST", token: member.accessToken, body: { key: "NEWONE", name: "n" } }, 403);
      await expectStatus(path, { method: "PUT", token: member.accessToken, body: { name: "n" } }, 403);
      await expectStatus(path, { method: "DELETE", token: member.accessToken }, 403);
      for (const method of ["GET", "POST"]) await expectStatus("/api/admin/projects", { method, body: method === "POST" ? {} : undefined }, 401);
      await expectStatus(path, { method: "DELETE" }, 401);

      await expectStatus("/api/admin/projects", { method: "POST", token: owner.accessToken, body: { key: "1bad", name: "n" } }, 400, "body.key");
      await expectStatus("/api/admin/projects", { method: "POST", token: owner.accessToken, body: { key: "GOOD" } }, 400, "body.name");
      await expectStatus("/api/admin/projects", { method: "POST", token: owner.accessToken, body: { key: mine.key, name: "again" } }, 409);
      await expectStatus(path, { method: "PUT", token: owner.accessToken, body: { agentType: "has spaces" } }, 400, "body.agentType");

      const other = await ownedWorkspace(server);
      const theirs = await createProject(other.owner.accessToken, other.workspaceId);
      await expectStatus(`/api/admin/projects/${theirs.key}`, { method: "PUT", token: owner.accessToken, body: { name: "x" } }, 404);
      await expectStatus(`/api/admin/projects/${theirs.key}`, { method: "DELETE", token: owner.accessToken }, 404);
      await expectStatus("/api/admin/projects/NOPE", { method: "PUT", token: owner.accessToken, body: { name: "x" } }, 404);
    });

    it("GET, POST and DELETE /api/admin/projects/:key/members: workspace admins only", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const maintainer = await memberOf(server, workspaceId, "MEMBER");
      const developer = await memberOf(server, workspaceId, "MEMBER");
      const project = await createProject(maintainer.accessToken, workspaceId);
      const path = `/api/admin/projects/${project.key}/members`;
      const developerId = await legacyIdOf(developer.id);

      const added = await success(path, { method: "POST", token: owner.accessToken, body: { developerId, role: "maintainer" } }, 201);
      expectMember(added);
      expect(added).toMatchObject({ projectKey: project.key, developerId, role: "maintainer" });
      const members = await success(path, { token: owner.accessToken });
      members.forEach(expectMember);
      expect(members.map((m: any) => m.developerId)).toEqual([await legacyIdOf(maintainer.id), developerId]);
      expect(await success(`${path}?developerId=${developerId}`, { method: "DELETE", token: owner.accessToken })).toEqual({ ok: true });

      // The project's maintainer is no workspace admin.
      await expectStatus(path, { token: maintainer.accessToken }, 403);
      await expectStatus(path, { method: "POST", token: maintainer.accessToken, body: { developerId } }, 403);
      await expectStatus(`${path}?developerId=${developerId}`, { method: "DELETE", token: maintainer.accessToken }, 403);
      await expectStatus(path, {}, 401);
      await expectStatus(`/api/admin/projects/NOPE/members`, { token: owner.accessToken }, 404);
      await expectStatus(`${path}?developerId=${developerId}`, { method: "DELETE", token: owner.accessToken }, 404);
      await expectStatus(path, { method: "POST", token: owner.accessToken, body: { developerId: 2147483647 } }, 400, "body.developerId");
    });
  });

  describe("admin: worker tokens", () => {
    it("POST makes a token (a default name, the secret shown once), GET lists them, revoke answers the revoked token", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const created = await success("/api/admin/worker-tokens", { method: "POST", token: owner.accessToken, body: {} }, 201);
      expectToken(created, ["token"]);
      expect(created).toMatchObject({ name: "Worker token", status: "active", labels: [], usedAt: null, revokedAt: null, machineId: null });
      expect(created.token).toMatch(/^spe_/);
      expect(created.token.startsWith(created.prefix.replace(/\W+$/, ""))).toBe(true);

      const named = await success("/api/admin/worker-tokens", { method: "POST", token: owner.accessToken, body: { name: "rack 3", labels: ["gpu"], expiresInSeconds: 3600 } }, 201);
      expect(named).toMatchObject({ name: "rack 3", labels: ["gpu"] });
      expect(Date.parse(named.expiresAt) - Date.now()).toBeLessThanOrEqual(3600 * 1000);

      const list = await success("/api/admin/worker-tokens", { token: owner.accessToken });
      list.forEach((t: any) => expectToken(t));
      expect(list.map((t: any) => t.id)).toEqual([named.id, created.id]);

      const revoked = await success(`/api/admin/worker-tokens/${created.id}/revoke`, { method: "POST", token: owner.accessToken });
      expectToken(revoked);
      expect(revoked).toMatchObject({ id: created.id, status: "revoked" });
      expect(revoked.revokedAt).toMatch(ISO);
      await expectStatus(`/api/admin/worker-tokens/${created.id}/revoke`, { method: "POST", token: owner.accessToken }, 409);

      const status = await success(`/api/admin/worker-tokens/${named.id}/status`, { token: owner.accessToken });
      expect(status).toEqual({ id: named.id, name: "rack 3", status: "active", expiresAt: named.expiresAt, usedAt: null, revokedAt: null, machine: null });
      expect(workspaceId).toMatch(UUID);
    });

    it("GET /api/admin/worker-tokens/:id/status shows the machine that registered with the token", async () => {
      const { owner } = await ownedWorkspace(server);
      const created = await success("/api/admin/worker-tokens", { method: "POST", token: owner.accessToken, body: { name: "for host-1" } }, 201);
      const externalId = unique("host");
      const { registerMachine } = ok(await server.execute(RegisterMachineDocument, { input: { token: created.token, name: "Host One", externalId } }));
      const status = await success(`/api/admin/worker-tokens/${created.id}/status`, { token: owner.accessToken });
      expect(status).toMatchObject({ id: created.id, status: "used", revokedAt: null, machine: { id: registerMachine.machine.id, machineId: externalId, name: "Host One" } });
      expect(status.usedAt).toMatch(ISO);
      expect(["online", "offline"]).toContain(status.machine.status);
      const [listed] = await success("/api/admin/worker-tokens", { token: owner.accessToken });
      expect(listed).toMatchObject({ id: created.id, status: "used", machineId: registerMachine.machine.id });
      const machines = await success("/api/admin/machines", { token: owner.accessToken });
      expect(machines.find((m: any) => m.id === registerMachine.machine.id)).toMatchObject({ workerTokenId: created.id, machineId: externalId });
    });

    it("needs the admin role (403), a token (401); 404 for unknown and another workspace's tokens; 400 names the field", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const member = await memberOf(server, workspaceId, "MEMBER");
      const mine = await success("/api/admin/worker-tokens", { method: "POST", token: owner.accessToken, body: {} }, 201);
      await expectStatus("/api/admin/worker-tokens", { token: member.accessToken }, 403);
      await expectStatus("/api/admin/worker-tokens", { method: "POST", token: member.accessToken, body: {} }, 403);
      await expectStatus(`/api/admin/worker-tokens/${mine.id}/revoke`, { method: "POST", token: member.accessToken }, 403);
      await expectStatus(`/api/admin/worker-tokens/${mine.id}/status`, { token: member.accessToken }, 403);
      await expectStatus("/api/admin/worker-tokens", {}, 401);
      await expectStatus("/api/admin/worker-tokens", { method: "POST", body: {} }, 401);
      await expectStatus(`/api/admin/worker-tokens/${mine.id}/revoke`, { method: "POST" }, 401);
      await expectStatus(`/api/admin/worker-tokens/${mine.id}/status`, {}, 401);

      // The other workspace's owner is also a member here: its tokens still are not this workspace's.
      const other = await ownedWorkspace(server);
      await addMember(server, other.workspaceId, owner.id, "ADMIN");
      const theirs = await success("/api/admin/worker-tokens", { method: "POST", token: other.owner.accessToken, body: {} }, 201);
      for (const id of [theirs.id, NO_SUCH_UUID, "not-a-uuid"]) {
        await expectStatus(`/api/admin/worker-tokens/${id}/status`, { token: owner.accessToken }, 404);
        await expectStatus(`/api/admin/worker-tokens/${id}/revoke`, { method: "POST", token: owner.accessToken }, 404);
      }
      await expectStatus("/api/admin/worker-tokens", { method: "POST", token: owner.accessToken, body: { expiresInSeconds: 5 } }, 400, "body.expiresInSeconds");
      await expectStatus("/api/admin/worker-tokens", { method: "POST", token: owner.accessToken, body: { name: 7 } }, 400, "body.name");
      await expectStatus("/api/admin/worker-tokens", { method: "POST", token: owner.accessToken, body: { labels: ["has space"] } }, 400, "body.labels");
    });
  });

  describe("admin: machines", () => {
    it("GET /api/admin/machines lists every machine, decommissioned ones too", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const kept = await createMachine(owner.accessToken, workspaceId);
      const gone = await createMachine(owner.accessToken, workspaceId);
      await success(`/api/admin/machines/${gone.id}`, { method: "DELETE", token: owner.accessToken });
      const list = await success("/api/admin/machines", { token: owner.accessToken });
      list.forEach(expectMachine);
      expect(list.map((m: any) => [m.id, m.status])).toEqual([
        [gone.id, "decommissioned"],
        [kept.id, "offline"],
      ]);
      expect(list[0].decommissionedAt).toMatch(ISO);
      expect(list[1]).toMatchObject({ approval: "approved", draining: false, schedulable: true, workerTokenId: null });
    });

    it("PUT /api/admin/machines/:id maps api-web statuses onto drain, undrain and the schedulable switch", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const machine = await createMachine(owner.accessToken, workspaceId);
      const path = `/api/admin/machines/${machine.id}`;
      const put = (status?: string) => success(path, { method: "PUT", token: owner.accessToken, body: status === undefined ? {} : { status } });

      const drained = await put("Draining");
      expectMachine(drained);
      expect(drained).toMatchObject({ id: machine.id, draining: true, status: "drained", acceptingWork: false });
      expect(drained.drainingSince).toMatch(ISO);
      expect(await put("drain")).toMatchObject({ draining: true, drainingSince: drained.drainingSince });
      expect(await put("active")).toMatchObject({ draining: false, drainingSince: null, schedulable: true, status: "offline" });
      expect(await put("disabled")).toMatchObject({ draining: false, schedulable: false, acceptingWork: false });
      expect(await put("online")).toMatchObject({ draining: false, schedulable: true });
      expect(await put()).toMatchObject({ id: machine.id, schedulable: true });

      await expectStatus(path, { method: "PUT", token: owner.accessToken, body: { status: "decommissioned" } }, 400, "body.status");
      await expectStatus(path, { method: "PUT", token: owner.accessToken, body: { status: 3 } }, 400, "body.status");
    });

    it("DELETE /api/admin/machines/:id decommissions: an ASSIGNED task goes back to the queue", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const machine = await createMachine(owner.accessToken, workspaceId);
      const { createTask } = ok(await server.execute(CreateTaskDocument, { input: { workspaceId, title: "held" } }, { token: owner.accessToken }));
      const claimed = ok(await server.execute(ClaimTasksDocument, { input: { limit: 1 } }, { token: machine.credential })).claimTasks;
      expect(claimed.map((t) => [t.id, t.status])).toEqual([[createTask.id, "ASSIGNED"]]);

      const answer = await success(`/api/admin/machines/${machine.id}?reason=retired`, { method: "DELETE", token: owner.accessToken });
      expect(Object.keys(answer).sort()).toEqual(["failedTaskIds", "failedWorkerIds", "machine", "requeuedTaskIds"]);
      expect(answer).toMatchObject({ requeuedTaskIds: [createTask.id], failedTaskIds: [], failedWorkerIds: [] });
      expectMachine(answer.machine);
      expect(answer.machine).toMatchObject({ id: machine.id, status: "decommissioned", acceptingWork: false });
      const { task } = ok(await server.execute(TaskDetailsDocument, { id: createTask.id }, { token: owner.accessToken }));
      expect(task).toMatchObject({ status: "PENDING", machine: null });

      await expectStatus(`/api/admin/machines/${machine.id}`, { method: "DELETE", token: owner.accessToken }, 409);
      await expectStatus(`/api/admin/machines/${machine.id}`, { method: "PUT", token: owner.accessToken, body: { status: "active" } }, 409);
    });

    it("needs the admin role (403, though GraphQL lets members drain), a token (401); 404 for unknown and another workspace's machines", async () => {
      const { owner, workspaceId } = await ownedWorkspace(server);
      const member = await memberOf(server, workspaceId, "MEMBER");
      const machine = await createMachine(owner.accessToken, workspaceId);
      const path = `/api/admin/machines/${machine.id}`;
      await expectStatus("/api/admin/machines", { token: member.accessToken }, 403);
      await expectStatus(path, { method: "PUT", token: member.accessToken, body: { status: "draining" } }, 403);
      await expectStatus(path, { method: "DELETE", token: member.accessToken }, 403);
      await expectStatus("/api/admin/machines", {}, 401);
      await expectStatus(path, { method: "PUT", body: { status: "draining" } }, 401);
      await expectStatus(path, { method: "DELETE" }, 401);

      const other = await ownedWorkspace(server);
      await addMember(server, other.workspaceId, owner.id, "ADMIN");
      const theirs = await createMachine(other.owner.accessToken, other.workspaceId);
      for (const id of [theirs.id, NO_SUCH_UUID, "not-a-uuid"]) {
        await expectStatus(`/api/admin/machines/${id}`, { method: "PUT", token: owner.accessToken, body: { status: "draining" } }, 404);
        await expectStatus(`/api/admin/machines/${id}`, { method: "DELETE", token: owner.accessToken }, 404);
      }
      const untouched = await server.db.prisma.machine.findUniqueOrThrow({ where: { id: theirs.id } });
      expect([untouched.drainingSince, untouched.decommissionedAt]).toEqual([null, null]);
      await expectStatus(`${path}?reason=`, { method: "DELETE", token: owner.accessToken }, 400, "query.reason");
    });
  });

  it("answers a caller in no workspace with 404 on workspace routes", async () => {
    const loner = await signedInUser(server);
    await expectStatus("/api/web/projects", { token: loner.accessToken }, 404);
    await expectStatus("/api/admin/machines", { token: loner.accessToken }, 404);
  });
});
