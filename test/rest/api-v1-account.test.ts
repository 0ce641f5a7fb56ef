// api-v1's accounts as its own client uses them: plain HTTP with a bearer access token, snake_case
// JSON, errors as {"detail"} (422 naming the field as sent). Every row of src/rest/api-v1/account.ts
// is called here with its error paths: 401 without a token, 403 for non-administrators on the admin
// rows, 422 for bad input; and the round trips a client makes (sign-up, refresh, sign-out, password
// change, MFA set-up).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { currentTotp } from "../../src/auth/totp.js";
import { ConfirmRegistrationDocument } from "../generated/graphql.js";
import { createUser, latestEmailCode, signIn, signedInUser, unique, type TestUser } from "../helpers/factories.js";
import { restClient, type Call } from "../helpers/rest.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const prisma = () => server.db.prisma;
const { api, success, failure, expectStatus } = restClient(() => server, "detail");

/** A 422 whose message names `field` as the client sent it. */
const unprocessable = (path: string, call: Call, field: string) => expectStatus(path, call, 422, field);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const USER_FIELDS = ["created_at", "email", "full_name", "id", "is_active", "mfa_enabled", "role"];
const TOKEN_FIELDS = ["access_token", "expires_in", "refresh_token", "token_type"];

function expectUser(user: any) {
  expect(Object.keys(user).sort()).toEqual(USER_FIELDS);
  expect(user.id).toMatch(UUID);
  expect(["admin", "user"]).toContain(user.role);
  expect(user.is_active).toBe(true);
  expect(typeof user.mfa_enabled).toBe("boolean");
  expect(user.created_at).toMatch(ISO);
}

function expectTokens(tokens: any) {
  expect(Object.keys(tokens).sort()).toEqual(TOKEN_FIELDS);
  expect(tokens.token_type).toBe("bearer");
  expect(tokens.access_token).toEqual(expect.any(String));
  expect(tokens.refresh_token).toEqual(expect.any(String));
  // The server's access token lifetime, give or take the request's own time.
  expect(Math.abs(tokens.expires_in - server.config.auth.accessTokenTtlSeconds)).toBeLessThanOrEqual(2);
}

const login = (user: Pick<TestUser, "email" | "password">, totp_code?: string) =>
  success("/api/v1/auth/login", { method: "POST", body: { email: user.email, password: user.password, totp_code } });

const post = (token?: string, body?: unknown): Call => ({ method: "POST", token, body });

const signUp = (fields: Record<string, unknown> = {}) => ({ email: `${unique("signup")}@example.test`, password: "a-long-password-1", full_name: "New Person", ...fields });

/** The username Spindle stored for an account api-v1 made (api-v1 never shows it). */
const usernameOf = async (on: TestServer, email: string) => (await on.db.prisma.user.findUniqueOrThrow({ where: { email } })).username;

describe(`api-v1 REST dialect, accounts (${backend})`, () => {
  describe("signing in", () => {
    it("POST /api/v1/auth/login answers the token pair for email and password", async () => {
      const user = await createUser(server);
      const tokens = await login(user);
      expectTokens(tokens);
      expect((await success("/api/v1/auth/me", { token: tokens.access_token })).email).toBe(user.email);
      // The username signs in too, under the same field.
      expectTokens(await success("/api/v1/auth/login", post(undefined, { email: user.username, password: user.password })));
    });

    it("POST /api/v1/auth/login refuses wrong credentials with 401 and bad input with 422", async () => {
      const user = await createUser(server);
      expect((await failure("/api/v1/auth/login", post(undefined, { email: user.email, password: "wrong-password" }))).status).toBe(401);
      expect((await failure("/api/v1/auth/login", post(undefined, { email: "nobody@example.test", password: "whatever-it-is" }))).status).toBe(401);
      await unprocessable("/api/v1/auth/login", post(undefined, { email: user.email }), "body.password");
      await unprocessable("/api/v1/auth/login", post(undefined, { password: user.password }), "body.email");
      await unprocessable("/api/v1/auth/login", post(undefined, { email: "", password: "x" }), "body.email");
      await unprocessable("/api/v1/auth/login", post(undefined, { email: user.email, password: user.password, totp_code: 123456 }), "body.totp_code");
    });

    it("POST /api/v1/auth/refresh rotates the pair: the old refresh token is refused once used", async () => {
      const user = await signIn(server, await createUser(server));
      const pair = await success("/api/v1/auth/refresh", post(undefined, { refresh_token: user.refreshToken }));
      expectTokens(pair);
      expect(pair.refresh_token).not.toBe(user.refreshToken);
      expect((await success("/api/v1/auth/me", { token: pair.access_token })).id).toBe(user.id);

      const reused = await failure("/api/v1/auth/refresh", post(undefined, { refresh_token: user.refreshToken }));
      expect(reused.status).toBe(401);
      expect(reused.error).toMatch(/already used/);
      // Reuse is taken for theft: the whole session ends, the rotated pair with it.
      expect((await failure("/api/v1/auth/refresh", post(undefined, { refresh_token: pair.refresh_token }))).status).toBe(401);
      expect((await failure("/api/v1/auth/me", { token: pair.access_token })).status).toBe(401);

      expect((await failure("/api/v1/auth/refresh", post(undefined, { refresh_token: "not-a-token" }))).status).toBe(401);
      await unprocessable("/api/v1/auth/refresh", post(undefined, {}), "body.refresh_token");
    });

    it("POST /api/v1/auth/logout ends the session: its access and refresh tokens stop working", async () => {
      const user = await signIn(server, await createUser(server));
      expect((await failure("/api/v1/auth/logout", post())).status).toBe(401);

      expect(await success("/api/v1/auth/logout", post(user.accessToken))).toEqual({ message: "Logged out" });
      expect((await failure("/api/v1/auth/me", { token: user.accessToken })).status).toBe(401);
      expect((await failure("/api/v1/auth/refresh", post(undefined, { refresh_token: user.refreshToken }))).status).toBe(401);
    });

    it("POST /api/v1/auth/logout also ends the session of a refresh_token of the caller's", async () => {
      const account = await createUser(server);
      const here = await signIn(server, account);
      const other = await signIn(server, account);
      expect(await success("/api/v1/auth/logout", post(here.accessToken, { refresh_token: other.refreshToken }))).toEqual({ message: "Logged out" });
      expect((await failure("/api/v1/auth/refresh", post(undefined, { refresh_token: other.refreshToken }))).status).toBe(401);
      await unprocessable("/api/v1/auth/logout", post(other.accessToken, { refresh_token: 5 }), "body.refresh_token");
    });
  });

  describe("sign-up, confirmed by email (the default)", () => {
    it("POST /api/v1/auth/register answers 202: no account until the emailed code is confirmed; then login and me work", async () => {
      const body = signUp({ email: `${unique("Pat.Doe+")}@Example.test` });
      const address = body.email.toLowerCase();
      const { status, body: pending } = await api("/api/v1/auth/register", post(undefined, body));
      expect(status).toBe(202);
      expect(pending).toEqual({ detail: expect.stringMatching(/a confirmation code was sent/i), email: address, confirmation_required: true });
      expect(pending.detail).toContain("confirmRegistration");
      expect(await prisma().user.count({ where: { email: address } })).toBe(0);
      expect((await failure("/api/v1/auth/login", post(undefined, { email: address, password: body.password }))).status).toBe(401);

      const code = await latestEmailCode(server, address);
      ok(await server.execute(ConfirmRegistrationDocument, { input: { email: address, code } }));
      expect(await usernameOf(server, address)).toBe("pat.doe");
      const tokens = await login({ email: address, password: body.password });
      expectTokens(tokens);
      const me = await success("/api/v1/auth/me", { token: tokens.access_token });
      expectUser(me);
      expect(me).toMatchObject({ email: address, full_name: "New Person", role: "user", mfa_enabled: false });
    });

    it("POST /api/v1/auth/register answers an address with an account the same 202 (it tells nobody who has one)", async () => {
      const existing = await createUser(server);
      const { status, body } = await api("/api/v1/auth/register", post(undefined, signUp({ email: existing.email })));
      expect(status).toBe(202);
      expect(body).toMatchObject({ email: existing.email, confirmation_required: true });
    });

    it("POST /api/v1/auth/register refuses bad input with 422 naming the field", async () => {
      await unprocessable("/api/v1/auth/register", post(undefined, signUp({ email: "not-an-email" })), "body.email");
      await unprocessable("/api/v1/auth/register", post(undefined, signUp({ password: "short" })), "body.password");
      await unprocessable("/api/v1/auth/register", post(undefined, signUp({ password: undefined })), "body.password");
      await unprocessable("/api/v1/auth/register", post(undefined, signUp({ full_name: "x".repeat(65) })), "body.full_name");
      await unprocessable("/api/v1/auth/register", post(undefined, signUp({ full_name: 7 })), "body.full_name");
    });
  });

  describe("sign-up without confirmation (SPINDLE_SIGNUP_CONFIRMATION=none)", () => {
    let open: TestServer;
    beforeAll(async () => {
      open = await startTestServer({ SPINDLE_SIGNUP_CONFIRMATION: "none" });
    });
    afterAll(() => open?.close());
    const client = restClient(() => open, "detail");

    it("POST /api/v1/auth/register answers 201 with the account and its tokens; login and me work at once", async () => {
      const body = signUp();
      const registered = await client.success("/api/v1/auth/register", post(undefined, body), 201);
      expect(Object.keys(registered).sort()).toEqual([...USER_FIELDS, ...TOKEN_FIELDS].sort());
      expect(registered).toMatchObject({ email: body.email, full_name: "New Person", role: "user", mfa_enabled: false, is_active: true, token_type: "bearer" });
      expect(registered.id).toMatch(UUID);
      expect(registered.created_at).toMatch(ISO);
      expect(registered.expires_in).toBeGreaterThan(0);

      const me = await client.success("/api/v1/auth/me", { token: registered.access_token });
      expect(me).toEqual(Object.fromEntries(USER_FIELDS.map((key) => [key, registered[key]])));
      const tokens = await client.success("/api/v1/auth/login", post(undefined, { email: body.email, password: body.password }));
      expect(Object.keys(tokens).sort()).toEqual(TOKEN_FIELDS);
      expect((await client.success("/api/v1/auth/me", { token: tokens.access_token })).id).toBe(registered.id);
      // The refresh token of the sign-up works like any other.
      expect(Object.keys(await client.success("/api/v1/auth/refresh", post(undefined, { refresh_token: registered.refresh_token }))).sort()).toEqual(TOKEN_FIELDS);
    });

    it("POST /api/v1/auth/register derives the username from the email, with a suffix when it is taken", async () => {
      const local = unique("sam");
      const first = signUp({ email: `${local}@one.test` });
      const second = signUp({ email: `${local}@two.test` });
      await client.success("/api/v1/auth/register", post(undefined, first), 201);
      await client.success("/api/v1/auth/register", post(undefined, second), 201);
      expect(await usernameOf(open, first.email)).toBe(local);
      expect(await usernameOf(open, second.email)).toMatch(new RegExp(`^${local}-[0-9a-f]{6}$`));
      // Characters Spindle's usernames do not take become '-'; a local part too short is lengthened.
      const quoted = signUp({ email: `o'neil@${unique("odd")}.test` });
      await client.success("/api/v1/auth/register", post(undefined, quoted), 201);
      expect(await usernameOf(open, quoted.email)).toBe("o-neil");
      const short = signUp({ email: `jo@${unique("odd")}.test` });
      await client.success("/api/v1/auth/register", post(undefined, short), 201);
      expect(await usernameOf(open, short.email)).toBe("user-jo");
    });

    it("POST /api/v1/auth/register refuses a taken email with 409 and bad input with 422", async () => {
      const body = signUp();
      await client.success("/api/v1/auth/register", post(undefined, body), 201);
      const taken = await client.failure("/api/v1/auth/register", post(undefined, { ...body, password: "another-long-password" }));
      expect(taken.status).toBe(409);
      expect(taken.error).toMatch(/already has an account/);
      await client.expectStatus("/api/v1/auth/register", post(undefined, signUp({ password: "short" })), 422, "body.password");
      await client.expectStatus("/api/v1/auth/register", post(undefined, { password: "a-long-password-1" }), 422, "body.email");
    });
  });

  describe("the caller's account", () => {
    it("GET /api/v1/auth/me answers the user shape; 401 without a token", async () => {
      const user = await signedInUser(server);
      const me = await success("/api/v1/auth/me", { token: user.accessToken });
      expectUser(me);
      expect(me).toEqual({ id: user.id, email: user.email, full_name: null, role: "user", mfa_enabled: false, is_active: true, created_at: expect.stringMatching(ISO) });
      expect((await success("/api/v1/auth/me", { token: (await signedInUser(server, { role: "ADMIN" })).accessToken })).role).toBe("admin");
      expect((await failure("/api/v1/auth/me")).status).toBe(401);
      expect((await failure("/api/v1/auth/me", { token: "not-a-token" })).status).toBe(401);
    });

    it("PUT /api/v1/auth/me changes full_name; the email cannot change", async () => {
      const user = await signedInUser(server);
      const put = (body: unknown, token = user.accessToken): Call => ({ method: "PUT", token, body });
      const renamed = await success("/api/v1/auth/me", put({ full_name: "Ada Lovelace" }));
      expectUser(renamed);
      expect(renamed).toMatchObject({ id: user.id, email: user.email, full_name: "Ada Lovelace" });
      expect((await success("/api/v1/auth/me", { token: user.accessToken })).full_name).toBe("Ada Lovelace");

      // The current address (any case) is no change; another one is refused, and nothing changes.
      expect((await success("/api/v1/auth/me", put({ email: user.email.toUpperCase(), full_name: "A. L." }))).full_name).toBe("A. L.");
      const refused = await unprocessable("/api/v1/auth/me", put({ email: "someone-else@example.test", full_name: "Mallory" }), "body.email");
      expect(refused).toContain("email cannot be changed");
      expect((await success("/api/v1/auth/me", { token: user.accessToken })).full_name).toBe("A. L.");

      expect((await success("/api/v1/auth/me", put({ full_name: null }))).full_name).toBeNull();
      await unprocessable("/api/v1/auth/me", put({ full_name: "x".repeat(65) }), "body.full_name");
      await unprocessable("/api/v1/auth/me", put({ full_name: 42 }), "body.full_name");
      expect((await failure("/api/v1/auth/me", { method: "PUT", body: { full_name: "Nobody" } })).status).toBe(401);
    });

    it("POST /api/v1/auth/change-password: the old password stops working, other sessions end", async () => {
      const account = await createUser(server);
      const here = await signIn(server, account);
      const elsewhere = await signIn(server, account);
      const newPassword = `new-${unique("pw")}`;

      expect((await failure("/api/v1/auth/change-password", post(undefined, { current_password: account.password, new_password: newPassword }))).status).toBe(401);
      await unprocessable("/api/v1/auth/change-password", post(here.accessToken, { current_password: "not-my-password", new_password: newPassword }), "body.current_password");
      await unprocessable("/api/v1/auth/change-password", post(here.accessToken, { current_password: account.password, new_password: "short" }), "body.new_password");
      await unprocessable("/api/v1/auth/change-password", post(here.accessToken, { current_password: account.password }), "body.new_password");

      const changed = await success("/api/v1/auth/change-password", post(here.accessToken, { current_password: account.password, new_password: newPassword }));
      expect(changed).toEqual({ message: expect.stringContaining("Password changed") });
      expect((await failure("/api/v1/auth/login", post(undefined, { email: account.email, password: account.password }))).status).toBe(401);
      expectTokens(await login({ email: account.email, password: newPassword }));
      // This session goes on; the other one ended.
      expect((await success("/api/v1/auth/me", { token: here.accessToken })).id).toBe(account.id);
      expect((await failure("/api/v1/auth/me", { token: elsewhere.accessToken })).status).toBe(401);
    });
  });

  describe("MFA", () => {
    it("set-up, verify (code or token), sign-in with totp_code, then disable", async () => {
      const account = await createUser(server);
      const user = await signIn(server, account);
      expect((await failure("/api/v1/auth/mfa/setup", post())).status).toBe(401);

      const setup = await success("/api/v1/auth/mfa/setup", post(user.accessToken));
      expect(Object.keys(setup).sort()).toEqual(["qr_code", "secret", "uri"]);
      expect(setup.secret).toMatch(/^[A-Z2-7]+$/);
      expect(setup.uri).toMatch(/^otpauth:\/\/totp\/.*secret=/);
      expect(setup.qr_code).toMatch(/^data:image\/png;base64,/);
      const png = Buffer.from(setup.qr_code.slice("data:image/png;base64,".length), "base64");
      expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      expect((await success("/api/v1/auth/me", { token: user.accessToken })).mfa_enabled).toBe(false);

      const verify = (body: unknown, token = user.accessToken) => post(token, body);
      expect((await failure("/api/v1/auth/mfa/verify", post(undefined, { code: "123456" }))).status).toBe(401);
      await unprocessable("/api/v1/auth/mfa/verify", verify({}), "body.code");
      await unprocessable("/api/v1/auth/mfa/verify", verify({ code: "12345" }), "body.code");
      await unprocessable("/api/v1/auth/mfa/verify", verify({ token: "12345" }), "body.token");
      await unprocessable("/api/v1/auth/mfa/verify", verify({ token: 123456 }), "body.token");

      // Each code is taken once, and only a later one after it: verify with the previous step's code.
      const codeAt = (offsetSeconds: number) => currentTotp(setup.secret, Date.now() + offsetSeconds * 1000);
      const wrongCode = codeAt(0) === "000000" ? "111111" : "000000";
      await unprocessable("/api/v1/auth/mfa/verify", verify({ token: wrongCode }), "body.token");
      expect(await success("/api/v1/auth/mfa/verify", verify({ token: codeAt(-30) }))).toEqual({ message: "MFA enabled", mfa_enabled: true });
      expect((await success("/api/v1/auth/me", { token: user.accessToken })).mfa_enabled).toBe(true);
      // Set-up again while it is on is a conflict.
      expect((await failure("/api/v1/auth/mfa/setup", post(user.accessToken))).status).toBe(409);

      const without = await failure("/api/v1/auth/login", post(undefined, { email: account.email, password: account.password }));
      expect(without.status).toBe(401);
      expect(without.error).toContain("totp_code");
      expect((await failure("/api/v1/auth/login", post(undefined, { email: account.email, password: account.password, totp_code: wrongCode }))).status).toBe(401);
      const tokens = await login(account, codeAt(0));
      expectTokens(tokens);

      expect((await failure("/api/v1/auth/mfa/disable", post(undefined, { code: codeAt(30) }))).status).toBe(401);
      await unprocessable("/api/v1/auth/mfa/disable", post(tokens.access_token, {}), "body.code");
      await unprocessable("/api/v1/auth/mfa/disable", post(tokens.access_token, { code: wrongCode }), "body.code");
      await unprocessable("/api/v1/auth/mfa/disable", post(tokens.access_token, { token: wrongCode }), "body.token");
      expect(await success("/api/v1/auth/mfa/disable", post(tokens.access_token, { code: codeAt(30) }))).toEqual({ message: "MFA disabled", mfa_enabled: false });
      expect((await success("/api/v1/auth/me", { token: tokens.access_token })).mfa_enabled).toBe(false);
      expectTokens(await login(account));
      // Off already: disabling again is a conflict.
      expect((await failure("/api/v1/auth/mfa/disable", post(tokens.access_token, { code: codeAt(0) }))).status).toBe(409);
    });
  });

  describe("admin: users", () => {
    it("GET /api/v1/admin/users lists every user for system administrators; 403 for others, 401 without a token", async () => {
      const admin = await signedInUser(server, { role: "ADMIN" });
      const other = await createUser(server);
      const users = await success("/api/v1/admin/users", { token: admin.accessToken });
      expect(Array.isArray(users)).toBe(true);
      for (const user of users) expectUser(user);
      expect(users.length).toBe(await prisma().user.count());
      expect(users.find((u: any) => u.id === other.id)).toMatchObject({ email: other.email, role: "user" });
      expect(users.find((u: any) => u.id === admin.id)).toMatchObject({ email: admin.email, role: "admin" });

      expect((await failure("/api/v1/admin/users", { token: (await signedInUser(server)).accessToken })).status).toBe(403);
      expect((await failure("/api/v1/admin/users")).status).toBe(401);
      // It has no paging to offer: a limit is refused rather than ignored.
      await unprocessable("/api/v1/admin/users?limit=10", { token: admin.accessToken }, "query");
    });

    it("GET /api/v1/admin/users pages through more users than one GraphQL page holds", async () => {
      const admin = await signedInUser(server, { role: "ADMIN" });
      const missing = 101 - (await prisma().user.count());
      for (let i = 0; i < missing; i++) await createUser(server);
      const users = await success("/api/v1/admin/users", { token: admin.accessToken });
      expect(users.length).toBe(await prisma().user.count());
      expect(users.length).toBeGreaterThan(100);
      expect(new Set(users.map((u: any) => u.id)).size).toBe(users.length);
    });

    it("POST /api/v1/admin/users creates a confirmed account that signs in; its username comes from the email", async () => {
      const admin = await signedInUser(server, { role: "ADMIN" });
      const local = unique("Grace.Hopper+");
      const body = { email: `${local}@example.test`, password: "a-long-password-1", full_name: "Grace Hopper", role: "admin" };
      const created = await success("/api/v1/admin/users", post(admin.accessToken, body), 201);
      expectUser(created);
      expect(created).toMatchObject({ email: body.email.toLowerCase(), full_name: "Grace Hopper", role: "admin", mfa_enabled: false });
      // The plus tag is dropped; what is left of the local part is the username.
      expect((await prisma().user.findUniqueOrThrow({ where: { id: created.id } })).username).toBe("grace.hopper");
      expectTokens(await login({ email: body.email, password: body.password }));

      // The same local part at another domain: the username is taken, so it gets a suffix.
      const twin = await success("/api/v1/admin/users", post(admin.accessToken, { ...body, email: `${local}@elsewhere.test`, role: "user" }), 201);
      expect(twin.role).toBe("user");
      expect((await prisma().user.findUniqueOrThrow({ where: { id: twin.id } })).username).toMatch(/^grace\.hopper-[0-9a-f]{6}$/);

      // Without role: a plain user; without full_name: null.
      const plain = await success("/api/v1/admin/users", post(admin.accessToken, { email: `${unique("x")}@example.test`, password: "a-long-password-2" }), 201);
      expect(plain).toMatchObject({ role: "user", full_name: null });
    });

    it("POST /api/v1/admin/users refuses non-administrators, bad input and a taken email", async () => {
      const admin = await signedInUser(server, { role: "ADMIN" });
      const body = { email: `${unique("new")}@example.test`, password: "a-long-password-1", full_name: "New One", role: "user" };
      expect((await failure("/api/v1/admin/users", post(undefined, body))).status).toBe(401);
      expect((await failure("/api/v1/admin/users", post((await signedInUser(server)).accessToken, body))).status).toBe(403);
      expect(await prisma().user.count({ where: { email: body.email } })).toBe(0);

      await unprocessable("/api/v1/admin/users", post(admin.accessToken, { ...body, email: "not-an-email" }), "body.email");
      await unprocessable("/api/v1/admin/users", post(admin.accessToken, { ...body, role: "owner" }), "body.role");
      await unprocessable("/api/v1/admin/users", post(admin.accessToken, { ...body, password: "short" }), "body.password");
      await unprocessable("/api/v1/admin/users", post(admin.accessToken, { ...body, full_name: "x".repeat(65) }), "body.full_name");
      await unprocessable("/api/v1/admin/users", post(admin.accessToken, { password: body.password }), "body.email");

      await success("/api/v1/admin/users", post(admin.accessToken, body), 201);
      const taken = await failure("/api/v1/admin/users", post(admin.accessToken, { ...body, email: body.email.toUpperCase() }));
      expect(taken.status).toBe(409);
      expect(taken.error).toMatch(/email/);
    });
  });
});
