// Attacks on signing up and in, each sent as an attacker would (concurrently where it is a race),
// and the rule that refuses it: pending sign-ups are nobody else's to rewrite, limits are reserved
// before the secret check, failures count per account and per address, sign-ups are throttled.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfirmRegistrationDocument, LoginDocument, RegisterDocument } from "../generated/graphql.js";
import { createUser, unique } from "../helpers/factories.js";
import { backend, errorOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

const LIMITS = {
  SPINDLE_LOGIN_MAX_FAILURES: "5",
  SPINDLE_LOGIN_MAX_FAILURES_PER_ADDRESS: "8",
  SPINDLE_SIGNUP_MAX_PER_ADDRESS: "6",
  SPINDLE_SIGNUP_MAX_PER_EMAIL: "3",
  // Each test speaks from its own address (X-Forwarded-For), as separate attackers would.
  SPINDLE_TRUST_PROXY: "true",
};

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer(LIMITS);
});
afterAll(() => server?.close());

let lastOctet = 0;
const newAddress = () => ({ "x-forwarded-for": `203.0.113.${++lastOctet}` });

/** Every confirmation code mailed to `email`, oldest first. */
async function codesMailedTo(email: string): Promise<string[]> {
  const mails = await server.db.prisma.emailOutbox.findMany({ where: { to: email }, orderBy: { createdAt: "asc" } });
  return mails.map((m) => /\b(\d{6})\b/.exec(m.body)?.[1]).filter((c): c is string => Boolean(c));
}

const wrongCodes = (right: string, n: number) =>
  Array.from({ length: n + 1 }, (_, i) => String((Number(right) + 1 + i) % 1_000_000).padStart(6, "0")).filter((c) => c !== right).slice(0, n);

describe(`pending sign-ups cannot be taken over (${backend})`, () => {
  it("a second sign-up for a pending email leaves the first intact: its code creates exactly its own account", async () => {
    const headers = newAddress();
    const email = `${unique("victim")}@example.test`;
    const victim = { email, username: unique("victim"), password: "victim's own password" };
    const attacker = { email, username: unique("attacker"), password: "attacker's password" };
    ok(await server.execute(RegisterDocument, { input: victim }, { headers }));
    ok(await server.execute(RegisterDocument, { input: attacker }, { headers: newAddress() }));
    const [victimCode, attackerCode] = await codesMailedTo(email);
    expect(victimCode).toBeDefined();
    expect(attackerCode).toBeDefined();
    // The second mail names the account it would create, so the owner can tell it is not theirs.
    const mails = await server.db.prisma.emailOutbox.findMany({ where: { to: email }, orderBy: { createdAt: "asc" } });
    expect(mails[1]!.body).toContain(attacker.username);

    const confirmed = ok(await server.execute(ConfirmRegistrationDocument, { input: { email, code: victimCode! } }, { headers }));
    expect(confirmed.confirmRegistration.user).toMatchObject({ username: victim.username, email });
    ok(await server.execute(LoginDocument, { input: { login: email, password: victim.password } }, { headers }));
    const withAttackers = errorOf(await server.execute(LoginDocument, { input: { login: email, password: attacker.password } }, { headers: newAddress() }));
    expect(withAttackers.code).toBe("NOT_AUTHENTICATED");
    // The attacker's code died with the confirmation: nothing else can be made of this email.
    expect(errorOf(await server.execute(ConfirmRegistrationDocument, { input: { email, code: attackerCode! } })).code).toBe("VALIDATION");
    expect(await server.db.prisma.user.count({ where: { username: attacker.username } })).toBe(0);
  });
});

describe(`counted limits are reserved before the check (${backend})`, () => {
  it("14 wrong passwords at once: 5 are checked, 9 refused with 429, and the right one right after is refused too", async () => {
    const headers = newAddress();
    const user = await createUser(server);
    const answers = await Promise.all(
      Array.from({ length: 14 }, () => server.execute(LoginDocument, { input: { login: user.email, password: "wrong password" } }, { headers })),
    );
    const codes = answers.map((a) => errorOf(a).code);
    expect(codes.filter((c) => c === "NOT_AUTHENTICATED")).toHaveLength(5);
    expect(codes.filter((c) => c === "RATE_LIMITED")).toHaveLength(9);
    const right = errorOf(await server.execute(LoginDocument, { input: { login: user.email, password: user.password } }, { headers }));
    expect(right).toMatchObject({ code: "RATE_LIMITED", status: 429 });
  });

  it("20 confirmation codes at once use up the 5 attempts: the right code afterwards is refused", async () => {
    const email = `${unique("codes")}@example.test`;
    ok(await server.execute(RegisterDocument, { input: { email, username: unique("codes"), password: "a long password" } }, { headers: newAddress() }));
    const [code] = await codesMailedTo(email);
    const guesses = await Promise.all(
      wrongCodes(code!, 19).map((guess) => server.execute(ConfirmRegistrationDocument, { input: { email, code: guess } }, { headers: newAddress() })),
    );
    expect(guesses.every((g) => errorOf(g).code === "VALIDATION")).toBe(true);
    const pending = await server.db.prisma.pendingRegistration.findFirstOrThrow({ where: { email } });
    expect(pending.attempts).toBe(5);
    expect(errorOf(await server.execute(ConfirmRegistrationDocument, { input: { email, code: code! } })).code).toBe("VALIDATION");
    expect(await server.db.prisma.user.count({ where: { email } })).toBe(0);
  });
});

describe(`throttles count the right thing (${backend})`, () => {
  it("counts failures per account, whichever spelling (email or username) names it", async () => {
    const headers = newAddress();
    const user = await createUser(server);
    for (let i = 0; i < 5; i++) {
      const login = i % 2 === 0 ? user.email : user.username.toUpperCase();
      expect(errorOf(await server.execute(LoginDocument, { input: { login, password: "wrong password" } }, { headers })).code).toBe("NOT_AUTHENTICATED");
    }
    for (const login of [user.email, user.username]) {
      expect(errorOf(await server.execute(LoginDocument, { input: { login, password: user.password } }, { headers })).code).toBe("RATE_LIMITED");
    }
  });

  it("counts failures per address over all accounts (password spraying); other addresses are unaffected", { timeout: 120_000 }, async () => {
    const headers = newAddress();
    const owner = await createUser(server);
    // Sprayed logins, known or not, count alike: 8 are checked, then the address is refused.
    const logins = [owner.email, ...Array.from({ length: 9 }, () => `${unique("sprayed")}@example.test`)];
    const codes: (string | undefined)[] = [];
    for (const login of logins) {
      codes.push(errorOf(await server.execute(LoginDocument, { input: { login, password: "Summer2026!" } }, { headers })).code);
    }
    expect(codes).toEqual([...Array(8).fill("NOT_AUTHENTICATED"), "RATE_LIMITED", "RATE_LIMITED"]);
    // The owner, signing in from elsewhere, is not locked out by the sprayer.
    ok(await server.execute(LoginDocument, { input: { login: owner.email, password: owner.password } }, { headers: newAddress() }));
  });

  it("a successful sign-in gives back only its own point (a sprayer cannot launder the count with their own account)", { timeout: 120_000 }, async () => {
    const headers = newAddress();
    const own = await createUser(server);
    const sprayed: (string | undefined)[] = [];
    for (let i = 0; i < 9; i++) {
      await server.execute(LoginDocument, { input: { login: own.email, password: own.password } }, { headers });
      sprayed.push(errorOf(await server.execute(LoginDocument, { input: { login: `${unique("sprayed")}@example.test`, password: "Winter2026!" } }, { headers })).code);
    }
    expect(sprayed).toEqual([...Array(8).fill("NOT_AUTHENTICATED"), "RATE_LIMITED"]);
  });

  it("throttles sign-ups per email: the fourth for one address gets 429 and no mail", async () => {
    const email = `${unique("flood")}@example.test`;
    for (let i = 0; i < 3; i++) {
      ok(await server.execute(RegisterDocument, { input: { email, username: unique("flood"), password: "a long password" } }, { headers: newAddress() }));
    }
    const fourth = await server.execute(RegisterDocument, { input: { email, username: unique("flood"), password: "a long password" } }, { headers: newAddress() });
    expect(errorOf(fourth)).toMatchObject({ code: "RATE_LIMITED", status: 429 });
    expect(Number(fourth.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await server.db.prisma.emailOutbox.count({ where: { to: email } })).toBe(3);
  });

  it("throttles sign-ups per address over all emails", async () => {
    const headers = newAddress();
    const answers = [];
    for (let i = 0; i < 7; i++) {
      answers.push(await server.execute(RegisterDocument, { input: { email: `${unique("many")}@example.test`, username: unique("many"), password: "a long password" } }, { headers }));
    }
    expect(answers.slice(0, 6).every((a) => !a.errors)).toBe(true);
    expect(errorOf(answers[6]!).code).toBe("RATE_LIMITED");
  });

  it("a sign-up for an email that has an account answers, and mails, exactly like a new one", async () => {
    const existing = await createUser(server);
    const fresh = `${unique("fresh")}@example.test`;
    const a = await server.execute(RegisterDocument, { input: { email: existing.email, username: unique("x"), password: "a long password" } }, { headers: newAddress() });
    const b = await server.execute(RegisterDocument, { input: { email: fresh, username: unique("x"), password: "a long password" } }, { headers: newAddress() });
    const shape = (r: typeof a) => ({ status: r.status, errors: r.errors, keys: Object.keys(r.data?.register ?? {}).sort() });
    expect(shape(a)).toEqual(shape(b));
    expect(await server.db.prisma.emailOutbox.count({ where: { to: existing.email } })).toBe(1);
    expect(await server.db.prisma.emailOutbox.count({ where: { to: fresh } })).toBe(1);
  });
});

describe.runIf(backend === "postgres+redis")("limits across replicas (postgres+redis)", () => {
  it("14 wrong passwords split over two replicas at once still check only 5", async () => {
    const replica = await startTestServer(LIMITS, { sameDatabaseAs: server });
    try {
      const headers = newAddress();
      const user = await createUser(server);
      const answers = await Promise.all(
        Array.from({ length: 14 }, (_, i) =>
          (i % 2 ? replica : server).execute(LoginDocument, { input: { login: user.email, password: "wrong password" } }, { headers }),
        ),
      );
      expect(answers.filter((a) => errorOf(a).code === "NOT_AUTHENTICATED")).toHaveLength(5);
    } finally {
      await replica.close();
    }
  });
});
