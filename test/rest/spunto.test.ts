// The Spunto dialect as its own client uses it: plain HTTP with a bearer credential (session token
// or spk_ API key), camelCase JSON with UUID ids, plain arrays for lists, {"ok": true} for deletes,
// errors as {"error"} with 400/401/403/404/409. Every core row built in src/rest/spunto.ts is called
// here, with its family's error paths; nodes report through GraphQL with their own token.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AppendLogsDocument,
  CreateApiKeyDocument,
  CurrentMachineDocument,
  MachineHeartbeatDocument,
  ReportWorkerStatusDocument,
  ReportWorkerTicksDocument,
} from "../generated/graphql.js";
import { addMember } from "../helpers/factories.js";
import { memberOf, orgOwner, restClient, type Call } from "../helpers/rest.js";
import { backend, errorOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const prisma = () => server.db.prisma;

const { success, failure, statusOf } = restClient(() => server);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MALFORMED = ["123", "nonsense", randomUUID().replaceAll("-", "")];
const keysOf = (object: Record<string, unknown>) => Object.keys(object).sort();

/** A signed-in user of another organization: everything of the first is a stranger's to them. */
const strangerToken = async () => (await orgOwner(server)).token;

async function createProject(token: string, orgId: string, body: Record<string, unknown> = {}) {
  return success(`/api/orgs/${orgId}/projects`, { method: "POST", token, body: { name: "Web App", ...body } }, 201);
}

async function registerNode(token: string, orgId: string, body: Record<string, unknown> = {}) {
  return success(`/api/orgs/${orgId}/nodes`, { method: "POST", token, body: { name: "node-1", ...body } }, 201);
}

/** A registered node that has sent a heartbeat with its token, so work is placed on it. */
async function onlineNode(token: string, orgId: string) {
  const node = await registerNode(token, orgId, { externalId: `host-${randomUUID().slice(0, 8)}` });
  ok(await server.execute(MachineHeartbeatDocument, { input: { cpuPercent: 5 } }, { token: node.token }));
  return node;
}

async function createDeployment(token: string, orgId: string, body: Record<string, unknown> = {}) {
  return success(
    `/api/orgs/${orgId}/deployments`,
    { method: "POST", token, body: { name: `app-${randomUUID().slice(0, 8)}`, services: [{ name: "web", image: "nginx:1.27", env: { PORT: "80" } }, { name: "worker", command: "run-jobs" }], ...body } },
    201,
  );
}

function expectOrg(org: any) {
  expect(keysOf(org)).toEqual(["createdAt", "id", "name", "updatedAt", "viewerRole"]);
  expect(org.id).toMatch(UUID);
  expect(org.createdAt).toMatch(ISO);
  expect(org.updatedAt).toMatch(ISO);
}

function expectProject(project: any) {
  expect(keysOf(project)).toEqual(["agentType", "archived", "archivedAt", "createdAt", "description", "id", "key", "name", "pipeline", "repoUrl", "updatedAt", "workspaceId"]);
  expect(project.id).toMatch(UUID);
  expect(project.key).toMatch(/^[A-Z][A-Z0-9_]{0,19}$/);
  expect(project.createdAt).toMatch(ISO);
}

function expectWorker(worker: any) {
  expect(keysOf(worker)).toEqual([
    "command",
    "createdAt",
    "env",
    "id",
    "image",
    "machineId",
    "name",
    "projectId",
    "revision",
    "runtime",
    "status",
    "statusReason",
    "updatedAt",
    "workspaceId",
  ]);
  expect(worker.id).toMatch(UUID);
  expect(["deploying", "running", "stopped", "failed"]).toContain(worker.status);
  expect(worker.createdAt).toMatch(ISO);
}

function expectNode(node: any, extra: string[] = []) {
  expect(keysOf(node)).toEqual(
    [
      "acceptingWork",
      "approval",
      "capabilities",
      "createdAt",
      "cpuPercent",
      "credentialPrefix",
      "credentialRotatedAt",
      "diskPercent",
      "draining",
      "drainingSince",
      "externalId",
      "hardware",
      "id",
      "labels",
      "lastHeartbeatAt",
      "memoryPercent",
      "name",
      "online",
      "schedulable",
      "status",
      "updatedAt",
      "workspaceId",
      ...extra,
    ].sort(),
  );
  expect(node.id).toMatch(UUID);
  expect(["online", "offline", "draining", "drained"]).toContain(node.status);
  expect(node.createdAt).toMatch(ISO);
}

function expectService(service: any) {
  expect(keysOf(service)).toEqual([
    "command",
    "createdAt",
    "deploymentId",
    "domain",
    "domainStatus",
    "env",
    "id",
    "image",
    "lastRestartAt",
    "machineId",
    "name",
    "restartCount",
    "revision",
    "status",
    "statusReason",
    "updatedAt",
    "workspaceId",
  ]);
  expect(service.id).toMatch(UUID);
  expect(["deploying", "running", "stopped", "failed"]).toContain(service.status);
}

function expectDeployment(deployment: any) {
  expect(keysOf(deployment)).toEqual(["createdAt", "id", "name", "revision", "serviceCount", "services", "status", "updatedAt", "workspaceId"]);
  expect(deployment.id).toMatch(UUID);
  expect(deployment.services).toHaveLength(deployment.serviceCount);
  deployment.services.forEach(expectService);
}

describe(`spunto REST dialect (${backend})`, () => {
  describe("organizations", () => {
    it("POST /api/orgs creates an organization owned by the caller, once per Idempotency-Key", async () => {
      const { token, user } = await orgOwner(server);
      const headers = { "idempotency-key": randomUUID() };
      const org = await success("/api/orgs", { method: "POST", token, headers, body: { name: "Acme" } }, 201);
      expectOrg(org);
      expect(org).toMatchObject({ name: "Acme", viewerRole: "owner" });
      const again = await success("/api/orgs", { method: "POST", token, headers, body: { name: "Acme" } }, 201);
      expect(again.id).toBe(org.id);
      expect(await prisma().workspaceMember.findMany({ where: { workspaceId: org.id } })).toMatchObject([{ userId: user.id, role: "OWNER" }]);
    });

    it("GET /api/orgs lists every organization of the caller as a plain array", async () => {
      const { token, user, orgId } = await orgOwner(server);
      const many = await Promise.all(Array.from({ length: 104 }, (_, i) => prisma().workspace.create({ data: { name: `org ${i}` } })));
      await prisma().workspaceMember.createMany({ data: many.map((w) => ({ workspaceId: w.id, userId: user.id, role: "VIEWER" as const })) });
      const orgs = await success("/api/orgs", { token });
      expect(Array.isArray(orgs)).toBe(true);
      expect(orgs).toHaveLength(105);
      orgs.forEach(expectOrg);
      expect(new Set(orgs.map((o: any) => o.id))).toEqual(new Set([orgId, ...many.map((w) => w.id)]));
      expect(orgs.find((o: any) => o.id === orgId).viewerRole).toBe("owner");
      expect(orgs.find((o: any) => o.id === many[0]!.id).viewerRole).toBe("viewer");
    });

    it("GET /api/orgs/:orgId answers the organization; GET .../members its members in join order", async () => {
      const { token, orgId, org, user } = await orgOwner(server);
      const got = await success(org, { token });
      expectOrg(got);
      expect(got).toMatchObject({ id: orgId, viewerRole: "owner" });
      const admin = await memberOf(server, orgId, "ADMIN");
      const viewer = await memberOf(server, orgId, "VIEWER");
      const members = await success(`${org}/members`, { token: viewer.accessToken });
      expect(members.map((m: any) => [m.user.id, m.user.username, m.role])).toEqual([
        [user.id, user.username, "owner"],
        [admin.id, admin.username, "admin"],
        [viewer.id, viewer.username, "viewer"],
      ]);
      for (const member of members) {
        expect(keysOf(member)).toEqual(["joinedAt", "role", "user"]);
        expect(keysOf(member.user)).toEqual(["displayName", "id", "username"]);
        expect(member.joinedAt).toMatch(ISO);
      }
    });

    it("answers 401 without a token, 404 for a stranger's, unknown or malformed organization, 400 naming the field", async () => {
      const { token, org } = await orgOwner(server);
      expect(await statusOf("/api/orgs")).toBe(401);
      expect(await statusOf("/api/orgs", { method: "POST", body: { name: "x" } })).toBe(401);
      expect(await statusOf(org)).toBe(401);
      expect(await statusOf(`${org}/members`)).toBe(401);
      expect(await statusOf(org, { token: "not-a-token" })).toBe(401);

      const stranger = await strangerToken();
      expect(await statusOf(org, { token: stranger })).toBe(404);
      expect(await statusOf(`${org}/members`, { token: stranger })).toBe(404);
      for (const id of [randomUUID(), ...MALFORMED]) {
        expect(await statusOf(`/api/orgs/${id}`, { token })).toBe(404);
        expect(await statusOf(`/api/orgs/${id}/members`, { token })).toBe(404);
      }

      for (const body of [{}, { name: 5 }, { name: " " }, { name: "x".repeat(101) }]) {
        const bad = await failure("/api/orgs", { method: "POST", token, body });
        expect(bad.status).toBe(400);
        expect(bad.error).toContain("body.name");
      }
    });

    it("takes an API key (spk_) as the bearer credential; a read-only key gets 403 on writes", async () => {
      const { user, orgId, org } = await orgOwner(server);
      const { createApiKey } = ok(await server.execute(CreateApiKeyDocument, { input: { name: "ci", scopes: ["WRITE"], workspaceId: orgId } }, { token: user.accessToken }));
      expect(createApiKey.key).toMatch(/^spk_/);
      expect((await success(org, { token: createApiKey.key })).id).toBe(orgId);
      const project = await createProject(createApiKey.key, orgId, { name: "From CI" });
      expect((await success(`${org}/projects`, { token: createApiKey.key })).map((p: any) => p.id)).toEqual([project.id]);
      // Bound to this organization: it sees no other.
      const other = await prisma().workspace.create({ data: { name: "other" } });
      await addMember(server, other.id, user.id, "OWNER");
      expect(await statusOf(`/api/orgs/${other.id}`, { token: createApiKey.key })).toBe(404);
      expect((await success("/api/orgs", { token: createApiKey.key })).map((o: any) => o.id)).toEqual([orgId]);

      const readOnly = ok(await server.execute(CreateApiKeyDocument, { input: { name: "ro", scopes: ["READ"] } }, { token: user.accessToken })).createApiKey.key;
      expect((await success(`${org}/projects`, { token: readOnly })).length).toBe(1);
      expect(await statusOf("/api/orgs", { method: "POST", token: readOnly, body: { name: "nope" } })).toBe(403);
      expect(await statusOf(`${org}/projects`, { method: "POST", token: readOnly, body: { name: "nope" } })).toBe(403);
    });
  });

  describe("projects", () => {
    it("POST creates a project (201), deriving a unique key from the name when none is sent", async () => {
      const { token, orgId, user } = await orgOwner(server);
      const first = await createProject(token, orgId, { name: "My Web-App", description: "the site", repoUrl: "https://github.com/acme/web.git", pipeline: { stages: ["build"] }, agentType: "claude" });
      expectProject(first);
      expect(first).toMatchObject({
        workspaceId: orgId,
        key: "MYWEBAPP",
        name: "My Web-App",
        description: "the site",
        repoUrl: "https://github.com/acme/web.git",
        pipeline: { stages: ["build"] },
        agentType: "claude",
        archived: false,
        archivedAt: null,
      });
      expect((await createProject(token, orgId, { name: "my web app" })).key).toBe("MYWEBAPP2");
      expect((await createProject(token, orgId, { name: "My  Web App!" })).key).toBe("MYWEBAPP3");
      expect((await createProject(token, orgId, { name: "42 Élan vital project" })).key).toBe("ELANVITALP");
      expect((await createProject(token, orgId, { name: "++" })).key).toBe("PROJECT");
      const explicit = await createProject(token, orgId, { name: "Anything", key: "web_2" });
      expect(explicit).toMatchObject({ key: "WEB_2", description: null, repoUrl: null, pipeline: {}, agentType: null });
      expect(await prisma().projectMember.findMany({ where: { projectId: first.id } })).toMatchObject([{ userId: user.id, role: "MAINTAINER" }]);

      const taken = await failure(`/api/orgs/${orgId}/projects`, { method: "POST", token, body: { name: "Other", key: "WEB_2" } });
      expect(taken.status).toBe(409);
      expect(taken.error).toContain("WEB_2");
    });

    it("POST with an Idempotency-Key answers the first project again, also when its key was derived past a taken one", async () => {
      const { token, orgId } = await orgOwner(server);
      await createProject(token, orgId, { name: "Dup" });
      const headers = { "idempotency-key": randomUUID() };
      const first = await success(`/api/orgs/${orgId}/projects`, { method: "POST", token, headers, body: { name: "Dup" } }, 201);
      expect(first.key).toBe("DUP2");
      const again = await success(`/api/orgs/${orgId}/projects`, { method: "POST", token, headers, body: { name: "Dup" } }, 201);
      expect(again).toEqual(first);
      expect(await prisma().project.count({ where: { workspaceId: orgId } })).toBe(2);
      // The same key with another body is a conflict, not a second project.
      expect(await statusOf(`/api/orgs/${orgId}/projects`, { method: "POST", token, headers, body: { name: "Dup", description: "other" } })).toBe(409);
      expect(await prisma().project.count({ where: { workspaceId: orgId } })).toBe(2);
    });

    it("GET lists every project (a plain array), GET one, PATCH changes it, DELETE removes it", async () => {
      const { token, orgId, org } = await orgOwner(server);
      await prisma().project.createMany({ data: Array.from({ length: 103 }, (_, i) => ({ workspaceId: orgId, key: `P${i}`, name: `project ${i}` })) });
      const project = await createProject(token, orgId);
      const all = await success(`${org}/projects`, { token });
      expect(all).toHaveLength(104);
      all.forEach(expectProject);
      expect(all[0]).toEqual(project);

      const path = `${org}/projects/${project.id}`;
      expect(await success(path, { token })).toEqual(project);
      const patched = await success(path, { method: "PATCH", token, body: { name: "Renamed", description: "new", repoUrl: "git@github.com:acme/web.git", pipeline: { a: 1 } } });
      expectProject(patched);
      expect(patched).toMatchObject({ id: project.id, key: project.key, name: "Renamed", description: "new", repoUrl: "git@github.com:acme/web.git", pipeline: { a: 1 } });
      const cleared = await success(path, { method: "PATCH", token, body: { description: null } });
      expect(cleared).toMatchObject({ name: "Renamed", description: null, repoUrl: "git@github.com:acme/web.git" });

      expect(await success(path, { method: "DELETE", token })).toEqual({ ok: true });
      expect(await statusOf(path, { token })).toBe(404);
      expect(await statusOf(path, { method: "DELETE", token })).toBe(404);
      expect(await prisma().project.findUnique({ where: { id: project.id } })).toBeNull();
    });

    it("answers 401, 404 (stranger's, unknown, malformed, another organization's), 403 by role and 400 naming the field", async () => {
      const { token, orgId, org, user } = await orgOwner(server);
      const project = await createProject(token, orgId);
      const path = `${org}/projects/${project.id}`;
      for (const call of [{}, { method: "POST", body: { name: "x" } }, { method: "PATCH", body: { name: "x" } }, { method: "DELETE" }]) {
        expect(await statusOf(call.method === "POST" ? `${org}/projects` : path, call)).toBe(401);
      }
      expect(await statusOf(`${org}/projects`)).toBe(401);

      const stranger = await strangerToken();
      expect(await statusOf(`${org}/projects`, { token: stranger })).toBe(404);
      expect(await statusOf(`${org}/projects`, { method: "POST", token: stranger, body: { name: "x" } })).toBe(404);
      for (const call of [{}, { method: "PATCH", body: { name: "x" } }, { method: "DELETE" }]) {
        expect(await statusOf(path, { ...call, token: stranger })).toBe(404);
        for (const id of [randomUUID(), ...MALFORMED]) expect(await statusOf(`${org}/projects/${id}`, { ...call, token })).toBe(404);
        expect(await statusOf(`/api/orgs/${randomUUID()}/projects/${project.id}`, { ...call, token })).toBe(404);
      }
      // The caller's own project, under another organization of theirs: not there.
      const second = await prisma().workspace.create({ data: { name: "second" } });
      await addMember(server, second.id, user.id, "OWNER");
      expect(await statusOf(`/api/orgs/${second.id}/projects/${project.id}`, { token })).toBe(404);
      expect(await statusOf(`/api/orgs/${second.id}/projects/${project.id}`, { method: "DELETE", token })).toBe(404);

      const viewer = await memberOf(server, orgId, "VIEWER");
      expect((await success(path, { token: viewer.accessToken })).id).toBe(project.id);
      expect(await statusOf(`${org}/projects`, { method: "POST", token: viewer.accessToken, body: { name: "x" } })).toBe(403);
      const member = await memberOf(server, orgId, "MEMBER");
      expect(await statusOf(path, { method: "PATCH", token: member.accessToken, body: { name: "mine" } })).toBe(403);
      expect(await statusOf(path, { method: "DELETE", token: member.accessToken })).toBe(403);
      expect(await prisma().project.count({ where: { workspaceId: orgId } })).toBe(1);

      const bad = async (method: string, at: string, body: unknown, field: string) => {
        const res = await failure(at, { method, token, body });
        expect({ status: res.status, named: res.error.includes(field) }).toEqual({ status: 400, named: true });
      };
      await bad("POST", `${org}/projects`, {}, "body.name");
      await bad("POST", `${org}/projects`, { name: "" }, "body.name");
      await bad("POST", `${org}/projects`, { name: "x", key: "1ABC" }, "body.key");
      await bad("POST", `${org}/projects`, { name: "x", repoUrl: "ftp://nope" }, "body.repoUrl");
      await bad("POST", `${org}/projects`, { name: "x", pipeline: [1] }, "body.pipeline");
      await bad("POST", `${org}/projects`, { name: "x", description: 3 }, "body.description");
      await bad("PATCH", path, { name: "" }, "body.name");
      await bad("PATCH", path, { agentType: "has spaces" }, "body.agentType");
    });
  });

  describe("workers", () => {
    /** An owner's organization with a project and an online node for workers to run on. */
    async function workerSetup() {
      const { token, orgId, org } = await orgOwner(server);
      const project = await createProject(token, orgId);
      const node = await onlineNode(token, orgId);
      const workers = `${org}/projects/${project.id}/workers`;
      return { token, orgId, org, project, node, workers };
    }

    const spawn = (token: string, workers: string, body: Record<string, unknown> = {}, headers?: Record<string, string>) =>
      success(workers, { method: "POST", token, headers, body: { name: "api", image: "ghcr.io/acme/api:1", env: { MODE: "prod" }, ...body } }, 201);

    it("POST spawns a container worker on a node (201); GET lists and answers it; stop, start and DELETE move it", async () => {
      const { token, orgId, project, node, workers } = await workerSetup();
      const headers = { "idempotency-key": randomUUID() };
      const worker = await spawn(token, workers, { command: "serve --port 80", runtime: "docker" }, headers);
      expectWorker(worker);
      expect(worker).toMatchObject({
        workspaceId: orgId,
        projectId: project.id,
        name: "api",
        image: "ghcr.io/acme/api:1",
        command: "serve --port 80",
        env: { MODE: "prod" },
        runtime: "docker",
        status: "deploying",
        revision: 1,
        machineId: node.id,
      });
      expect((await spawn(token, workers, { command: "serve --port 80", runtime: "docker" }, headers)).id).toBe(worker.id);
      expect(await prisma().worker.findUniqueOrThrow({ where: { id: worker.id } })).toMatchObject({ kind: "CONTAINER", projectId: project.id });

      ok(await server.execute(ReportWorkerStatusDocument, { input: { workerId: worker.id, revision: 1, status: "RUNNING" } }, { token: node.token }));
      const path = `${workers}/${worker.id}`;
      expect(await success(path, { token })).toMatchObject({ id: worker.id, status: "running" });
      const second = await spawn(token, workers, { name: "cron", image: null, command: "crond -f", env: undefined });
      expect(second).toMatchObject({ image: null, command: "crond -f", env: {} });
      const listed = await success(workers, { token });
      expect(listed.map((w: any) => [w.id, w.status])).toEqual([
        [second.id, "deploying"],
        [worker.id, "running"],
      ]);
      listed.forEach(expectWorker);

      const stopped = await success(`${path}/stop`, { method: "POST", token, body: { reason: "maintenance" } });
      expectWorker(stopped);
      expect(stopped).toMatchObject({ id: worker.id, status: "stopped" });
      expect(await statusOf(`${path}/stop`, { method: "POST", token })).toBe(409);
      expect(await success(`${path}/start`, { method: "POST", token })).toMatchObject({ id: worker.id, status: "deploying" });
      expect(await statusOf(`${path}/start`, { method: "POST", token })).toBe(409);

      expect(await success(path, { method: "DELETE", token })).toEqual({ ok: true });
      expect((await prisma().worker.findUniqueOrThrow({ where: { id: worker.id } })).status).toBe("DESTROYED");
      for (const [method, suffix] of [["GET", ""], ["DELETE", ""], ["POST", "/stop"], ["POST", "/start"], ["GET", "/logs"], ["GET", "/stats"]] as const) {
        expect(await statusOf(`${path}${suffix}`, { method, token })).toBe(404);
      }
      expect((await success(workers, { token })).map((w: any) => w.id)).toEqual([second.id]);
    });

    it("GET .../logs answers stored lines (limit, after, tail); GET .../stats the last CPU and memory the node reported", async () => {
      const { token, node, workers } = await workerSetup();
      const worker = await spawn(token, workers);
      const path = `${workers}/${worker.id}`;
      expect(await success(`${path}/logs`, { token })).toEqual([]);
      ok(
        await server.execute(
          AppendLogsDocument,
          {
            input: {
              source: { type: "WORKER", id: worker.id },
              sequence: "1",
              lines: ["booting", "listening on :80", "GET /", "GET /health", "slow request"].map((message, i) => ({
                level: i === 4 ? ("WARN" as const) : ("INFO" as const),
                message,
                at: `2026-01-01T00:00:0${i}Z`,
              })),
            },
          },
          { token: node.token },
        ),
      );
      const all = await success(`${path}/logs`, { token });
      expect(all).toEqual(
        ["booting", "listening on :80", "GET /", "GET /health", "slow request"].map((message, i) => ({
          cursor: String(i + 1),
          level: i === 4 ? "warn" : "info",
          message,
          at: `2026-01-01T00:00:0${i}.000Z`,
        })),
      );
      expect((await success(`${path}/logs?limit=2`, { token })).map((l: any) => l.message)).toEqual(["booting", "listening on :80"]);
      expect((await success(`${path}/logs?after=2&limit=2`, { token })).map((l: any) => l.cursor)).toEqual(["3", "4"]);
      expect((await success(`${path}/logs?tail=true&limit=2`, { token })).map((l: any) => l.message)).toEqual(["GET /health", "slow request"]);

      const before = await success(`${path}/stats`, { token });
      expect(before).toEqual({ workerId: worker.id, status: "deploying", cpuPercent: null, memoryBytes: null, lastTickAt: null });
      ok(
        await server.execute(
          ReportWorkerTicksDocument,
          { input: { workerId: worker.id, revision: 1, ticks: 3, errors: 0, cpuPercent: 12.5, memoryBytes: 268_435_456, lastTickAt: "2026-01-01T00:01:00Z" } },
          { token: node.token },
        ),
      );
      expect(await success(`${path}/stats`, { token })).toEqual({
        workerId: worker.id,
        status: "deploying",
        cpuPercent: 12.5,
        memoryBytes: 268_435_456,
        lastTickAt: "2026-01-01T00:01:00.000Z",
      });
    });

    it("answers 401, 404 (stranger's, unknown, malformed, another project's), 403 by role and 400 naming the field", async () => {
      const { token, orgId, org, workers } = await workerSetup();
      const worker = await spawn(token, workers);
      const path = `${workers}/${worker.id}`;
      const routes: [string, string][] = [
        ["GET", workers],
        ["POST", workers],
        ["GET", path],
        ["DELETE", path],
        ["POST", `${path}/stop`],
        ["POST", `${path}/start`],
        ["GET", `${path}/logs`],
        ["GET", `${path}/stats`],
      ];
      for (const [method, at] of routes) expect(await statusOf(at, { method, body: method === "POST" ? { name: "x" } : undefined })).toBe(401);

      const stranger = await strangerToken();
      for (const [method, at] of routes) expect(await statusOf(at, { method, token: stranger, body: method === "POST" ? { name: "x", image: "i" } : undefined })).toBe(404);
      const otherProject = await createProject(token, orgId, { name: "Other" });
      for (const [method, suffix] of [["GET", ""], ["DELETE", ""], ["POST", "/stop"], ["GET", "/logs"], ["GET", "/stats"]] as const) {
        for (const id of [randomUUID(), ...MALFORMED]) expect(await statusOf(`${workers}/${id}${suffix}`, { method, token })).toBe(404);
        expect(await statusOf(`${org}/projects/${otherProject.id}/workers/${worker.id}${suffix}`, { method, token })).toBe(404);
      }
      for (const id of [randomUUID(), "nope"]) {
        expect(await statusOf(`${org}/projects/${id}/workers`, { token })).toBe(404);
        expect(await statusOf(`${org}/projects/${id}/workers`, { method: "POST", token, body: { name: "x", image: "i" } })).toBe(404);
      }

      const viewer = await memberOf(server, orgId, "VIEWER");
      expect((await success(path, { token: viewer.accessToken })).env).toBeNull();
      expect(await statusOf(workers, { method: "POST", token: viewer.accessToken, body: { name: "x", image: "i" } })).toBe(403);
      expect(await statusOf(`${path}/stop`, { method: "POST", token: viewer.accessToken })).toBe(403);
      expect(await statusOf(path, { method: "DELETE", token: viewer.accessToken })).toBe(403);
      expect((await success(path, { token })).status).toBe("deploying");

      const bad = async (at: string, call: Call, field: string) => {
        const res = await failure(at, { token, ...call });
        expect({ status: res.status, named: res.error.includes(field), error: res.error }).toMatchObject({ status: 400, named: true });
      };
      await bad(workers, { method: "POST", body: { image: "i" } }, "body.name");
      await bad(workers, { method: "POST", body: { name: "x" } }, "body.image");
      await bad(workers, { method: "POST", body: { name: "x", image: "i", env: { PORT: 80 } } }, "body.env.PORT");
      await bad(workers, { method: "POST", body: { name: "x", image: "i", env: "A=1" } }, "body.env");
      await bad(`${path}/logs?limit=0`, {}, "query.limit");
      await bad(`${path}/logs?limit=1001`, {}, "query.limit");
      await bad(`${path}/logs?after=abc`, {}, "query.after");
      await bad(`${path}/logs?tail=true&after=3`, {}, "query.tail");
      await bad(`${path}/logs?tail=maybe`, {}, "query.tail");
      await bad(`${path}/stop`, { method: "POST", body: { reason: 1 } }, "body.reason");
    });
  });

  describe("nodes", () => {
    it("POST registers a node (201) with its token shown once; GET lists and answers it", async () => {
      const { token, orgId, org } = await orgOwner(server);
      const node = await registerNode(token, orgId, { externalId: "host-a", labels: ["gpu"], capabilities: ["docker"], hardware: { cpus: 8 } });
      expectNode(node, ["recoverySecret", "token"]);
      expect(node).toMatchObject({
        workspaceId: orgId,
        name: "node-1",
        externalId: "host-a",
        status: "offline",
        approval: "approved",
        online: false,
        draining: false,
        schedulable: true,
        labels: ["gpu"],
        capabilities: ["docker"],
        hardware: { cpus: 8 },
        lastHeartbeatAt: null,
      });
      expect(node.token).toMatch(/^spm_/);
      expect(node.recoverySecret).toMatch(/^spr_/);
      expect(node.token.startsWith(node.credentialPrefix)).toBe(true);
      expect(ok(await server.execute(CurrentMachineDocument, {}, { token: node.token })).currentMachine.id).toBe(node.id);

      // A member's node waits for an admin.
      const member = await memberOf(server, orgId, "MEMBER");
      const pending = await registerNode(member.accessToken, orgId, { name: "laptop" });
      expect(pending.approval).toBe("pending");

      ok(await server.execute(MachineHeartbeatDocument, { input: { cpuPercent: 40, memoryPercent: 50, diskPercent: 60 } }, { token: node.token }));
      const got = await success(`${org}/nodes/${node.id}`, { token });
      expectNode(got);
      expect(got).toMatchObject({ id: node.id, status: "online", online: true, acceptingWork: true, cpuPercent: 40, memoryPercent: 50, diskPercent: 60 });
      expect(got.lastHeartbeatAt).toMatch(ISO);
      const listed = await success(`${org}/nodes`, { token: member.accessToken });
      expect(listed.map((n: any) => n.id)).toEqual([pending.id, node.id]);
      listed.forEach((n: any) => expectNode(n));
    });

    it("POST .../drain drains the node and answers it", async () => {
      const { token, orgId, org } = await orgOwner(server);
      const node = await registerNode(token, orgId);
      const member = await memberOf(server, orgId, "MEMBER");
      const drained = await success(`${org}/nodes/${node.id}/drain`, { method: "POST", token: member.accessToken });
      expectNode(drained);
      expect(drained).toMatchObject({ id: node.id, draining: true, status: "drained", acceptingWork: false });
      expect(drained.drainingSince).toMatch(ISO);
      expect(await statusOf(`${org}/nodes/${node.id}/drain`, { method: "POST", token })).toBe(409);
    });

    it("POST .../token rotates the token: a new one, and the old one stops working", async () => {
      const { token, orgId, org } = await orgOwner(server);
      const node = await registerNode(token, orgId);
      const rotated = await success(`${org}/nodes/${node.id}/token`, { method: "POST", token });
      expectNode(rotated, ["token"]);
      expect(rotated.token).toMatch(/^spm_/);
      expect(rotated.token).not.toBe(node.token);
      expect(rotated.credentialPrefix).not.toBe(node.credentialPrefix);
      expect(rotated.credentialRotatedAt).toMatch(ISO);
      expect(errorOf(await server.execute(CurrentMachineDocument, {}, { token: node.token })).code).toBe("NOT_AUTHENTICATED");
      expect(ok(await server.execute(CurrentMachineDocument, {}, { token: rotated.token })).currentMachine.id).toBe(node.id);
    });

    it("DELETE takes the node out for good: afterwards every node route answers 404 and the list leaves it out", async () => {
      const { token, orgId, org } = await orgOwner(server);
      const node = await registerNode(token, orgId);
      const kept = await registerNode(token, orgId, { name: "node-2" });
      const path = `${org}/nodes/${node.id}`;
      expect(await success(path, { method: "DELETE", token })).toEqual({ ok: true });
      expect((await prisma().machine.findUniqueOrThrow({ where: { id: node.id } })).decommissionedAt).not.toBeNull();
      expect(await statusOf(path, { token })).toBe(404);
      expect(await statusOf(path, { method: "DELETE", token })).toBe(404);
      expect(await statusOf(`${path}/token`, { method: "POST", token })).toBe(404);
      expect(await statusOf(`${path}/drain`, { method: "POST", token })).toBe(404);
      expect((await success(`${org}/nodes`, { token })).map((n: any) => n.id)).toEqual([kept.id]);
      expect(errorOf(await server.execute(CurrentMachineDocument, {}, { token: node.token })).code).toBe("NOT_AUTHENTICATED");
    });

    it("answers 401, 404 (stranger's, unknown, malformed), 403 by role and 400 naming the field", async () => {
      const { token, orgId, org } = await orgOwner(server);
      const node = await registerNode(token, orgId);
      const path = `${org}/nodes/${node.id}`;
      const routes: [string, string][] = [
        ["GET", `${org}/nodes`],
        ["POST", `${org}/nodes`],
        ["GET", path],
        ["DELETE", path],
        ["POST", `${path}/token`],
        ["POST", `${path}/drain`],
      ];
      for (const [method, at] of routes) expect(await statusOf(at, { method, body: method === "POST" ? { name: "x" } : undefined })).toBe(401);
      const stranger = await strangerToken();
      for (const [method, at] of routes) expect(await statusOf(at, { method, token: stranger, body: method === "POST" ? { name: "x" } : undefined })).toBe(404);
      for (const [method, suffix] of [["GET", ""], ["DELETE", ""], ["POST", "/token"], ["POST", "/drain"]] as const) {
        for (const id of [randomUUID(), ...MALFORMED]) expect(await statusOf(`${org}/nodes/${id}${suffix}`, { method, token })).toBe(404);
        expect(await statusOf(`/api/orgs/${(await orgOwner(server)).orgId}/nodes/${node.id}${suffix}`, { method, token })).toBe(404);
      }

      const viewer = await memberOf(server, orgId, "VIEWER");
      expect((await success(path, { token: viewer.accessToken })).id).toBe(node.id);
      expect(await statusOf(`${org}/nodes`, { method: "POST", token: viewer.accessToken, body: { name: "x" } })).toBe(403);
      expect(await statusOf(`${path}/drain`, { method: "POST", token: viewer.accessToken })).toBe(403);
      const member = await memberOf(server, orgId, "MEMBER");
      expect(await statusOf(`${path}/token`, { method: "POST", token: member.accessToken })).toBe(403);
      expect(await statusOf(path, { method: "DELETE", token: member.accessToken })).toBe(403);
      expect(ok(await server.execute(CurrentMachineDocument, {}, { token: node.token })).currentMachine.status).toBe("OFFLINE");

      for (const [body, field] of [
        [{}, "body.name"],
        [{ name: "" }, "body.name"],
        [{ name: "x", labels: "gpu" }, "body.labels"],
        [{ name: "x", labels: ["has space"] }, "body.labels"],
        [{ name: "x", hardware: [1] }, "body.hardware"],
      ] as const) {
        const bad = await failure(`${org}/nodes`, { method: "POST", token, body });
        expect({ status: bad.status, named: bad.error.includes(field) }).toEqual({ status: 400, named: true });
      }
    });
  });

  describe("deployments", () => {
    it("POST creates a deployment with its services (201); GET lists and answers it; PATCH renames; DELETE removes", async () => {
      const { token, orgId, org } = await orgOwner(server);
      const headers = { "idempotency-key": randomUUID() };
      const body = { name: "shop", services: [{ name: "web", image: "nginx:1.27", env: { PORT: "80" }, domain: "shop.example.test" }, { name: "jobs", command: "run-jobs" }] };
      const deployment = await success(`${org}/deployments`, { method: "POST", token, headers, body }, 201);
      expectDeployment(deployment);
      expect(deployment).toMatchObject({ workspaceId: orgId, name: "shop", status: "stopped", revision: 0, serviceCount: 2 });
      expect(deployment.services.map((s: any) => [s.name, s.status, s.image, s.command, s.env, s.domain, s.domainStatus])).toEqual([
        ["jobs", "stopped", null, "run-jobs", {}, null, "none"],
        ["web", "stopped", "nginx:1.27", null, { PORT: "80" }, "shop.example.test", "pending"],
      ]);
      expect((await success(`${org}/deployments`, { method: "POST", token, headers, body }, 201)).id).toBe(deployment.id);
      const empty = await success(`${org}/deployments`, { method: "POST", token, body: { name: "empty" } }, 201);
      expect(empty).toMatchObject({ status: "empty", serviceCount: 0, services: [] });

      await prisma().deployment.createMany({ data: Array.from({ length: 30 }, (_, i) => ({ workspaceId: orgId, name: `bulk ${i}` })) });
      const all = await success(`${org}/deployments`, { token });
      expect(all).toHaveLength(32);
      all.forEach(expectDeployment);
      expect(all.find((d: any) => d.id === deployment.id)).toEqual(deployment);

      const path = `${org}/deployments/${deployment.id}`;
      expect(await success(path, { token })).toEqual(deployment);
      const renamed = await success(path, { method: "PATCH", token, body: { name: "store" } });
      expect(renamed).toMatchObject({ id: deployment.id, name: "store", serviceCount: 2 });
      expect(await statusOf(path, { method: "PATCH", token, body: { name: "empty" } })).toBe(409);

      expect(await success(path, { method: "DELETE", token })).toEqual({ ok: true });
      expect(await statusOf(path, { token })).toBe(404);
      expect(await statusOf(`${path}/services`, { token })).toBe(404);
      expect(await prisma().service.count({ where: { deploymentId: deployment.id } })).toBe(0);
    });

    it("POST .../start, .../stop and .../deploy move all services and answer the deployment", async () => {
      const { token, orgId, org } = await orgOwner(server);
      const deployment = await createDeployment(token, orgId);
      const path = `${org}/deployments/${deployment.id}`;
      const started = await success(`${path}/start`, { method: "POST", token });
      expectDeployment(started);
      expect(started.status).toBe("deploying");
      expect(started.services.map((s: any) => [s.status, s.statusReason])).toEqual([
        ["deploying", "waiting for a machine"],
        ["deploying", "waiting for a machine"],
      ]);
      expect(await statusOf(`${path}/start`, { method: "POST", token })).toBe(409);
      const stopped = await success(`${path}/stop`, { method: "POST", token });
      expect(stopped.status).toBe("stopped");
      expect(stopped.services.map((s: any) => s.status)).toEqual(["stopped", "stopped"]);
      expect(await statusOf(`${path}/stop`, { method: "POST", token })).toBe(409);
      const deployed = await success(`${path}/deploy`, { method: "POST", token });
      expect(deployed).toMatchObject({ status: "deploying", revision: deployment.revision + 1 });
      expect(deployed.services.map((s: any) => [s.status, s.revision])).toEqual([
        ["deploying", 1],
        ["deploying", 1],
      ]);
    });

    it("answers 401, 404 (stranger's, unknown, malformed, another organization's), 403 by role and 400 naming the field", async () => {
      const { token, orgId, org } = await orgOwner(server);
      const deployment = await createDeployment(token, orgId);
      const path = `${org}/deployments/${deployment.id}`;
      const routes: [string, string][] = [
        ["GET", `${org}/deployments`],
        ["POST", `${org}/deployments`],
        ["GET", path],
        ["PATCH", path],
        ["DELETE", path],
        ["POST", `${path}/start`],
        ["POST", `${path}/stop`],
        ["POST", `${path}/deploy`],
      ];
      const bodyFor = (method: string) => (method === "POST" || method === "PATCH" ? { name: "x" } : undefined);
      for (const [method, at] of routes) expect(await statusOf(at, { method, body: bodyFor(method) })).toBe(401);
      const stranger = await strangerToken();
      for (const [method, at] of routes) expect(await statusOf(at, { method, token: stranger, body: bodyFor(method) })).toBe(404);
      const elsewhere = (await orgOwner(server)).orgId;
      await addMember(server, elsewhere, (await prisma().workspaceMember.findFirstOrThrow({ where: { workspaceId: orgId } })).userId, "OWNER");
      for (const [method, suffix] of [["GET", ""], ["PATCH", ""], ["DELETE", ""], ["POST", "/start"], ["POST", "/stop"], ["POST", "/deploy"]] as const) {
        for (const id of [randomUUID(), ...MALFORMED]) expect(await statusOf(`${org}/deployments/${id}${suffix}`, { method, token, body: bodyFor(method) })).toBe(404);
        expect(await statusOf(`/api/orgs/${elsewhere}/deployments/${deployment.id}${suffix}`, { method, token, body: bodyFor(method) })).toBe(404);
      }

      const viewer = await memberOf(server, orgId, "VIEWER");
      expect((await success(path, { token: viewer.accessToken })).services.map((s: any) => s.env)).toEqual([null, null]);
      expect(await statusOf(`${org}/deployments`, { method: "POST", token: viewer.accessToken, body: { name: "x" } })).toBe(403);
      expect(await statusOf(path, { method: "PATCH", token: viewer.accessToken, body: { name: "x" } })).toBe(403);
      expect(await statusOf(path, { method: "DELETE", token: viewer.accessToken })).toBe(403);
      expect(await statusOf(`${path}/deploy`, { method: "POST", token: viewer.accessToken })).toBe(403);
      expect((await success(path, { token })).status).toBe("stopped");

      for (const [method, at, body, field] of [
        ["POST", `${org}/deployments`, {}, "body.name"],
        ["POST", `${org}/deployments`, { name: "" }, "body.name"],
        ["POST", `${org}/deployments`, { name: "x", services: [{ image: "i" }] }, "body.services.0.name"],
        ["POST", `${org}/deployments`, { name: "x", services: [{ name: "a" }] }, "body.services.0.image"],
        ["POST", `${org}/deployments`, { name: "x", services: [{ name: "a", image: "i" }, { name: "a", image: "i" }] }, "body.services.1.name"],
        ["POST", `${org}/deployments`, { name: "x", services: "web" }, "body.services"],
        ["PATCH", path, {}, "body.name"],
      ] as const) {
        const bad = await failure(at, { method, token, body });
        expect({ status: bad.status, named: bad.error.includes(field), error: bad.error }).toMatchObject({ status: 400, named: true });
      }
      expect(await statusOf(`${org}/deployments`, { method: "POST", token, body: { name: deployment.name } })).toBe(409);
    });
  });

  describe("services", () => {
    it("GET lists a deployment's services; POST adds one (201); PATCH changes it; DELETE removes it", async () => {
      const { token, orgId, org } = await orgOwner(server);
      const deployment = await createDeployment(token, orgId);
      const services = `${org}/deployments/${deployment.id}/services`;
      const listed = await success(services, { token });
      expect(listed).toEqual(deployment.services);
      listed.forEach(expectService);

      const headers = { "idempotency-key": randomUUID() };
      const body = { name: "api", image: "ghcr.io/acme/api:2", command: "serve", env: { A: "1" }, domain: "api.example.test" };
      const added = await success(services, { method: "POST", token, headers, body }, 201);
      expectService(added);
      expect(added).toMatchObject({ ...body, deploymentId: deployment.id, workspaceId: orgId, status: "stopped", domainStatus: "pending", revision: 0, machineId: null });
      expect((await success(services, { method: "POST", token, headers, body }, 201)).id).toBe(added.id);
      expect((await success(services, { token })).map((s: any) => s.name)).toEqual(["api", "web", "worker"]);

      const path = `${services}/${added.id}`;
      const patched = await success(path, { method: "PATCH", token, body: { image: "ghcr.io/acme/api:3", domain: null, env: { A: "2" } } });
      expectService(patched);
      expect(patched).toMatchObject({ id: added.id, name: "api", image: "ghcr.io/acme/api:3", command: "serve", domain: null, domainStatus: "none", env: { A: "2" } });
      expect(await success(path, { method: "PATCH", token, body: { name: "api2", command: null } })).toMatchObject({ name: "api2", command: null, image: "ghcr.io/acme/api:3" });

      expect(await success(path, { method: "DELETE", token })).toEqual({ ok: true });
      expect(await statusOf(path, { method: "PATCH", token, body: { name: "x" } })).toBe(404);
      expect(await statusOf(path, { method: "DELETE", token })).toBe(404);
      expect((await success(services, { token })).map((s: any) => s.name)).toEqual(["web", "worker"]);
    });

    it("POST .../start, .../stop and .../deploy move one service and answer it; GET .../logs its stored lines", async () => {
      const { token, orgId, org, user } = await orgOwner(server);
      const deployment = await createDeployment(token, orgId);
      const web = deployment.services.find((s: any) => s.name === "web");
      const path = `${org}/deployments/${deployment.id}/services/${web.id}`;
      const started = await success(`${path}/start`, { method: "POST", token });
      expectService(started);
      expect(started).toMatchObject({ id: web.id, status: "deploying", revision: 0 });
      expect((await success(`${org}/deployments/${deployment.id}`, { token })).services.find((s: any) => s.name === "worker").status).toBe("stopped");
      expect(await success(`${path}/stop`, { method: "POST", token })).toMatchObject({ id: web.id, status: "stopped" });
      expect(await statusOf(`${path}/stop`, { method: "POST", token })).toBe(409);
      expect(await success(`${path}/deploy`, { method: "POST", token })).toMatchObject({ id: web.id, status: "deploying", revision: 1 });

      ok(
        await server.execute(
          AppendLogsDocument,
          { input: { source: { type: "SERVICE", id: web.id }, sequence: "1", lines: [{ level: "INFO", message: "up" }, { level: "ERROR", message: "oops" }, { level: "DEBUG", message: "tick" }] } },
          { token: user.accessToken },
        ),
      );
      const lines = await success(`${path}/logs`, { token });
      expect(lines.map((l: any) => [l.cursor, l.level, l.message])).toEqual([
        ["1", "info", "up"],
        ["2", "error", "oops"],
        ["3", "debug", "tick"],
      ]);
      lines.forEach((l: any) => expect(l.at).toMatch(ISO));
      expect((await success(`${path}/logs?tail=1&limit=1`, { token })).map((l: any) => l.message)).toEqual(["tick"]);
      expect((await success(`${path}/logs?after=1`, { token })).map((l: any) => l.message)).toEqual(["oops", "tick"]);
    });

    it("answers 401, 404 (stranger's, unknown, malformed, another deployment's), 403 by role and 400 naming the field", async () => {
      const { token, orgId, org } = await orgOwner(server);
      const deployment = await createDeployment(token, orgId);
      const other = await createDeployment(token, orgId);
      const services = `${org}/deployments/${deployment.id}/services`;
      const web = deployment.services.find((s: any) => s.name === "web");
      const path = `${services}/${web.id}`;
      const routes: [string, string][] = [
        ["GET", services],
        ["POST", services],
        ["PATCH", path],
        ["DELETE", path],
        ["POST", `${path}/start`],
        ["POST", `${path}/stop`],
        ["POST", `${path}/deploy`],
        ["GET", `${path}/logs`],
      ];
      const bodyFor = (method: string) => (method === "POST" || method === "PATCH" ? { name: "x", image: "i" } : undefined);
      for (const [method, at] of routes) expect(await statusOf(at, { method, body: bodyFor(method) })).toBe(401);
      const stranger = await strangerToken();
      for (const [method, at] of routes) expect(await statusOf(at, { method, token: stranger, body: bodyFor(method) })).toBe(404);
      for (const [method, suffix] of [["PATCH", ""], ["DELETE", ""], ["POST", "/start"], ["POST", "/stop"], ["POST", "/deploy"], ["GET", "/logs"]] as const) {
        for (const id of [randomUUID(), ...MALFORMED]) expect(await statusOf(`${services}/${id}${suffix}`, { method, token, body: bodyFor(method) })).toBe(404);
        // A service of this organization, under another of its deployments: not there.
        expect(await statusOf(`${org}/deployments/${other.id}/services/${web.id}${suffix}`, { method, token, body: bodyFor(method) })).toBe(404);
      }
      for (const id of [randomUUID(), "x"]) expect(await statusOf(`${org}/deployments/${id}/services`, { method: "POST", token, body: bodyFor("POST") })).toBe(404);

      const viewer = await memberOf(server, orgId, "VIEWER");
      expect((await success(services, { token: viewer.accessToken })).length).toBe(2);
      expect(await statusOf(services, { method: "POST", token: viewer.accessToken, body: { name: "x", image: "i" } })).toBe(403);
      expect(await statusOf(path, { method: "PATCH", token: viewer.accessToken, body: { name: "x" } })).toBe(403);
      expect(await statusOf(path, { method: "DELETE", token: viewer.accessToken })).toBe(403);
      expect(await statusOf(`${path}/start`, { method: "POST", token: viewer.accessToken })).toBe(403);
      expect(await prisma().service.count({ where: { deploymentId: deployment.id } })).toBe(2);

      for (const [method, at, body, field] of [
        ["POST", services, { image: "i" }, "body.name"],
        ["POST", services, { name: "x" }, "body.image"],
        ["POST", services, { name: "x", image: "i", env: { A: 1 } }, "body.env.A"],
        ["POST", services, { name: "x", image: "i", domain: "not a host" }, "body.domain"],
        ["PATCH", path, { name: "" }, "body.name"],
        ["PATCH", path, { image: null }, "body.image"],
      ] as const) {
        const bad = await failure(at, { method, token, body });
        expect({ status: bad.status, named: bad.error.includes(field), error: bad.error }).toMatchObject({ status: 400, named: true });
      }
      expect(await statusOf(services, { method: "POST", token, body: { name: "web", image: "i" } })).toBe(409);
    });
  });
});
