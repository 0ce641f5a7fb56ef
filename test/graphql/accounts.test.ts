import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { currentTotp } from "../../src/auth/totp.js";
import {
  ChangePasswordDocument,
  ConfirmRegistrationDocument,
  CreateUserDocument,
  ResetUserTotpDocument,
  UpdateUserDocument,
  DisableTotpDocument,
  EnableTotpDocument,
  LoginDocument,
  LogoutDocument,
  MeDocument,
  RefreshTokenDocument,
  RegisterDocument,
  SessionsDocument,
  SetupTotpDocument,
  UpdateProfileDocument,
  UsersDocument,
} from "../generated/graphql.js";
import { createUser, latestEmailCode, signedInUser, signIn, unique } from "../helpers/factories.js";
import { backend, errorOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ SPINDLE_LOGIN_MAX_FAILURES: "3" });
});
afterAll(() => server?.close());

describe(`sign-up and sign-in (${backend})`, () => {
  it("registers, confirms with the emailed code, signs in by email or username, and reads me", async () => {
    const username = unique("new");
    const email = `${username}@Example.test`;
    const password = "correct horse battery";
    const registered = ok(await server.execute(RegisterDocument, { input: { email, username, password, displayName: "New One" } }));
    expect(registered.register.email).toBe(email.toLowerCase());

    // Not confirmed yet: there is no account, so the right password answers like any wrong one.
    const early = errorOf(await server.execute(LoginDocument, { input: { login: username, password } }));
    expect(early).toMatchObject({ code: "NOT_AUTHENTICATED", extensions: { reason: "INVALID_CREDENTIALS" } });

    const code = await latestEmailCode(server, email.toLowerCase());
    const wrongCode = code === "000000" ? "111111" : "000000";
    const wrong = errorOf(await server.execute(ConfirmRegistrationDocument, { input: { email, code: wrongCode } }));
    expect(wrong).toMatchObject({ code: "VALIDATION", status: 400 });
    expect(wrong.extensions.fields).toEqual([expect.objectContaining({ field: "input.code" })]);

    const confirmed = ok(await server.execute(ConfirmRegistrationDocument, { input: { email, code } }));
    expect(confirmed.confirmRegistration.user).toMatchObject({ username, email: email.toLowerCase(), role: "USER" });

    // The code works once.
    expect(errorOf(await server.execute(ConfirmRegistrationDocument, { input: { email, code } })).code).toBe("VALIDATION");

    for (const login of [email, username.toUpperCase()]) {
      const { login: session } = ok(await server.execute(LoginDocument, { input: { login, password } }));
      const me = ok(await server.execute(MeDocument, {}, { token: session.accessToken }));
      expect(me.me).toMatchObject({ username, displayName: "New One", emailConfirmed: true, totpEnabled: false });
    }
  });

  it("answers a sign-up for a taken email exactly like a new one, and refuses a taken username by name", async () => {
    const existing = await createUser(server);
    const again = ok(await server.execute(RegisterDocument, { input: { email: existing.email, username: unique("x"), password: "another password" } }));
    expect(again.register.email).toBe(existing.email);
    // The owner is told by mail; their password is unchanged.
    ok(await server.execute(LoginDocument, { input: { login: existing.email, password: existing.password } }));

    const taken = errorOf(await server.execute(RegisterDocument, { input: { email: `${unique()}@example.test`, username: existing.username, password: "long enough pw" } }));
    expect(taken).toMatchObject({ code: "CONFLICT", status: 409 });
    expect(taken.extensions.fields).toEqual([{ field: "input.username", message: "already taken" }]);
  });

  it("names every bad field of a sign-up, with a 400 and nothing written", async () => {
    const before = await server.db.prisma.user.count();
    const res = await server.execute(RegisterDocument, { input: { email: "not-an-email", username: "a", password: "short" } });
    const error = errorOf(res);
    expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
    expect(error.extensions.fields.map((f: { field: string }) => f.field).sort()).toEqual(["input.email", "input.password", "input.username"]);
    expect(await server.db.prisma.user.count()).toBe(before);
  });

  it("gives the same answer for an unknown user and a wrong password", async () => {
    const user = await createUser(server);
    const unknown = errorOf(await server.execute(LoginDocument, { input: { login: `${unique()}@example.test`, password: "whatever-123" } }));
    const wrong = errorOf(await server.execute(LoginDocument, { input: { login: user.email, password: "whatever-123" } }));
    expect(unknown).toEqual(wrong);
    expect(wrong).toMatchObject({ code: "NOT_AUTHENTICATED", status: 401 });
  });

  it("throttles failed sign-ins per account and address with 429 and Retry-After, even for the right password", async () => {
    const user = await createUser(server);
    for (let i = 0; i < 3; i++) {
      expect(errorOf(await server.execute(LoginDocument, { input: { login: user.email, password: "wrong-password" } })).code).toBe("NOT_AUTHENTICATED");
    }
    const res = await server.execute(LoginDocument, { input: { login: user.email, password: user.password } });
    expect(errorOf(res)).toMatchObject({ code: "RATE_LIMITED", status: 429 });
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    // Another account from the same address is not affected.
    const other = await createUser(server);
    ok(await server.execute(LoginDocument, { input: { login: other.email, password: other.password } }));
  });
});

describe(`two-factor sign-in (${backend})`, () => {
  it("sets up TOTP, enables it with a code, then requires a fresh code at sign-in", async () => {
    const user = await signedInUser(server);
    const { setupTotp } = ok(await server.execute(SetupTotpDocument, {}, { token: user.accessToken }));
    expect(setupTotp.uri).toMatch(/^otpauth:\/\/totp\//);

    const bad = errorOf(await server.execute(EnableTotpDocument, { input: { code: "12345" } }, { token: user.accessToken }));
    expect(bad.extensions.fields).toEqual([expect.objectContaining({ field: "input.code" })]);

    // Each code is accepted once and only a later one after it, so the steps used here are the
    // previous (still accepted for clock drift), the current and the next one.
    const codeAt = (offsetSeconds: number) => currentTotp(setupTotp.secret, Date.now() + offsetSeconds * 1000);
    const enabled = ok(await server.execute(EnableTotpDocument, { input: { code: codeAt(-30) } }, { token: user.accessToken }));
    expect(enabled.enableTotp.totpEnabled).toBe(true);

    const missing = errorOf(await server.execute(LoginDocument, { input: { login: user.email, password: user.password } }));
    expect(missing).toMatchObject({ code: "NOT_AUTHENTICATED", extensions: { reason: "TOTP_REQUIRED" } });

    const nextCode = codeAt(0);
    const signed = await signIn(server, user, nextCode);
    expect(signed.accessToken).toBeTruthy();
    // The same code cannot be used twice.
    const replay = errorOf(await server.execute(LoginDocument, { input: { login: user.email, password: user.password, totpCode: nextCode } }));
    expect(replay).toMatchObject({ code: "NOT_AUTHENTICATED", extensions: { reason: "TOTP_INVALID" } });

    const disabled = ok(
      await server.execute(DisableTotpDocument, { input: { code: codeAt(30) } }, { token: signed.accessToken }),
    );
    expect(disabled.disableTotp.totpEnabled).toBe(false);
  });
});

describe(`sessions (${backend})`, () => {
  it("accepts the session cookie from a browser's JSON POST, and ignores it on a form-like request", async () => {
    const user = await signedInUser(server);
    expect(user.cookie).toMatch(/^spindle_session=/);
    const me = ok(await server.execute(MeDocument, {}, { headers: { cookie: user.cookie } }));
    expect(me.me.id).toBe(user.id);

    const form = await fetch(`${server.url}/graphql?query=${encodeURIComponent("{ me { id } }")}`, { headers: { cookie: user.cookie } });
    const body = await form.json();
    expect(body.errors[0].extensions.code).toBe("NOT_AUTHENTICATED");
  });

  it("sets the cookie httpOnly and SameSite=Lax, and Secure behind TLS", async () => {
    const user = await createUser(server);
    const res = await server.execute(LoginDocument, { input: { login: user.email, password: user.password } });
    const cookie = res.headers.get("set-cookie")!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).not.toMatch(/Secure/);
  });

  it("changing the password ends every other session, and logout ends the current one", async () => {
    const user = await createUser(server);
    const laptop = await signIn(server, user);
    const phone = await signIn(server, user);
    const sessions = ok(await server.execute(SessionsDocument, { first: 10 }, { token: laptop.accessToken }));
    expect(sessions.sessions.edges.filter((e) => e.node.current)).toHaveLength(1);
    expect(sessions.sessions.edges).toHaveLength(2);

    const wrongCurrent = errorOf(await server.execute(ChangePasswordDocument, { input: { currentPassword: "nope-nope-nope", newPassword: "a brand new password" } }, { token: laptop.accessToken }));
    expect(wrongCurrent.extensions.fields).toEqual([{ field: "input.currentPassword", message: "is not your current password" }]);

    ok(await server.execute(ChangePasswordDocument, { input: { currentPassword: user.password, newPassword: "a brand new password" } }, { token: laptop.accessToken }));
    expect(errorOf(await server.execute(MeDocument, {}, { token: phone.accessToken })).code).toBe("NOT_AUTHENTICATED");
    expect(errorOf(await server.execute(RefreshTokenDocument, { input: { refreshToken: phone.refreshToken } })).code).toBe("NOT_AUTHENTICATED");
    ok(await server.execute(MeDocument, {}, { token: laptop.accessToken }));
    ok(await server.execute(LoginDocument, { input: { login: user.email, password: "a brand new password" } }));

    ok(await server.execute(LogoutDocument, {}, { token: laptop.accessToken }));
    expect(errorOf(await server.execute(MeDocument, {}, { token: laptop.accessToken })).code).toBe("NOT_AUTHENTICATED");
    expect(errorOf(await server.execute(MeDocument, {}, { headers: { cookie: laptop.cookie } })).code).toBe("NOT_AUTHENTICATED");
  });

  it("a client that cannot refresh asks for a longer access token: granted up to ACCESS_TOKEN_MAX_TTL, and still revocable", async () => {
    const user = await createUser(server);
    const lifetime = (payload: { accessTokenExpiresAt: string }) => (Date.parse(payload.accessTokenExpiresAt) - Date.now()) / 1000;
    const login = async (accessTokenTtl?: number) =>
      ok(await server.execute(LoginDocument, { input: { login: user.email, password: user.password, accessTokenTtl } })).login;

    expect(lifetime(await login())).toBeCloseTo(server.config.auth.accessTokenTtlSeconds, -1);
    expect(lifetime(await login(3600))).toBeCloseTo(3600, -1);
    const max = server.config.auth.accessTokenMaxTtlSeconds;
    expect(max).toBe(12 * 60 * 60);
    const long = await login(30 * 24 * 60 * 60);
    expect(lifetime(long)).toBeCloseTo(max, -1);
    const claims = JSON.parse(Buffer.from(long.accessToken.split(".")[1]!, "base64url").toString());
    expect(claims.exp - claims.iat).toBe(max);

    const tooShort = errorOf(await server.execute(LoginDocument, { input: { login: user.email, password: user.password, accessTokenTtl: 5 } }));
    expect(tooShort.extensions.fields).toEqual([{ field: "input.accessTokenTtl", message: "must be at least 60 seconds" }]);

    ok(await server.execute(MeDocument, {}, { token: long.accessToken }));
    ok(await server.execute(LogoutDocument, {}, { token: long.accessToken }));
    expect(errorOf(await server.execute(MeDocument, {}, { token: long.accessToken })).code).toBe("NOT_AUTHENTICATED");
  });

  it("shows the user's integer legacy id and plan", async () => {
    const user = await signedInUser(server);
    const { me } = ok(await server.execute(MeDocument, {}, { token: user.accessToken }));
    const row = await server.db.prisma.user.findUniqueOrThrow({ where: { id: user.id } });
    expect(me).toMatchObject({ legacyId: row.legacyId, plan: "free" });
    expect(Number.isInteger(me.legacyId)).toBe(true);
  });

  it("updates the profile and refuses a bad git email by field", async () => {
    const user = await signedInUser(server);
    const updated = ok(await server.execute(UpdateProfileDocument, { input: { displayName: "Ada", gitName: "Ada L", gitEmail: "ada@example.test" } }, { token: user.accessToken }));
    expect(updated.updateProfile).toMatchObject({ displayName: "Ada", gitName: "Ada L", gitEmail: "ada@example.test" });
    const bad = errorOf(await server.execute(UpdateProfileDocument, { input: { gitEmail: "nope" } }, { token: user.accessToken }));
    expect(bad.extensions.fields).toEqual([{ field: "input.gitEmail", message: "must be an email address" }]);
  });
});

describe(`system roles (${backend})`, () => {
  it("lists users for an administrator only", async () => {
    const admin = await signedInUser(server, { role: "ADMIN" });
    const user = await signedInUser(server);
    const list = ok(await server.execute(UsersDocument, { first: 100 }, { token: admin.accessToken }));
    expect(list.users.edges.map((e) => e.node.id)).toContain(user.id);
    const denied = errorOf(await server.execute(UsersDocument, { first: 5 }, { token: user.accessToken }));
    expect(denied).toMatchObject({ code: "FORBIDDEN", status: 403 });
    expect(denied.message).toMatch(/administrator/);
    expect(errorOf(await server.execute(UsersDocument, { first: 5 })).code).toBe("NOT_AUTHENTICATED");
  });

  it("lets an administrator create an account, change its role, and reset its two-factor secret, each audited", async () => {
    const admin = await signedInUser(server, { role: "ADMIN" });
    const name = unique("dev");
    const created = ok(
      await server.execute(CreateUserDocument, { input: { email: `${name}@example.test`, username: name, password: "a long enough password", role: "USER" } }, { token: admin.accessToken }),
    ).createUser;
    expect(created).toMatchObject({ username: name, role: "USER", emailConfirmed: true });
    // The new account signs in at once: no confirmation mail needed.
    await signIn(server, { id: created.id, email: `${name}@example.test`, username: name, password: "a long enough password" });

    const taken = errorOf(
      await server.execute(CreateUserDocument, { input: { email: `${name}@example.test`, username: unique("x"), password: "a long enough password" } }, { token: admin.accessToken }),
    );
    expect(taken).toMatchObject({ code: "CONFLICT", extensions: { fields: [{ field: "input.email" }] } });
    const bad = errorOf(await server.execute(CreateUserDocument, { input: { email: "nope", username: "a", password: "short" } }, { token: admin.accessToken }));
    expect(bad.extensions.fields.map((f: { field: string }) => f.field).sort()).toEqual(["input.email", "input.password", "input.username"]);

    const promoted = ok(await server.execute(UpdateUserDocument, { input: { id: created.id, role: "ADMIN", displayName: "Dev" } }, { token: admin.accessToken }));
    expect(promoted.updateUser).toMatchObject({ role: "ADMIN", displayName: "Dev" });

    await server.db.prisma.user.update({ where: { id: created.id }, data: { totpSecret: "JBSWY3DPEHPK3PXP" } });
    const reset = ok(await server.execute(ResetUserTotpDocument, { id: created.id }, { token: admin.accessToken }));
    expect(reset.resetUserTotp.totpEnabled).toBe(false);

    const entries = await server.db.prisma.auditEntry.findMany({ where: { targetId: created.id }, orderBy: { at: "asc" } });
    expect(entries.map((e) => [e.action, e.actorType, e.actorId])).toEqual([
      ["user.create", "USER", admin.id],
      ["user.update", "USER", admin.id],
      ["user.resetTotp", "USER", admin.id],
    ]);

    const user = await signedInUser(server);
    expect(errorOf(await server.execute(ResetUserTotpDocument, { id: created.id }, { token: user.accessToken })).code).toBe("FORBIDDEN");
    expect(errorOf(await server.execute(ResetUserTotpDocument, { id: "not-a-uuid" }, { token: admin.accessToken })).code).toBe("NOT_FOUND");
  });

  it("never demotes the last administrator", async () => {
    // The test database may hold other admins from earlier tests: demote down to one first.
    const admin = await signedInUser(server, { role: "ADMIN" });
    await server.db.prisma.user.updateMany({ where: { role: "ADMIN", NOT: { id: admin.id } }, data: { role: "USER" } });
    const refused = errorOf(await server.execute(UpdateUserDocument, { input: { id: admin.id, role: "USER" } }, { token: admin.accessToken }));
    expect(refused).toMatchObject({ code: "CONFLICT", extensions: { fields: [{ field: "input.role" }] } });
    expect((await server.db.prisma.user.findUniqueOrThrow({ where: { id: admin.id } })).role).toBe("ADMIN");
  });
});
