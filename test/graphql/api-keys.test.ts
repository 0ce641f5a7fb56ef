import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/auth/api-key-format.js";
import { sha256 } from "../../src/auth/secrets.js";
import {
  ApiKeyDetailsDocument,
  ApiKeysDocument,
  CreateApiKeyDocument,
  MeDocument,
  RevokeApiKeyDocument,
  UpdateProfileDocument,
  ViewerAndKeysDocument,
  WorkspaceApiKeysDocument,
  type ApiKeyScope,
  type CreateApiKeyInput,
} from "../generated/graphql.js";
import type { WorkspaceRole } from "../../src/generated/prisma/client.js";
import { addMember, ownedWorkspace, signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

async function createKey(owner: SignedIn, scopes: ApiKeyScope[], extra: Partial<CreateApiKeyInput> = {}) {
  const input = { name: unique("key"), scopes, ...extra };
  return ok(await server.execute(CreateApiKeyDocument, { input }, { token: owner.accessToken })).createApiKey;
}


describe(`creating API keys (${backend})`, () => {
  it("shows the key once, lists only its prefix, and stores only a hash", async () => {
    const user = await signedInUser(server);
    const { key, apiKey } = await createKey(user, ["READ"]);
    expect(key).toMatch(/^spk_[0-9A-Za-z]{46}$/);
    expect(apiKey).toMatchObject({ scopes: ["READ"], revokedAt: null, lastUsedAt: null, expiresAt: null });
    expect(key.startsWith(apiKey.prefix)).toBe(true);
    expect(apiKey.prefix.length).toBeLessThan(key.length / 2);

    const listed = await server.execute(ApiKeysDocument, { first: 10 }, { token: user.accessToken });
    expect(ok(listed).apiKeys.edges.map((e) => e.node)).toEqual([expect.objectContaining({ id: apiKey.id, prefix: apiKey.prefix })]);
    expect(JSON.stringify(listed.data)).not.toContain(key);

    const row = await server.db.prisma.apiKey.findUniqueOrThrow({ where: { id: apiKey.id } });
    expect(row.keyHash).not.toBe(key);
    expect(row.keyHash).not.toContain(key.slice(4));
    expect(row.keyHash).toBe(sha256(key));
  });

  it("binds a key only to a workspace the caller belongs to: a stranger's or unknown workspace is not found, nothing written", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    expect((await createKey(owner, ["READ"], { workspaceId })).apiKey.workspaceId).toBe(workspaceId);
    const stranger = await signedInUser(server);
    for (const target of [workspaceId, randomUUID()]) {
      const refused = errorOf(await server.execute(CreateApiKeyDocument, { input: { name: "k", scopes: ["READ"], workspaceId: target } }, { token: stranger.accessToken }));
      expect(refused).toMatchObject({ code: "NOT_FOUND", status: 404 });
    }
    expect(await server.db.prisma.apiKey.count({ where: { userId: stranger.id } })).toBe(0);
  });

  it("lets only administrators create ADMIN-scoped keys", async () => {
    const user = await signedInUser(server);
    const denied = errorOf(await server.execute(CreateApiKeyDocument, { input: { name: "root", scopes: ["ADMIN"] } }, { token: user.accessToken }));
    expect(denied).toMatchObject({ code: "FORBIDDEN", status: 403, extensions: { requiredScope: "admin" } });
    expect(denied.message).toMatch(/administrators/);
    expect(await server.db.prisma.apiKey.count({ where: { userId: user.id } })).toBe(0);

    const admin = await signedInUser(server, { role: "ADMIN" });
    expect((await createKey(admin, ["ADMIN"])).apiKey.scopes).toEqual(["ADMIN"]);
  });

  it.each([
    ["an empty name", { name: "  ", scopes: ["READ"] }, "input.name"],
    ["no scopes", { name: "ci", scopes: [] }, "input.scopes"],
    ["an expiry in the past", { name: "ci", scopes: ["READ"], expiresAt: new Date(Date.now() - 60_000).toISOString() }, "input.expiresAt"],
  ] as [string, CreateApiKeyInput, string][])("refuses %s, naming the field, and creates nothing", async (_what, input, field) => {
    const user = await signedInUser(server);
    const error = errorOf(await server.execute(CreateApiKeyDocument, { input }, { token: user.accessToken }));
    expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
    expect(fieldsOf(error)).toEqual([field]);
    expect(await server.db.prisma.apiKey.count({ where: { userId: user.id } })).toBe(0);
  });
});

describe(`using API keys (${backend})`, () => {
  it("a READ key can query but not mutate: 403 naming the missing write scope", async () => {
    const user = await signedInUser(server);
    const { key, apiKey } = await createKey(user, ["READ"]);
    const read = ok(await server.execute(ViewerAndKeysDocument, {}, { token: key }));
    expect(read.me.id).toBe(user.id);
    expect(read.apiKeys.edges.map((e) => e.node.id)).toEqual([apiKey.id]);

    const denied = errorOf(await server.execute(UpdateProfileDocument, { input: { displayName: "Nope" } }, { token: key }));
    expect(denied).toMatchObject({ code: "FORBIDDEN", status: 403, extensions: { requiredScope: "write" } });
    expect(denied.message).toContain('"write"');
    const stored = await server.db.prisma.user.findUniqueOrThrow({ where: { id: user.id } });
    expect(stored.displayName).toBeNull();
  });

  it("a WRITE key can mutate", async () => {
    const user = await signedInUser(server);
    const { key } = await createKey(user, ["WRITE"]);
    const updated = ok(await server.execute(UpdateProfileDocument, { input: { displayName: "Via key" } }, { token: key }));
    expect(updated.updateProfile).toMatchObject({ id: user.id, displayName: "Via key" });
  });

  it("a key, even a WRITE one, cannot create or revoke keys", async () => {
    const user = await signedInUser(server);
    const { key, apiKey } = await createKey(user, ["WRITE"]);
    const responses = [
      await server.execute(CreateApiKeyDocument, { input: { name: "child", scopes: ["READ"] } }, { token: key }),
      await server.execute(RevokeApiKeyDocument, { id: apiKey.id }, { token: key }),
    ];
    for (const response of responses) {
      const error = errorOf(response);
      expect(error).toMatchObject({ code: "FORBIDDEN", status: 403, extensions: { requiredScope: "session" } });
      expect(error.message).toMatch(/signed-in session/);
    }
    const rows = await server.db.prisma.apiKey.findMany({ where: { userId: user.id } });
    expect(rows).toEqual([expect.objectContaining({ id: apiKey.id, revokedAt: null })]);
  });

  it("records when a key was last used", async () => {
    const user = await signedInUser(server);
    const { key, apiKey } = await createKey(user, ["READ"]);
    const before = Date.now();
    ok(await server.execute(MeDocument, {}, { token: key }));
    const [listed] = ok(await server.execute(ApiKeyDetailsDocument, { first: 5 }, { token: user.accessToken })).apiKeys.edges;
    expect(listed?.node.id).toBe(apiKey.id);
    expect(listed?.node.lastUsedAt).not.toBeNull();
    // A second of slack: the database clock and ours may differ a little.
    expect(Date.parse(listed!.node.lastUsedAt!)).toBeGreaterThanOrEqual(before - 1000);
  });

  it("refuses a key right after it is revoked", async () => {
    const user = await signedInUser(server);
    const { key, apiKey } = await createKey(user, ["READ"]);
    ok(await server.execute(MeDocument, {}, { token: key }));
    const revoked = ok(await server.execute(RevokeApiKeyDocument, { id: apiKey.id }, { token: user.accessToken }));
    expect(revoked.revokeApiKey.revokedAt).not.toBeNull();
    const error = errorOf(await server.execute(MeDocument, {}, { token: key }));
    expect(error).toMatchObject({ code: "NOT_AUTHENTICATED", status: 401 });
    expect(error.message).toMatch(/revoked/);
  });

  it("refuses an expired key", async () => {
    const user = await signedInUser(server);
    const { key, apiKey } = await createKey(user, ["READ"], { expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
    ok(await server.execute(MeDocument, {}, { token: key }));
    await server.db.prisma.apiKey.update({ where: { id: apiKey.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const error = errorOf(await server.execute(MeDocument, {}, { token: key }));
    expect(error).toMatchObject({ code: "NOT_AUTHENTICATED", status: 401 });
    expect(error.message).toMatch(/expired/);
  });

  it("refuses a malformed key without a database lookup", async () => {
    const user = await signedInUser(server);
    const { key } = await createKey(user, ["READ"]);
    const lastChar = key.at(-1) === "a" ? "b" : "a";
    const malformed = [
      key.slice(0, -1) + lastChar, // wrong checksum
      "spk_abc123", // too short
      `spk_${"!?*".repeat(15)}x`, // right length, not base62
    ];
    for (const bad of malformed) {
      const before = server.db.statements.count;
      const error = errorOf(await server.execute(MeDocument, {}, { token: bad }));
      expect(error).toMatchObject({ code: "NOT_AUTHENTICATED", status: 401 });
      expect(error.message).toMatch(/malformed/);
      expect(server.db.statements.count, bad).toBe(before);
    }

    // The counter does see lookups: a well-formed key that does not exist is looked up (and refused).
    const before = server.db.statements.count;
    const unknown = errorOf(await server.execute(MeDocument, {}, { token: generateApiKey() }));
    expect(unknown).toMatchObject({ code: "NOT_AUTHENTICATED", status: 401 });
    expect(server.db.statements.count).toBeGreaterThan(before);
  });
});

describe(`revoking API keys (${backend})`, () => {
  it("answers NOT_FOUND for a stranger's key exactly as for a missing one, and leaves the key working", async () => {
    const owner = await signedInUser(server);
    const stranger = await signedInUser(server);
    const { key, apiKey } = await createKey(owner, ["READ"]);
    const missingId = randomUUID();

    const theirs = errorOf(await server.execute(RevokeApiKeyDocument, { id: apiKey.id }, { token: stranger.accessToken }));
    const missing = errorOf(await server.execute(RevokeApiKeyDocument, { id: missingId }, { token: stranger.accessToken }));
    const notUuid = errorOf(await server.execute(RevokeApiKeyDocument, { id: "not-a-uuid" }, { token: stranger.accessToken }));
    expect(theirs).toMatchObject({ code: "NOT_FOUND", status: 404 });
    expect(theirs.message).toBe(missing.message.replace(missingId, apiKey.id));
    expect(notUuid).toMatchObject({ code: "NOT_FOUND", status: 404 });

    expect(ok(await server.execute(MeDocument, {}, { token: key })).me.id).toBe(owner.id);
  });
});

describe(`listing API keys (${backend})`, () => {
  it.each([101, 0])("refuses first: %i, naming the argument", async (first) => {
    const user = await signedInUser(server);
    const error = errorOf(await server.execute(ApiKeysDocument, { first }, { token: user.accessToken }));
    expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
    expect(fieldsOf(error)).toEqual(["first"]);
  });

  it("pages through the keys, newest first, with a working cursor", async () => {
    const user = await signedInUser(server);
    const created = [];
    for (let i = 0; i < 3; i++) created.push((await createKey(user, ["READ"])).apiKey.id);
    const newestFirst = [...created].reverse();

    const first = ok(await server.execute(ApiKeysDocument, { first: 2 }, { token: user.accessToken })).apiKeys;
    expect(first.edges.map((e) => e.node.id)).toEqual(newestFirst.slice(0, 2));
    expect(first.pageInfo.hasNextPage).toBe(true);

    const after = first.pageInfo.endCursor!;
    const second = ok(await server.execute(ApiKeysDocument, { first: 2, after }, { token: user.accessToken })).apiKeys;
    expect(second.edges.map((e) => e.node.id)).toEqual(newestFirst.slice(2));
    expect(second.pageInfo.hasNextPage).toBe(false);
  });
});

describe(`a workspace's keys (Spunto) (${backend})`, () => {
  async function memberOf(workspaceId: string, role: WorkspaceRole) {
    const user = await signedInUser(server);
    await addMember(server, workspaceId, user.id, role);
    return user;
  }

  const keysOf = (workspaceId: string, token: string) => server.execute(WorkspaceApiKeysDocument, { id: workspaceId, first: 100 }, { token });
  const listed = async (workspaceId: string, reader: SignedIn) =>
    ok(await keysOf(workspaceId, reader.accessToken)).workspace.apiKeys.edges.map((e) => [e.node.id, e.node.owner.id]);

  it("lists every key bound to the workspace, newest first with its owner, for admins; their own for other members", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const admin = await memberOf(workspaceId, "ADMIN");
    const member = await memberOf(workspaceId, "MEMBER");
    const viewer = await memberOf(workspaceId, "VIEWER");
    const ownerKey = await createKey(owner, ["READ"], { workspaceId });
    const memberKey = await createKey(member, ["WRITE"], { workspaceId });
    // Not bound to the workspace: an unbound key, and one bound to another workspace of the member.
    await createKey(member, ["READ"]);
    const { workspaceId: elsewhere } = await ownedWorkspace(server);
    await addMember(server, elsewhere, member.id, "ADMIN");
    await createKey(member, ["READ"], { workspaceId: elsewhere });

    const all = [
      [memberKey.apiKey.id, member.id],
      [ownerKey.apiKey.id, owner.id],
    ];
    expect(await listed(workspaceId, owner)).toEqual(all);
    expect(await listed(workspaceId, admin)).toEqual(all);
    expect(await listed(workspaceId, member)).toEqual([[memberKey.apiKey.id, member.id]]);
    expect(await listed(workspaceId, viewer)).toEqual([]);
    const [first] = ok(await keysOf(workspaceId, admin.accessToken)).workspace.apiKeys.edges;
    expect(first!.node).toMatchObject({ scopes: ["WRITE"], workspaceId, revokedAt: null, owner: { id: member.id, username: member.username } });

    const stranger = await signedInUser(server);
    expect(errorOf(await keysOf(workspaceId, stranger.accessToken))).toMatchObject({ code: "NOT_FOUND", status: 404 });
  });

  it("needs a signed-in session: an API key as the credential is FORBIDDEN, whatever its scopes", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    for (const scopes of [["READ"], ["READ", "WRITE"]] as ApiKeyScope[][]) {
      const { key } = await createKey(owner, scopes, { workspaceId });
      const error = errorOf(await keysOf(workspaceId, key));
      expect(error).toMatchObject({ code: "FORBIDDEN", status: 403 });
      expect(error.message).toMatch(/signed-in session/);
    }
    expect(errorOf(await server.execute(WorkspaceApiKeysDocument, { id: workspaceId }))).toMatchObject({ code: "NOT_AUTHENTICATED", status: 401 });
  });

  it("a workspace admin revokes any key bound to it; anyone else only their own, NOT_FOUND otherwise", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const admin = await memberOf(workspaceId, "ADMIN");
    const member = await memberOf(workspaceId, "MEMBER");
    const other = await memberOf(workspaceId, "MEMBER");
    const bound = await createKey(other, ["READ"], { workspaceId });
    const unbound = await createKey(other, ["READ"]);
    const { workspaceId: elsewhere, owner: elsewhereOwner } = await ownedWorkspace(server);
    await addMember(server, elsewhere, other.id, "MEMBER");
    const boundElsewhere = await createKey(other, ["READ"], { workspaceId: elsewhere });

    const revoke = (id: string, by: SignedIn) => server.execute(RevokeApiKeyDocument, { id }, { token: by.accessToken });
    // A member may not revoke a co-member's key; a workspace admin may not revoke keys bound elsewhere or to no workspace.
    expect(errorOf(await revoke(bound.apiKey.id, member))).toMatchObject({ code: "NOT_FOUND", status: 404 });
    expect(errorOf(await revoke(bound.apiKey.id, elsewhereOwner))).toMatchObject({ code: "NOT_FOUND", status: 404 });
    for (const key of [unbound, boundElsewhere]) expect(errorOf(await revoke(key.apiKey.id, owner)).code).toBe("NOT_FOUND");
    for (const key of [bound, unbound, boundElsewhere]) expect(ok(await server.execute(MeDocument, {}, { token: key.key })).me.id).toBe(other.id);

    const revoked = ok(await revoke(bound.apiKey.id, admin)).revokeApiKey;
    expect(revoked).toMatchObject({ id: bound.apiKey.id, revokedAt: expect.any(String) });
    expect(errorOf(await server.execute(MeDocument, {}, { token: bound.key }))).toMatchObject({ code: "NOT_AUTHENTICATED", status: 401 });
    // Revoking again answers the key as it is.
    expect(ok(await revoke(bound.apiKey.id, owner)).revokeApiKey.revokedAt).toBe(revoked.revokedAt);

    // A member revokes their own key bound to the workspace.
    const ownKey = await createKey(member, ["READ"], { workspaceId });
    expect(ok(await revoke(ownKey.apiKey.id, member)).revokeApiKey.revokedAt).not.toBeNull();
    const rows = await server.db.prisma.apiKey.findMany({ where: { userId: other.id }, orderBy: { createdAt: "asc" } });
    expect(rows.map((r) => [r.id, r.revokedAt !== null])).toEqual([
      [bound.apiKey.id, true],
      [unbound.apiKey.id, false],
      [boundElsewhere.apiKey.id, false],
    ]);
  });
});

describe(`statement counts (${backend})`, () => {
  // The viewer's keys and a workspace's keys, each with its owner's profile (the owners of the
  // workspace's keys are co-members, each with a rule of their own for every private field).
  const KEYS_WITH_OWNERS = /* GraphQL */ `
    query NPlusOneApiKeys($id: ID!, $first: Int!) {
      apiKeys(first: $first) {
        edges { node { id name prefix scopes workspaceId expiresAt revokedAt lastUsedAt createdAt owner { id username displayName email gitName gitEmail } } }
        pageInfo { hasNextPage }
      }
      workspace(id: $id) {
        apiKeys(first: $first) {
          edges { node { id name prefix scopes workspaceId expiresAt revokedAt lastUsedAt createdAt owner { id username displayName email gitName gitEmail dotfilesRepo } } }
          pageInfo { hasNextPage }
        }
      }
    }
  `;

  it("runs the same number of SQL statements for 10 and 100 API keys with their owners", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const prisma = server.db.prisma;
    const tag = unique("n1");
    const key = (userId: string, i: number, workspace: string | null) => {
      const secret = generateApiKey();
      return {
        userId,
        name: `${tag} key ${i}`,
        prefix: secret.slice(0, 12),
        keyHash: sha256(secret),
        scopes: i % 2 ? ["READ" as const] : ["READ" as const, "WRITE" as const],
        workspaceId: workspace,
        expiresAt: i % 3 ? null : new Date(Date.now() + 86_400_000),
        revokedAt: i % 7 ? null : new Date(),
        createdAt: new Date(Date.now() - (i + 1) * 1000),
      };
    };
    // The owner's own keys (bound to no workspace), and one key of each of 105 members bound to the workspace.
    await prisma.apiKey.createMany({ data: Array.from({ length: 105 }, (_, i) => key(owner.id, i, null)) });
    await prisma.user.createMany({
      data: Array.from({ length: 105 }, (_, i) => ({ username: `${tag}_${i}`, email: `${tag}_${i}@example.test`, passwordHash: "not-a-hash", gitName: `Git ${i}` })),
    });
    const members = await prisma.user.findMany({ where: { username: { startsWith: `${tag}_` } }, select: { id: true, username: true } });
    await prisma.workspaceMember.createMany({ data: members.map((m) => ({ workspaceId, userId: m.id, role: "MEMBER" as const })) });
    await prisma.apiKey.createMany({ data: members.map((m, i) => key(m.id, i, workspaceId)) });
    const usernames = new Map(members.map((m) => [m.id, m.username]));

    type Key = { name: string; owner: { id: string; username: string; email: string | null; gitName: string | null; dotfilesRepo?: string | null } };
    const count = async (first: number) => {
      const before = server.db.statements.count;
      const data = ok(await server.post({ query: KEYS_WITH_OWNERS, variables: { id: workspaceId, first } }, { token: owner.accessToken }));
      const statements = server.db.statements.count - before;
      const mine: Key[] = data.apiKeys.edges.map((e: { node: Key }) => e.node);
      expect(mine).toHaveLength(first);
      expect(mine.every((k) => k.owner.id === owner.id && k.owner.email !== null)).toBe(true);
      const bound: Key[] = data.workspace.apiKeys.edges.map((e: { node: Key }) => e.node);
      expect(bound).toHaveLength(first);
      // Each key's own owner, a co-member: their git identity shown, their email and dotfiles not.
      for (const k of bound) {
        const username = usernames.get(k.owner.id)!;
        expect(k.owner).toMatchObject({ username, email: null, dotfilesRepo: null, gitName: `Git ${username.slice(tag.length + 1)}` });
      }
      expect(new Set(bound.map((k) => k.owner.id)).size).toBe(first);
      return statements;
    };
    // The first request also checks the token in the database; later ones find it cached.
    await count(10);
    const ten = await count(10);
    const hundred = await count(100);
    expect(hundred).toBe(ten);
  });
});
