import { decodeJwt, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeDocument, RefreshTokenDocument } from "../generated/graphql.js";
import { createUser, signedInUser, signIn, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, ok, startTestServer, type GraphQLResponse, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const refresh = (refreshToken: string) => server.execute(RefreshTokenDocument, { input: { refreshToken } });
const me = (token: string) => server.execute(MeDocument, {}, { token });

function expectRefused(response: GraphQLResponse<unknown>) {
  const error = errorOf(response);
  expect(error).toMatchObject({ code: "NOT_AUTHENTICATED", status: 401 });
  return error;
}

describe(`refresh tokens (${backend})`, () => {
  it("rotates: each refresh returns a new refresh token that works, and the old one stops working", async () => {
    const user = await signedInUser(server);
    const first = ok(await refresh(user.refreshToken)).refreshToken;
    expect(first.refreshToken).not.toBe(user.refreshToken);
    expect(first.user.id).toBe(user.id);
    expect(ok(await me(first.accessToken)).me.id).toBe(user.id);

    const second = ok(await refresh(first.refreshToken)).refreshToken;
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(ok(await me(second.accessToken)).me.id).toBe(user.id);

    expectRefused(await refresh(user.refreshToken));
  });

  it("treats a replayed refresh token as theft: refuses it and ends its whole session, only that one", async () => {
    const user = await createUser(server);
    const victim = await signIn(server, user);
    const otherDevice = await signIn(server, user);
    const rotated = ok(await refresh(victim.refreshToken)).refreshToken;
    const newest = ok(await refresh(rotated.refreshToken)).refreshToken;

    const replay = expectRefused(await refresh(victim.refreshToken));
    expect(replay.extensions.reason).toBe("REFRESH_TOKEN_REUSED");

    // Every token of the family dies, the newest included...
    expectRefused(await refresh(newest.refreshToken));
    for (const accessToken of [victim.accessToken, rotated.accessToken, newest.accessToken]) {
      expectRefused(await me(accessToken));
    }
    // ...while the user's other session is untouched.
    expect(ok(await me(otherDevice.accessToken)).me.id).toBe(user.id);
    ok(await refresh(otherDevice.refreshToken));
  });

  it("lets exactly one of several concurrent refreshes with the same token succeed", async () => {
    const user = await signedInUser(server);
    const results = await Promise.all(Array.from({ length: 5 }, () => refresh(user.refreshToken)));
    const succeeded = results.filter((r) => !r.errors?.length && r.data?.refreshToken);
    expect(succeeded).toHaveLength(1);
    for (const failed of results.filter((r) => !succeeded.includes(r))) expectRefused(failed);
  });

  it("refuses an unknown refresh token without ending anything", async () => {
    const user = await signedInUser(server);
    const unknown = expectRefused(await refresh("not-a-token-we-issued"));
    expect(unknown.extensions.reason).toBeUndefined();
    ok(await me(user.accessToken));
  });
});

describe(`access tokens (${backend})`, () => {
  let user: SignedIn;
  let claims: { sub: string; sid: string };
  beforeAll(async () => {
    user = await signedInUser(server);
    const decoded = decodeJwt(user.accessToken);
    claims = { sub: decoded.sub!, sid: decoded.sid as string };
  });

  const now = () => Math.floor(Date.now() / 1000);

  /** A token like the server's own for the user's real session, with one thing changed. */
  function forge(change: { typ?: string; iss?: string; aud?: string; exp?: number; secret?: string } = {}) {
    const secret = new TextEncoder().encode(change.secret ?? server.config.auth.jwtSecret);
    return new SignJWT({ sid: claims.sid })
      .setProtectedHeader({ alg: "HS256", typ: change.typ ?? "at+jwt" })
      .setSubject(claims.sub)
      .setIssuer(change.iss ?? server.config.auth.issuer)
      .setAudience(change.aud ?? server.config.auth.audience)
      .setIssuedAt(now() - 120)
      .setExpirationTime(change.exp ?? now() + 300)
      .sign(secret);
  }

  const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const flipCharAt = (text: string, index: number) => text.slice(0, index) + (text[index] === "A" ? "B" : "A") + text.slice(index + 1);

  it("accepts a token forged with the server's own secret and claims (so each refusal below is for its one change)", async () => {
    expect(ok(await me(await forge())).me.id).toBe(user.id);
  });

  it("refuses an expired token and says to refresh", async () => {
    const error = expectRefused(await me(await forge({ exp: now() - 60 })));
    expect(error.message).toMatch(/expired.*refresh/i);
  });

  it.each([
    ["for another audience", { aud: "someone-else" }],
    ["from another issuer", { iss: "https://evil.example" }],
    ["of another type (a plain JWT, not at+jwt)", { typ: "JWT" }],
    ["signed with another secret", { secret: "a-completely-different-secret-of-decent-length" }],
  ])("refuses a token %s", async (_what, change) => {
    const response = await me(await forge(change));
    expectRefused(response);
    expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/);
  });

  it("refuses a real token with a tampered signature", async () => {
    const [header, payload, signature] = user.accessToken.split(".") as [string, string, string];
    // A middle character: the last one of a base64url signature may only carry padding bits.
    expectRefused(await me(`${header}.${payload}.${flipCharAt(signature, 10)}`));
  });

  it("refuses a real token whose payload was changed to another user", async () => {
    const other = await createUser(server);
    const [header, payload, signature] = user.accessToken.split(".") as [string, string, string];
    const original = JSON.parse(Buffer.from(payload, "base64url").toString());
    expectRefused(await me(`${header}.${base64url({ ...original, sub: other.id })}.${signature}`));
    expectRefused(await me(`${header}.${flipCharAt(payload, 5)}.${signature}`));
  });

  it("refuses an unsigned token (alg: none) with otherwise valid claims", async () => {
    const header = base64url({ alg: "none", typ: "at+jwt" });
    const payload = base64url({
      sub: claims.sub,
      sid: claims.sid,
      iss: server.config.auth.issuer,
      aud: server.config.auth.audience,
      iat: now(),
      exp: now() + 300,
    });
    expectRefused(await me(`${header}.${payload}.`));
    expectRefused(await me(`${header}.${payload}`));
  });

  it.each(["Token abc.def.ghi", "Bearer", "Bearer two tokens", "Basic dXNlcjpwYXNz"])(
    "refuses the malformed Authorization header %j and says how to send it",
    async (authorization) => {
      const error = expectRefused(await server.execute(MeDocument, {}, { headers: { authorization } }));
      expect(error.message).toContain('"Bearer <token>"');
    },
  );
});
