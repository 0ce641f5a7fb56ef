// Hostile input, generated from the schema itself: every argument of every query and mutation of
// type String, ID, JSON, Int, Float or a list (and every input-object field of those types, all the
// way down) gets one value of each hostile class that fits it: text with NUL or a lone surrogate,
// JSON nested 20,000 deep or holding such text or a number the database cannot store, numbers
// past what the database or GraphQL can hold, 40,000-element lists. Every other argument is benign
// and names real objects, and each request goes as the workspace owner (as the machine, for
// machine-only fields), so that nothing but the hostile value stands between it and the database.
// Every answer must be a 4xx with `extensions.code` on every error: no 5xx, no
// INTERNAL_SERVER_ERROR, no bare error. A field added later is covered without touching this file.
import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLObjectType,
} from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey, displayPrefix, generateSecret } from "../../src/auth/api-key-format.js";
import { sha256 } from "../../src/auth/secrets.js";
import { schema } from "../../src/schema/index.js";
import { createMachineDirect } from "../authz/world.js";
import { ownedWorkspace, unique } from "../helpers/factories.js";
import { backend, startTestServer, type TestServer } from "../helpers/server.js";

/** Spliced into the body as raw JSON text: JSON.stringify could neither write nor survive them. */
const DEEP = "__hostile_deep_json__";
const INFINITE = "__hostile_1e400__";
const DEEP_JSON = `${'{"a":'.repeat(20_000)}1${"}".repeat(20_000)}`;

type Hostile = { class: string; value: unknown };

const text: Hostile[] = [
  { class: "NUL", value: "a\u0000b" },
  { class: "lone surrogate", value: "a\uD800b" },
];
const numbers: Hostile[] = [
  // Survives JSON and GraphQL, but Prisma rounds it past float8's maximum.
  { class: "largest double", value: Number.MAX_VALUE },
  { class: "1e400 (Infinity once parsed)", value: INFINITE },
];
const json: Hostile[] = [
  { class: "JSON nested 20,000 deep", value: DEEP },
  { class: "JSON with NUL", value: { note: "a\u0000b" } },
  { class: "JSON key with a lone surrogate", value: { ["k\uDC00"]: 1 } },
  { class: "JSON with the largest double", value: { x: Number.MAX_VALUE } },
];

interface World {
  owner: string;
  machine: string;
  ids: Record<string, string>;
}

let server: TestServer;
let world: World;

beforeAll(async () => {
  server = await startTestServer();
  const prisma = server.db.prisma;
  const { owner, workspaceId } = await ownedWorkspace(server);
  const machine = await createMachineDirect(server, workspaceId, { capabilities: ["shell"] });
  const project = await prisma.project.create({ data: { workspaceId, key: "HOST", name: "hostile" } });
  const worker = await prisma.worker.create({ data: { workspaceId, kind: "CONTAINER", name: unique("w"), image: "x", machineId: machine.id } });
  const task = await prisma.task.create({ data: { workspaceId, title: "t" } });
  const flow = await prisma.flow.create({ data: { workspaceId, name: "f" } });
  const deployment = await prisma.deployment.create({ data: { workspaceId, name: "d" } });
  const service = await prisma.service.create({ data: { workspaceId, deploymentId: deployment.id, name: "s", image: "x" } });
  await prisma.graphBlock.create({ data: { workspaceId, id: "b1", type: "monitor", label: "b1" } });
  const token = generateSecret("spe_");
  const enrollment = await prisma.enrollmentToken.create({
    data: { workspaceId, name: "e", prefix: displayPrefix(token), tokenHash: sha256(token), expiresAt: new Date(Date.now() + 3_600_000) },
  });
  const key = generateApiKey();
  const apiKey = await prisma.apiKey.create({ data: { userId: owner.id, name: "k", prefix: displayPrefix(key), keyHash: sha256(key) } });
  const session = await prisma.session.findFirstOrThrow({ where: { userId: owner.id } });
  world = {
    owner: owner.accessToken,
    machine: machine.credential,
    ids: {
      workspace: workspaceId,
      project: project.id,
      machine: machine.id,
      worker: worker.id,
      task: task.id,
      flow: flow.id,
      deployment: deployment.id,
      service: service.id,
      enrollmenttoken: enrollment.id,
      apikey: apiKey.id,
      session: session.id,
      user: owner.id,
      source: worker.id,
    },
  };
});
afterAll(() => server?.close());

/** The real id an ID argument names: by its own name (`workspaceId`), else by its field (`cancelTask(id)`). */
function idFor(name: string, fieldName: string): string {
  const kind = name.replace(/Ids?$/, "").toLowerCase();
  if (world.ids[kind]) return world.ids[kind]!;
  const named = Object.keys(world.ids)
    .filter((k) => fieldName.toLowerCase().includes(k))
    .sort((a, b) => b.length - a.length)[0];
  return world.ids[named ?? "workspace"]!;
}

/** A value that passes: the required fields only, real ids, short words. */
function benign(type: GraphQLInputType, name: string, fieldName: string, depth = 0): unknown {
  if (isNonNullType(type)) return benign(type.ofType, name, fieldName, depth);
  if (isListType(type)) return [benign(type.ofType, name, fieldName, depth)];
  if (isEnumType(type)) return type.getValues()[0]!.name;
  if (isInputObjectType(type)) {
    if (depth > 5) return {};
    return Object.fromEntries(
      Object.values(type.getFields())
        .filter((f) => isNonNullType(f.type) && f.defaultValue === undefined)
        .map((f) => [f.name, benign(f.type, f.name, fieldName, depth + 1)]),
    );
  }
  switch (type.name) {
    case "ID":
      return idFor(name, fieldName);
    case "Int":
    case "Float":
      return 1;
    case "Boolean":
      return false;
    case "DateTime":
      return "2099-01-01T00:00:00Z";
    case "JSON":
      return {};
    default:
      return name === "blockId" ? "b1" : "x";
  }
}

/** Where a hostile value can go inside an argument: a path of keys (0 for a list's first item) and the type there. */
function targets(type: GraphQLInputType, path: (string | number)[] = [], depth = 0): { path: (string | number)[]; type: GraphQLInputType }[] {
  const inner = isNonNullType(type) ? type.ofType : type;
  if (isListType(inner)) return [{ path, type }, ...targets(inner.ofType, [...path, 0], depth)];
  if (isInputObjectType(inner)) {
    if (depth > 5) return [];
    return Object.values(inner.getFields()).flatMap((f) => targets(f.type, [...path, f.name], depth + 1));
  }
  return isScalarType(inner) && inner.name !== "Boolean" ? [{ path, type }] : [];
}

function corpusFor(type: GraphQLInputType, name: string, fieldName: string): Hostile[] {
  const inner = isNonNullType(type) ? type.ofType : type;
  if (isListType(inner)) {
    const item = benign(inner.ofType, name, fieldName);
    return [{ class: "40,000-element list", value: Array.from({ length: 40_000 }, () => item) }];
  }
  switch (getNamedType(type).name) {
    case "JSON":
      return json;
    case "Int":
      return [{ class: "beyond 32 bits", value: 1e10 }, ...numbers];
    case "Float":
      return numbers;
    default:
      return text;
  }
}

/** The argument value with `hostile` at `path`, benign everywhere else. */
function withHostile(type: GraphQLInputType, path: (string | number)[], hostile: unknown, name: string, fieldName: string): unknown {
  if (path.length === 0) return hostile;
  const inner = isNonNullType(type) ? type.ofType : type;
  const [key, ...rest] = path;
  if (isListType(inner)) return [withHostile(inner.ofType, rest, hostile, name, fieldName)];
  if (!isInputObjectType(inner)) throw new Error(`no ${String(key)} in ${String(inner)}`);
  const value = benign(inner, name, fieldName) as Record<string, unknown>;
  const field = inner.getFields()[key as string]!;
  value[key as string] = withHostile(field.type, rest, hostile, field.name, fieldName);
  return value;
}

const selectionOf = (field: GraphQLField<unknown, unknown>) => (isLeafType(getNamedType(field.type)) ? "" : " { __typename }");

interface Attack {
  label: string;
  body: string;
  token: string;
}

function rootFields(type: GraphQLObjectType | null | undefined, operation: "query" | "mutation") {
  return Object.values(type?.getFields() ?? {}).map((field) => ({ field, operation }));
}

const machineOnly = (field: GraphQLField<unknown, unknown>) => {
  const scopes = (field.extensions as { pothosOptions?: { authScopes?: unknown } }).pothosOptions?.authScopes;
  return typeof scopes === "object" && scopes !== null && Object.keys(scopes).join() === "machine";
};

/** One request per (root field, argument position, hostile class), as variables; NUL also as a literal. */
function attacks(): Attack[] {
  const list: Attack[] = [];
  for (const { field, operation } of [...rootFields(schema.getQueryType(), "query"), ...rootFields(schema.getMutationType(), "mutation")]) {
    const token = machineOnly(field) ? world.machine : world.owner;
    for (const arg of field.args) {
      for (const target of targets(arg.type)) {
        const leafName = String([arg.name, ...target.path].filter((p) => typeof p === "string").pop());
        for (const hostile of corpusFor(target.type, leafName, field.name)) {
          const variables = argumentValues(field, arg, withHostile(arg.type, target.path, hostile.value, arg.name, field.name));
          const declared = Object.keys(variables).map((name) => `$${name}: ${String(field.args.find((a) => a.name === name)!.type)}`);
          const query = `${operation}${declared.length ? `(${declared.join(", ")})` : ""} { ${field.name}${declared.length ? `(${Object.keys(variables).map((n) => `${n}: $${n}`).join(", ")})` : ""}${selectionOf(field)} }`;
          const body = JSON.stringify({ query, variables })
            .replace(`"${DEEP}"`, DEEP_JSON)
            .replace(`"${INFINITE}"`, "1e400");
          list.push({ label: `${field.name}(${[arg.name, ...target.path].join(".")}) <- ${hostile.class}`, body, token });
        }
      }
    }
    // The same NUL written into the document itself, for each root argument that takes text.
    for (const arg of field.args.filter((a) => ["String", "ID"].includes(getNamedType(a.type).name) && !isListType(isNonNullType(a.type) ? a.type.ofType : a.type))) {
      const others = field.args.filter((a) => a !== arg && isNonNullType(a.type));
      const literals = [`${arg.name}: "a\\u0000b"`, ...others.map((a) => `${a.name}: $${a.name}`)];
      const declared = others.map((a) => `$${a.name}: ${String(a.type)}`);
      const variables = Object.fromEntries(others.map((a) => [a.name, benign(a.type, a.name, field.name)]));
      const query = `${operation}${declared.length ? `(${declared.join(", ")})` : ""} { ${field.name}(${literals.join(", ")})${selectionOf(field)} }`;
      list.push({ label: `${field.name}(${arg.name}) <- NUL literal`, body: JSON.stringify({ query, variables }), token });
    }
  }
  return list;
}

/** Every required argument benign, and the attacked one as given. */
function argumentValues(field: GraphQLField<unknown, unknown>, attacked: GraphQLArgument, value: unknown): Record<string, unknown> {
  return Object.fromEntries(
    field.args
      .filter((a) => a === attacked || isNonNullType(a.type))
      .map((a) => [a.name, a === attacked ? value : benign(a.type, a.name, field.name)]),
  );
}

/** Bad paging: for each connection at the root, and one level down from each root object field. */
function pagingAttacks(): Attack[] {
  const cursor = (key: string) => Buffer.from(`GPC:S:${key}`).toString("base64");
  const issued = cursor("6f1c2d4e-0000-4000-8000-000000000001");
  const bad = ["first: 0", "first: 101", "last: -1", 'after: "zzz"', `after: "${cursor("not-a-uuid")}"`, `before: "${cursor("x\u0000")}"`, `last: 2, after: "${issued}"`, `after: "${issued}", before: "${issued}"`];
  const isConnection = (f: GraphQLField<unknown, unknown>) => {
    const type = getNamedType(f.type);
    return isObjectType(type) && "pageInfo" in type.getFields();
  };
  const list: Attack[] = [];
  for (const field of Object.values(schema.getQueryType()!.getFields())) {
    const required = field.args.filter((a) => isNonNullType(a.type));
    const declared = required.map((a) => `$${a.name}: ${String(a.type)}`).join(", ");
    const variables = Object.fromEntries(required.map((a) => [a.name, benign(a.type, a.name, field.name)]));
    const passed = required.map((a) => `${a.name}: $${a.name}`);
    const head = `query${declared ? `(${declared})` : ""}`;
    const token = machineOnly(field) ? world.machine : world.owner;
    if (isConnection(field)) {
      for (const args of bad) {
        const query = `${head} { ${field.name}(${[...passed, args].join(", ")}) { __typename } }`;
        list.push({ label: `${field.name}(${args})`, body: JSON.stringify({ query, variables }), token });
      }
      continue;
    }
    const type = getNamedType(field.type);
    if (!isObjectType(type)) continue;
    for (const nested of Object.values(type.getFields()).filter(isConnection)) {
      for (const args of bad) {
        const query = `${head} { ${field.name}${passed.length ? `(${passed.join(", ")})` : ""} { ${nested.name}(${args}) { __typename } } }`;
        list.push({ label: `${field.name}.${nested.name}(${args})`, body: JSON.stringify({ query, variables }), token });
      }
    }
  }
  return list;
}

interface Verdict {
  label: string;
  status: number;
  problem: string | null;
}

async function send(attack: Attack): Promise<Verdict> {
  const res = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/graphql-response+json", authorization: `Bearer ${attack.token}` },
    body: attack.body,
  });
  const text = await res.text();
  let answer: { data?: unknown; errors?: { message: string; extensions?: { code?: string } }[] };
  try {
    answer = JSON.parse(text);
  } catch {
    return { label: attack.label, status: res.status, problem: `not JSON: ${text.slice(0, 200)}` };
  }
  const errors = answer.errors ?? [];
  const uncoded = errors.find((e) => !e.extensions?.code);
  const internal = errors.find((e) => e.extensions?.code === "INTERNAL_SERVER_ERROR");
  const problem =
    res.status >= 500
      ? `HTTP ${res.status}: ${JSON.stringify(errors).slice(0, 300)}`
      : internal
        ? `INTERNAL_SERVER_ERROR: ${internal.message}`
        : uncoded
          ? `an error without a code: ${uncoded.message.slice(0, 300)}`
          : errors.length === 0 || res.status < 400
            ? `accepted (HTTP ${res.status}): ${text.slice(0, 200)}`
            : null;
  return { label: attack.label, status: res.status, problem };
}

/** All of them, a few at a time (two cores are shared with the other test files). */
async function sendAll(list: Attack[]): Promise<Verdict[]> {
  const verdicts: Verdict[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      while (next < list.length) verdicts.push(await send(list[next++]!));
    }),
  );
  return verdicts;
}

describe(`hostile input to every argument of every query and mutation (${backend})`, () => {
  it("is refused with a coded 4xx, never a 5xx", async () => {
    const list = attacks();
    // Enough to be sure the generator walked the schema, not a handful of fields.
    expect(list.length).toBeGreaterThan(500);
    const failures = (await sendAll(list)).filter((v) => v.problem).map((v) => `${v.label}: ${v.problem}`);
    expect(failures).toEqual([]);
  }, 120_000);

  it("refuses bad page sizes and cursors, at the root and nested, as VALIDATION", async () => {
    const list = pagingAttacks();
    expect(list.length).toBeGreaterThan(50);
    const failures = (await sendAll(list)).filter((v) => v.problem).map((v) => `${v.label}: ${v.problem}`);
    expect(failures).toEqual([]);
  }, 60_000);

  it("answers malformed variables and extensions in a GET with 400 BAD_REQUEST", async () => {
    const query = encodeURIComponent("{ __typename }");
    for (const params of ["variables=%7Bbad", "extensions=%7Bbad", "variables=%5B1", `variables=${encodeURIComponent(DEEP_JSON.slice(0, 5000))}`]) {
      const res = await fetch(`${server.url}/graphql?query=${query}&${params}`, { headers: { authorization: `Bearer ${world.owner}` } });
      const body = await res.json();
      expect(res.status, params).toBe(400);
      expect(body.errors[0].extensions.code, params).toBe("BAD_REQUEST");
    }
  });
});
