// Fresh, unique data for each test.
import { randomBytes } from "node:crypto";
import { hashPassword } from "../../src/auth/passwords.js";
import type { SystemRole, WorkspaceRole } from "../../src/generated/prisma/client.js";
import { LoginDocument } from "../generated/graphql.js";
import { ok, type TestServer } from "./server.js";

const FIXTURE_HASH_COST = { N: 2 ** 10, r: 8, p: 1 };

export const unique = (prefix = "u") => `${prefix}${randomBytes(5).toString("hex")}`;

export interface TestUser {
  id: string;
  email: string;
  username: string;
  password: string;
}

export interface SignedIn extends TestUser {
  accessToken: string;
  refreshToken: string;
  /** The Cookie header value a browser would send back. */
  cookie: string;
}

/** A confirmed account, written straight to the database (sign-up itself is tested over GraphQL). */
export async function createUser(server: TestServer, options: { role?: SystemRole; password?: string } = {}): Promise<TestUser> {
  const username = unique("user");
  const email = `${username}@example.test`;
  const password = options.password ?? `pw-${randomBytes(8).toString("hex")}`;
  const user = await server.db.prisma.user.create({
    data: {
      email,
      username,
      // A cheap scrypt cost: sign-in still verifies it with the real code (the cost is in the hash),
      // at a fraction of the CPU the suite would spend on hundreds of accounts.
      passwordHash: await hashPassword(password, FIXTURE_HASH_COST),
      role: options.role ?? "USER",
      emailVerifiedAt: new Date(),
    },
  });
  return { id: user.id, email, username, password };
}

export async function signIn(server: TestServer, user: TestUser, totpCode?: string): Promise<SignedIn> {
  const res = await server.execute(LoginDocument, { input: { login: user.email, password: user.password, totpCode } });
  const { login } = ok(res);
  const setCookie = res.headers.get("set-cookie") ?? "";
  return { ...user, accessToken: login.accessToken, refreshToken: login.refreshToken, cookie: setCookie.split(";")[0]! };
}

export async function signedInUser(server: TestServer, options: { role?: SystemRole } = {}): Promise<SignedIn> {
  return signIn(server, await createUser(server, options));
}

/** The code of the newest confirmation mail to `email`, read from the outbox table. */
export async function latestEmailCode(server: TestServer, email: string): Promise<string> {
  const mail = await server.db.prisma.emailOutbox.findFirstOrThrow({ where: { to: email }, orderBy: { createdAt: "desc" } });
  const code = /\b(\d{6})\b/.exec(mail.body)?.[1];
  if (!code) throw new Error(`No code in the last mail to ${email}: ${mail.body}`);
  return code;
}

export async function addMember(server: TestServer, workspaceId: string, userId: string, role: WorkspaceRole) {
  await server.db.prisma.workspaceMember.create({ data: { workspaceId, userId, role } });
}

/** A fresh workspace and its signed-in owner, written straight to the database. */
export async function ownedWorkspace(server: TestServer): Promise<{ owner: SignedIn; workspace: { id: string }; workspaceId: string }> {
  const owner = await signedInUser(server);
  const workspace = await server.db.prisma.workspace.create({ data: { name: unique("ws") } });
  await addMember(server, workspace.id, owner.id, "OWNER");
  return { owner, workspace, workspaceId: workspace.id };
}
