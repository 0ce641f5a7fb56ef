// What every request gets regardless of the operation: limits enforced before any resolver (or SQL)
// runs, bad input answered with 4xx rather than 500, request ids, health and metrics, and a schema
// whose committed copy and auth declarations match the code.
import { readFile } from "node:fs/promises";
import SchemaBuilder from "@pothos/core";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import type { GraphQLSchema } from "graphql";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { printedSchema, schema } from "../../src/schema/index.js";
import { AccountEventsDocument, CreateExpiringApiKeyDocument, WhoAmIDocument } from "../generated/graphql.js";
import { signedInUser } from "../helpers/factories.js";
import { firstDelivery, sseSubscribe, tracker } from "../helpers/live.js";
import { backend, errorOf, ok, startTestServer, type GraphQLResponse, type TestServer } from "../helpers/server.js";

let server: TestServer;
const t = tracker();
beforeAll(async () => {
  server = await startTestServer();
});
afterEach(() => t.closeAll());
afterAll(() => server?.close());

/** Posts anonymously (so that authentication runs no SQL either) and reports the statements run. */
async function postCountingSql(body: unknown, options: { token?: string } = {}): Promise<GraphQLResponse<any> & { statements: number }> {
  const before = server.db.statements.count;
  const res = await server.post(body, options);
  return { ...res, statements: server.db.statements.count - before };
}

const nested = (levels: number, leaf = "id") => `${"... on User { ".repeat(levels)}${leaf}${" }".repeat(levels)}`;

describe(`request limits, before execution (${backend})`, () => {
  it("counts the statements a request runs (the counter the no-SQL and N+1 tests rely on sees them)", async () => {
    const user = await signedInUser(server);
    const res = await postCountingSql({ query: "{ me { id } }" }, { token: user.accessToken });
    expect(res.errors).toBeUndefined();
    // At least the session lookup and the user.
    expect(res.statements).toBeGreaterThanOrEqual(2);
  });

  it("rejects a query deeper than 10 with 400, naming the depth, without running SQL", async () => {
    // `me` is level 1, nine inline fragments levels 2-10, `id` level 11.
    const res = await postCountingSql({ query: `{ me { ${nested(9)} } }` });
    expect(res.status).toBe(400);
    expect(res.data ?? null).toBeNull();
    expect(res.errors).toEqual([expect.objectContaining({ message: expect.stringMatching(/depth limit of 10 exceeded/i) })]);
    expect(res.statements).toBe(0);
  });

  it("accepts a query of depth 10 (the limit is not off by one)", async () => {
    const user = await signedInUser(server);
    // `me` is level 1, eight inline fragments levels 2-9, `id` level 10.
    const res = await server.post({ query: `{ me { ${nested(8)} } }` }, { token: user.accessToken });
    expect(ok(res)).toEqual({ me: { id: user.id } });
  });

  it("rejects more than 15 aliases with 400 without running SQL, and accepts 15", async () => {
    const aliases = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: me { id }`).join(" ")} }`;
    const over = await postCountingSql({ query: aliases(16) });
    expect(over.status).toBe(400);
    expect(over.errors).toEqual([expect.objectContaining({ message: expect.stringMatching(/aliases limit of 15/i) })]);
    expect(over.statements).toBe(0);

    const user = await signedInUser(server);
    const within = ok(await server.post({ query: aliases(15) }, { token: user.accessToken }));
    expect(Object.keys(within)).toHaveLength(15);
  });

  it("rejects a query of more than 2000 tokens with 400 without running SQL", async () => {
    const res = await postCountingSql({ query: `{ me { ${"id ".repeat(5_000)} } }` });
    expect(res.status).toBe(400);
    expect(res.errors).toEqual([expect.objectContaining({ message: expect.stringMatching(/token limit of 2000/i) })]);
    expect(res.statements).toBe(0);
  });

  it("rejects more than 20 directives with 400 without running SQL", async () => {
    const res = await postCountingSql({ query: `{ me { ${"id @include(if: true) ".repeat(21)} } }` });
    expect(res.status).toBe(400);
    expect(res.errors).toEqual([expect.objectContaining({ message: expect.stringMatching(/directives limit of 20/i) })]);
    expect(res.statements).toBe(0);
  });

  it("rejects before authenticating too: a signed-in over-limit request runs no SQL at all", async () => {
    const user = await signedInUser(server);
    const res = await postCountingSql({ query: `{ me { ${nested(9)} } }` }, { token: user.accessToken });
    expect(res.status).toBe(400);
    expect(res.statements).toBe(0);
    // The counter does see a valid request's session lookup.
    const valid = await postCountingSql({ query: "{ __typename }" }, { token: user.accessToken });
    expect(ok(valid)).toEqual({ __typename: "Query" });
    expect(valid.statements).toBeGreaterThan(0);
  });

  it("rejects a query over the cost limit (15,000) with 400 without running SQL; pages of 100 pass", async () => {
    // workspaces(first: 100) costs 1 + 100 x (edges 1 + node (1 + workers (1 + 100 x (edges 1 + node (1 + id 1))))) = 30,301.
    const nested = "workspaces(first: 100) { edges { node { workers(first: 100) { edges { node { id } } } } } }";
    const res = await postCountingSql({ query: `{ ${nested} }` });
    expect(res.status).toBe(400);
    expect(res.errors).toEqual([
      expect.objectContaining({ message: expect.stringMatching(/costs 30301, over the limit of 15000/), extensions: expect.objectContaining({ cost: 30301, maxCost: 15000 }) }),
    ]);
    expect(res.statements).toBe(0);
    // A page size passed as a variable counts for what it is.
    const byVariable = `query($n: Int) { ${nested.replace("first: 100", "first: $n")} }`;
    const hundred = await postCountingSql({ query: byVariable, variables: { n: 100 } });
    expect([hundred.status, hundred.errors?.[0]?.extensions?.cost, hundred.statements]).toEqual([400, 30301, 0]);
    const one = await server.post({ query: byVariable, variables: { n: 1 } });
    expect(one.errors?.[0]?.extensions?.code).toBe("NOT_AUTHENTICATED");

    // Two pages of 100 sessions with five fields each: 2 x (1 + 100 x 7) = 1402.
    const page = "sessions(first: 100) { edges { node { id current createdAt lastUsedAt expiresAt } } }";
    const user = await signedInUser(server);
    const two = ok(await server.post({ query: `{ a: ${page} b: ${page} }` }, { token: user.accessToken }));
    expect(two.a.edges).toHaveLength(1);
  });

  it("answers a body over 1 MiB with 413, with or without a Content-Length", async () => {
    const body = JSON.stringify({ query: "{ __typename }", variables: { padding: "x".repeat(1024 * 1024) } });
    const declared = await fetch(`${server.url}/graphql`, { method: "POST", headers: { "content-type": "application/json" }, body });
    expect(declared.status).toBe(413);
    expect((await declared.json()).errors[0].extensions.code).toBe("PAYLOAD_TOO_LARGE");

    // Chunked: the size is only known while reading.
    const chunked = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: streamOf(body, 64 * 1024),
      duplex: "half",
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect((await chunked.json()).errors[0].extensions.code).toBe("PAYLOAD_TOO_LARGE");

    // A chunked body within the limit is served as usual.
    const small = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: streamOf(JSON.stringify({ query: "{ __typename }" }), 4),
      duplex: "half",
    } as RequestInit);
    expect(small.status).toBe(200);
    expect(await small.json()).toEqual({ data: { __typename: "Query" } });
  });
});

function streamOf(text: string, chunkSize: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + chunkSize));
      offset += chunkSize;
    },
  });
}

describe(`bad input is a 4xx, never a 500 (${backend})`, () => {
  it("a syntax error is 400 GRAPHQL_PARSE_FAILED", async () => {
    const res = await postCountingSql({ query: "{ me { id " });
    expect(errorOf(res)).toMatchObject({ status: 400, code: "GRAPHQL_PARSE_FAILED" });
    expect(res.statements).toBe(0);
  });

  it("a body that is not JSON, has no query, or a batch, is 400", async () => {
    for (const body of ["{not json", JSON.stringify({ variables: {} }), JSON.stringify({ query: "" }), JSON.stringify({ query: 5 }), "[]"]) {
      const res = await postCountingSql(body);
      expect(res.status, body).toBe(400);
      expect(res.errors, body).toHaveLength(1);
      expect(res.statements).toBe(0);
    }
  });

  it("a variable of the wrong type is 400", async () => {
    const user = await signedInUser(server);
    const res = await server.post(
      { query: "query ($first: Int) { sessions(first: $first) { edges { node { id } } } }", variables: { first: "ten" } },
      { token: user.accessToken },
    );
    expect(res.status).toBe(400);
    expect(errorOf(res).message).toMatch(/\$first.*Int/);
    const missing = await server.post({ query: "query ($id: ID!) { me { id } }", variables: {} }, { token: user.accessToken });
    expect(missing.status).toBe(400);
  });

  it("an unknown field is 400 GRAPHQL_VALIDATION_FAILED (suggesting the right one outside production)", async () => {
    const res = await postCountingSql({ query: "{ mee { id } }" });
    expect(errorOf(res)).toMatchObject({ status: 400, code: "GRAPHQL_VALIDATION_FAILED" });
    expect(errorOf(res).message).toMatch(/Cannot query field "mee" on type "Query"/);
    expect(errorOf(res).message).toMatch(/Did you mean "me"/);
    expect(res.statements).toBe(0);
  });

  it("a DateTime that is not ISO 8601 with a zone is a VALIDATION error, as a variable or a literal", async () => {
    const user = await signedInUser(server);
    for (const expiresAt of ["tomorrow", "2030-01-31", "2030-01-31T12:00:00", "2030-13-45T99:00:00Z"]) {
      const res = await server.execute(CreateExpiringApiKeyDocument, { name: "k", expiresAt }, { token: user.accessToken });
      const error = errorOf(res);
      expect(error.status, expiresAt).toBe(400);
      expect(["VALIDATION", "BAD_USER_INPUT"], `${expiresAt}: ${error.code}`).toContain(error.code);
      expect(error.message).toMatch(/ISO 8601/);
    }
    const literal = await server.post(
      { query: 'mutation { createApiKey(input: { name: "k", scopes: [READ], expiresAt: "next week" }) { key } }' },
      { token: user.accessToken },
    );
    expect(errorOf(literal)).toMatchObject({ status: 400, code: "VALIDATION" });
    // No key came of any of it; a proper instant works.
    expect(await server.db.prisma.apiKey.count({ where: { userId: user.id } })).toBe(0);
    const good = ok(await server.execute(CreateExpiringApiKeyDocument, { name: "k", expiresAt: "2030-01-31T12:00:00+02:00" }, { token: user.accessToken }));
    expect(good.createApiKey.apiKey.expiresAt).toBe("2030-01-31T10:00:00.000Z");
  });
});

describe(`HTTP plumbing (${backend})`, () => {
  it("echoes a sane X-Request-Id, and generates one when it is missing or unusable", async () => {
    const query = JSON.stringify({ query: "{ __typename }" });
    const headers = { "content-type": "application/json" };
    const echoed = await fetch(`${server.url}/graphql`, { method: "POST", headers: { ...headers, "x-request-id": "trace-42.a:b_c" }, body: query });
    expect(echoed.headers.get("x-request-id")).toBe("trace-42.a:b_c");

    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    const generated = await fetch(`${server.url}/graphql`, { method: "POST", headers, body: query });
    expect(generated.headers.get("x-request-id")).toMatch(uuid);
    const again = await fetch(`${server.url}/graphql`, { method: "POST", headers, body: query });
    expect(again.headers.get("x-request-id")).not.toBe(generated.headers.get("x-request-id"));

    for (const bad of ["has spaces in it", "x".repeat(129), "<script>"]) {
      const res = await fetch(`${server.url}/health`, { headers: { "x-request-id": bad } });
      expect(res.headers.get("x-request-id"), bad).toMatch(uuid);
    }
    // Every route gets one, the 404 included.
    expect((await fetch(`${server.url}/nowhere`, { headers: { "x-request-id": "lost-1" } })).headers.get("x-request-id")).toBe("lost-1");
  });

  it("GET /health reports the database and the pub/sub backend", async () => {
    const res = await fetch(`${server.url}/health`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    const health = await res.json();
    expect(health).toMatchObject({
      status: "ok",
      database: { status: "ok", kind: process.env.DATABASE_URL ? "postgres" : "pglite" },
      pubsub: { status: "ok", mode: process.env.REDIS_URL ? "redis" : "in-process" },
    });
    expect(health.database.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it("GET /metrics is Prometheus text with request counts and the active subscriptions gauge", async () => {
    await fetch(`${server.url}/health`);
    const scrape = async () => {
      const res = await fetch(`${server.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
      return res.text();
    };
    const gauge = (text: string) => Number(/^spindle_active_subscriptions (\d+)$/m.exec(text)?.[1]);

    const text = await scrape();
    expect(text).toMatch(/^# TYPE spindle_http_requests_total counter$/m);
    expect(text).toMatch(/^spindle_http_requests_total\{method="GET",route="\/health",status="200"\} [1-9]\d*$/m);
    expect(text).toMatch(/^# TYPE spindle_active_subscriptions gauge$/m);
    expect(gauge(text)).toBe(0);

    // An open SSE subscription shows in the gauge, and leaves it when the client goes away.
    const user = await signedInUser(server);
    const stream = await sseSubscribe(server, t, AccountEventsDocument, { token: user.accessToken });
    await firstDelivery(stream.events, () =>
      server.execute(CreateExpiringApiKeyDocument, { name: "tick", expiresAt: "2030-01-01T00:00:00Z" }, { token: user.accessToken }),
    );
    expect(gauge(await scrape())).toBe(1);
    stream.close();
    await expect.poll(async () => gauge(await scrape()), { timeout: 5_000, interval: 50 }).toBe(0);
  });

  it("answers an unknown route with a 404 in JSON", async () => {
    for (const [method, path] of [["GET", "/"], ["GET", "/graphql/extra"], ["POST", "/api"], ["GET", "/healthz?x=1"]] as const) {
      const res = await fetch(`${server.url}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.headers.get("content-type")).toMatch(/application\/json/);
      expect((await res.json()).error).toMatch(/GraphQL is at \/graphql/);
    }
  });
});

describe("the schema", () => {
  it("schema.graphql is what the code prints", async () => {
    const committed = await readFile(new URL("../../schema.graphql", import.meta.url), "utf8");
    expect(committed).toBe(printedSchema());
  });

  it("every root field declares its auth scopes (public ones say `public: true`)", () => {
    const rootFields = rootFieldsOf(schema);
    expect(rootFields.length).toBeGreaterThan(10);
    expect(rootFields).toContain("Subscription.accountEvents");
    expect(fieldsWithoutAuthScopes(schema)).toEqual([]);
    // The public ones are exactly the sign-in flow.
    expect(publicFields(schema)).toEqual(
      expect.arrayContaining(["Mutation.confirmRegistration", "Mutation.login", "Mutation.refreshToken", "Mutation.register"]),
    );
  });

  it("the auth-scope check catches a root field declared without authScopes", () => {
    // The Prisma plugin's global typings make its options look required; this builder does not use it.
    const options = { plugins: [ScopeAuthPlugin], scopeAuth: { authScopes: () => ({ public: true }) } };
    const probe = new SchemaBuilder<{ Context: object; AuthScopes: { public: boolean } }>(options as never);
    probe.queryType({
      fields: (f) => ({
        declared: f.string({ authScopes: { public: true }, resolve: () => "" }),
        forgotten: f.string({ resolve: () => "" }),
        empty: f.string({ authScopes: {}, resolve: () => "" }),
      }),
    });
    probe.mutationType({ fields: (f) => ({ alsoForgotten: f.boolean({ resolve: () => true }) }) });
    expect(fieldsWithoutAuthScopes(probe.toSchema()).sort()).toEqual(["Mutation.alsoForgotten", "Query.empty", "Query.forgotten"]);
  });
});

describe(`with introspection off, as in production (${backend})`, () => {
  let closed: TestServer;
  beforeAll(async () => {
    closed = await startTestServer({ SPINDLE_INTROSPECTION: "false" });
  });
  afterAll(() => closed?.close());

  it("refuses introspection and hides field suggestions, still with 400", async () => {
    const introspection = await closed.post({ query: "{ __schema { types { name } } }" });
    expect(introspection.status).toBe(400);
    expect(introspection.errors?.[0]?.message).toMatch(/introspection/i);

    const unknown = await closed.post({ query: "{ mee { id } }" });
    expect(errorOf(unknown)).toMatchObject({ status: 400, code: "GRAPHQL_VALIDATION_FAILED" });
    expect(errorOf(unknown).message).not.toMatch(/Did you mean/);

    // Ordinary operations are unaffected.
    const user = await signedInUser(closed);
    expect(ok(await closed.execute(WhoAmIDocument, {}, { token: user.accessToken })).me.id).toBe(user.id);
  });
});

type RootField = { extensions?: { pothosOptions?: { authScopes?: unknown } } | null };

function rootFieldsOf(target: GraphQLSchema): string[] {
  return rootEntries(target).map(([name]) => name);
}

function rootEntries(target: GraphQLSchema): [string, RootField][] {
  return [target.getQueryType(), target.getMutationType(), target.getSubscriptionType()].flatMap((type) =>
    type ? Object.entries(type.getFields()).map(([name, field]) => [`${type.name}.${name}`, field as RootField] as [string, RootField]) : [],
  );
}

/** Root fields whose Pothos options have no authScopes (or an empty object, which checks nothing). */
function fieldsWithoutAuthScopes(target: GraphQLSchema): string[] {
  return rootEntries(target)
    .filter(([, field]) => {
      const scopes = field.extensions?.pothosOptions?.authScopes;
      if (typeof scopes === "function") return false;
      return !(scopes && typeof scopes === "object" && Object.keys(scopes).length > 0);
    })
    .map(([name]) => name);
}

function publicFields(target: GraphQLSchema): string[] {
  return rootEntries(target)
    .filter(([, field]) => (field.extensions?.pothosOptions?.authScopes as { public?: boolean } | undefined)?.public === true)
    .map(([name]) => name);
}
