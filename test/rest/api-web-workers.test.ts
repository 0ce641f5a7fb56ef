// api-web's worker API (src/rest/api-web/workers.ts) as a worker calls it: it registers with a
// single-use worker token an administrator made, authenticates with the worker JWT it gets back,
// refreshes that JWT, and recovers with its machineId and recovery secret once the JWT is lost.
// A JWT stands for the machine's credential: recovery, rotation and decommissioning end it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CurrentMachineDocument, MachineHeartbeatDocument, RotateMachineCredentialDocument } from "../generated/graphql.js";
import { ownedWorkspace, unique, type SignedIn } from "../helpers/factories.js";
import { restClient } from "../helpers/rest.js";
import { backend, errorOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const { success, failure, expectStatus } = restClient(() => server);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/;
const SECRET_FIELDS = ["expiresAt", "id", "machineId", "name", "recoverySecret", "workerJwt"];

/** A single-use worker token made over REST by the workspace's owner. */
async function workerToken(owner: SignedIn): Promise<string> {
  const created = await success("/api/admin/worker-tokens", { method: "POST", token: owner.accessToken, body: { name: "for a worker" } }, 201);
  return created.token;
}

/** A fresh workspace with a worker registered in it under `machineId`. */
async function registeredWorker(machineId = unique("host-")) {
  const { owner, workspaceId } = await ownedWorkspace(server);
  const token = await workerToken(owner);
  const registered = await success("/api/workers/register", { method: "POST", body: { machineId, token, name: "Build box" } }, 201);
  return { owner, workspaceId, machineId, registered };
}

/** The machine a bearer token authenticates as, over GraphQL. */
async function currentMachine(token: string) {
  return ok(await server.execute(CurrentMachineDocument, {}, { token })).currentMachine;
}

/** A bearer token GraphQL refuses as no credential at all. */
async function expectRefused(token: string) {
  expect(errorOf(await server.execute(CurrentMachineDocument, {}, { token })).code).toBe("NOT_AUTHENTICATED");
  await expectStatus("/api/workers/refresh-token", { method: "POST", token }, 401);
}

function expectSecrets(answer: any) {
  expect(Object.keys(answer).sort()).toEqual(SECRET_FIELDS);
  expect(answer.id).toMatch(UUID);
  expect(answer.workerJwt).toMatch(JWT);
  expect(answer.expiresAt).toMatch(ISO);
  expect(Date.parse(answer.expiresAt)).toBeGreaterThan(Date.now());
  expect(answer.recoverySecret).toMatch(/^spr_/);
}

describe(`api-web worker API (${backend})`, () => {
  it("GET /api/workers/healthz answers without authentication; connectedWorkers rises once a registered worker heartbeats", async () => {
    const healthz = () => success("/api/workers/healthz");
    const before = await healthz();
    expect(Object.keys(before).sort()).toEqual(["connectedWorkers", "status"]);
    // "degraded" is Redis still connecting on a loaded machine: the count is what this route adds.
    expect(["ok", "degraded"]).toContain(before.status);
    expect(Number.isInteger(before.connectedWorkers)).toBe(true);

    const { registered } = await registeredWorker();
    const beat = ok(await server.execute(MachineHeartbeatDocument, { input: { cpuPercent: 5 } }, { token: registered.workerJwt })).machineHeartbeat;
    expect(beat.machine).toMatchObject({ id: registered.id, online: true });
    const after = await healthz();
    // Server-wide: other tests' workers may count too.
    expect({ status: after.status, risen: after.connectedWorkers >= before.connectedWorkers + 1, before, after }).toMatchObject({ status: expect.stringMatching(/^(ok|degraded)$/), risen: true });
  });

  describe("POST /api/workers/register", () => {
    it("answers 201 with the worker JWT and recovery secret; the JWT authenticates as the machine; hardware facts are kept", async () => {
      const { owner } = await ownedWorkspace(server);
      const token = await workerToken(owner);
      const machineId = unique("host-");
      const body = { machineId, token, capabilities: ["docker"], labels: ["fast"], hostname: "box-1", os: "linux", cpuCores: 8, hardware: { gpu: "none" } };
      const registered = await success("/api/workers/register", { method: "POST", body }, 201);
      expectSecrets(registered);
      // No name: the machineId stands for it.
      expect(registered).toMatchObject({ machineId, name: machineId });

      expect(await currentMachine(registered.workerJwt)).toMatchObject({
        id: registered.id,
        externalId: machineId,
        name: machineId,
        approval: "APPROVED",
        capabilities: ["docker"],
        hardware: { hostname: "box-1", os: "linux", cpuCores: 8, gpu: "none" },
      });
      expect((await currentMachine(registered.workerJwt)).labels).toContain("fast");
      const [listed] = await success("/api/admin/machines", { token: owner.accessToken });
      expect(listed).toMatchObject({ id: registered.id, machineId, status: "offline" });

      // The token is spent.
      const again = await failure("/api/workers/register", { method: "POST", body: { machineId: unique("host-"), token } });
      expect(again.status).toBe(401);
      expect(again.error).toContain("already been used");
    });

    it("400 names body.machineId and body.token; 401 for a token that is not one; 409 for a machineId the workspace has", async () => {
      const { owner, machineId } = await registeredWorker();
      const token = await workerToken(owner);
      const register = (body: unknown) => ({ method: "POST", body });
      await expectStatus("/api/workers/register", register({ token }), 400, "body.machineId");
      await expectStatus("/api/workers/register", register({ machineId: "", token }), 400, "body.machineId");
      await expectStatus("/api/workers/register", register({ machineId: 7, token }), 400, "body.machineId");
      await expectStatus("/api/workers/register", register({ machineId: "h" }), 400, "body.token");
      await expectStatus("/api/workers/register", register({ machineId: "h", token: "" }), 400, "body.token");
      await expectStatus("/api/workers/register", register({ machineId: "h", token, capabilities: ["has space"] }), 400, "body.capabilities");
      await expectStatus("/api/workers/register", register({ machineId: "h", token, hardware: [1] }), 400, "body.hardware");
      await expectStatus("/api/workers/register", register({ machineId: "h", token: "spe_not-a-token" }), 401);
      await expectStatus("/api/workers/register", register({ machineId: "h", token: "garbage" }), 401);
      await expectStatus("/api/workers/register", register({ machineId, token }), 409);
      // None of the refused registrations spent the token.
      expectSecrets(await success("/api/workers/register", register({ machineId: unique("host-"), token }), 201));
    });
  });

  describe("POST /api/workers/refresh-token", () => {
    it("trades a valid worker JWT for a fresh one that authenticates as the same machine", async () => {
      const { registered } = await registeredWorker();
      const refreshed = await success("/api/workers/refresh-token", { method: "POST", token: registered.workerJwt });
      expect(Object.keys(refreshed).sort()).toEqual(["expiresAt", "workerJwt"]);
      expect(refreshed.workerJwt).toMatch(JWT);
      expect(refreshed.expiresAt).toMatch(ISO);
      expect(Date.parse(refreshed.expiresAt)).toBeGreaterThan(Date.now());
      expect(await currentMachine(refreshed.workerJwt)).toMatchObject({ id: registered.id, externalId: registered.machineId });
      const again = await success("/api/workers/refresh-token", { method: "POST", token: refreshed.workerJwt });
      expect((await currentMachine(again.workerJwt)).id).toBe(registered.id);
    });

    it("401 without a token or with one that is not valid, 403 with a user's access token", async () => {
      const { owner } = await registeredWorker();
      await expectStatus("/api/workers/refresh-token", { method: "POST" }, 401);
      await expectStatus("/api/workers/refresh-token", { method: "POST", token: "not.a.jwt" }, 401);
      await expectStatus("/api/workers/refresh-token", { method: "POST", token: owner.accessToken }, 403);
    });
  });

  describe("POST /api/workers/recover", () => {
    it("trades the machineId and recovery secret for a new JWT and secret; the old JWT and the old secret stop working", async () => {
      const { registered, machineId } = await registeredWorker();
      const recovered = await success("/api/workers/recover", { method: "POST", body: { machineId, recoverySecret: registered.recoverySecret } });
      expectSecrets(recovered);
      expect(recovered).toMatchObject({ id: registered.id, machineId, name: "Build box" });
      expect(recovered.recoverySecret).not.toBe(registered.recoverySecret);
      expect(recovered.workerJwt).not.toBe(registered.workerJwt);

      expect(await currentMachine(recovered.workerJwt)).toMatchObject({ id: registered.id, externalId: machineId });
      await expectRefused(registered.workerJwt);
      await expectStatus("/api/workers/recover", { method: "POST", body: { machineId, recoverySecret: registered.recoverySecret } }, 401);
      // The new secret recovers in turn.
      expectSecrets(await success("/api/workers/recover", { method: "POST", body: { machineId, recoverySecret: recovered.recoverySecret } }));
    });

    it("recovers the machine the secret belongs to when two workspaces have a worker with the same machineId", async () => {
      const machineId = unique("host-");
      const first = await registeredWorker(machineId);
      const second = await registeredWorker(machineId);
      const recovered = await success("/api/workers/recover", { method: "POST", body: { machineId, recoverySecret: second.registered.recoverySecret } });
      expect(recovered.id).toBe(second.registered.id);
      expect((await currentMachine(first.registered.workerJwt)).id).toBe(first.registered.id);
    });

    it("a wrong secret and an unknown machineId get the same 401; 400 names the missing field", async () => {
      const mine = await registeredWorker();
      const other = await registeredWorker();
      const recover = (body: unknown) => failure("/api/workers/recover", { method: "POST", body });
      const wrongSecret = await recover({ machineId: mine.machineId, recoverySecret: other.registered.recoverySecret });
      const unknownMachine = await recover({ machineId: unique("nobody-"), recoverySecret: mine.registered.recoverySecret });
      expect(wrongSecret.status).toBe(401);
      expect(unknownMachine).toEqual(wrongSecret);
      await expectStatus("/api/workers/recover", { method: "POST", body: { machineId: mine.machineId, recoverySecret: "spr_made-up" } }, 401);
      // Nothing was recovered: both JWTs still work.
      expect((await currentMachine(mine.registered.workerJwt)).id).toBe(mine.registered.id);
      expect((await currentMachine(other.registered.workerJwt)).id).toBe(other.registered.id);

      await expectStatus("/api/workers/recover", { method: "POST", body: { recoverySecret: mine.registered.recoverySecret } }, 400, "body.machineId");
      await expectStatus("/api/workers/recover", { method: "POST", body: { machineId: mine.machineId } }, 400, "body.recoverySecret");
      await expectStatus("/api/workers/recover", { method: "POST", body: { machineId: mine.machineId, recoverySecret: "" } }, 400, "body.recoverySecret");
    });
  });

  it("a decommissioned worker's JWT gets 401, and its recovery secret no longer recovers", async () => {
    const { owner, registered, machineId } = await registeredWorker();
    const refreshed = await success("/api/workers/refresh-token", { method: "POST", token: registered.workerJwt });
    await success(`/api/admin/machines/${registered.id}`, { method: "DELETE", token: owner.accessToken });
    await expectRefused(registered.workerJwt);
    await expectRefused(refreshed.workerJwt);
    await expectStatus("/api/workers/recover", { method: "POST", body: { machineId, recoverySecret: registered.recoverySecret } }, 401);
  });

  it("rotating the machine's credential ends its worker JWTs", async () => {
    const { owner, registered } = await registeredWorker();
    ok(await server.execute(RotateMachineCredentialDocument, { machineId: registered.id }, { token: owner.accessToken }));
    await expectRefused(registered.workerJwt);
  });
});
