/// <reference types="vite/client" />
// Every query and mutation, run as each actor of the world, must answer as its case says. A root
// field with no case fails the first test: a new operation cannot ship without its row here.
import { print, type DocumentNode } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { schema } from "../../src/schema/index.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { actorNames, createWorld, type MatrixCase, type World } from "./world.js";

// Each module keeps its cases next to the others: test/authz/cases/<module>.ts exporting `cases`.
const modules = import.meta.glob<{ cases: MatrixCase[] }>("./cases/*.ts", { eager: true });
const cases = Object.values(modules).flatMap((m) => m.cases);

function rootFields(): string[] {
  const fields: string[] = [];
  for (const type of [schema.getQueryType(), schema.getMutationType()]) {
    if (!type) continue;
    for (const name of Object.keys(type.getFields())) fields.push(`${type.name}.${name}`);
  }
  return fields.sort();
}

describe("authorization matrix", () => {
  it("has a case for every query and mutation", () => {
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
        const res = await server.post(
          { query: typeof query === "string" ? query : print(query as DocumentNode), variables },
          { token: c.as ? c.as(world, fixture, actor) : world.tokens[actor] },
        );
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
