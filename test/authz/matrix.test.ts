/// <reference types="vite/client" />
// Every query, mutation and subscription, run as each actor of the world, must answer as its case
// says. A root field with no case fails the first test: a new operation cannot ship without its row
// here. Subscriptions run over SSE (graphql-ws shares yoga's envelop, so authorization is the same)
// and answer with their first item.
import { print, type DocumentNode } from "graphql";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { schema } from "../../src/schema/index.js";
import { firstDelivery, sseSubscribe, tracker } from "../helpers/live.js";
import { startTestServer, type GraphQLResponse, type TestServer } from "../helpers/server.js";
import { actorNames, createWorld, type ActorName, type Fixture, type MatrixCase, type World } from "./world.js";

// Each module keeps its cases next to the others: test/authz/cases/<module>.ts exporting `cases`.
const modules = import.meta.glob<{ cases: MatrixCase[] }>("./cases/*.ts", { eager: true });
const cases = Object.values(modules).flatMap((m) => m.cases);

function rootFields(): string[] {
  const fields: string[] = [];
  for (const type of [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]) {
    if (!type) continue;
    for (const name of Object.keys(type.getFields())) fields.push(`${type.name}.${name}`);
  }
  return fields.sort();
}

const streams = tracker();

/** The first item of the subscription (or the error it ends with), then the stream is closed. */
async function subscribeOnce(
  c: MatrixCase,
  world: World,
  fixture: Fixture,
  actor: ActorName,
  body: { query: string; variables?: Record<string, unknown> },
  token?: string,
): Promise<GraphQLResponse<any>> {
  const sse = await sseSubscribe(world.server, streams, body.query, { token, variables: body.variables });
  try {
    const first = await firstDelivery(sse.events, async () => c.trigger?.(world, fixture, actor));
    const answer = first.event === "next" ? first.data : { errors: [{ message: `the stream ended (${first.event}) without an item` }] };
    return { status: sse.status, headers: sse.headers, data: answer.data, errors: answer.errors };
  } finally {
    sse.close();
  }
}

describe("authorization matrix", () => {
  afterEach(() => streams.closeAll());

  it("has a case for every query, mutation and subscription", () => {
    const covered = new Set(cases.map((c) => c.field));
    const missing = rootFields().filter((field) => !covered.has(field));
    expect(missing, "root fields without an authorization case in test/authz/cases").toEqual([]);
    const unknown = [...covered].filter((field) => !rootFields().includes(field));
    expect(unknown, "cases for fields the schema does not have").toEqual([]);
  });

  let server: TestServer;
  let world: World;
  beforeAll(async () => {
    server = await startTestServer();
    world = await createWorld(server);
  }, 60_000);
  afterAll(() => server?.close());

  for (const c of cases) {
    it(`${c.field}`, async () => {
      const answers: Record<string, string> = {};
      const expected: Record<string, string> = {};
      for (const actor of actorNames) {
        const fixture = c.setup ? await c.setup(world, actor) : {};
        const { query, variables } = c.request(world, fixture, actor);
        const body = { query: typeof query === "string" ? query : print(query as DocumentNode), variables };
        const token = c.as ? c.as(world, fixture, actor) : world.tokens[actor];
        const res = c.field.startsWith("Subscription.")
          ? await subscribeOnce(c, world, fixture, actor, body, token)
          : await server.post(body, { token });
        const code = res.errors?.[0]?.extensions?.code as string | undefined;
        const outcome = res.errors?.length ? (code ?? `uncoded: ${res.errors[0]!.message}`) : "ok";
        answers[actor] = outcome === c.expect[actor] ? outcome : `${outcome} (${res.errors?.[0]?.message ?? "no error"})`;
        expected[actor] = c.expect[actor];
        if (outcome === "ok" && c.expect[actor] === "ok") c.check?.(res.data, actor, world, fixture);
      }
      expect(answers).toEqual(expected);
    }, 60_000);
  }
});
