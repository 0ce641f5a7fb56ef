import { randomUUID } from "node:crypto";
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
  LogoutWithRefreshTokenDocument,
  MeDocument,
  MemberProfilesDocument,
  MyProfileDocument,
  RefreshTokenDocument,
  RegisterAtOnceDocument,
  RegisterDocument,
  SessionsDocument,
  SetupTotpDocument,
  UpdateMyProfileDocument,
  UpdateProfileDocument,
  UserProfilesDocument,
  UsersDocument,
  WorkspaceApiKeysDocument,
  CreateApiKeyDocument,
} from "../generated/graphql.js";
import { addMember, createUser, latestEmailCode, ownedWorkspace, signedInUser, signIn, unique, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

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

  it("on a server without sign-up confirmation, registers and signs in at once; the code then verifies the address", async () => {
    const open = await startTestServer({ SPINDLE_SIGNUP_CONFIRMATION: "none" });
    try {
      const username = unique("now");
      const email = `${username}@example.test`;
      const password = "correct horse battery";
      const { register } = ok(await open.execute(RegisterAtOnceDocument, { input: { email, username, password } }));
      expect(register.session?.user).toMatchObject({ username, email, role: "USER" });
      const me = ok(await open.execute(MeDocument, {}, { token: register.session!.accessToken }));
      expect(me.me).toMatchObject({ username, emailConfirmed: false });
      ok(await open.execute(LoginDocument, { input: { login: email, password } }));

      // The emailed code verifies the address of the account made at once.
      const code = await latestEmailCode(open, email);
      ok(await open.execute(ConfirmRegistrationDocument, { input: { email, code } }));
      expect(ok(await open.execute(MeDocument, {}, { token: register.session!.accessToken })).me.emailConfirmed).toBe(true);

      // Signing in at once cannot hide a taken address: it is a conflict naming the field.
      const taken = errorOf(await open.execute(RegisterAtOnceDocument, { input: { email, username: unique("x"), password } }));
      expect(taken).toMatchObject({ code: "CONFLICT", status: 409 });
      expect(taken.extensions.fields).toEqual([{ field: "input.email", message: "already has an account" }]);
      // The default server answers no session.
      const pending = ok(await server.execute(RegisterAtOnceDocument, { input: { email: `${unique()}@example.test`, username: unique("p"), password } }));
      expect(pending.register.session).toBeNull();
    } finally {
      await open.close();
    }
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

describe(`what others see of a user (${backend})`, () => {
  /** The user as a system administrator sees it, found by paging through every account. */
  async function asAdminSees(admin: SignedIn, userId: string) {
    let after: string | null | undefined;
    for (;;) {
      const { users } = ok(await server.execute(UserProfilesDocument, { first: 100, after }, { token: admin.accessToken }));
      const found = users.edges.find((e) => e.node.id === userId);
      if (found) return found.node;
      if (!users.pageInfo.hasNextPage) throw new Error(`user ${userId} not listed`);
      after = users.pageInfo.endCursor;
    }
  }

  /** The user as a member of `workspaceId` sees it in the member list. */
  async function asMemberSees(member: SignedIn, workspaceId: string, userId: string) {
    const res = await server.execute(MemberProfilesDocument, { id: workspaceId }, { token: member.accessToken });
    expect(res.errors).toBeUndefined();
    return ok(res).workspace.members.edges.find((e) => e.node.user.id === userId)!.node.user;
  }

  it("dotfilesRepo: a git URL the user sets and clears, seen only by the user and system administrators", async () => {
    const { owner: user, workspaceId } = await ownedWorkspace(server);
    const coMember = await signedInUser(server);
    await addMember(server, workspaceId, coMember.id, "MEMBER");
    const admin = await signedInUser(server, { role: "ADMIN" });
    const update = (dotfilesRepo: string | null) => server.execute(UpdateMyProfileDocument, { input: { dotfilesRepo } }, { token: user.accessToken });

    for (const url of ["https://github.com/ada/dotfiles.git", "ssh://git@git.example.test:2222/ada/dotfiles.git", "git://git.example.test/ada/dotfiles", "git@github.com:ada/dotfiles.git"]) {
      expect(ok(await update(url)).updateProfile.dotfilesRepo).toBe(url);
    }
    expect(ok(await update("  https://example.test/d.git  ")).updateProfile.dotfilesRepo).toBe("https://example.test/d.git");
    expect(ok(await server.execute(MyProfileDocument, {}, { token: user.accessToken })).me.dotfilesRepo).toBe("https://example.test/d.git");
    // Other fields left out of an update stay.
    ok(await server.execute(UpdateMyProfileDocument, { input: { displayName: "Ada" } }, { token: user.accessToken }));
    expect((await server.db.prisma.user.findUniqueOrThrow({ where: { id: user.id } })).dotfilesRepo).toBe("https://example.test/d.git");

    expect(await asMemberSees(coMember, workspaceId, user.id)).toMatchObject({ id: user.id, dotfilesRepo: null });
    expect(await asAdminSees(admin, user.id)).toMatchObject({ dotfilesRepo: "https://example.test/d.git" });

    for (const bad of ["ftp://host/dotfiles.git", "github.com/ada/dotfiles", "file:///home/ada/dotfiles", "", `https://example.test/${"x".repeat(500)}`]) {
      const error = errorOf(await update(bad));
      expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
      expect(fieldsOf(error)).toEqual(["input.dotfilesRepo"]);
    }
    expect((await server.db.prisma.user.findUniqueOrThrow({ where: { id: user.id } })).dotfilesRepo).toBe("https://example.test/d.git");

    expect(ok(await update(null)).updateProfile.dotfilesRepo).toBeNull();
    expect(ok(await server.execute(MyProfileDocument, {}, { token: user.accessToken })).me.dotfilesRepo).toBeNull();
  });

  it("email: the user's own and system administrators' to see; null for a co-member, never an error", async () => {
    const { owner: user, workspaceId } = await ownedWorkspace(server);
    const coMember = await signedInUser(server);
    await addMember(server, workspaceId, coMember.id, "ADMIN");
    const admin = await signedInUser(server, { role: "ADMIN" });
    expect(ok(await server.execute(MyProfileDocument, {}, { token: user.accessToken })).me.email).toBe(user.email);
    expect(await asMemberSees(coMember, workspaceId, user.id)).toMatchObject({ username: user.username, email: null });
    expect(await asAdminSees(admin, user.id)).toMatchObject({ email: user.email });
    // Even a workspace owner sees no member's email: the member list reads the same for everyone.
    expect(await asMemberSees(user, workspaceId, coMember.id)).toMatchObject({ email: null });
  });

  it("gitName and gitEmail: shown to co-members and administrators, null (never an error) for anyone else", async () => {
    const { owner: lead, workspaceId } = await ownedWorkspace(server);
    const dev = await signedInUser(server);
    await addMember(server, workspaceId, dev.id, "MEMBER");
    ok(await server.execute(UpdateMyProfileDocument, { input: { gitName: "Dev One", gitEmail: "dev@example.test" } }, { token: dev.accessToken }));
    expect(await asMemberSees(lead, workspaceId, dev.id)).toMatchObject({ gitName: "Dev One", gitEmail: "dev@example.test" });
    const admin = await signedInUser(server, { role: "ADMIN" });
    expect(await asAdminSees(admin, dev.id)).toMatchObject({ gitName: "Dev One", gitEmail: "dev@example.test" });

    // The dev made a key in another team and left it: that team's owner still lists the key, and
    // sees its owner, but no longer shares a workspace with them.
    const { owner: formerLead, workspaceId: formerTeam } = await ownedWorkspace(server);
    await addMember(server, formerTeam, dev.id, "MEMBER");
    const { createApiKey } = ok(await server.execute(CreateApiKeyDocument, { input: { name: "old", scopes: ["READ"], workspaceId: formerTeam } }, { token: dev.accessToken }));
    const keyOwner = async () => {
      const res = await server.execute(WorkspaceApiKeysDocument, { id: formerTeam }, { token: formerLead.accessToken });
      expect(res.errors).toBeUndefined();
      return ok(res).workspace.apiKeys.edges.find((e) => e.node.id === createApiKey.apiKey.id)!.node.owner;
    };
    expect(await keyOwner()).toMatchObject({ id: dev.id, gitName: "Dev One", gitEmail: "dev@example.test", email: null, dotfilesRepo: null });
    await server.db.prisma.workspaceMember.deleteMany({ where: { workspaceId: formerTeam, userId: dev.id } });
    expect(await keyOwner()).toEqual({ id: dev.id, username: dev.username, email: null, gitName: null, gitEmail: null, dotfilesRepo: null });
  });
});

describe(`accounts made by administrators (${backend})`, () => {
  const password = "a long enough password";

  it("createUser without an email: the account signs in by username, its email unconfirmed; two such accounts do not collide", async () => {
    const admin = await signedInUser(server, { role: "ADMIN" });
    const names = [unique("dev"), unique("dev")];
    for (const username of names) {
      const created = ok(await server.execute(CreateUserDocument, { input: { username, password } }, { token: admin.accessToken })).createUser;
      expect(created).toMatchObject({ username, email: null, emailConfirmed: false, role: "USER" });
      const { login } = ok(await server.execute(LoginDocument, { input: { login: username.toUpperCase(), password } }));
      expect(ok(await server.execute(MyProfileDocument, {}, { token: login.accessToken })).me).toMatchObject({ id: created.id, email: null });
    }
    expect(await server.db.prisma.user.count({ where: { username: { in: names }, email: null } })).toBe(2);
  });

  it("createUser into a workspace the administrator administers: the account joins it at once, both steps audited", async () => {
    const { owner: admin, workspaceId } = await ownedWorkspace(server);
    await server.db.prisma.user.update({ where: { id: admin.id }, data: { role: "ADMIN" } });
    const username = unique("dev");
    const created = ok(
      await server.execute(CreateUserDocument, { input: { username, password, workspaceId, workspaceRole: "ADMIN" } }, { token: admin.accessToken }),
    ).createUser;
    const row = await server.db.prisma.user.findUniqueOrThrow({ where: { id: created.id }, include: { memberships: true } });
    expect(row.defaultWorkspaceId).toBe(workspaceId);
    expect(row.memberships.map((m) => [m.workspaceId, m.role])).toEqual([[workspaceId, "ADMIN"]]);
    const entries = await server.db.prisma.auditEntry.findMany({ where: { targetId: created.id }, orderBy: { at: "asc" } });
    expect(entries.map((e) => [e.action, e.workspaceId, e.actorId])).toEqual([
      ["user.create", null, admin.id],
      ["member.add", workspaceId, admin.id],
    ]);
    expect(entries[1]!.data).toEqual({ role: "ADMIN", newAccount: true });

    // The role defaults to MEMBER; OWNER is not given this way.
    const member = ok(await server.execute(CreateUserDocument, { input: { username: unique("dev"), password, workspaceId } }, { token: admin.accessToken })).createUser;
    expect((await server.db.prisma.workspaceMember.findFirstOrThrow({ where: { workspaceId, userId: member.id } })).role).toBe("MEMBER");
    const asOwner = errorOf(await server.execute(CreateUserDocument, { input: { username: unique("dev"), password, workspaceId, workspaceRole: "OWNER" } }, { token: admin.accessToken }));
    expect(asOwner).toMatchObject({ code: "VALIDATION", status: 400 });
    expect(fieldsOf(asOwner)).toEqual(["input.workspaceRole"]);
  });

  it("createUser into a workspace: fine where the administrator is a workspace ADMIN; FORBIDDEN where a mere member, NOT_FOUND for a stranger's; nothing written", async () => {
    const admin = await signedInUser(server, { role: "ADMIN" });
    const { workspaceId: administered } = await ownedWorkspace(server);
    await addMember(server, administered, admin.id, "ADMIN");
    const joined = ok(await server.execute(CreateUserDocument, { input: { username: unique("dev"), password, workspaceId: administered, workspaceRole: "VIEWER" } }, { token: admin.accessToken }));
    expect((await server.db.prisma.workspaceMember.findFirstOrThrow({ where: { workspaceId: administered, userId: joined.createUser.id } })).role).toBe("VIEWER");

    const { workspaceId: memberOf } = await ownedWorkspace(server);
    await addMember(server, memberOf, admin.id, "MEMBER");
    const { workspaceId: strangers } = await ownedWorkspace(server);
    const before = await server.db.prisma.user.count();
    for (const [workspaceId, code] of [
      [memberOf, "FORBIDDEN"],
      [strangers, "NOT_FOUND"],
      [randomUUID(), "NOT_FOUND"],
      ["not-a-workspace", "VALIDATION"],
    ] as const) {
      const username = unique("dev");
      const error = errorOf(await server.execute(CreateUserDocument, { input: { username, password, workspaceId } }, { token: admin.accessToken }));
      expect(error.code).toBe(code);
      if (code === "VALIDATION") expect(fieldsOf(error)).toEqual(["input.workspaceId"]);
    }
    expect(await server.db.prisma.user.count()).toBe(before);
    expect(await server.db.prisma.workspaceMember.count({ where: { workspaceId: { in: [memberOf, strangers] } } })).toBe(3);
    // An ordinary user may not create accounts at all, not even into their own workspace.
    const { owner } = await ownedWorkspace(server);
    expect(errorOf(await server.execute(CreateUserDocument, { input: { username: unique("dev"), password } }, { token: owner.accessToken })).code).toBe("FORBIDDEN");
  });

  it("updateUser with a password resets it and ends every session of that user, audited without the password", async () => {
    const admin = await signedInUser(server, { role: "ADMIN" });
    const user = await createUser(server);
    const laptop = await signIn(server, user);
    const phone = await signIn(server, user);

    const tooShort = errorOf(await server.execute(UpdateUserDocument, { input: { id: user.id, password: "short" } }, { token: admin.accessToken }));
    expect(fieldsOf(tooShort)).toEqual(["input.password"]);
    ok(await server.execute(MeDocument, {}, { token: laptop.accessToken }));

    const newPassword = "a freshly reset password";
    ok(await server.execute(UpdateUserDocument, { input: { id: user.id, password: newPassword } }, { token: admin.accessToken }));
    for (const session of [laptop, phone]) {
      expect(errorOf(await server.execute(MeDocument, {}, { token: session.accessToken })).code).toBe("NOT_AUTHENTICATED");
      expect(errorOf(await server.execute(RefreshTokenDocument, { input: { refreshToken: session.refreshToken } })).code).toBe("NOT_AUTHENTICATED");
    }
    expect(errorOf(await server.execute(LoginDocument, { input: { login: user.email, password: user.password } })).code).toBe("NOT_AUTHENTICATED");
    const fresh = await signIn(server, { ...user, password: newPassword });
    expect(ok(await server.execute(MeDocument, {}, { token: fresh.accessToken })).me.id).toBe(user.id);
    // The administrator's own session goes on.
    ok(await server.execute(MeDocument, {}, { token: admin.accessToken }));

    const entry = await server.db.prisma.auditEntry.findFirstOrThrow({ where: { targetId: user.id, action: "user.update" } });
    expect(entry).toMatchObject({ actorId: admin.id, data: ["password"] });
    expect(JSON.stringify(entry)).not.toContain(newPassword);
  });
});

describe(`logout with a refresh token (${backend})`, () => {
  it("ends the caller's session and the session of another of their refresh tokens", async () => {
    const user = await createUser(server);
    const laptop = await signIn(server, user);
    const phone = await signIn(server, user);
    const tablet = await signIn(server, user);
    expect(ok(await server.execute(LogoutWithRefreshTokenDocument, { refreshToken: phone.refreshToken }, { token: laptop.accessToken })).logout).toBe(true);
    for (const ended of [laptop, phone]) {
      expect(errorOf(await server.execute(MeDocument, {}, { token: ended.accessToken })).code).toBe("NOT_AUTHENTICATED");
      expect(errorOf(await server.execute(RefreshTokenDocument, { input: { refreshToken: ended.refreshToken } })).code).toBe("NOT_AUTHENTICATED");
    }
    expect(ok(await server.execute(MeDocument, {}, { token: tablet.accessToken })).me.id).toBe(user.id);
  });

  it("leaves someone else's refresh token alone, and ignores an unknown one, without an error", async () => {
    const user = await createUser(server);
    const other = await signedInUser(server);
    const mine = await signIn(server, user);
    expect(ok(await server.execute(LogoutWithRefreshTokenDocument, { refreshToken: other.refreshToken }, { token: mine.accessToken })).logout).toBe(true);
    expect(errorOf(await server.execute(MeDocument, {}, { token: mine.accessToken })).code).toBe("NOT_AUTHENTICATED");
    expect(ok(await server.execute(MeDocument, {}, { token: other.accessToken })).me.id).toBe(other.id);
    const refreshed = ok(await server.execute(RefreshTokenDocument, { input: { refreshToken: other.refreshToken } })).refreshToken;
    expect(refreshed.user.id).toBe(other.id);

    const again = await signIn(server, user);
    expect(ok(await server.execute(LogoutWithRefreshTokenDocument, { refreshToken: "not-a-refresh-token" }, { token: again.accessToken })).logout).toBe(true);
    expect(errorOf(await server.execute(MeDocument, {}, { token: again.accessToken })).code).toBe("NOT_AUTHENTICATED");
  });
});

describe(`statement counts (${backend})`, () => {
  // Every field of a user (the private ones and the co-members' git identity each have their own
  // rule) and of a session: what an administration page or a "your devices" page asks for.
  const USERS_AND_SESSIONS = /* GraphQL */ `
    query NPlusOneUsersAndSessions($first: Int!) {
      users(first: $first) {
        edges { cursor node { id legacyId username displayName role createdAt email emailConfirmed totpEnabled gitName gitEmail dotfilesRepo plan } }
        pageInfo { hasNextPage endCursor }
      }
      sessions(first: $first) {
        edges { node { id current createdAt lastUsedAt expiresAt revokedAt userAgent ip } }
        pageInfo { hasNextPage }
      }
    }
  `;

  it("runs the same number of SQL statements for 10 and 100 users with every profile field, and 10 and 100 sessions", async () => {
    const admin = await signedInUser(server, { role: "ADMIN" });
    const tag = unique("n1");
    await server.db.prisma.user.createMany({
      data: Array.from({ length: 105 }, (_, i) => ({
        username: `${tag}_${i}`,
        email: `${tag}_${i}@example.test`,
        passwordHash: "not-a-hash",
        displayName: `User ${i}`,
        gitName: `Git ${i}`,
        gitEmail: `git${i}@example.test`,
        dotfilesRepo: i % 2 ? `https://example.test/${tag}/${i}.git` : null,
        emailVerifiedAt: i % 3 ? new Date() : null,
        totpSecret: i % 5 ? null : "JBSWY3DPEHPK3PXP",
      })),
    });
    await server.db.prisma.session.createMany({
      data: Array.from({ length: 105 }, (_, i) => ({
        userId: admin.id,
        userAgent: `device ${i}`,
        ip: "192.0.2.1",
        createdAt: new Date(Date.now() - (i + 1) * 60_000),
        expiresAt: new Date(Date.now() + 3600_000),
      })),
    });

    const count = async (first: number) => {
      const before = server.db.statements.count;
      const data = ok(await server.post({ query: USERS_AND_SESSIONS, variables: { first } }, { token: admin.accessToken }));
      const statements = server.db.statements.count - before;
      const users: { username: string; email: string | null; emailConfirmed: boolean; totpEnabled: boolean; gitName: string | null; plan: string }[] =
        data.users.edges.map((e: { node: unknown }) => e.node);
      expect(users).toHaveLength(first);
      expect(users.every((u) => u.plan === "free" && typeof u.emailConfirmed === "boolean" && typeof u.totpEnabled === "boolean")).toBe(true);
      // The administrator sees the private fields of the accounts made here.
      for (const user of users.filter((u) => u.username.startsWith(`${tag}_`))) {
        const i = Number(user.username.slice(tag.length + 1));
        expect(user).toMatchObject({ email: `${tag}_${i}@example.test`, gitName: `Git ${i}`, emailConfirmed: i % 3 !== 0, totpEnabled: i % 5 === 0 });
      }
      const sessions: { current: boolean; userAgent: string | null }[] = data.sessions.edges.map((e: { node: unknown }) => e.node);
      expect(sessions).toHaveLength(first);
      // Newest first: the session making the request, then the ones made above.
      expect(sessions.map((s) => s.current)).toEqual([true, ...Array(first - 1).fill(false)]);
      expect(sessions[1]!.userAgent).toBe("device 0");
      return statements;
    };
    // The first request also checks the token in the database; later ones find it cached.
    await count(10);
    const ten = await count(10);
    const hundred = await count(100);
    expect(hundred).toBe(ten);
  });
});
