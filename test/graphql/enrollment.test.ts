// Enrollment: tokens an admin hands out, registration with them, and the machine's own secrets
// (credential rotation and recovery).
import { decodeProtectedHeader, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSecret, MACHINE_RECOVERY_PREFIX } from "../../src/auth/api-key-format.js";
import { sha256 } from "../../src/auth/secrets.js";
import type { WorkspaceRole } from "../../src/generated/prisma/client.js";
import { addMember } from "../authz/world.js";
import {
  ApproveMachineDocument,
  CreateEnrollmentTokenDocument,
  CreateMachineDocument,
  CurrentMachineDocument,
  DecommissionMachineDocument,
  EnrollmentTokenByIdDocument,
  MachineHeartbeatDocument,
  MachineEnrollmentTokenDocument,
  MeDocument,
  RecoverMachineCredentialDocument,
  RecoverMachineWithAccessTokenDocument,
  RefreshMachineAccessTokenDocument,
  RegisterMachineDocument,
  RegisterMachineWithAccessTokenDocument,
  RevokeEnrollmentTokenDocument,
  RotateMachineCredentialDocument,
  WorkspaceEnrollmentTokensDocument,
  type CreateEnrollmentTokenInput,
  type RegisterMachineInput,
} from "../generated/graphql.js";
import { ownedWorkspace, signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());


async function workspace() {
  const { owner, workspace: ws } = await ownedWorkspace(server);
  return { workspaceId: ws.id, owner };
}

async function memberOf(workspaceId: string, role: WorkspaceRole): Promise<SignedIn> {
  const user = await signedInUser(server);
  await addMember(server, workspaceId, user.id, role);
  return user;
}

async function createToken(admin: SignedIn, workspaceId: string, extra: Partial<CreateEnrollmentTokenInput> = {}) {
  const res = await server.execute(CreateEnrollmentTokenDocument, { input: { workspaceId, name: unique("token"), ...extra } }, { token: admin.accessToken });
  return ok(res).createEnrollmentToken;
}

const register = (token: string, extra: Partial<RegisterMachineInput> = {}) =>
  server.execute(RegisterMachineDocument, { input: { token, name: unique("host"), ...extra } });

async function enrolled() {
  const { workspaceId, owner } = await workspace();
  const { token } = await createToken(owner, workspaceId);
  const { registerMachine } = ok(await register(token!));
  return { workspaceId, owner, ...registerMachine };
}

describe(`enrollment tokens (${backend})`, () => {
  it("are shown once, stored as a hash, ACTIVE for 24 hours by default", async () => {
    const { workspaceId, owner } = await workspace();
    const before = Date.now();
    const { token, enrollmentToken } = await createToken(owner, workspaceId, { labels: ["gpu", "eu", "gpu"] });
    expect(token).toMatch(/^spe_[0-9A-Za-z]{46}$/);
    expect(token!.startsWith(enrollmentToken.prefix)).toBe(true);
    expect(enrollmentToken).toMatchObject({ workspaceId, status: "ACTIVE", labels: ["gpu", "eu"], usedAt: null, revokedAt: null, machine: null });
    const ttl = Date.parse(enrollmentToken.expiresAt) - before;
    expect(ttl).toBeGreaterThan(24 * 3600_000 - 60_000);
    expect(ttl).toBeLessThanOrEqual(24 * 3600_000 + 60_000);

    const row = await server.db.prisma.enrollmentToken.findUniqueOrThrow({ where: { id: enrollmentToken.id } });
    expect(row.tokenHash).toBe(sha256(token!));
    const listed = ok(await server.execute(WorkspaceEnrollmentTokensDocument, { id: workspaceId }, { token: owner.accessToken }));
    expect(JSON.stringify(listed)).not.toContain(token!);
    expect(listed.workspace.enrollmentTokens.edges.map((e) => e.node.id)).toEqual([enrollmentToken.id]);

    const audit = await server.db.prisma.auditEntry.findFirstOrThrow({ where: { targetId: enrollmentToken.id } });
    expect(audit).toMatchObject({ action: "enrollmentToken.create", actorType: "USER", actorId: owner.id, workspaceId });
  });

  it("take an expiry of 60 seconds to 30 days, and refuse bad input naming the field", async () => {
    const { workspaceId, owner } = await workspace();
    const hour = await createToken(owner, workspaceId, { expiresInSeconds: 3600 });
    expect(Date.parse(hour.enrollmentToken.expiresAt) - Date.now()).toBeLessThanOrEqual(3600_000);
    const cases: [Partial<CreateEnrollmentTokenInput>, string][] = [
      [{ expiresInSeconds: 30 * 86400 + 1 }, "input.expiresInSeconds"],
      [{ expiresInSeconds: 10 }, "input.expiresInSeconds"],
      [{ name: "   " }, "input.name"],
      [{ labels: ["has space"] }, "input.labels.0"],
    ];
    for (const [extra, field] of cases) {
      const error = errorOf(
        await server.execute(CreateEnrollmentTokenDocument, { input: { workspaceId, name: "t", ...extra } }, { token: owner.accessToken }),
      );
      expect(error.code).toBe("VALIDATION");
      expect(fieldsOf(error)).toEqual([field]);
    }
    expect(await server.db.prisma.enrollmentToken.count({ where: { workspaceId } })).toBe(1);
  });

  it("are for workspace admins: a member is FORBIDDEN, a stranger gets NOT_FOUND", async () => {
    const { workspaceId } = await workspace();
    const member = await memberOf(workspaceId, "MEMBER");
    const stranger = await signedInUser(server);
    const input = { workspaceId, name: "t" };
    expect(errorOf(await server.execute(CreateEnrollmentTokenDocument, { input }, { token: member.accessToken })).code).toBe("FORBIDDEN");
    expect(errorOf(await server.execute(CreateEnrollmentTokenDocument, { input }, { token: stranger.accessToken })).code).toBe("NOT_FOUND");
    const admin = await memberOf(workspaceId, "ADMIN");
    await createToken(admin, workspaceId);
    const list = errorOf(await server.execute(WorkspaceEnrollmentTokensDocument, { id: workspaceId }, { token: member.accessToken }));
    expect(list.code).toBe("FORBIDDEN");
  });

  it("replay an idempotent create without showing the secret again", async () => {
    const { workspaceId, owner } = await workspace();
    const first = await createToken(owner, workspaceId, { name: "ci", idempotencyKey: "k1" });
    const again = await createToken(owner, workspaceId, { name: "ci", idempotencyKey: "k1" });
    expect(again.enrollmentToken.id).toBe(first.enrollmentToken.id);
    expect(first.token).toMatch(/^spe_/);
    expect(again.token).toBeNull();
    expect(await server.db.prisma.enrollmentToken.count({ where: { workspaceId } })).toBe(1);
    const other = errorOf(
      await server.execute(CreateEnrollmentTokenDocument, { input: { workspaceId, name: "other", idempotencyKey: "k1" } }, { token: owner.accessToken }),
    );
    expect(other.code).toBe("CONFLICT");
  });
});

describe(`registering a machine (${backend})`, () => {
  it("spends the token: the machine gets its secrets once, the token shows USED and the machine it became", async () => {
    const { workspaceId, owner } = await workspace();
    const { token, enrollmentToken } = await createToken(owner, workspaceId, { labels: ["gpu"] });
    const res = await register(token!, {
      name: "build-01",
      externalId: "build-01.local",
      capabilities: ["docker", "node20"],
      labels: ["eu", "gpu"],
      hardware: { cpuCores: 8, memoryTotalMb: 16384, os: "linux" },
    });
    const { machine, credential, recoverySecret } = ok(res).registerMachine;
    expect(credential).toMatch(/^spm_[0-9A-Za-z]{46}$/);
    expect(recoverySecret).toMatch(/^spr_[0-9A-Za-z]{46}$/);
    expect(credential.startsWith(machine.credentialPrefix)).toBe(true);
    expect(machine).toMatchObject({
      workspaceId,
      name: "build-01",
      externalId: "build-01.local",
      approval: "APPROVED",
      labels: ["gpu", "eu"],
      capabilities: ["docker", "node20"],
      hardware: { cpuCores: 8, memoryTotalMb: 16384, os: "linux" },
      schedulable: true,
      status: "OFFLINE",
      online: false,
      acceptingWork: true,
      lastHeartbeatAt: null,
    });

    const row = await server.db.prisma.machine.findUniqueOrThrow({ where: { id: machine.id } });
    expect(row.credentialHash).toBe(sha256(credential));
    expect(row.recoveryHash).toBe(sha256(recoverySecret));

    const me = ok(await server.execute(CurrentMachineDocument, {}, { token: credential }));
    expect(me.currentMachine.id).toBe(machine.id);

    const shown = ok(await server.execute(EnrollmentTokenByIdDocument, { id: enrollmentToken.id }, { token: owner.accessToken })).enrollmentToken;
    expect(shown).toMatchObject({ status: "USED", machine: { id: machine.id, name: "build-01" } });
    expect(shown.usedAt).not.toBeNull();
    const back = ok(await server.execute(MachineEnrollmentTokenDocument, { id: machine.id }, { token: owner.accessToken }));
    expect(back.machine.enrollmentToken).toEqual({ id: enrollmentToken.id, status: "USED" });

    const used = ok(await server.execute(WorkspaceEnrollmentTokensDocument, { id: workspaceId, status: ["USED"] }, { token: owner.accessToken }));
    expect(used.workspace.enrollmentTokens.edges.map((e) => e.node.id)).toEqual([enrollmentToken.id]);
    const active = ok(await server.execute(WorkspaceEnrollmentTokensDocument, { id: workspaceId, status: ["ACTIVE"] }, { token: owner.accessToken }));
    expect(active.workspace.enrollmentTokens.totalCount).toBe(0);

    const audit = await server.db.prisma.auditEntry.findFirstOrThrow({ where: { action: "machine.register", targetId: machine.id } });
    expect(audit).toMatchObject({ actorType: "MACHINE", actorId: machine.id, workspaceId });
  });

  it("refuses a used token, and a second machine is not made", async () => {
    const { workspaceId, owner } = await workspace();
    const { token } = await createToken(owner, workspaceId);
    ok(await register(token!));
    const error = errorOf(await register(token!));
    expect(error).toMatchObject({ code: "NOT_AUTHENTICATED", status: 401 });
    expect(error.message).toMatch(/already been used/);
    expect(await server.db.prisma.machine.count({ where: { workspaceId } })).toBe(1);
  });

  it("refuses an expired token", async () => {
    const { workspaceId, owner } = await workspace();
    const { token, enrollmentToken } = await createToken(owner, workspaceId);
    await server.db.prisma.enrollmentToken.update({ where: { id: enrollmentToken.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const error = errorOf(await register(token!));
    expect(error.code).toBe("NOT_AUTHENTICATED");
    expect(error.message).toMatch(/expired/);
    const expired = ok(await server.execute(WorkspaceEnrollmentTokensDocument, { id: workspaceId, status: ["EXPIRED"] }, { token: owner.accessToken }));
    expect(expired.workspace.enrollmentTokens.edges.map((e) => e.node)).toEqual([expect.objectContaining({ id: enrollmentToken.id, status: "EXPIRED" })]);
    const revoke = errorOf(await server.execute(RevokeEnrollmentTokenDocument, { id: enrollmentToken.id }, { token: owner.accessToken }));
    expect(revoke).toMatchObject({ code: "CONFLICT", extensions: { status: "EXPIRED" } });
  });

  it("refuses a revoked token; revoking twice or revoking a used token is a CONFLICT", async () => {
    const { workspaceId, owner } = await workspace();
    const { token, enrollmentToken } = await createToken(owner, workspaceId);
    const revoked = ok(await server.execute(RevokeEnrollmentTokenDocument, { id: enrollmentToken.id }, { token: owner.accessToken })).revokeEnrollmentToken;
    expect(revoked.status).toBe("REVOKED");
    expect(revoked.revokedAt).not.toBeNull();
    const error = errorOf(await register(token!));
    expect(error.code).toBe("NOT_AUTHENTICATED");
    expect(error.message).toMatch(/revoked/);
    const twice = errorOf(await server.execute(RevokeEnrollmentTokenDocument, { id: enrollmentToken.id }, { token: owner.accessToken }));
    expect(twice).toMatchObject({ code: "CONFLICT", extensions: { status: "REVOKED" } });
    expect(twice.message).toContain(enrollmentToken.id);

    const spent = await createToken(owner, workspaceId);
    ok(await register(spent.token!));
    const usedRevoke = errorOf(await server.execute(RevokeEnrollmentTokenDocument, { id: spent.enrollmentToken.id }, { token: owner.accessToken }));
    expect(usedRevoke).toMatchObject({ code: "CONFLICT", extensions: { status: "USED" } });
  });

  it("refuses a malformed or unknown token; a malformed one without touching the database", async () => {
    const before = server.db.statements.count;
    const malformed = errorOf(await register("spe_not-a-token"));
    expect(malformed.code).toBe("NOT_AUTHENTICATED");
    expect(malformed.message).toMatch(/malformed/);
    expect(errorOf(await register(`spe_${"A".repeat(46)}`)).code).toBe("NOT_AUTHENTICATED");
    expect(server.db.statements.count).toBe(before);
    const unknown = errorOf(await register(generateSecret("spe_")));
    expect(unknown).toMatchObject({ code: "NOT_AUTHENTICATED" });
    expect(unknown.message).toMatch(/not valid/);
  });

  it("lets exactly one of several concurrent registrations with one token win", async () => {
    const { workspaceId, owner } = await workspace();
    const { token, enrollmentToken } = await createToken(owner, workspaceId);
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => register(token!, { externalId: `racer-${i}` })));
    const winners = results.filter((r) => !r.errors?.length);
    expect(winners).toHaveLength(1);
    for (const loser of results.filter((r) => r.errors?.length)) expect(errorOf(loser).code).toBe("NOT_AUTHENTICATED");
    const machines = await server.db.prisma.machine.findMany({ where: { workspaceId } });
    expect(machines.map((m) => m.id)).toEqual([winners[0]!.data!.registerMachine.machine.id]);
    const row = await server.db.prisma.enrollmentToken.findUniqueOrThrow({ where: { id: enrollmentToken.id } });
    expect(row.machineId).toBe(machines[0]!.id);
  });

  it("refuses an externalId a live machine of the workspace holds, naming the field, and leaves the token usable", async () => {
    const { workspaceId, owner } = await workspace();
    const first = await createToken(owner, workspaceId);
    ok(await register(first.token!, { externalId: "host-a" }));
    const second = await createToken(owner, workspaceId);
    const error = errorOf(await register(second.token!, { externalId: "host-a" }));
    expect(error).toMatchObject({ code: "CONFLICT", status: 409 });
    expect(fieldsOf(error)).toEqual(["input.externalId"]);
    const row = await server.db.prisma.enrollmentToken.findUniqueOrThrow({ where: { id: second.enrollmentToken.id } });
    expect(row.usedAt).toBeNull();
    ok(await register(second.token!, { externalId: "host-b" }));

    // Another workspace may use the same externalId.
    const other = await workspace();
    const elsewhere = await createToken(other.owner, other.workspaceId);
    ok(await register(elsewhere.token!, { externalId: "host-a" }));
  });

  it("lets a re-installed host enroll again under the externalId of its decommissioned self", async () => {
    const { workspaceId, owner } = await workspace();
    const first = await createToken(owner, workspaceId);
    const old = ok(await register(first.token!, { externalId: "host-r" })).registerMachine.machine;
    await server.db.prisma.machine.update({ where: { id: old.id }, data: { decommissionedAt: new Date() } });
    const second = await createToken(owner, workspaceId);
    const fresh = ok(await register(second.token!, { externalId: "host-r" })).registerMachine.machine;
    expect(fresh.externalId).toBe("host-r");
    const previous = await server.db.prisma.machine.findUniqueOrThrow({ where: { id: old.id } });
    expect(previous).toMatchObject({ externalId: null, name: old.name });
  });

  it("refuses bad input naming each field, and spends nothing", async () => {
    const { workspaceId, owner } = await workspace();
    const { token, enrollmentToken } = await createToken(owner, workspaceId);
    const error = errorOf(
      await register(token!, { name: "", hardware: [1, 2] as unknown as Record<string, unknown>, capabilities: ["a b"] }),
    );
    expect(error.code).toBe("VALIDATION");
    expect(fieldsOf(error).sort()).toEqual(["input.capabilities.0", "input.hardware", "input.name"]);
    const huge = errorOf(await register(token!, { hardware: { blob: "x".repeat(20_000) } }));
    expect(fieldsOf(huge)).toEqual(["input.hardware"]);
    expect(huge.message).toMatch(/16 KiB/);
    const row = await server.db.prisma.enrollmentToken.findUniqueOrThrow({ where: { id: enrollmentToken.id } });
    expect(row.usedAt).toBeNull();
  });
});

describe(`registering a machine as a user (${backend})`, () => {
  it("an admin's machine is APPROVED, a member's waits for approval (PENDING)", async () => {
    const { workspaceId, owner } = await workspace();
    const member = await memberOf(workspaceId, "MEMBER");
    const byOwner = ok(await server.execute(CreateMachineDocument, { input: { workspaceId, name: "n1", externalId: "n1" } }, { token: owner.accessToken }));
    expect(byOwner.createMachine.machine.approval).toBe("APPROVED");
    expect(byOwner.createMachine.credential).toMatch(/^spm_/);
    const byMember = ok(
      await server.execute(
        CreateMachineDocument,
        { input: { workspaceId, name: "n2", group: "gpu", hardware: { cpuCores: 4 } } },
        { token: member.accessToken },
      ),
    );
    expect(byMember.createMachine.machine).toMatchObject({ approval: "PENDING", group: "gpu", acceptingWork: false });
    // A pending machine may authenticate (and heartbeat); it only gets no work.
    const me = ok(await server.execute(CurrentMachineDocument, {}, { token: byMember.createMachine.credential! }));
    expect(me.currentMachine.approval).toBe("PENDING");

    const viewer = await memberOf(workspaceId, "VIEWER");
    expect(errorOf(await server.execute(CreateMachineDocument, { input: { workspaceId, name: "n3" } }, { token: viewer.accessToken })).code).toBe("FORBIDDEN");
    const dup = errorOf(await server.execute(CreateMachineDocument, { input: { workspaceId, name: "n4", externalId: "n1" } }, { token: owner.accessToken }));
    expect(fieldsOf(dup)).toEqual(["input.externalId"]);
  });

  it("replays an idempotent create without the secrets", async () => {
    const { workspaceId, owner } = await workspace();
    const input = { workspaceId, name: "n1", idempotencyKey: "m1" };
    const first = ok(await server.execute(CreateMachineDocument, { input }, { token: owner.accessToken })).createMachine;
    const again = ok(await server.execute(CreateMachineDocument, { input }, { token: owner.accessToken })).createMachine;
    expect(again.machine.id).toBe(first.machine.id);
    expect(again.credential).toBeNull();
    expect(await server.db.prisma.machine.count({ where: { workspaceId } })).toBe(1);
  });
});

describe(`machine credentials (${backend})`, () => {
  it("a machine rotates its own credential: the old one stops working at once", async () => {
    const { machine, credential } = await enrolled();
    const rotated = ok(await server.execute(RotateMachineCredentialDocument, {}, { token: credential })).rotateMachineCredential;
    expect(rotated.credential).toMatch(/^spm_/);
    expect(rotated.credential).not.toBe(credential);
    expect(rotated.machine.id).toBe(machine.id);
    expect(rotated.credential.startsWith(rotated.machine.credentialPrefix)).toBe(true);
    expect(rotated.machine.credentialRotatedAt).not.toBeNull();
    const old = errorOf(await server.execute(CurrentMachineDocument, {}, { token: credential }));
    expect(old).toMatchObject({ code: "NOT_AUTHENTICATED", status: 401 });
    expect(ok(await server.execute(CurrentMachineDocument, {}, { token: rotated.credential })).currentMachine.id).toBe(machine.id);
  });

  it("an admin rotates a machine's credential by id (Spunto rotate token); a member may not", async () => {
    const { workspaceId, owner, machine, credential } = await enrolled();
    const member = await memberOf(workspaceId, "MEMBER");
    expect(errorOf(await server.execute(RotateMachineCredentialDocument, { machineId: machine.id }, { token: member.accessToken })).code).toBe("FORBIDDEN");
    const missing = errorOf(await server.execute(RotateMachineCredentialDocument, {}, { token: owner.accessToken }));
    expect(missing.code).toBe("VALIDATION");
    expect(fieldsOf(missing)).toEqual(["machineId"]);
    const rotated = ok(await server.execute(RotateMachineCredentialDocument, { machineId: machine.id }, { token: owner.accessToken }));
    expect(errorOf(await server.execute(CurrentMachineDocument, {}, { token: credential })).code).toBe("NOT_AUTHENTICATED");
    ok(await server.execute(CurrentMachineDocument, {}, { token: rotated.rotateMachineCredential.credential }));
  });

  it("a machine cannot rotate another machine's credential", async () => {
    const a = await enrolled();
    const b = await enrolled();
    const error = errorOf(await server.execute(RotateMachineCredentialDocument, { machineId: b.machine.id }, { token: a.credential }));
    expect(error.code).toBe("NOT_FOUND");
    ok(await server.execute(CurrentMachineDocument, {}, { token: b.credential }));
  });

  it("recovery trades the recovery secret for a new credential and a new recovery secret; the old ones stop working", async () => {
    const { machine, credential, recoverySecret } = await enrolled();
    const recovered = ok(
      await server.execute(RecoverMachineCredentialDocument, { input: { machineId: machine.id, recoverySecret } }),
    ).recoverMachineCredential;
    expect(recovered.machine.id).toBe(machine.id);
    expect(recovered.credential).toMatch(/^spm_/);
    expect(recovered.recoverySecret).toMatch(/^spr_/);
    expect(recovered.recoverySecret).not.toBe(recoverySecret);
    expect(errorOf(await server.execute(CurrentMachineDocument, {}, { token: credential })).code).toBe("NOT_AUTHENTICATED");
    expect(ok(await server.execute(CurrentMachineDocument, {}, { token: recovered.credential })).currentMachine.id).toBe(machine.id);
    const reused = errorOf(await server.execute(RecoverMachineCredentialDocument, { input: { machineId: machine.id, recoverySecret } }));
    expect(reused.code).toBe("NOT_AUTHENTICATED");
    const audit = await server.db.prisma.auditEntry.findFirstOrThrow({ where: { action: "machine.recoverCredential", targetId: machine.id } });
    expect(audit).toMatchObject({ actorType: "MACHINE", actorId: machine.id });
  });

  it("answers a wrong secret and an unknown machine alike", async () => {
    const { machine } = await enrolled();
    const other = await enrolled();
    const wrong = errorOf(
      await server.execute(RecoverMachineCredentialDocument, { input: { machineId: machine.id, recoverySecret: other.recoverySecret } }),
    );
    const unknown = errorOf(
      await server.execute(RecoverMachineCredentialDocument, {
        input: { machineId: "00000000-0000-4000-8000-000000000000", recoverySecret: generateSecret(MACHINE_RECOVERY_PREFIX) },
      }),
    );
    const notAnId = errorOf(
      await server.execute(RecoverMachineCredentialDocument, { input: { machineId: "nope", recoverySecret: other.recoverySecret } }),
    );
    for (const error of [wrong, unknown, notAnId]) {
      expect(error).toMatchObject({ code: "NOT_AUTHENTICATED", message: "The recovery secret does not match this machine" });
    }
    const malformed = errorOf(await server.execute(RecoverMachineCredentialDocument, { input: { machineId: machine.id, recoverySecret: "spr_x" } }));
    expect(malformed.code).toBe("NOT_AUTHENTICATED");
    ok(await server.execute(CurrentMachineDocument, {}, { token: other.credential }));
  });
});

describe(`machine access tokens (api-web worker JWT) (${backend})`, () => {
  /** A machine enrolled with a token, with an externalId, and the secrets registration answered. */
  async function enrolledWithToken() {
    const { workspaceId, owner } = await workspace();
    const { token } = await createToken(owner, workspaceId);
    const externalId = unique("host");
    const res = await server.execute(RegisterMachineWithAccessTokenDocument, { input: { token: token!, name: externalId, externalId } });
    return { workspaceId, owner, externalId, ...ok(res).registerMachine };
  }

  const currentMachine = (token: string) => server.execute(CurrentMachineDocument, {}, { token });
  const refresh = (token: string) => server.execute(RefreshMachineAccessTokenDocument, {}, { token });
  const expectRefused = async (token: string) => expect(errorOf(await currentMachine(token))).toMatchObject({ code: "NOT_AUTHENTICATED", status: 401 });

  /** A machine token signed with the server's own key, with the given header type, claims and expiry. */
  function forge(claims: Record<string, unknown>, subject: string, change: { typ?: string; exp?: number } = {}) {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256", typ: change.typ ?? "machine+jwt" })
      .setSubject(subject)
      .setIssuer(server.config.auth.issuer)
      .setAudience(server.config.auth.audience)
      .setIssuedAt(now - 60)
      .setExpirationTime(change.exp ?? now + 300)
      .sign(new TextEncoder().encode(server.config.auth.jwtSecret));
  }

  it("registration answers a short-lived token that authenticates as the machine; the machine refreshes it with either credential", async () => {
    const before = Date.now();
    const { machine, credential, accessToken } = await enrolledWithToken();
    expect(decodeProtectedHeader(accessToken.token).typ).toBe("machine+jwt");
    const lifetime = Date.parse(accessToken.expiresAt) - before;
    expect(lifetime).toBeGreaterThan(server.config.auth.accessTokenTtlSeconds * 1000 - 60_000);
    expect(lifetime).toBeLessThanOrEqual(server.config.auth.accessTokenTtlSeconds * 1000 + 60_000);

    expect(ok(await currentMachine(accessToken.token)).currentMachine.id).toBe(machine.id);
    const beat = ok(await server.execute(MachineHeartbeatDocument, { input: { cpuPercent: 7 } }, { token: accessToken.token })).machineHeartbeat;
    expect(beat.machine).toMatchObject({ id: machine.id, cpuPercent: 7, online: true });
    // It is a machine, not a user.
    expect(errorOf(await server.execute(MeDocument, {}, { token: accessToken.token })).code).toBe("FORBIDDEN");

    for (const using of [credential, accessToken.token]) {
      const fresh = ok(await refresh(using)).refreshMachineAccessToken;
      expect(Date.parse(fresh.expiresAt)).toBeGreaterThan(Date.now());
      expect(ok(await currentMachine(fresh.token)).currentMachine.id).toBe(machine.id);
    }
  });

  it("refresh is for machines: a user is FORBIDDEN, no credential NOT_AUTHENTICATED", async () => {
    const { owner } = await enrolledWithToken();
    expect(errorOf(await refresh(owner.accessToken))).toMatchObject({ code: "FORBIDDEN", status: 403 });
    expect(errorOf(await server.execute(RefreshMachineAccessTokenDocument, {}))).toMatchObject({ code: "NOT_AUTHENTICATED", status: 401 });
  });

  it("rotating the credential ends every token issued before; a token refreshed with the new credential works", async () => {
    const { machine, credential, accessToken } = await enrolledWithToken();
    const refreshed = ok(await refresh(credential)).refreshMachineAccessToken;
    ok(await currentMachine(accessToken.token));
    const rotated = ok(await server.execute(RotateMachineCredentialDocument, {}, { token: accessToken.token })).rotateMachineCredential;
    for (const old of [accessToken.token, refreshed.token]) {
      await expectRefused(old);
      expect(errorOf(await refresh(old)).code).toBe("NOT_AUTHENTICATED");
    }
    const fresh = ok(await refresh(rotated.credential)).refreshMachineAccessToken;
    expect(ok(await currentMachine(fresh.token)).currentMachine.id).toBe(machine.id);
  });

  it("an admin's rotation by id ends the machine's tokens too", async () => {
    const { owner, machine, accessToken } = await enrolledWithToken();
    ok(await currentMachine(accessToken.token));
    ok(await server.execute(RotateMachineCredentialDocument, { machineId: machine.id }, { token: owner.accessToken }));
    await expectRefused(accessToken.token);
  });

  it("recovery by externalId alone answers new secrets and a token; every earlier token stops working", async () => {
    const { machine, externalId, credential, recoverySecret, accessToken } = await enrolledWithToken();
    ok(await currentMachine(accessToken.token));
    const recovered = ok(await server.execute(RecoverMachineWithAccessTokenDocument, { input: { externalId, recoverySecret } })).recoverMachineCredential;
    expect(recovered.machine.id).toBe(machine.id);
    expect(recovered.credential).not.toBe(credential);
    await expectRefused(accessToken.token);
    await expectRefused(credential);
    expect(ok(await currentMachine(recovered.accessToken.token)).currentMachine.id).toBe(machine.id);
    expect(ok(await currentMachine(recovered.credential)).currentMachine.id).toBe(machine.id);

    // Recovery by id answers a working token as well.
    const again = ok(await server.execute(RecoverMachineWithAccessTokenDocument, { input: { machineId: machine.id, recoverySecret: recovered.recoverySecret } }));
    await expectRefused(recovered.accessToken.token);
    expect(ok(await currentMachine(again.recoverMachineCredential.accessToken.token)).currentMachine.id).toBe(machine.id);
  });

  it("recovery needs exactly one of machineId and externalId (VALIDATION), and a matching secret", async () => {
    const { machine, externalId, recoverySecret, accessToken } = await enrolledWithToken();
    const other = await enrolledWithToken();
    for (const input of [{ recoverySecret }, { machineId: machine.id, externalId, recoverySecret }]) {
      const error = errorOf(await server.execute(RecoverMachineWithAccessTokenDocument, { input }));
      expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
      expect(fieldsOf(error)).toEqual(["input.machineId"]);
    }
    // Another machine's externalId with this machine's secret, and an unknown externalId, are refused alike.
    for (const id of [other.externalId, unique("nobody")]) {
      const error = errorOf(await server.execute(RecoverMachineWithAccessTokenDocument, { input: { externalId: id, recoverySecret } }));
      expect(error).toMatchObject({ code: "NOT_AUTHENTICATED", message: "The recovery secret does not match this machine" });
    }
    // Nothing changed: the tokens of both machines still work.
    ok(await currentMachine(accessToken.token));
    ok(await currentMachine(other.accessToken.token));
  });

  it("rejecting the machine refuses its tokens until it is approved again; decommissioning ends them", async () => {
    const { owner, machine, accessToken } = await enrolledWithToken();
    ok(await currentMachine(accessToken.token));
    ok(await server.execute(ApproveMachineDocument, { id: machine.id, approved: false }, { token: owner.accessToken }));
    await expectRefused(accessToken.token);
    ok(await server.execute(ApproveMachineDocument, { id: machine.id, approved: true }, { token: owner.accessToken }));
    ok(await currentMachine(accessToken.token));
    ok(await server.execute(DecommissionMachineDocument, { id: machine.id }, { token: owner.accessToken }));
    await expectRefused(accessToken.token);
    expect(errorOf(await refresh(accessToken.token)).code).toBe("NOT_AUTHENTICATED");
  });

  it("refuses a tampered signature, a user's token type, an expired token and a token for a user", async () => {
    const { machine, credential, accessToken, owner } = await enrolledWithToken();
    const mark = sha256(credential).slice(0, 32);
    // The forger is right: with the server's key and the real claims, a forged token passes (so each refusal below is for its one change).
    expect(ok(await currentMachine(await forge({ cred: mark }, machine.id))).currentMachine.id).toBe(machine.id);

    const [header, payload, signature] = accessToken.token.split(".") as [string, string, string];
    const flipped = signature.slice(0, 10) + (signature[10] === "A" ? "B" : "A") + signature.slice(11);
    await expectRefused(`${header}.${payload}.${flipped}`);
    await expectRefused(await forge({ cred: mark }, machine.id, { typ: "at+jwt" }));
    await expectRefused(await forge({ cred: mark }, machine.id, { exp: Math.floor(Date.now() / 1000) - 60 }));
    await expectRefused(await forge({ cred: mark.replace(/^./, (c) => (c === "0" ? "1" : "0")) }, machine.id));
    // A machine-typed token naming a user (with the user's session id) is no one.
    const sid = JSON.parse(Buffer.from(owner.accessToken.split(".")[1]!, "base64url").toString()).sid;
    const asUser = await forge({ sid, cred: mark }, owner.id);
    await expectRefused(asUser);
    expect(errorOf(await server.execute(MeDocument, {}, { token: asUser })).code).toBe("NOT_AUTHENTICATED");
    ok(await currentMachine(accessToken.token));
  });
});
