// Spunto's account routes (src/rest/spunto-account.ts) over HTTP, as its client calls them: API keys
// per organization (a session manages them, a key never does), the user's settings (dotfilesRepo)
// and a node's live inventory (the workers and services placed on it, as the node reported them).
// Nodes report through GraphQL with their own token, as in test/rest/spunto.test.ts.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256 } from "../../src/auth/secrets.js";
import {
  MachineHeartbeatDocument,
  ReportServiceStatusDocument,
  ReportWorkerStatusDocument,
  ReportWorkerTicksDocument,
} from "../generated/graphql.js";
import { addMember } from "../helpers/factories.js";
import { memberOf, orgOwner, restClient, type Call } from "../helpers/rest.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const prisma = () => server.db.prisma;

const { success, statusOf, expectStatus } = restClient(() => server);

/** A 400 whose message names the field as the client sent it. */
const expectBadField = (path: string, call: Call, field: string) => expectStatus(path, call, 400, field);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const MALFORMED = ["123", "nonsense", randomUUID().replaceAll("-", "")];
const keysOf = (object: Record<string, unknown>) => Object.keys(object).sort();

const strangerToken = async () => (await orgOwner(server)).token;

// ---- API keys -----------------------------------------------------------------------------------

const keysPath = (orgId: string) => `/api/orgs/${orgId}/api-keys`;

async function createKey(token: string, orgId: string, body: Record<string, unknown> = {}) {
  return success(keysPath(orgId), { method: "POST", token, body: { name: "ci", ...body } }, 201);
}

function expectKey(key: any, extra: string[] = []) {
  expect(keysOf(key)).toEqual(["createdAt", "expiresAt", "id", "lastUsedAt", "name", "orgId", "owner", "prefix", "revokedAt", "scopes", ...extra].sort());
  expect(keysOf(key.owner)).toEqual(["displayName", "id", "username"]);
  expect(key.createdAt).toMatch(ISO);
}

describe(`spunto account routes (${backend})`, () => {
  describe("API keys", () => {
    it("POST creates a key (201): its spk_ token shown once, scopes lower-case (write by default); the key works as a bearer", async () => {
      const { user, token, orgId, org } = await orgOwner(server);
      const key = await createKey(token, orgId);
      expectKey(key, ["token"]);
      expect(key).toMatchObject({
        name: "ci",
        scopes: ["write"],
        orgId,
        owner: { id: user.id, username: user.username, displayName: null },
        expiresAt: null,
        lastUsedAt: null,
        revokedAt: null,
      });
      expect(key.token).toMatch(/^spk_/);
      expect(key.token.startsWith(key.prefix)).toBe(true);
      expect((await prisma().apiKey.findUniqueOrThrow({ where: { id: key.id } })).keyHash).toBe(sha256(key.token));

      const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
      const readOnly = await createKey(token, orgId, { name: "dashboard", scopes: ["Read"], expiresAt });
      expect(readOnly).toMatchObject({ scopes: ["read"], expiresAt });
      // null is left out (write); a time with an offset answers in UTC.
      expect(await createKey(token, orgId, { scopes: null, expiresAt: "2099-01-01T02:00:00+02:00" })).toMatchObject({ scopes: ["write"], expiresAt: "2099-01-01T00:00:00.000Z" });
      expect((await createKey(token, orgId, { scopes: ["READ", "write"] })).scopes).toEqual(["read", "write"]);

      expect((await success(org, { token: key.token })).id).toBe(orgId);
      expect((await success(org, { token: readOnly.token })).id).toBe(orgId);
      // The token is shown once: the list holds only its prefix.
      const listed = await success(keysPath(orgId), { token });
      expect(JSON.stringify(listed)).not.toContain(key.token);
      const { token: _shownOnce, lastUsedAt: _used, ...stored } = key;
      expect(listed.find((k: any) => k.id === key.id)).toMatchObject(stored);
    });

    it("GET lists every key of the organization for an admin, newest first, and a member's own only", async () => {
      const { user, token, orgId } = await orgOwner(server);
      const admin = await memberOf(server, orgId, "ADMIN");
      const member = await memberOf(server, orgId, "MEMBER");
      const viewer = await memberOf(server, orgId, "VIEWER");
      const ownerKey = await createKey(token, orgId, { name: "owner's" });
      const memberKey = await createKey(member.accessToken, orgId, { name: "member's" });
      const adminKey = await createKey(admin.accessToken, orgId, { name: "admin's" });
      // Keys bound to another organization of the same people stay out.
      const elsewhere = (await orgOwner(server)).orgId;
      await addMember(server, elsewhere, member.id, "OWNER");
      await createKey(member.accessToken, elsewhere, { name: "elsewhere" });

      for (const reader of [token, admin.accessToken]) {
        const all = await success(keysPath(orgId), { token: reader });
        all.forEach((k: any) => expectKey(k));
        expect(all.map((k: any) => [k.id, k.name, k.owner.id])).toEqual([
          [adminKey.id, "admin's", admin.id],
          [memberKey.id, "member's", member.id],
          [ownerKey.id, "owner's", user.id],
        ]);
      }
      expect((await success(keysPath(orgId), { token: member.accessToken })).map((k: any) => k.id)).toEqual([memberKey.id]);
      expect(await success(keysPath(orgId), { token: viewer.accessToken })).toEqual([]);
    });

    it("DELETE revokes: a member their own key, an admin anyone's; a revoked key gets 401", async () => {
      const { token, orgId, org } = await orgOwner(server);
      const admin = await memberOf(server, orgId, "ADMIN");
      const member = await memberOf(server, orgId, "MEMBER");
      const other = await memberOf(server, orgId, "MEMBER");
      const mine = await createKey(member.accessToken, orgId);
      const theirs = await createKey(other.accessToken, orgId);

      // Another member's key is not there for a member, and it keeps working.
      expect(await statusOf(`${keysPath(orgId)}/${theirs.id}`, { method: "DELETE", token: member.accessToken })).toBe(404);
      expect((await success(org, { token: theirs.token })).id).toBe(orgId);

      expect(await success(`${keysPath(orgId)}/${mine.id}`, { method: "DELETE", token: member.accessToken })).toEqual({ ok: true });
      expect(await statusOf(org, { token: mine.token })).toBe(401);

      expect(await success(`${keysPath(orgId)}/${theirs.id}`, { method: "DELETE", token: admin.accessToken })).toEqual({ ok: true });
      expect(await statusOf(org, { token: theirs.token })).toBe(401);
      const listed = await success(keysPath(orgId), { token });
      expect(listed.map((k: any) => [k.id, typeof k.revokedAt === "string" && ISO.test(k.revokedAt)])).toEqual([
        [theirs.id, true],
        [mine.id, true],
      ]);
      expect(await prisma().apiKey.count({ where: { id: { in: [mine.id, theirs.id] }, revokedAt: null } })).toBe(0);
    });

    it("answers 401 without a token, 403 with an API key as the credential, 404 for a stranger's organization and another organization's key", async () => {
      const { user, token, orgId } = await orgOwner(server);
      const key = await createKey(token, orgId);
      const keyPath = `${keysPath(orgId)}/${key.id}`;
      const routes: Call[] = [{}, { method: "POST", body: { name: "x" } }];
      for (const call of routes) expect(await statusOf(keysPath(orgId), call)).toBe(401);
      expect(await statusOf(keyPath, { method: "DELETE" })).toBe(401);

      // Keys never manage keys, whatever their scopes.
      for (const credential of [key.token, (await createKey(token, orgId, { scopes: ["read"] })).token]) {
        for (const call of routes) expect(await statusOf(keysPath(orgId), { ...call, token: credential })).toBe(403);
        expect(await statusOf(keyPath, { method: "DELETE", token: credential })).toBe(403);
      }

      const stranger = await strangerToken();
      for (const call of routes) expect(await statusOf(keysPath(orgId), { ...call, token: stranger })).toBe(404);
      expect(await statusOf(keyPath, { method: "DELETE", token: stranger })).toBe(404);
      for (const id of [randomUUID(), ...MALFORMED]) {
        expect(await statusOf(keysPath(id), { token })).toBe(404);
        expect(await statusOf(keysPath(id), { method: "POST", token, body: { name: "x" } })).toBe(404);
        expect(await statusOf(`${keysPath(orgId)}/${id}`, { method: "DELETE", token })).toBe(404);
      }

      // The caller's own key of another organization, revoked through this one: not there.
      const second = (await orgOwner(server)).orgId;
      await addMember(server, second, user.id, "OWNER");
      const secondKey = await createKey(token, second);
      expect(await statusOf(`${keysPath(orgId)}/${secondKey.id}`, { method: "DELETE", token })).toBe(404);
      expect((await success(`/api/orgs/${second}`, { token: secondKey.token })).id).toBe(second);
      expect(await prisma().apiKey.count({ where: { userId: user.id, revokedAt: { not: null } } })).toBe(0);
    });

    it("answers 400 naming the field for a bad name, scope or expiry, and 403 for the admin scope of a non-administrator", async () => {
      const { token, orgId } = await orgOwner(server);
      const path = keysPath(orgId);
      await expectBadField(path, { method: "POST", token, body: {} }, "body.name");
      await expectBadField(path, { method: "POST", token, body: { name: 5 } }, "body.name");
      await expectBadField(path, { method: "POST", token, body: { name: " " } }, "body.name");
      await expectBadField(path, { method: "POST", token, body: { name: "x", scopes: ["root"] } }, "body.scopes.0");
      await expectBadField(path, { method: "POST", token, body: { name: "x", scopes: ["read", 7] } }, "body.scopes.1");
      await expectBadField(path, { method: "POST", token, body: { name: "x", scopes: "write" } }, "body.scopes");
      // An empty list is no scopes, not the default.
      await expectBadField(path, { method: "POST", token, body: { name: "x", scopes: [] } }, "body.scopes");
      await expectBadField(path, { method: "POST", token, body: { name: "x".repeat(101) } }, "body.name");
      await expectBadField(path, { method: "POST", token, body: { name: "x", expiresAt: "tomorrow" } }, "body.expiresAt");
      await expectBadField(path, { method: "POST", token, body: { name: "x", expiresAt: new Date(Date.now() - 60_000).toISOString() } }, "body.expiresAt");
      expect(await statusOf(path, { method: "POST", token, body: { name: "x", scopes: ["admin"] } })).toBe(403);
      expect(await prisma().apiKey.count({ where: { workspaceId: orgId } })).toBe(0);
    });
  });

  // ---- The user ---------------------------------------------------------------------------------

  describe("the user", () => {
    const me = "/api/users/me";

    it("GET answers the caller; PATCH sets dotfilesRepo and names, leaves out what is not sent, and null clears", async () => {
      const { user, token } = await orgOwner(server);
      const got = await success(me, { token });
      expect(keysOf(got)).toEqual(["createdAt", "displayName", "dotfilesRepo", "email", "gitEmail", "gitName", "id", "username"]);
      expect(got).toMatchObject({ id: user.id, email: user.email, username: user.username, displayName: null, gitName: null, gitEmail: null, dotfilesRepo: null });
      expect(got.createdAt).toMatch(ISO);

      const repo = "https://github.com/ada/dotfiles.git";
      const set = await success(me, { method: "PATCH", token, body: { dotfilesRepo: repo, gitName: "Ada L", gitEmail: "ada@example.test" } });
      expect(set).toEqual({ ...got, dotfilesRepo: repo, gitName: "Ada L", gitEmail: "ada@example.test" });
      expect(await success(me, { token })).toEqual(set);

      for (const url of ["git@github.com:ada/dotfiles.git", "ssh://git@git.example.test/ada/dotfiles.git", "git://git.example.test/ada/dotfiles"]) {
        expect((await success(me, { method: "PATCH", token, body: { dotfilesRepo: url } })).dotfilesRepo).toBe(url);
      }
      const renamed = await success(me, { method: "PATCH", token, body: { displayName: "Ada" } });
      expect(renamed).toMatchObject({ displayName: "Ada", dotfilesRepo: "git://git.example.test/ada/dotfiles", gitName: "Ada L" });

      const cleared = await success(me, { method: "PATCH", token, body: { dotfilesRepo: null, gitName: null } });
      expect(cleared).toMatchObject({ dotfilesRepo: null, gitName: null, displayName: "Ada", gitEmail: "ada@example.test" });
      expect(await prisma().user.findUniqueOrThrow({ where: { id: user.id } })).toMatchObject({ dotfilesRepo: null, displayName: "Ada" });
    });

    it("answers the key's owner for an API key; a read-only key may read but not change", async () => {
      const { user, token, orgId } = await orgOwner(server);
      const writer = await createKey(token, orgId);
      const reader = await createKey(token, orgId, { scopes: ["read"] });
      expect((await success(me, { token: reader.token })).id).toBe(user.id);
      expect((await success(me, { method: "PATCH", token: writer.token, body: { dotfilesRepo: "https://example.test/d.git" } })).dotfilesRepo).toBe("https://example.test/d.git");
      expect(await statusOf(me, { method: "PATCH", token: reader.token, body: { dotfilesRepo: null } })).toBe(403);
      expect((await success(me, { token })).dotfilesRepo).toBe("https://example.test/d.git");
    });

    it("answers 401 without a valid token; takes a 512-character URL and answers 400 naming the field beyond, changing nothing", async () => {
      const { user, token } = await orgOwner(server);
      expect(await statusOf(me)).toBe(401);
      expect(await statusOf(me, { method: "PATCH", body: { dotfilesRepo: null } })).toBe(401);
      expect(await statusOf(me, { token: "not-a-token" })).toBe(401);

      const longest = `https://example.test/${"x".repeat(512 - 21)}`;
      expect(longest).toHaveLength(512);
      expect((await success(me, { method: "PATCH", token, body: { dotfilesRepo: longest } })).dotfilesRepo).toBe(longest);
      for (const dotfilesRepo of ["not a url", "ftp://host/dotfiles", "github.com/ada/dotfiles", "", `${longest}x`, 5]) {
        await expectBadField(me, { method: "PATCH", token, body: { dotfilesRepo } }, "body.dotfilesRepo");
      }
      await expectBadField(me, { method: "PATCH", token, body: { gitEmail: "nope" } }, "body.gitEmail");
      await expectBadField(me, { method: "PATCH", token, body: { displayName: 3 } }, "body.displayName");
      expect(await prisma().user.findUniqueOrThrow({ where: { id: user.id } })).toMatchObject({ dotfilesRepo: longest, gitEmail: null, displayName: null });
    });
  });

  // ---- Node inventory ---------------------------------------------------------------------------

  describe("node inventory", () => {
    /** An owner's organization with a node that has sent a heartbeat with its token, so work is placed on it. */
    async function withOnlineNode() {
      const o = await orgOwner(server);
      const node = await success(`${o.org}/nodes`, { method: "POST", token: o.token, body: { name: "node-1", externalId: `host-${randomUUID().slice(0, 8)}` } }, 201);
      ok(await server.execute(MachineHeartbeatDocument, { input: { cpuPercent: 5 } }, { token: node.token }));
      return { ...o, node, inventory: `${o.org}/nodes/${node.id}/inventory` };
    }

    it("lists the workers and services placed on the node with what the node last reported of each", async () => {
      const { token, orgId, org, node, inventory } = await withOnlineNode();
      const project = await success(`${org}/projects`, { method: "POST", token, body: { name: "Web App" } }, 201);
      const workers = `${org}/projects/${project.id}/workers`;
      const worker = await success(workers, { method: "POST", token, body: { name: "api", image: "ghcr.io/acme/api:1", command: "serve" } }, 201);
      const pending = await success(workers, { method: "POST", token, body: { name: "cron", image: "ghcr.io/acme/cron:1" } }, 201);
      expect([worker.machineId, pending.machineId]).toEqual([node.id, node.id]);
      ok(await server.execute(ReportWorkerStatusDocument, { input: { workerId: worker.id, revision: worker.revision, status: "RUNNING" } }, { token: node.token }));
      ok(
        await server.execute(
          ReportWorkerTicksDocument,
          { input: { workerId: worker.id, revision: worker.revision, ticks: 3, errors: 0, cpuPercent: 12.5, memoryBytes: 268_435_456, lastTickAt: "2026-01-01T00:01:00Z" } },
          { token: node.token },
        ),
      );

      const deployment = await success(`${org}/deployments`, { method: "POST", token, body: { name: "shop", services: [{ name: "web", image: "nginx:1.27" }] } }, 201);
      const deployed = await success(`${org}/deployments/${deployment.id}/deploy`, { method: "POST", token });
      const web = deployed.services[0];
      expect(web).toMatchObject({ name: "web", machineId: node.id, status: "deploying" });
      ok(await server.execute(ReportServiceStatusDocument, { input: { serviceId: web.id, revision: web.revision, status: "RUNNING" } }, { token: node.token }));

      // Work of another node of the organization is not this node's.
      const otherNode = await success(`${org}/nodes`, { method: "POST", token, body: { name: "node-2" } }, 201);
      const elsewhere = await prisma().worker.create({ data: { workspaceId: orgId, kind: "CONTAINER", name: "elsewhere", image: "x", status: "RUNNING", machineId: otherNode.id } });

      const got = await success(inventory, { token });
      expect(keysOf(got)).toEqual(["containers", "nodeId", "reportedAt", "status"]);
      expect(got).toMatchObject({ nodeId: node.id, status: "online" });
      expect(got.reportedAt).toMatch(ISO);
      const byId = Object.fromEntries(got.containers.map((c: any) => [c.id, c]));
      expect(Object.keys(byId).sort()).toEqual([worker.id, pending.id, web.id].sort());
      expect(byId[elsewhere.id]).toBeUndefined();
      for (const container of got.containers) {
        expect(keysOf(container)).toEqual(
          ["command", "cpuPercent", "deploymentId", "id", "image", "kind", "memoryBytes", "name", "projectId", "restartCount", "running", "status", "statusReason", "updatedAt"].sort(),
        );
        expect(container.updatedAt).toMatch(ISO);
      }
      expect(byId[worker.id]).toMatchObject({
        kind: "worker",
        name: "api",
        image: "ghcr.io/acme/api:1",
        command: "serve",
        status: "running",
        running: true,
        projectId: project.id,
        deploymentId: null,
        cpuPercent: 12.5,
        memoryBytes: 268_435_456,
        restartCount: null,
      });
      expect(byId[pending.id]).toMatchObject({ kind: "worker", status: "deploying", running: false, cpuPercent: null, memoryBytes: null });
      expect(byId[web.id]).toMatchObject({
        kind: "service",
        name: "web",
        image: "nginx:1.27",
        command: null,
        status: "running",
        running: true,
        projectId: null,
        deploymentId: deployment.id,
        cpuPercent: null,
        memoryBytes: null,
        restartCount: 0,
      });

      // Any member may look; a destroyed worker leaves the inventory.
      const viewer = await memberOf(server, orgId, "VIEWER");
      expect((await success(inventory, { token: viewer.accessToken })).containers).toHaveLength(3);
      expect(await success(`${workers}/${pending.id}`, { method: "DELETE", token })).toEqual({ ok: true });
      expect((await success(inventory, { token })).containers.map((c: any) => c.id).sort()).toEqual([worker.id, web.id].sort());
    });

    it("answers an empty inventory for a node without work, with no heartbeat yet", async () => {
      const { token, org } = await orgOwner(server);
      const node = await success(`${org}/nodes`, { method: "POST", token, body: { name: "idle" } }, 201);
      expect(await success(`${org}/nodes/${node.id}/inventory`, { token })).toEqual({ nodeId: node.id, status: "offline", reportedAt: null, containers: [] });
    });

    it("answers 401 without a token and 404 for a stranger, an unknown or malformed node, another organization's and a decommissioned node", async () => {
      const { user, token, org, node, inventory } = await withOnlineNode();
      expect(await statusOf(inventory)).toBe(401);
      expect(await statusOf(inventory, { token: await strangerToken() })).toBe(404);
      for (const id of [randomUUID(), ...MALFORMED]) expect(await statusOf(`${org}/nodes/${id}/inventory`, { token })).toBe(404);
      const second = (await orgOwner(server)).orgId;
      await addMember(server, second, user.id, "OWNER");
      expect(await statusOf(`/api/orgs/${second}/nodes/${node.id}/inventory`, { token })).toBe(404);

      expect(await success(`${org}/nodes/${node.id}`, { method: "DELETE", token })).toEqual({ ok: true });
      expect(await statusOf(inventory, { token })).toBe(404);
    });
  });
});
