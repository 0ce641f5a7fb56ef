// The OpenAPI 3.1 document of the legacy REST layer, generated from the route table (schemas from
// the routes' own zod definitions) and the inventory (documented endpoints not built yet: 501).
import { z } from "zod";
import { DIALECT_STYLES } from "./dialects.js";
import { routerPath, type InventoryRow } from "./inventory.js";
import { DIALECTS, type Route } from "./route.js";

type JsonSchema = Record<string, unknown>;

const toSchema = (schema: z.ZodType): JsonSchema => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: "draft-2020-12", io: "input", unrepresentable: "any" }) as JsonSchema;
  return rest;
};

/** `/workspaces/{id}/graph` and `/api/workflows/:id` both become `{id}` as OpenAPI writes them. */
const openApiPath = (documented: string) => routerPath(documented).replace(/:(\w+)/g, "{$1}");

function parameters(route: Route): JsonSchema[] {
  const out: JsonSchema[] = [];
  for (const [where, schema] of [["path", route.params], ["query", route.query]] as const) {
    if (!schema) continue;
    const json = toSchema(schema) as { properties?: Record<string, JsonSchema>; required?: string[] };
    for (const [name, property] of Object.entries(json.properties ?? {})) {
      out.push({ name, in: where, required: where === "path" || (json.required ?? []).includes(name), schema: property });
    }
  }
  return out;
}

const errorResponse = (route: Pick<Route, "dialect">, description: string) => ({
  description,
  content: { "application/json": { schema: toSchema(z.object(Object.fromEntries(Object.keys(DIALECT_STYLES[route.dialect].errorBody("")).map((k) => [k, z.string()])))) } },
});

function security(route: Route) {
  const options = route.auth.map((credential) => (credential === "none" ? {} : { [credential]: [] }));
  return options;
}

function operation(route: Route): JsonSchema {
  const style = DIALECT_STYLES[route.dialect];
  const responses: Record<string, unknown> = {
    [String(route.status ?? 200)]: {
      description: "Success",
      content: { [route.produces ?? "application/json"]: { schema: route.response ? toSchema(route.response) : { type: "object" } } },
    },
  };
  const add = (code: string, description: string) => {
    responses[String(style.status(code))] ??= errorResponse(route, description);
  };
  if (!route.auth.includes("none")) add("NOT_AUTHENTICATED", "No valid credentials");
  if (route.params || route.query || route.body) add("VALIDATION", "Invalid input; the message names each field");
  if (route.params) add("NOT_FOUND", "No such object, or not the caller's");
  add("FORBIDDEN", "Signed in, but the role or scope is missing");
  return {
    tags: [route.dialect],
    summary: route.summary,
    operationId: `${route.dialect}:${route.method} ${route.path}`,
    parameters: parameters(route),
    ...(route.body ? { requestBody: { required: true, content: { "application/json": { schema: toSchema(route.body) } } } } : {}),
    responses,
    security: security(route),
  };
}

function unbuilt(row: InventoryRow): JsonSchema {
  const pathParams = [...openApiPath(row.path).matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: "path", required: true, schema: { type: "string" } }));
  return {
    tags: [row.dialect],
    summary: row.summary,
    description: "Documented by the legacy API but not built yet in Spindle: answers 501.",
    operationId: `${row.dialect}:${row.method} ${row.path}`,
    parameters: pathParams,
    responses: { "501": { description: "Not built yet" } },
    "x-spindle-built": false,
  };
}

export function openApiDocument(routes: readonly Route[], inventory: readonly InventoryRow[], version: string): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  const put = (path: string, method: string, op: JsonSchema) => {
    const item = (paths[openApiPath(path)] ??= {});
    const key = method.toLowerCase();
    // A shared path (two dialects, one method) is one operation documented by its first route.
    item[key] ??= op;
  };
  for (const route of routes) put(route.path, route.method, operation(route));
  const built = new Set(routes.map((r) => `${r.method} ${openApiPath(r.path)}`));
  for (const row of inventory) {
    const method = row.method === "WS" ? "GET" : row.method;
    if (!built.has(`${method} ${openApiPath(row.path)}`)) put(row.path, method, unbuilt(row));
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Spindle legacy REST APIs",
      version,
      description: "Five legacy dialects served on Spindle's GraphQL schema. GraphQL itself is at /graphql.",
    },
    tags: DIALECTS.map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "An access token, an spk_ API key or an spm_ machine credential" },
        cookie: { type: "apiKey", in: "cookie", name: "spindle_session" },
      },
    },
  };
}
