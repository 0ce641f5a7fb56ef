// Errors that are not a service's own: every one carries `extensions.code` (variable coercion,
// operation selection, paging arguments), hostile input is refused before any SQL, production
// answers suggest no schema names, a signed token with malformed claims is a 401, and a resolver
// that ignores the Prisma plugin's selection fails outside production.
import { SignJWT } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { ClaimTasksDocument, WhoAmIDocument } from "../generated/graphql.js";
import { createMachineDirect } from "../authz/world.js";
import { addMember, ownedWorkspace, signedInUser } from "../helpers/factories.js";
import { acknowledgedSocket, tracker } from "../helpers/live.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type GraphQLResponse, type TestServer } from "../helpers/server.js";

let server: TestServer;
const t = tracker();
beforeAll(async () => {
  server = await startTestServer();
});
afterEach(() => t.closeAll());
afterAll(() => server?.close());

async function postCountingSql(body: unknown, token?: string): Promise<GraphQLResponse<any> & { statements: number }> {
  const before = server.db.statements.count;
  const res = await server.post(body, { token });
  return { ...res, statements: server.db.statements.count - before };
}

describe(`every error has a code (${backend})`, () => {
  it("a variable GraphQL cannot coerce is VALIDATION naming the variable path", async () => {
    const user = await signedInUser(server);
    const wrongType = errorOf(await server.post({ query: "query ($first: Int) { sessions(first: $first) { pageInfo { hasNextPage } } }", variables: { first: "ten" } }, { token: user.accessToken }));
    expect(wrongType).toMatchObject({ status: 400, code: "VALIDATION" });
    expect(fieldsOf(wrongType)).toEqual(["$first"]);

    const nested = errorOf(
      await server.post({ query: "mutation ($i: CreateWorkspaceInput!) { createWorkspace(input: $i) { id } }", variables: { i: { name: 5 } } }, { token: user.accessToken }),
    );
    expect(nested).toMatchObject({ status: 400, code: "VALIDATION" });
    expect(fieldsOf(nested)).toEqual(["$i.name"]);

    const missing = errorOf(await server.post({ query: "query ($id: ID!) { workspace(id: $id) { id } }", variables: {} }, { token: user.accessToken }));
    expect(missing).toMatchObject({ status: 400, code: "VALIDATION" });
    expect(fieldsOf(missing)).toEqual(["$id"]);

    const overflow = errorOf(await server.post({ query: "query ($n: Int) { sessions(first: $n) { pageInfo { hasNextPage } } }", variables: { n: 2 ** 40 } }, { token: user.accessToken }));
    expect(overflow).toMatchObject({ status: 400, code: "VALIDATION" });
  });

  it("an operation that cannot be chosen is a 400 with a code", async () => {
    const unknown = await server.post({ query: "query A { __typename }", operationName: "B" });
    expect(errorOf(unknown)).toMatchObject({ status: 400, code: "OPERATION_RESOLUTION_FAILURE" });
    const ambiguous = await server.post({ query: "query A { __typename } query B { __typename }" });
    expect(errorOf(ambiguous)).toMatchObject({ status: 400, code: "OPERATION_RESOLUTION_FAILURE" });
  });

  it("bad page sizes and cursors are VALIDATION naming the argument, decided before any SQL (even authentication's)", async () => {
    const user = await signedInUser(server);
    const cases: [string, string][] = [
      ["first: 0", "first"],
      ["last: 101", "last"],
      ["first: -1", "first"],
      ['after: "zzz"', "after"],
      [`before: "${Buffer.from("GPC:S:not-a-uuid").toString("base64")}"`, "before"],
    ];
    for (const [args, field] of cases) {
      const res = await postCountingSql({ query: `{ workspaces(${args}) { totalCount } }` }, user.accessToken);
      expect(errorOf(res), args).toMatchObject({ status: 400, code: "VALIDATION" });
      expect(fieldsOf(errorOf(res)), args).toEqual([field]);
      expect(res.statements, args).toBe(0);
    }
  });

  it("cursors the server issued pass the check, for single and compound keys", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    for (let i = 0; i < 2; i++) await addMember(server, workspaceId, (await signedInUser(server)).id, "VIEWER");
    const page = (after?: string) =>
      server.post(
        { query: "query ($ws: ID!, $after: String) { workspace(id: $ws) { members(first: 1, after: $after) { edges { cursor } pageInfo { endCursor } } } }", variables: { ws: workspaceId, after } },
        { token: owner.accessToken },
      );
    const seen: string[] = [];
    let after: string | undefined;
    for (let i = 0; i < 3; i++) {
      const { members } = ok(await page(after)).workspace;
      seen.push(...members.edges.map((e: { cursor: string }) => e.cursor));
      after = members.pageInfo.endCursor;
    }
    expect(new Set(seen).size).toBe(3);
    const { workspaces } = ok(await server.post({ query: "{ workspaces(first: 1) { pageInfo { endCursor } } }" }, { token: owner.accessToken }));
    expect(ok(await server.post({ query: "query ($a: String) { workspaces(first: 1, after: $a) { totalCount } }", variables: { a: workspaces.pageInfo.endCursor } }, { token: owner.accessToken })))
      .toEqual({ workspaces: { totalCount: 1 } });
  });

  it("hostile text, numbers, depth and list lengths are VALIDATION naming the argument path, before any SQL", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const login = await postCountingSql({ query: "mutation ($i: LoginInput!) { login(input: $i) { accessToken } }", variables: { i: { login: "admin\u0000", password: "x" } } });
    expect(errorOf(login)).toMatchObject({ status: 400, code: "VALIDATION" });
    expect(fieldsOf(errorOf(login))).toEqual(["input.login"]);
    expect(login.statements).toBe(0);

    const save = "mutation ($ws: ID!, $b: [GraphBlockInput!]!) { saveGraph(input: { workspaceId: $ws, version: 0, blocks: $b, edges: [] }) { version } }";
    const deep = `${'{"a":'.repeat(20_000)}1${"}".repeat(20_000)}`;
    const body = `{"query": ${JSON.stringify(save)}, "variables": {"ws": "${workspaceId}", "b": [{"id": "b1", "type": "monitor", "cfg": ${deep}}]}}`;
    const deepRes = await postCountingSql(body, owner.accessToken);
    expect(errorOf(deepRes)).toMatchObject({ status: 400, code: "VALIDATION" });
    expect(fieldsOf(errorOf(deepRes))).toEqual(["input.blocks.0.cfg"]);
    expect(deepRes.statements).toBe(0);

    // Written into the document: 1e400 is Infinity once read, and GraphQL's Float lets it through.
    const literal = await postCountingSql(
      { query: `mutation { addBlock(input: { workspaceId: "${workspaceId}", type: "monitor", x: 1e400, label: "a\\u0000" }) { version } }` },
      owner.accessToken,
    );
    expect(errorOf(literal)).toMatchObject({ status: 400, code: "VALIDATION" });
    expect(fieldsOf(errorOf(literal)).sort()).toEqual(["input.label", "input.x"]);
    expect(literal.statements).toBe(0);

    const filter = await postCountingSql(
      { query: "query ($ws: ID!, $s: [TaskStatus!]) { workspace(id: $ws) { tasks(status: $s) { totalCount } } }", variables: { ws: workspaceId, s: Array(40_000).fill("PENDING") } },
      owner.accessToken,
    );
    expect(errorOf(filter)).toMatchObject({ status: 400, code: "VALIDATION" });
    expect(fieldsOf(errorOf(filter))).toEqual(["status"]);
    expect(filter.statements).toBe(0);

    // The largest double is a number JSON and GraphQL accept, and the database would refuse.
    const huge = await server.post(
      { query: "mutation ($ws: ID!, $x: Float) { addBlock(input: { workspaceId: $ws, type: \"monitor\", x: $x }) { version } }", variables: { ws: workspaceId, x: Number.MAX_VALUE } },
      { token: owner.accessToken },
    );
    expect(errorOf(huge)).toMatchObject({ status: 400, code: "VALIDATION" });
    expect(fieldsOf(errorOf(huge))).toEqual(["input.x"]);
    expect(await server.db.prisma.graphBlock.count({ where: { workspaceId } })).toBe(0);
  });
});

describe(`the same over WebSocket (${backend})`, () => {
  it("a subscription with a hostile argument is refused with VALIDATION naming it", async () => {
    const user = await signedInUser(server);
    const socket = await acknowledgedSocket(server, t, { authorization: `Bearer ${user.accessToken}` });
    const query = "subscription ($ws: ID!) { events(workspaceId: $ws) { cursor } }";
    socket.send({ id: "1", type: "subscribe", payload: { query, variables: { ws: "a\u0000" } } });
    const message = await socket.messages.next(5_000);
    expect(message).toMatchObject({ id: "1", type: "error" });
    expect(message.payload[0].extensions).toMatchObject({ code: "VALIDATION", fields: [{ field: "workspaceId" }] });
  });
});

describe(`production suggests no schema names (${backend})`, () => {
  let production: TestServer;
  beforeAll(async () => {
    production = await startTestServer({ SPINDLE_INTROSPECTION: "false" });
  });
  afterAll(() => production?.close());

  const attempts: [string, { query: string; variables?: Record<string, unknown> }, string][] = [
    ["a field", { query: "{ mee { id } }" }, '"me"'],
    ["an argument", { query: "{ workspaces(frist: 1) { totalCount } }" }, '"first"'],
    ["a type", { query: "query ($x: Strng) { __typename }" }, '"String"'],
    ["an enum value, written", { query: "{ assignedTasks(status: [RUNING]) { pageInfo { hasNextPage } } }" }, '"RUNNING"'],
    ["an enum value, as a variable", { query: "query ($s: [TaskStatus!]) { assignedTasks(status: $s) { pageInfo { hasNextPage } } }", variables: { s: ["RUNING"] } }, '"RUNNING"'],
    ["an input field, written", { query: 'mutation { createWorkspace(input: { name: "x", idempotencyKy: "k" }) { id } }' }, '"idempotencyKey"'],
    [
      "an input field, as a variable",
      { query: "mutation ($i: CreateWorkspaceInput!) { createWorkspace(input: $i) { id } }", variables: { i: { name: "x", idempotencyKy: "k" } } },
      '"idempotencyKey"',
    ],
  ];

  it("no 'Did you mean' for fields, arguments, types, enum values or input fields, with introspection off", async () => {
    const user = await signedInUser(production);
    for (const [what, body, suggestion] of attempts) {
      const error = errorOf(await production.post(body, { token: user.accessToken }));
      expect(error.status, what).toBe(400);
      expect(error.code, what).toBeDefined();
      expect(error.message, what).not.toMatch(/Did you mean/);
      expect(error.message, what).not.toContain(suggestion);
    }
  });

  it("still suggests them with introspection on (development)", async () => {
    const user = await signedInUser(server);
    for (const [what, body] of attempts) {
      const error = errorOf(await server.post(body, { token: user.accessToken }));
      expect(error.message, what).toMatch(/Did you mean/);
    }
  });
});

describe(`access token claims (${backend})`, () => {
  it("a correctly signed token whose sid or sub is not a UUID is 401, not 500", async () => {
    const user = await signedInUser(server);
    const { jwtSecret, issuer, audience } = server.config.auth;
    const sign = (sub: string, sid: string) =>
      new SignJWT({ sid })
        .setProtectedHeader({ alg: "HS256", typ: "at+jwt" })
        .setSubject(sub)
        .setIssuer(issuer)
        .setAudience(audience)
        .setIssuedAt()
        .setExpirationTime("5m")
        .sign(new TextEncoder().encode(jwtSecret!));
    for (const token of [await sign(user.id, "not-a-uuid"), await sign("admin", "6f1c2d4e-0000-4000-8000-000000000001")]) {
      const res = await server.execute(WhoAmIDocument, {}, { token });
      expect(errorOf(res)).toMatchObject({ status: 401, code: "NOT_AUTHENTICATED" });
    }
  });
});

describe(`a resolver must use the Prisma plugin's selection (${backend})`, () => {
  it("is enforced everywhere but production, by configuration", () => {
    const env = { JWT_SECRET: "x".repeat(32) };
    expect(loadConfig({ ...env, NODE_ENV: "production" }).schema.failOnUnusedQuery).toBe(false);
    expect(loadConfig({ ...env, NODE_ENV: "development" }).schema.failOnUnusedQuery).toBe(true);
    expect(server.config.schema.failOnUnusedQuery).toBe(true);
  });

  it("claimTasks with nothing to claim and workerByBlock with no worker answer normally", async () => {
    const { owner, workspaceId } = await ownedWorkspace(server);
    const machine = await createMachineDirect(server, workspaceId);
    expect(ok(await server.execute(ClaimTasksDocument, { input: { limit: 5 } }, { token: machine.credential })).claimTasks).toEqual([]);
    const none = await server.post(
      { query: 'query ($ws: ID!) { workerByBlock(workspaceId: $ws, blockId: "nowhere") { id } }', variables: { ws: workspaceId } },
      { token: owner.accessToken },
    );
    expect(ok(none)).toEqual({ workerByBlock: null });
  });
});
