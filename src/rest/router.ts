// The legacy REST layer: finds the route for a request (static segments before parameters, a path
// two dialects share dispatched by its body), checks credentials, parses and validates parameters,
// query and body, runs the handler, and answers in the dialect's words. Handlers run GraphQL
// operations in-process through the same yoga instance as /graphql, so authorization, limits,
// masking, idempotency, audit and transactions apply once, in one place.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import FindMyWay from "find-my-way";
import type { z } from "zod";
import { CSRF_HEADER, isCsrfSafe, SESSION_COOKIE } from "../auth/authenticate.js";
import { MAX_BODY_BYTES, readBodyUpTo } from "../http/body.js";
import type { Logger } from "../infra/logger.js";
import { DIALECT_STYLES } from "./dialects.js";
import { routerPath, type InventoryRow } from "./inventory.js";
import { Answer, RestError, type Credential, type Method, type Route, type Run } from "./route.js";
import type { OperationPrinter } from "./shared.js";

/** What the server hands the layer for one request. */
export interface RestRequestContext {
  requestId: string;
  /** GraphQL over HTTP, in-process: yoga's `fetch` with the server context of this request. */
  graphql(request: Request): Promise<Response>;
  health(): Promise<{ status: "ok" | "degraded" | "down" }>;
  /** Machines of every workspace heard from lately, for api-web's public worker health check. */
  connectedMachines(): Promise<number>;
  /** The server's Prometheus metrics (as `/metrics` answers them), for api-v1's metrics route. */
  metrics(): Promise<{ contentType: string; text: string }>;
}

export interface RestRouter {
  /** Answers the request if a route or a documented endpoint matches; false leaves it to the caller. */
  handle(req: IncomingMessage, res: ServerResponse, context: RestRequestContext): Promise<boolean>;
  routes: readonly Route[];
}

type Entry = { kind: "routes"; routes: Route[] } | { kind: "unbuilt"; row: InventoryRow };

/** JSON, unless a content type says the body is text to send as is. */
function send(res: ServerResponse, status: number, body: unknown, cookies: string[] = [], contentType?: string) {
  const headers: Record<string, string | string[]> = { "content-type": contentType ?? "application/json; charset=utf-8" };
  if (cookies.length) headers["set-cookie"] = cookies;
  res.writeHead(status, headers);
  res.end(contentType ? String(body) : JSON.stringify(body ?? {}));
}

async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const body = await readBodyUpTo(req, MAX_BODY_BYTES);
  if (!body) throw new RestError("PAYLOAD_TOO_LARGE", `Request body over ${MAX_BODY_BYTES} bytes`);
  const text = body.toString("utf8");
  if (text.trim() === "") return undefined;
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(req.headers["content-type"] ?? "")) {
    throw new RestError("UNSUPPORTED_MEDIA_TYPE", "Send the request body as application/json");
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new RestError("BAD_REQUEST", "The request body is not valid JSON");
  }
}

/** Zod's verdict in the dialect's terms: VALIDATION naming each field (`body.email`, `query.limit`). */
function parsePart<T>(schema: z.ZodType<T> | undefined, value: unknown, part: "path" | "query" | "body"): T {
  if (!schema) return undefined as T;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const fields = result.error.issues.map((issue) => ({ field: [part, ...issue.path.map(String)].join("."), message: issue.message }));
  throw new RestError("VALIDATION", `Invalid input. ${fields.map((f) => `${f.field}: ${f.message}`).join("; ")}`, { fields });
}

export function createRestRouter(options: { routes: Route[]; inventory: InventoryRow[]; log: Logger; printOperation: OperationPrinter }): RestRouter {
  const { log, printOperation } = options;
  const router = FindMyWay({ caseSensitive: true, ignoreTrailingSlash: false, ignoreDuplicateSlashes: false });
  const entries = new Map<string, Entry>();
  const noop = () => {};

  function add(method: string, documented: string, make: () => Entry, merge: (entry: Entry) => void) {
    const path = routerPath(documented);
    const key = `${method} ${path}`;
    const existing = entries.get(key);
    if (existing) return merge(existing);
    const entry = make();
    entries.set(key, entry);
    router.on(method as Method, path, noop, entry);
  }

  for (const route of options.routes) {
    add(
      route.method,
      route.path,
      () => ({ kind: "routes", routes: [route] }),
      (entry) => {
        if (entry.kind !== "routes" || !route.accepts || entry.routes.some((r) => !r.accepts)) {
          throw new Error(`Two routes for ${route.method} ${route.path}: a shared path needs \`accepts\` on each`);
        }
        entry.routes.push(route);
      },
    );
  }
  // Documented endpoints with no route yet: 501 naming them, never 404 nor a fake answer.
  for (const row of options.inventory) {
    const method = row.method === "WS" ? "GET" : row.method;
    add(method, row.path, () => ({ kind: "unbuilt", row }), noop);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, context: RestRequestContext): Promise<boolean> {
    const url = new URL(req.url ?? "/", "http://spindle.internal");
    const found = router.find(req.method as Method, url.pathname);
    if (!found) return false;
    const entry = found.store as Entry;
    const dialect = entry.kind === "routes" ? entry.routes[0]!.dialect : entry.row.dialect;
    const style = DIALECT_STYLES[dialect];
    const cookies: string[] = [];
    try {
      if (entry.kind === "unbuilt") {
        const { row } = entry;
        throw new RestError("NOT_IMPLEMENTED", `${row.method} ${row.path} (${row.dialect}: ${row.summary}) is documented but not built yet in Spindle`);
      }
      const body = req.method === "GET" || req.method === "DELETE" ? undefined : await readJsonBody(req);
      const route = entry.routes.length === 1 ? entry.routes[0]! : entry.routes.find((r) => r.accepts!(body));
      if (!route) {
        throw new RestError("VALIDATION", `${req.method} ${url.pathname} takes one of several request bodies; this one matches none (see /api/openapi.json)`);
      }
      const credentials = credentialsFor(route.auth, req);
      if (!route.auth.includes("none") && !credentials.authorization && !credentials.cookie) {
        const how = route.auth.includes("cookie") ? "sign in for a session cookie, or send a bearer token" : "send a bearer token";
        throw new RestError("NOT_AUTHENTICATED", `Not authenticated: ${how}`);
      }
      const params = parsePart(route.params, found.params, "path");
      const query = parsePart(route.query, Object.fromEntries(url.searchParams), "query");
      const parsedBody = parsePart(route.body, body ?? {}, "body");
      const run = runner(context, credentials, cookies);
      const idempotencyKey = typeof req.headers["idempotency-key"] === "string" ? req.headers["idempotency-key"] : undefined;
      const answer = await route.handler({
        params,
        query,
        body: parsedBody,
        run,
        idempotencyKey,
        health: context.health,
        connectedMachines: context.connectedMachines,
        metrics: context.metrics,
      });
      const { body: out, options } = answer instanceof Answer ? answer : { body: answer, options: {} as Answer["options"] };
      send(res, options.status ?? route.status ?? 200, out, cookies, options.contentType);
    } catch (error) {
      if (error instanceof RestError) {
        const status = style.status(error.code);
        const retryAfter = error.extensions.retryAfter;
        if (retryAfter !== undefined) res.setHeader("retry-after", String(retryAfter));
        if (status === 401) res.setHeader("www-authenticate", 'Bearer realm="spindle"');
        send(res, status, style.errorBody(error.message), cookies);
      } else {
        log.error({ err: error, requestId: context.requestId }, "REST request failed");
        send(res, 500, style.errorBody(`Internal server error; it has been logged with request id ${context.requestId}`));
      }
    }
    return true;
  }

  /**
   * The credentials the route accepts, as the in-process GraphQL request carries them. The cookie
   * counts only on a request no other site could forge: anything but a POST needs a CORS preflight,
   * and a POST must be JSON (or carry our CSRF header).
   */
  function credentialsFor(accepted: Credential[], req: IncomingMessage) {
    const authorization = accepted.includes("bearer") ? req.headers.authorization : undefined;
    const cookieHeader = req.headers.cookie ?? "";
    const hasSession = cookieHeader.split(";").some((c) => c.trim().startsWith(`${SESSION_COOKIE}=`));
    const forgeable = req.method === "POST" && !isCsrfSafe("POST", req.headers["content-type"] ?? null, (req.headers[CSRF_HEADER] as string) ?? null);
    const cookie = accepted.includes("cookie") && hasSession && !forgeable ? cookieHeader : undefined;
    return { authorization, cookie };
  }

  function runner(context: RestRequestContext, credentials: { authorization?: string; cookie?: string }, cookies: string[]): Run {
    return async (document, variables) => {
      const headers: Record<string, string> = { "content-type": "application/json", accept: "application/graphql-response+json" };
      if (credentials.authorization) headers.authorization = credentials.authorization;
      if (credentials.cookie) {
        headers.cookie = credentials.cookie;
        headers[CSRF_HEADER] = "rest";
      }
      const response = await context.graphql(
        new Request("http://spindle.internal/graphql", {
          method: "POST",
          headers,
          body: JSON.stringify({ query: printOperation(document as TypedDocumentNode<unknown, unknown>), variables }),
        }),
      );
      cookies.push(...response.headers.getSetCookie());
      const result = (await response.json()) as { data?: any; errors?: { message: string; extensions?: Record<string, unknown> }[] };
      const first = result.errors?.[0];
      if (first) throw new RestError(String(first.extensions?.code ?? "INTERNAL_SERVER_ERROR"), first.message, first.extensions ?? {});
      return result.data;
    };
  }

  return { handle, routes: options.routes };
}
