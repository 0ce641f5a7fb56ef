// The api-web dialect's signed-in user as its own client uses it: plain HTTP with a bearer access
// token (or a personal access token), camelCase JSON, lists as plain arrays, errors as {"error"}.
// Every row of src/rest/api-web/web.ts is called here, with its error paths: 401 without a token,
// 403 where the workspace role forbids, 404 for a stranger's object and unknown ids, 400 naming the field.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { currentTotp } from "../../src/auth/totp.js";
import {
  AppendLogsDocument,
  ClaimTasksDocument,
  CreateMachineDocument,
  CreateTaskDocument,
  MachineHeartbeatDocument,
  type CreateTaskInput,
} from "../generated/graphql.js";
import { addMember, createUser, ownedWorkspace, signIn, unique, type SignedIn } from "../helpers/factories.js";
import { memberOf, restClient, type Call } from "../helpers/rest.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const prisma = () => server.db.prisma;

const { success, failure, expectStatus } = restClient(() => server);

/** A 400 whose message names `field` as the client sent it. */
const badRequest = (path: string, call: Call, field: string) => expectStatus(path, call, 400, field);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Team {
  workspaceId: string;
  owner: SignedIn;
  token: string;
  /** A machine of the workspace that named itself `externalId` at registration. */
  machine: { id: string; externalId: string; credential: string };
  projectId: string;
}

/** A workspace with its owner, a project WEB and an online machine. */
async function team(): Promise<Team> {
  const { owner, workspaceId } = await ownedWorkspace(server);
  const externalId = unique("host-");
  const created = ok(
    await server.execute(CreateMachineDocument, { input: { workspaceId, name: "build box", externalId, capabilities: ["node"], labels: ["fast"] } }, { token: owner.accessToken }),
  ).createMachine;
  ok(await server.execute(MachineHeartbeatDocument, { input: { cpuPercent: 12.5, memoryPercent: 40, diskPercent: 70 } }, { token: created.credential! }));
  const project = await prisma().project.create({ data: { workspaceId, key: "WEB", name: "Web" } });
  return { workspaceId, owner, token: owner.accessToken, machine: { id: created.machine.id, externalId, credential: created.credential! }, projectId: project.id };
}

async function createTask(t: Team, body: Record<string, unknown> = {}) {
  return success("/api/web/tasks", { method: "POST", token: t.token, body: { projectKey: "WEB", description: unique("task "), ...body } }, 201);
}

/** The stages every task of the team's project WEB gets. */
async function withPipeline(t: Team, stages: (string | { name: string; requiresConfirmation?: boolean })[]) {
  await prisma().project.update({ where: { id: t.projectId }, data: { pipeline: { stages } } });
}

/** A task made over GraphQL (in a workspace api-web does not work in). */
async function gqlTask(t: Team, input: Partial<CreateTaskInput> = {}) {
  return ok(await server.execute(CreateTaskDocument, { input: { workspaceId: t.workspaceId, title: unique("task"), ...input } }, { token: t.token })).createTask;
}

/**
 * A mutation as the team's machine. The test suite's task documents ask for fields (the project)
 * a machine may not read, so its reports ask only for the status.
 */
async function asMachine(t: Team, mutation: string, input: Record<string, unknown>) {
  const res = await server.post({ query: `mutation ($input: ${mutation}Input!) { ${mutation[0]!.toLowerCase()}${mutation.slice(1)}(input: $input) { id status } }`, variables: { input } }, { token: t.machine.credential });
  return ok(res);
}

/** The team's machine claims the one pending task and starts it: the lease token. */
async function claimAndStart(t: Team, taskId: string) {
  const [claimed] = ok(await server.execute(ClaimTasksDocument, { input: { limit: 1 } }, { token: t.machine.credential })).claimTasks;
  expect(claimed?.id).toBe(taskId);
  await asMachine(t, "StartTask", { taskId, leaseToken: claimed!.leaseToken! });
  return claimed!.leaseToken!;
}

function expectTask(task: any) {
  expect(Object.keys(task).sort()).toEqual(
    [
      "attempt",
      "createdAt",
      "currentStageIndex",
      "deadline",
      "description",
      "durationMs",
      "error",
      "finishedAt",
      "id",
      "input",
      "instructions",
      "machine",
      "output",
      "pendingConfirmation",
      "priority",
      "projectKey",
      "requiredCapabilities",
      "stages",
      "startedAt",
      "status",
      "targetMachineId",
      "title",
      "updatedAt",
    ].sort(),
  );
  expect(task.id).toMatch(UUID);
  expect(["pending", "assigned", "running", "suspended", "succeeded", "failed", "cancelled"]).toContain(task.status);
  expect(task.createdAt).toMatch(ISO);
  expect(task.updatedAt).toMatch(ISO);
}

function expectMachine(machine: any) {
  expect(Object.keys(machine).sort()).toEqual(
    [
      "acceptingWork",
      "approval",
      "capabilities",
      "cpuPercent",
      "createdAt",
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
      "updatedAt",
    ].sort(),
  );
  expect(machine.id).toMatch(UUID);
  expect(machine.createdAt).toMatch(ISO);
}

describe(`api-web REST dialect, the signed-in user (${backend})`, () => {
  describe("auth", () => {
    it("POST /api/auth/login takes username + password and answers the token pair; email bodies stay flows'", async () => {
      const user = await createUser(server);
      const login = await success("/api/auth/login", { method: "POST", body: { username: user.username, password: user.password, totpCode: null } });
      expect(Object.keys(login).sort()).toEqual(["accessToken", "refreshToken"]);
      expect(login.accessToken).toEqual(expect.any(String));
      expect(login.refreshToken).toEqual(expect.any(String));
      expect((await success("/api/web/profile", { token: login.accessToken })).username).toBe(user.username);

      // The same path with an `email` body is the flows dialect's sign-in.
      const flows = await success("/api/auth/login", { method: "POST", body: { email: user.email, password: user.password } });
      expect(flows).toMatchObject({ ok: true, user: { username: user.username } });

      expect((await failure("/api/auth/login", { method: "POST", body: { username: user.username, password: "wrong-password" } })).status).toBe(401);
      expect((await failure("/api/auth/login", { method: "POST", body: { username: "nobody-here", password: "x" } })).status).toBe(401);
      await badRequest("/api/auth/login", { method: "POST", body: { username: user.username } }, "body.password");
      await badRequest("/api/auth/login", { method: "POST", body: { username: "", password: "x" } }, "body.username");
      await badRequest("/api/auth/login", { method: "POST", body: { username: user.username, password: user.password, totpCode: 123456 } }, "body.totpCode");
    });

    it("POST /api/auth/refresh rotates the pair: the old refresh token is refused once used", async () => {
      const user = await signIn(server, await createUser(server));
      const pair = await success("/api/auth/refresh", { method: "POST", body: { refreshToken: user.refreshToken } });
      expect(Object.keys(pair).sort()).toEqual(["accessToken", "refreshToken"]);
      expect(pair.refreshToken).not.toBe(user.refreshToken);
      expect((await success("/api/web/profile", { token: pair.accessToken })).username).toBe(user.username);

      const reused = await failure("/api/auth/refresh", { method: "POST", body: { refreshToken: user.refreshToken } });
      expect(reused.status).toBe(401);
      expect(reused.error).toMatch(/already used/);
      // Reuse is taken for theft: the whole session ends, the rotated pair with it.
      expect((await failure("/api/auth/refresh", { method: "POST", body: { refreshToken: pair.refreshToken } })).status).toBe(401);
      expect((await failure("/api/web/profile", { token: pair.accessToken })).status).toBe(401);

      expect((await failure("/api/auth/refresh", { method: "POST", body: { refreshToken: "not-a-token" } })).status).toBe(401);
      await badRequest("/api/auth/refresh", { method: "POST", body: {} }, "body.refreshToken");
    });

    it("POST /api/auth/logout ends the session: its access and refresh tokens stop working", async () => {
      const user = await signIn(server, await createUser(server));
      expect((await failure("/api/auth/logout", { method: "POST", body: { refreshToken: user.refreshToken } })).status).toBe(401);

      const out = await success("/api/auth/logout", { method: "POST", token: user.accessToken, body: { refreshToken: user.refreshToken } });
      expect(out).toEqual({ ok: true });
      expect((await failure("/api/auth/refresh", { method: "POST", body: { refreshToken: user.refreshToken } })).status).toBe(401);
      expect((await failure("/api/web/profile", { token: user.accessToken })).status).toBe(401);
      expect(await prisma().session.count({ where: { userId: user.id, revokedAt: null } })).toBe(0);
    });

    it("POST /api/auth/logout also spends a refresh token of another session sent in the body", async () => {
      const account = await createUser(server);
      const here = await signIn(server, account);
      const older = await signIn(server, account);
      expect(await success("/api/auth/logout", { method: "POST", token: here.accessToken, body: { refreshToken: older.refreshToken } })).toEqual({ ok: true });
      expect((await failure("/api/auth/refresh", { method: "POST", body: { refreshToken: older.refreshToken } })).status).toBe(401);
      expect((await failure("/api/auth/refresh", { method: "POST", body: { refreshToken: here.refreshToken } })).status).toBe(401);
      // A refresh token that no longer works is nothing to spend; without one the session still ends.
      const third = await signIn(server, account);
      expect(await success("/api/auth/logout", { method: "POST", token: third.accessToken, body: { refreshToken: "spent-or-bogus" } })).toEqual({ ok: true });
      expect((await failure("/api/web/profile", { token: third.accessToken })).status).toBe(401);
      const fourth = await signIn(server, account);
      expect(await success("/api/auth/logout", { method: "POST", token: fourth.accessToken })).toEqual({ ok: true });
      expect((await failure("/api/auth/refresh", { method: "POST", body: { refreshToken: fourth.refreshToken } })).status).toBe(401);
    });

    it("signs in with a TOTP code end to end: setup, verify, then login needs a fresh code", async () => {
      const user = await signIn(server, await createUser(server));
      const setup = await success("/api/web/profile/totp/setup", { method: "POST", token: user.accessToken });
      expect(Object.keys(setup).sort()).toEqual(["qrCodeUri", "secret", "uri"]);
      expect(setup.secret).toMatch(/^[A-Z2-7]+$/);
      expect(setup.uri).toMatch(/^otpauth:\/\/totp\/.*secret=/);
      expect(setup.qrCodeUri).toBe(setup.uri);
      expect((await success("/api/web/profile", { token: user.accessToken })).totpEnabled).toBe(false);

      await badRequest("/api/web/profile/totp/verify", { method: "POST", token: user.accessToken, body: { code: "12345" } }, "body.code");
      await badRequest("/api/web/profile/totp/verify", { method: "POST", token: user.accessToken, body: {} }, "body.code");
      // Each code is taken once, and only a later one after it: verify with the previous step's code.
      const codeAt = (offsetSeconds: number) => currentTotp(setup.secret, Date.now() + offsetSeconds * 1000);
      const verified = await success("/api/web/profile/totp/verify", { method: "POST", token: user.accessToken, body: { code: codeAt(-30) } });
      expect(verified).toMatchObject({ username: user.username, totpEnabled: true });

      const without = await failure("/api/auth/login", { method: "POST", body: { username: user.username, password: user.password } });
      expect(without.status).toBe(401);
      const wrong = await failure("/api/auth/login", { method: "POST", body: { username: user.username, password: user.password, totpCode: "000000" } });
      expect(wrong.status).toBe(401);
      const login = await success("/api/auth/login", { method: "POST", body: { username: user.username, password: user.password, totpCode: codeAt(0) } });
      expect((await success("/api/web/profile", { token: login.accessToken })).totpEnabled).toBe(true);
      // Set-up again while it is on is a conflict.
      expect((await failure("/api/web/profile/totp/setup", { method: "POST", token: login.accessToken })).status).toBe(409);
    });
  });

  describe("tasks", () => {
    it("POST /api/web/tasks creates a task in a project named in any case, titled by its description", async () => {
      const t = await team();
      const task = await createTask(t, { projectKey: "web", description: "Fix the login page\nIt 500s on a bad password." });
      expectTask(task);
      expect(task).toMatchObject({
        title: "Fix the login page",
        description: "Fix the login page\nIt 500s on a bad password.",
        status: "pending",
        priority: "normal",
        projectKey: "WEB",
        targetMachineId: null,
        machine: null,
        attempt: 0,
        stages: [],
        pendingConfirmation: null,
        error: null,
      });
      const row = await prisma().task.findUniqueOrThrow({ where: { id: task.id } });
      expect(row).toMatchObject({ workspaceId: t.workspaceId, projectId: t.projectId, createdById: t.owner.id, status: "PENDING" });
      expect((await createTask(t, { projectKey: " wEb " })).projectKey).toBe("WEB");
    });

    it("POST /api/web/tasks resolves machineId exactly: the machine's own id (or its Spindle id), else 400", async () => {
      const t = await team();
      const byExternal = await createTask(t, { machineId: t.machine.externalId });
      expect(byExternal.targetMachineId).toBe(t.machine.id);
      expect((await createTask(t, { machineId: t.machine.id })).targetMachineId).toBe(t.machine.id);

      // A machine whose own id merely contains the one sent is not it.
      const longer = await server.execute(
        CreateMachineDocument,
        { input: { workspaceId: t.workspaceId, name: "other", externalId: `${t.machine.externalId}-2` } },
        { token: t.token },
      );
      ok(longer);
      expect((await createTask(t, { machineId: t.machine.externalId })).targetMachineId).toBe(t.machine.id);
      await badRequest("/api/web/tasks", { method: "POST", token: t.token, body: { projectKey: "WEB", description: "x", machineId: t.machine.externalId.slice(0, -1) } }, "body.machineId");

      const stranger = await team();
      for (const machineId of [stranger.machine.externalId, stranger.machine.id, randomUUID(), "no-such-host"]) {
        await badRequest("/api/web/tasks", { method: "POST", token: t.token, body: { projectKey: "WEB", description: "x", machineId } }, "body.machineId");
      }
      expect(await prisma().task.count({ where: { workspaceId: t.workspaceId } })).toBe(3);
    });

    it("POST /api/web/tasks refuses bad input with 400 naming the field, and a viewer with 403", async () => {
      const t = await team();
      const post = (body: unknown, token = t.token) => ({ method: "POST", token, body });
      await badRequest("/api/web/tasks", post({ projectKey: "NOPE", description: "x" }), "body.projectKey");
      await badRequest("/api/web/tasks", post({ description: "x" }), "body.projectKey");
      await badRequest("/api/web/tasks", post({ projectKey: "WEB" }), "body.description");
      await badRequest("/api/web/tasks", post({ projectKey: "WEB", description: "  " }), "body.description");
      await badRequest("/api/web/tasks", post({ projectKey: "WEB", description: 42 }), "body.description");
      await badRequest("/api/web/tasks", post({ projectKey: "WEB", description: "x", machineId: "" }), "body.machineId");

      const viewer = await memberOf(server, t.workspaceId, "VIEWER");
      expect((await failure("/api/web/tasks", post({ projectKey: "WEB", description: "x" }, viewer.accessToken))).status).toBe(403);
      const member = await memberOf(server, t.workspaceId, "MEMBER");
      expect((await success("/api/web/tasks", post({ projectKey: "WEB", description: "by a member" }, member.accessToken), 201)).title).toBe("by a member");
      expect(await prisma().task.count({ where: { workspaceId: t.workspaceId } })).toBe(1);
    });

    it("POST /api/web/tasks takes an Idempotency-Key", async () => {
      const t = await team();
      const headers = { "idempotency-key": randomUUID() };
      const first = await success("/api/web/tasks", { method: "POST", token: t.token, headers, body: { projectKey: "WEB", description: "once" } }, 201);
      const again = await success("/api/web/tasks", { method: "POST", token: t.token, headers, body: { projectKey: "WEB", description: "once" } }, 201);
      expect(again.id).toBe(first.id);
      expect(await prisma().task.count({ where: { workspaceId: t.workspaceId } })).toBe(1);
      expect((await failure("/api/web/tasks", { method: "POST", token: t.token, headers, body: { projectKey: "WEB", description: "other" } })).status).toBe(409);
    });

    it("GET /api/web/tasks lists the workspace's tasks newest first, filtered by status and project, with limit and offset", async () => {
      const t = await team();
      const other = await prisma().project.create({ data: { workspaceId: t.workspaceId, key: "API", name: "Api" } });
      const a = await createTask(t, { description: "a" });
      const b = await createTask(t, { description: "b", projectKey: "api" });
      const c = await createTask(t, { description: "c" });
      await prisma().task.update({ where: { id: b.id }, data: { status: "FAILED", error: "boom" } });

      const all = await success("/api/web/tasks", { token: t.token });
      expect(Array.isArray(all)).toBe(true);
      all.forEach(expectTask);
      expect(all.map((x: any) => x.title)).toEqual(["c", "b", "a"]);
      expect(all[1]).toMatchObject({ status: "failed", error: "boom", projectKey: "API" });
      expect((await success("/api/web/tasks?status=failed", { token: t.token })).map((x: any) => x.id)).toEqual([b.id]);
      expect((await success("/api/web/tasks?status=pending,failed", { token: t.token })).map((x: any) => x.id)).toEqual([c.id, b.id, a.id]);
      expect((await success("/api/web/tasks?project=web", { token: t.token })).map((x: any) => x.id)).toEqual([c.id, a.id]);
      expect((await success(`/api/web/tasks?project=${other.key}&status=pending`, { token: t.token }))).toEqual([]);
      expect((await success("/api/web/tasks?limit=1&offset=1", { token: t.token })).map((x: any) => x.id)).toEqual([b.id]);
      expect((await success("/api/web/tasks?offset=2", { token: t.token })).map((x: any) => x.id)).toEqual([a.id]);

      await badRequest("/api/web/tasks?status=done", { token: t.token }, "query.status");
      await badRequest("/api/web/tasks?project=NOPE", { token: t.token }, "query.project");
      await badRequest("/api/web/tasks?limit=0", { token: t.token }, "query.limit");
      await badRequest("/api/web/tasks?limit=1001", { token: t.token }, "query.limit");
      await badRequest("/api/web/tasks?offset=-1", { token: t.token }, "query.offset");
      const stranger = await team();
      expect(await success("/api/web/tasks", { token: stranger.token })).toEqual([]);
      // A viewer reads.
      const viewer = await memberOf(server, t.workspaceId, "VIEWER");
      expect(await success("/api/web/tasks", { token: viewer.accessToken })).toHaveLength(3);
    });

    it("GET /api/web/tasks pages past 100 tasks", async () => {
      const t = await team();
      await prisma().task.createMany({ data: Array.from({ length: 130 }, (_, i) => ({ workspaceId: t.workspaceId, title: `bulk ${i}` })) });
      expect(await success("/api/web/tasks", { token: t.token })).toHaveLength(130);
      const page = await success("/api/web/tasks?limit=120&offset=5", { token: t.token });
      expect(page).toHaveLength(120);
      expect(new Set(page.map((x: any) => x.id)).size).toBe(120);
    });

    it("GET /api/web/tasks/:id answers the task; a stranger's, another workspace's and unknown ids are 404", async () => {
      const t = await team();
      const task = await createTask(t, { machineId: t.machine.externalId });
      const got = await success(`/api/web/tasks/${task.id}`, { token: t.token });
      expect(got).toEqual({ ...task, updatedAt: expect.stringMatching(ISO) });

      const stranger = await team();
      expect((await failure(`/api/web/tasks/${task.id}`, { token: stranger.token })).status).toBe(404);
      expect((await failure(`/api/web/tasks/${randomUUID()}`, { token: t.token })).status).toBe(404);
      expect((await failure("/api/web/tasks/not-an-id", { token: t.token })).status).toBe(404);
      // The owner also belongs to a second workspace: api-web works in one, the first.
      await addMember(server, stranger.workspaceId, t.owner.id, "MEMBER");
      const elsewhere = await gqlTask(stranger);
      expect((await failure(`/api/web/tasks/${elsewhere.id}`, { token: t.token })).status).toBe(404);
      expect((await failure(`/api/web/tasks/${elsewhere.id}/cancel`, { method: "POST", token: t.token })).status).toBe(404);
    });

    it("POST /api/web/tasks/:id/cancel and /retry answer the task after the change; illegal moves are 409", async () => {
      const t = await team();
      const task = await createTask(t);
      const cancelled = await success(`/api/web/tasks/${task.id}/cancel`, { method: "POST", token: t.token, body: { reason: "not needed" } });
      expectTask(cancelled);
      expect(cancelled).toMatchObject({ id: task.id, status: "cancelled", error: "Cancelled: not needed" });
      expect(cancelled.finishedAt).toMatch(ISO);
      expect((await failure(`/api/web/tasks/${task.id}/cancel`, { method: "POST", token: t.token })).status).toBe(409);

      const viewer = await memberOf(server, t.workspaceId, "VIEWER");
      expect((await failure(`/api/web/tasks/${task.id}/retry`, { method: "POST", token: viewer.accessToken })).status).toBe(403);
      const retried = await success(`/api/web/tasks/${task.id}/retry`, { method: "POST", token: t.token });
      expect(retried).toMatchObject({ id: task.id, status: "pending", error: null, finishedAt: null });
      expect((await failure(`/api/web/tasks/${task.id}/retry`, { method: "POST", token: t.token })).status).toBe(409);

      expect((await failure(`/api/web/tasks/${task.id}/cancel`, { method: "POST", token: viewer.accessToken })).status).toBe(403);
      // A bare POST (no body) cancels too.
      expect((await success(`/api/web/tasks/${task.id}/cancel`, { method: "POST", token: t.token })).status).toBe("cancelled");
      await badRequest(`/api/web/tasks/${task.id}/cancel`, { method: "POST", token: t.token, body: { reason: 7 } }, "body.reason");

      const stranger = await team();
      for (const action of ["cancel", "retry"]) {
        expect((await failure(`/api/web/tasks/${task.id}/${action}`, { method: "POST", token: stranger.token })).status).toBe(404);
        expect((await failure(`/api/web/tasks/${randomUUID()}/${action}`, { method: "POST", token: t.token })).status).toBe(404);
      }
      expect((await prisma().task.findUniqueOrThrow({ where: { id: task.id } })).status).toBe("CANCELLED");
    });

    it("confirm-stage: a task suspended on a confirmation stage shows it pending, and runs on once confirmed", async () => {
      const t = await team();
      // A task gets its stages from the project's pipeline.
      await withPipeline(t, ["plan", { name: "approve", requiresConfirmation: true }, "apply"]);
      const task = await createTask(t);
      expect(task.stages.map((s: any) => [s.name, s.status, s.requiresConfirmation])).toEqual([
        ["plan", "pending", false],
        ["approve", "pending", true],
        ["apply", "pending", false],
      ]);
      const notYet = await success(`/api/web/tasks/${task.id}/pending-confirm`, { token: t.token });
      expect(notYet).toEqual({ taskId: task.id, status: "pending", pending: false, stageIndex: null, stageName: null, prompt: null });
      await badRequest(`/api/web/tasks/${task.id}/confirm-stage`, { method: "POST", token: t.token, body: { stageIndex: 1 } }, "body.result");
      expect((await failure(`/api/web/tasks/${task.id}/confirm-stage`, { method: "POST", token: t.token, body: { stageIndex: 1, result: "yes" } })).status).toBe(409);

      // The machine works through stage 0 and suspends on stage 1, asking a question.
      const leaseToken = await claimAndStart(t, task.id);
      const report = (stageIndex: number, status: "RUNNING" | "SUCCEEDED" | "SUSPENDED", extra: Record<string, unknown> = {}) =>
        asMachine(t, "ReportTaskStage", { taskId: task.id, leaseToken, stageIndex, status, ...extra });
      await report(0, "RUNNING");
      await report(0, "SUCCEEDED", { output: { files: 3 } });
      const prompt = { question: "Apply 3 changes?", choices: ["yes", "no"] };
      await report(1, "SUSPENDED", { prompt });

      const pending = await success(`/api/web/tasks/${task.id}/pending-confirm`, { token: t.token });
      expect(pending).toEqual({ taskId: task.id, status: "suspended", pending: true, stageIndex: 1, stageName: "approve", prompt });
      const suspended = await success(`/api/web/tasks/${task.id}`, { token: t.token });
      expect(suspended).toMatchObject({
        status: "suspended",
        currentStageIndex: 1,
        attempt: 1,
        projectKey: "WEB",
        machine: { id: t.machine.id, machineId: t.machine.externalId, name: "build box" },
        pendingConfirmation: { stageIndex: 1, stageName: "approve", prompt },
      });
      expect(suspended.stages.map((s: any) => [s.index, s.name, s.status, s.requiresConfirmation])).toEqual([
        [0, "plan", "succeeded", false],
        [1, "approve", "suspended", true],
        [2, "apply", "pending", false],
      ]);
      expect(suspended.stages[0]).toMatchObject({ output: { files: 3 }, result: null });
      expect(suspended.stages[0].startedAt).toMatch(ISO);

      const confirm = (body: unknown, token = t.token) => ({ method: "POST", token, body });
      await badRequest(`/api/web/tasks/${task.id}/confirm-stage`, confirm({ stageIndex: "1", result: "yes" }), "body.stageIndex");
      await badRequest(`/api/web/tasks/${task.id}/confirm-stage`, confirm({ stageIndex: -1, result: "yes" }), "body.stageIndex");
      const wrongStage = await failure(`/api/web/tasks/${task.id}/confirm-stage`, confirm({ stageIndex: 0, result: "yes" }));
      expect(wrongStage.status).toBe(409);
      const viewer = await memberOf(server, t.workspaceId, "VIEWER");
      expect((await failure(`/api/web/tasks/${task.id}/confirm-stage`, confirm({ stageIndex: 1, result: "yes" }, viewer.accessToken))).status).toBe(403);
      const stranger = await team();
      expect((await failure(`/api/web/tasks/${task.id}/confirm-stage`, confirm({ stageIndex: 1, result: "yes" }, stranger.token))).status).toBe(404);
      expect((await failure(`/api/web/tasks/${task.id}/pending-confirm`, { token: stranger.token })).status).toBe(404);
      expect((await failure(`/api/web/tasks/${randomUUID()}/pending-confirm`, { token: t.token })).status).toBe(404);

      const confirmed = await success(`/api/web/tasks/${task.id}/confirm-stage`, confirm({ stageIndex: 1, result: "yes" }));
      expectTask(confirmed);
      expect(confirmed).toMatchObject({ status: "running", currentStageIndex: 2, pendingConfirmation: null });
      expect(confirmed.stages[1]).toMatchObject({ status: "succeeded", result: "yes" });
      expect((await success(`/api/web/tasks/${task.id}/pending-confirm`, { token: t.token })).pending).toBe(false);
      expect((await failure(`/api/web/tasks/${task.id}/confirm-stage`, confirm({ stageIndex: 1, result: "yes" }))).status).toBe(409);

      // The timeline, as events.
      const events = await success(`/api/web/tasks/${task.id}/events`, { token: t.token });
      expect(events.map((e: any) => e.type)).toEqual([
        "task.created",
        "task.claimed",
        "task.started",
        "stage.running",
        "stage.succeeded",
        "stage.suspended",
        "stage.confirmed",
      ]);
      expect(Object.keys(events[0]).sort()).toEqual(["actorType", "at", "attempt", "data", "id", "message", "type"]);
      expect(events[0]).toMatchObject({ actorType: "user", attempt: 0 });
      expect(events[1]).toMatchObject({ actorType: "machine", attempt: 1 });
      expect(events[6].actorType).toBe("user");
      events.forEach((e: any) => expect(e.at).toMatch(ISO));
    });

    it("GET /api/web/tasks/:id/events filters by type and text, with limit and offset", async () => {
      const t = await team();
      await withPipeline(t, [{ name: "gate", requiresConfirmation: true }]);
      const task = await createTask(t);
      const leaseToken = await claimAndStart(t, task.id);
      await asMachine(t, "ReportTaskStage", { taskId: task.id, leaseToken, stageIndex: 0, status: "SUSPENDED" });
      const all = await success(`/api/web/tasks/${task.id}/events`, { token: t.token });
      expect(all.map((e: any) => e.type)).toEqual(["task.created", "task.claimed", "task.started", "stage.suspended"]);

      expect((await success(`/api/web/tasks/${task.id}/events?type=stage.suspended`, { token: t.token })).map((e: any) => e.id)).toEqual([all[3].id]);
      expect((await success(`/api/web/tasks/${task.id}/events?type=task.created,task.started`, { token: t.token })).map((e: any) => e.type)).toEqual([
        "task.created",
        "task.started",
      ]);
      const search = all[3].message.split(" ").slice(0, 2).join(" ").toUpperCase();
      expect((await success(`/api/web/tasks/${task.id}/events?search=${encodeURIComponent(search)}`, { token: t.token })).map((e: any) => e.id)).toContain(all[3].id);
      expect((await success(`/api/web/tasks/${task.id}/events?limit=2&offset=1`, { token: t.token })).map((e: any) => e.id)).toEqual([all[1].id, all[2].id]);
      expect(await success(`/api/web/tasks/${task.id}/events?type=nothing.like.this`, { token: t.token })).toEqual([]);
      expect(await success(`/api/web/tasks/${task.id}/events?type=&search=`, { token: t.token })).toEqual(all);

      await badRequest(`/api/web/tasks/${task.id}/events?limit=x`, { token: t.token }, "query.limit");
      await badRequest(`/api/web/tasks/${task.id}/events?offset=10001`, { token: t.token }, "query.offset");
      const stranger = await team();
      expect((await failure(`/api/web/tasks/${task.id}/events`, { token: stranger.token })).status).toBe(404);
      expect((await failure(`/api/web/tasks/${randomUUID()}/events`, { token: t.token })).status).toBe(404);
    });

    it("GET /api/web/tasks/:id/logs answers the raw lines oldest first; offset skips lines", async () => {
      const t = await team();
      const task = await createTask(t);
      const lines = Array.from({ length: 1005 }, (_, i) => ({ level: i === 2 ? ("ERROR" as const) : ("INFO" as const), message: `line ${i + 1}`, step: i < 3 ? "build" : null }));
      ok(await server.execute(AppendLogsDocument, { input: { source: { type: "TASK", id: task.id }, sequence: "1", lines: lines.slice(0, 1000) } }, { token: t.token }));
      ok(await server.execute(AppendLogsDocument, { input: { source: { type: "TASK", id: task.id }, sequence: "2", lines: lines.slice(1000) } }, { token: t.token }));

      const all = await success(`/api/web/tasks/${task.id}/logs`, { token: t.token });
      expect(all).toHaveLength(1005);
      expect(Object.keys(all[0]).sort()).toEqual(["at", "level", "line", "message", "step"]);
      expect(all[2]).toMatchObject({ line: 3, level: "error", message: "line 3", step: "build" });
      expect(all[3]).toMatchObject({ line: 4, level: "info", step: null });
      expect(all[0].at).toMatch(ISO);
      expect(all.map((l: any) => l.line)).toEqual(Array.from({ length: 1005 }, (_, i) => i + 1));
      expect((await success(`/api/web/tasks/${task.id}/logs?offset=2&limit=2`, { token: t.token })).map((l: any) => l.message)).toEqual(["line 3", "line 4"]);
      expect((await success(`/api/web/tasks/${task.id}/logs?offset=1003`, { token: t.token })).map((l: any) => l.line)).toEqual([1004, 1005]);
      expect(await success(`/api/web/tasks/${task.id}/logs?offset=1005`, { token: t.token })).toEqual([]);
      expect(await success(`/api/web/tasks/${(await createTask(t)).id}/logs`, { token: t.token })).toEqual([]);

      await badRequest(`/api/web/tasks/${task.id}/logs?limit=1001`, { token: t.token }, "query.limit");
      await badRequest(`/api/web/tasks/${task.id}/logs?offset=-3`, { token: t.token }, "query.offset");
      const stranger = await team();
      expect((await failure(`/api/web/tasks/${task.id}/logs`, { token: stranger.token })).status).toBe(404);
      expect((await failure(`/api/web/tasks/${randomUUID()}/logs`, { token: t.token })).status).toBe(404);
    });
  });

  describe("machines", () => {
    it("GET /api/web/machines lists the workspace's machines; GET /api/web/machines/:id answers one", async () => {
      const t = await team();
      const list = await success("/api/web/machines", { token: t.token });
      expect(list).toHaveLength(1);
      expectMachine(list[0]);
      expect(list[0]).toMatchObject({
        id: t.machine.id,
        machineId: t.machine.externalId,
        name: "build box",
        status: "online",
        online: true,
        approval: "approved",
        draining: false,
        drainingSince: null,
        schedulable: true,
        acceptingWork: true,
        capabilities: ["node"],
        labels: ["fast"],
        cpuPercent: 12.5,
        memoryPercent: 40,
        diskPercent: 70,
      });
      expect(list[0].lastHeartbeatAt).toMatch(ISO);
      expect(await success(`/api/web/machines/${t.machine.id}`, { token: t.token })).toEqual(list[0]);

      const stranger = await team();
      expect((await success("/api/web/machines", { token: stranger.token })).map((m: any) => m.id)).toEqual([stranger.machine.id]);
      expect((await failure(`/api/web/machines/${t.machine.id}`, { token: stranger.token })).status).toBe(404);
      expect((await failure(`/api/web/machines/${randomUUID()}`, { token: t.token })).status).toBe(404);
      expect((await failure(`/api/web/machines/${t.machine.externalId}`, { token: t.token })).status).toBe(404);
      const viewer = await memberOf(server, t.workspaceId, "VIEWER");
      expect((await success(`/api/web/machines/${t.machine.id}`, { token: viewer.accessToken })).id).toBe(t.machine.id);
    });

    it("GET /api/web/machines/:id/tasks lists the tasks a machine holds or ran, newest first", async () => {
      const t = await team();
      const first = await createTask(t);
      await claimAndStart(t, first.id);
      const second = await createTask(t);
      await claimAndStart(t, second.id);
      await success(`/api/web/tasks/${second.id}/cancel`, { method: "POST", token: t.token });
      await createTask(t, { description: "never claimed" });

      const tasks = await success(`/api/web/machines/${t.machine.id}/tasks`, { token: t.token });
      tasks.forEach(expectTask);
      expect(tasks.map((x: any) => [x.id, x.status])).toEqual([
        [second.id, "cancelled"],
        [first.id, "running"],
      ]);
      expect(tasks[1].machine).toEqual({ id: t.machine.id, machineId: t.machine.externalId, name: "build box" });
      expect((await success(`/api/web/machines/${t.machine.id}/tasks?status=running`, { token: t.token })).map((x: any) => x.id)).toEqual([first.id]);
      expect((await success(`/api/web/machines/${t.machine.id}/tasks?limit=1&offset=1`, { token: t.token })).map((x: any) => x.id)).toEqual([first.id]);
      await badRequest(`/api/web/machines/${t.machine.id}/tasks?status=busy`, { token: t.token }, "query.status");

      const stranger = await team();
      expect((await failure(`/api/web/machines/${t.machine.id}/tasks`, { token: stranger.token })).status).toBe(404);
      expect((await failure(`/api/web/machines/${randomUUID()}/tasks`, { token: t.token })).status).toBe(404);
    });

    it("POST /api/web/machines/:id/drain and /undrain answer the machine after the change", async () => {
      const t = await team();
      const task = await createTask(t);
      await claimAndStart(t, task.id);
      const drained = await success(`/api/web/machines/${t.machine.id}/drain`, { method: "POST", token: t.token });
      expectMachine(drained);
      expect(drained).toMatchObject({ id: t.machine.id, draining: true, status: "draining", acceptingWork: false });
      expect(drained.drainingSince).toMatch(ISO);
      expect((await failure(`/api/web/machines/${t.machine.id}/drain`, { method: "POST", token: t.token })).status).toBe(409);

      const viewer = await memberOf(server, t.workspaceId, "VIEWER");
      expect((await failure(`/api/web/machines/${t.machine.id}/undrain`, { method: "POST", token: viewer.accessToken })).status).toBe(403);
      const back = await success(`/api/web/machines/${t.machine.id}/undrain`, { method: "POST", token: t.token });
      expect(back).toMatchObject({ draining: false, drainingSince: null, status: "online", acceptingWork: true });
      expect((await failure(`/api/web/machines/${t.machine.id}/undrain`, { method: "POST", token: t.token })).status).toBe(409);
      expect((await failure(`/api/web/machines/${t.machine.id}/drain`, { method: "POST", token: viewer.accessToken })).status).toBe(403);
      // A member may drain.
      const member = await memberOf(server, t.workspaceId, "MEMBER");
      expect((await success(`/api/web/machines/${t.machine.id}/drain`, { method: "POST", token: member.accessToken })).draining).toBe(true);

      const stranger = await team();
      for (const action of ["drain", "undrain"]) {
        expect((await failure(`/api/web/machines/${t.machine.id}/${action}`, { method: "POST", token: stranger.token })).status).toBe(404);
        expect((await failure(`/api/web/machines/${randomUUID()}/${action}`, { method: "POST", token: t.token })).status).toBe(404);
      }
      expect((await prisma().machine.findUniqueOrThrow({ where: { id: t.machine.id } })).drainingSince).not.toBeNull();
    });
  });

  describe("profile", () => {
    it("GET /api/web/profile answers the caller, with the integer developer id; PUT changes the git name and email", async () => {
      const user = await signIn(server, await createUser(server));
      const row = await prisma().user.findUniqueOrThrow({ where: { id: user.id } });
      const profile = await success("/api/web/profile", { token: user.accessToken });
      expect(profile).toEqual({
        id: row.legacyId,
        username: user.username,
        name: user.username,
        email: user.email,
        gitName: null,
        gitEmail: null,
        role: "user",
        totpEnabled: false,
        createdAt: row.createdAt.toISOString(),
      });

      const updated = await success("/api/web/profile", { method: "PUT", token: user.accessToken, body: { gitName: "Ada L", gitEmail: "ada@example.test" } });
      expect(updated).toMatchObject({ id: row.legacyId, gitName: "Ada L", gitEmail: "ada@example.test" });
      const kept = await success("/api/web/profile", { method: "PUT", token: user.accessToken, body: { gitName: null } });
      expect(kept).toMatchObject({ gitName: null, gitEmail: "ada@example.test" });
      expect(await prisma().user.findUniqueOrThrow({ where: { id: user.id } })).toMatchObject({ gitName: null, gitEmail: "ada@example.test" });

      await badRequest("/api/web/profile", { method: "PUT", token: user.accessToken, body: { gitEmail: "not an email" } }, "body.gitEmail");
      await badRequest("/api/web/profile", { method: "PUT", token: user.accessToken, body: { gitName: 5 } }, "body.gitName");
    });

    it("PUT /api/web/profile/password changes the password and ends the other sessions", async () => {
      const account = await createUser(server);
      const user = await signIn(server, account);
      const elsewhere = await signIn(server, account);
      await badRequest("/api/web/profile/password", { method: "PUT", token: user.accessToken, body: { currentPassword: "wrong", newPassword: "a-new-passphrase-1" } }, "body.currentPassword");
      await badRequest("/api/web/profile/password", { method: "PUT", token: user.accessToken, body: { currentPassword: account.password } }, "body.newPassword");
      await badRequest("/api/web/profile/password", { method: "PUT", token: user.accessToken, body: { currentPassword: account.password, newPassword: "x" } }, "body.newPassword");

      const changed = await success("/api/web/profile/password", { method: "PUT", token: user.accessToken, body: { currentPassword: account.password, newPassword: "a-new-passphrase-1" } });
      expect(changed).toEqual({ ok: true });
      expect((await failure("/api/web/profile", { token: elsewhere.accessToken })).status).toBe(401);
      expect((await success("/api/web/profile", { token: user.accessToken })).username).toBe(account.username);
      expect((await failure("/api/auth/login", { method: "POST", body: { username: account.username, password: account.password } })).status).toBe(401);
      await success("/api/auth/login", { method: "POST", body: { username: account.username, password: "a-new-passphrase-1" } });
    });

    it("personal access tokens: created once with the secret, listed, usable as a bearer token, revoked", async () => {
      const t = await team();
      const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
      const created = await success("/api/web/profile/tokens", { method: "POST", token: t.token, body: { label: "ci", expiresAt } }, 201);
      expect(Object.keys(created).sort()).toEqual(["createdAt", "expiresAt", "id", "label", "lastUsedAt", "prefix", "revoked", "revokedAt", "scopes", "token", "workspaceId"]);
      expect(created).toMatchObject({ label: "ci", scopes: ["write"], workspaceId: t.workspaceId, revoked: false, revokedAt: null, lastUsedAt: null, expiresAt });
      expect(created.token.startsWith(created.prefix)).toBe(true);
      expect(created.id).toMatch(UUID);

      // The token works as the user, in the workspace it is bound to, with write access.
      const pat = created.token;
      expect((await success("/api/web/profile", { token: pat })).username).toBe(t.owner.username);
      const task = await success("/api/web/tasks", { method: "POST", token: pat, body: { projectKey: "web", description: "via token" } }, 201);
      expect((await success("/api/web/tasks", { token: pat })).map((x: any) => x.id)).toEqual([task.id]);
      // A token manages no tokens; signing out and changing the password need the signed-in session.
      expect((await failure("/api/web/profile/tokens", { method: "POST", token: pat, body: { label: "more" } })).status).toBe(403);
      expect((await failure(`/api/web/profile/tokens/${created.id}/revoke`, { method: "POST", token: pat })).status).toBe(403);
      expect((await failure("/api/auth/logout", { method: "POST", token: pat, body: {} })).status).toBe(403);
      expect((await failure("/api/web/profile/password", { method: "PUT", token: pat, body: { currentPassword: t.owner.password, newPassword: "another-passphrase-2" } })).status).toBe(403);
      expect((await success("/api/web/profile", { token: pat })).username).toBe(t.owner.username);

      const second = await success("/api/web/profile/tokens", { method: "POST", token: t.token, body: { label: "laptop" } }, 201);
      expect(second.expiresAt).toBeNull();
      const list = await success("/api/web/profile/tokens", { token: t.token });
      expect(list.map((x: any) => x.label)).toEqual(["laptop", "ci"]);
      expect(list[1]).not.toHaveProperty("token");
      expect(list[1].lastUsedAt).toMatch(ISO);

      expect(await success(`/api/web/profile/tokens/${created.id}/revoke`, { method: "POST", token: t.token })).toEqual({ ok: true });
      expect((await failure("/api/web/profile", { token: pat })).status).toBe(401);
      expect((await success("/api/web/profile/tokens", { token: t.token })).find((x: any) => x.id === created.id)).toMatchObject({ revoked: true, revokedAt: expect.stringMatching(ISO) });

      const stranger = await team();
      expect((await failure(`/api/web/profile/tokens/${second.id}/revoke`, { method: "POST", token: stranger.token })).status).toBe(404);
      expect((await failure(`/api/web/profile/tokens/${randomUUID()}/revoke`, { method: "POST", token: t.token })).status).toBe(404);
      expect(await success("/api/web/profile/tokens", { token: stranger.token })).toEqual([]);

      await badRequest("/api/web/profile/tokens", { method: "POST", token: t.token, body: {} }, "body.label");
      await badRequest("/api/web/profile/tokens", { method: "POST", token: t.token, body: { label: " " } }, "body.label");
      await badRequest("/api/web/profile/tokens", { method: "POST", token: t.token, body: { label: "x", expiresAt: "tomorrow" } }, "body.expiresAt");
      await badRequest("/api/web/profile/tokens", { method: "POST", token: t.token, body: { label: "x", expiresAt: "2020-01-01T00:00:00Z" } }, "body.expiresAt");
    });
  });

  it("answers 401 without a token on every route but login and refresh", async () => {
    const id = randomUUID();
    const routes: [string, string][] = [
      ["POST", "/api/auth/logout"],
      ["GET", "/api/web/tasks"],
      ["POST", "/api/web/tasks"],
      ["GET", `/api/web/tasks/${id}`],
      ["POST", `/api/web/tasks/${id}/cancel`],
      ["POST", `/api/web/tasks/${id}/retry`],
      ["POST", `/api/web/tasks/${id}/confirm-stage`],
      ["GET", `/api/web/tasks/${id}/events`],
      ["GET", `/api/web/tasks/${id}/logs`],
      ["GET", `/api/web/tasks/${id}/pending-confirm`],
      ["GET", "/api/web/machines"],
      ["GET", `/api/web/machines/${id}`],
      ["GET", `/api/web/machines/${id}/tasks`],
      ["POST", `/api/web/machines/${id}/drain`],
      ["POST", `/api/web/machines/${id}/undrain`],
      ["GET", "/api/web/profile"],
      ["PUT", "/api/web/profile"],
      ["PUT", "/api/web/profile/password"],
      ["POST", "/api/web/profile/totp/setup"],
      ["POST", "/api/web/profile/totp/verify"],
      ["GET", "/api/web/profile/tokens"],
      ["POST", "/api/web/profile/tokens"],
      ["POST", `/api/web/profile/tokens/${id}/revoke`],
    ];
    for (const [method, path] of routes) {
      const res = await failure(path, { method, body: method === "GET" ? undefined : {} });
      expect(res.status, `${method} ${path}`).toBe(401);
    }
    expect((await failure("/api/web/profile", { token: "not-a-token" })).status).toBe(401);
  });

  it("answers 404 for a user in no workspace", async () => {
    const lonely = await signIn(server, await createUser(server));
    expect((await failure("/api/web/tasks", { token: lonely.accessToken })).status).toBe(404);
    expect((await failure("/api/web/machines", { token: lonely.accessToken })).status).toBe(404);
    expect((await failure("/api/web/tasks", { method: "POST", token: lonely.accessToken, body: { projectKey: "WEB", description: "x" } })).status).toBe(404);
    expect((await success("/api/web/profile", { token: lonely.accessToken })).username).toBe(lonely.username);
  });
});
