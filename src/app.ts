// buildApp(deps): the HTTP server and graphql-ws on one port. Its table (src/http/routes.ts) sends
// each path to one handler: GraphQL over HTTP and SSE, health, metrics, the API documents, the
// legacy REST layer; WebSocket upgrades go to graphql-ws, which shares yoga's plugins, context and
// error masking. Returns { start, stop }.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { EnvelopArmorPlugin } from "@escape.tech/graphql-armor";
import {
  type execute,
  getOperationAST,
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  type ExecutionArgs,
  type ExecutionResult,
  type ValidationContext,
} from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { createYoga, isAsyncIterable, type Plugin, type YogaServerInstance } from "graphql-yoga";
import { WebSocketServer, type WebSocket } from "ws";
import { CSRF_HEADER, isCsrfSafe } from "./auth/authenticate.js";
import { CREDENTIAL_NOTICE_CHANNEL } from "./auth/credential-cache.js";
import type { SigningKey } from "./auth/tokens.js";
import { DOCS_PAGE_PATHS, serveDocsPage } from "./http/docs-page.js";
import { MAX_BODY_BYTES, readBodyUpTo } from "./http/body.js";
import { createHttpTable } from "./http/routes.js";
import { legacyRoutes } from "./rest/index.js";
import { readInventory } from "./rest/inventory.js";
import { openApiDocument } from "./rest/openapi.js";
import { createRestRouter } from "./rest/router.js";
import { API_V1_SOCKET_PATH, createApiV1Socket, type ApiV1SocketDeps } from "./rest/api-v1/socket.js";
import { AGENT_SOCKET_PATH, createAgentSocket, type AgentSocketDeps } from "./rest/spunto-agent-socket.js";
import { createOperationPrinter } from "./rest/shared.js";
import { SPINDLE_VERSION } from "./version.js";
import { offlineGraphiQL } from "./http/graphiql-page.js";
import type { Viewer } from "./auth/viewer.js";
import type { Config } from "./config.js";
import type { Context, Services } from "./context.js";
import { createServices } from "./modules/domain.js";
import { createRequestLoaders } from "./modules/loaders.js";
import { createWorkspaceAccess } from "./modules/shared/access.js";
import { isDatabaseUnavailable, type Database, type Listener } from "./infra/db.js";
import { createRowReader } from "./infra/rows.js";
import type { Logger } from "./infra/logger.js";
import { createMetrics } from "./infra/metrics.js";
import type { PubSubService } from "./infra/pubsub.js";
import { pickRequestId, requestScope } from "./infra/request-context.js";
import { notAuthenticated, serviceUnavailable } from "./schema/errors.js";
import { schemaFor } from "./schema/index.js";
import { useCostLimit } from "./schema/cost.js";
import { useInputGuard } from "./schema/input-guard.js";
import { clientError, locatedAt, useMalformedParamsAsBadRequest, useNoSchemaHints } from "./schema/request-errors.js";

export interface AppDeps {
  config: Config;
  db: Database;
  pubsub: PubSubService;
  log: Logger;
  signingKey: SigningKey;
}

export interface App {
  server: Server;
  services: Services;
  /** Resolves with the port listened on (useful with PORT=0). */
  start(): Promise<{ port: number; url: string }>;
  /** Stops accepting, lets in-flight requests finish (up to the grace period), closes sockets. */
  stop(): Promise<void>;
  /** In-process GraphQL over HTTP, no network (tests, the REST layer). */
  fetch: YogaServerInstance<ServerContext, Context>["fetch"];
}

/** What the HTTP or WebSocket layer hands yoga for each request. */
interface ServerContext {
  requestId: string;
  client: Context["client"];
  /** Set by the WebSocket layer, which authenticates at connection_init and again for each operation. */
  viewer?: Viewer;
  transport: "http" | "websocket";
}

const WS_INIT_TIMEOUT_MS = 5_000;
/** What a client waits before retrying while the database is unreachable. */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

/**
 * graphql-armor's validation-rule limits throw by default, which escapes `validate`: over HTTP the
 * answer was a 200, over WebSocket the whole connection closed with 4500. Reported to the validation
 * context instead, they are ordinary validation errors (400, GRAPHQL_VALIDATION_FAILED).
 */
const reportAsValidationError = () => ({
  propagateOnRejection: false,
  onReject: [(ctx: ValidationContext | null, error: GraphQLError) => ctx?.reportError(error)],
});

/**
 * Whether a browser page at the request's Origin may use the API: no Origin (not a browser, or a
 * same-origin GET), this server's own origin, or one listed in SPINDLE_CORS_ORIGINS. A malformed
 * Origin ("null", sandboxed frames) is foreign.
 */
function originAllowed(req: IncomingMessage, allowList: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (!origin) return true;
  if (allowList.includes(origin)) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

export function buildApp(deps: AppDeps): App {
  const { config, db, pubsub, log } = deps;
  const prisma = db.prisma;
  const metrics = createMetrics();
  const rows = createRowReader(db);
  // Every service is built by the composition root (modules/domain.ts); this file is the HTTP side.
  const { services, authenticate, credentialCache, mailer, streams } = createServices(deps);
  let credentialNotices: Listener | undefined;

  const responseCookies = new WeakMap<Request, string[]>();

  const serverPlugins: Plugin<Context>[] = [
    EnvelopArmorPlugin({
      maxDepth: { n: 10, ignoreIntrospection: true, ...reportAsValidationError() },
      maxAliases: { n: 15, ...reportAsValidationError() },
      maxDirectives: { n: 20, ...reportAsValidationError() },
      maxTokens: { n: 2000 },
      // Cost is ours (schema/cost.ts): armor's model has no notion of page sizes.
      costLimit: { enabled: false },
      // useNoSchemaHints below hides every kind of suggestion, not only field names.
      blockFieldSuggestion: { enabled: false },
    }) as Plugin<Context>,
    useInputGuard() as Plugin<Context>,
    useCostLimit() as Plugin<Context>,
    useMalformedParamsAsBadRequest() as Plugin<Context>,
    ...(config.http.introspection ? [] : [useNoSchemaHints() as Plugin<Context>]),
    {
      onValidate({ addValidationRule }) {
        if (!config.http.introspection) addValidationRule(NoSchemaIntrospectionCustomRule);
      },
      onExecute({ args }) {
        if (countOperation(args) !== "mutation") return;
        // A mutation may have ended a credential (sign-out, revocation, rotation, role change):
        // its answer waits until this server's cache has heard of it, so the caller's next request
        // here is refused. Other replicas hear it as PostgreSQL delivers the notice (README).
        return { onExecuteDone: () => credentialNotices?.sync() };
      },
      onSubscribe({ args }) {
        countOperation(args);
        return {
          onSubscribeResult({ result }) {
            if (!isAsyncIterable(result)) return;
            metrics.activeSubscriptions.inc();
            return { onEnd: () => metrics.activeSubscriptions.dec() };
          },
        };
      },
      onResponse({ request, response }) {
        for (const cookie of responseCookies.get(request) ?? []) response.headers.append("set-cookie", cookie);
      },
    },
  ];

  function countOperation(args: ExecutionArgs) {
    const type = getOperationAST(args.document, args.operationName)?.operation ?? "unknown";
    const transport = (args.contextValue as Context).requestId ? ((args.contextValue as unknown as ServerContext).transport ?? "http") : "http";
    metrics.graphqlOperations.inc({ type, transport });
    return type;
  }

  const yoga = createYoga<ServerContext, Context>({
    schema: schemaFor(config.schema),
    graphqlEndpoint: "/graphql",
    landingPage: false,
    graphiql: config.http.graphiql ? { title: "Spindle", subscriptionsProtocol: "WS" } : false,
    renderGraphiQL: offlineGraphiQL(),
    // Same origin needs no CORS; other origins get credentials only when configured by name.
    cors: (request) => {
      const origin = request.headers.get("origin");
      if (!origin || !config.http.corsOrigins.includes(origin)) return false;
      return {
        origin: [origin],
        credentials: true,
        methods: ["GET", "POST"],
        allowedHeaders: ["authorization", "content-type", "accept", CSRF_HEADER, "x-request-id"],
        exposedHeaders: ["x-request-id", "retry-after"],
        maxAge: 600,
      };
    },
    batching: false,
    multipart: false,
    logging: {
      debug: (...args) => log.debug(args.map(String).join(" ")),
      info: (...args) => log.info(args.map(String).join(" ")),
      warn: (...args) => log.warn(args.map(String).join(" ")),
      error: (...args) => log.error(args.map(String).join(" ")),
    },
    maskedErrors: {
      maskError(error, message) {
        const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
        const requestId = requestScope.getStore()?.requestId ?? "unknown";
        if (isDatabaseUnavailable(original)) {
          log.warn({ err: original, requestId }, "database unavailable");
          return locatedAt(error, serviceUnavailable(UNAVAILABLE_RETRY_AFTER_SECONDS, "The database cannot be reached right now; retry shortly"));
        }
        const forClient = clientError(error, { hideSchemaHints: !config.http.introspection });
        if (forClient) return forClient;
        log.error({ err: original, requestId }, "unexpected error in a GraphQL operation");
        return new GraphQLError(`${message} It has been logged with request id ${requestId}.`, {
          nodes: error instanceof GraphQLError ? error.nodes : undefined,
          path: error instanceof GraphQLError ? error.path : undefined,
          extensions: { code: "INTERNAL_SERVER_ERROR", requestId },
        });
      },
    },
    plugins: serverPlugins,
    context: async (initial): Promise<Context> => {
      const requestId = initial.requestId;
      const cookies: string[] = [];
      let viewer = initial.viewer;
      // Over WebSocket no cookie can be set; over HTTP only on a request no other site could forge
      // (a form post of `login` must not sign the browser in: login CSRF).
      let csrfSafe = false;
      if (!viewer) {
        const { request } = initial;
        responseCookies.set(request, cookies);
        csrfSafe = isCsrfSafe(request.method, request.headers.get("content-type"), request.headers.get(CSRF_HEADER));
        viewer = await authenticate({
          authorization: request.headers.get("authorization"),
          cookie: request.headers.get("cookie"),
          csrfSafe,
        });
      }
      const viewerLog =
        viewer.kind === "anonymous" ? {} : viewer.kind === "machine" ? { machineId: viewer.machineId, via: viewer.kind } : { userId: viewer.userId, via: viewer.kind };
      return {
        requestId,
        viewer,
        access: createWorkspaceAccess(viewer, prisma, db.sql),
        loaders: createRequestLoaders(prisma),
        prisma,
        rows,
        services,
        pubsub: pubsub.pubsub,
        log: log.child({ requestId, ...viewerLog }),
        client: initial.client,
        setCookie: (header) => {
          if (csrfSafe) cookies.push(header);
        },
      };
    },
  });

  function clientOf(req: IncomingMessage): Context["client"] {
    const forwardedFor = config.http.trustProxy ? String(req.headers["x-forwarded-for"] ?? "").split(",")[0]?.trim() : "";
    const forwardedProto = config.http.trustProxy ? String(req.headers["x-forwarded-proto"] ?? "") : "";
    return {
      ip: forwardedFor || req.socket.remoteAddress || "unknown",
      userAgent: req.headers["user-agent"],
      secure: Boolean((req.socket as TLSSocket).encrypted) || forwardedProto === "https",
    };
  }

  async function health() {
    const started = performance.now();
    const database = await db.ping().then(
      () => ({ status: "ok" as const, kind: db.kind, latencyMs: Math.round((performance.now() - started) * 10) / 10 }),
      (error: Error) => ({ status: "down" as const, kind: db.kind, error: error.message }),
    );
    const pubsubStatus = { status: pubsub.status(), mode: pubsub.mode };
    const status: "ok" | "degraded" | "down" = database.status === "down" ? "down" : pubsubStatus.status === "down" ? "degraded" : "ok";
    return { status, database, pubsub: pubsubStatus };
  }

  const inventory = readInventory();
  const printOperation = createOperationPrinter();
  const legacyRest = createRestRouter({ routes: legacyRoutes, inventory, log, printOperation });
  let openApiCache: unknown;
  const openApi = () => (openApiCache ??= openApiDocument(legacyRest.routes, inventory, SPINDLE_VERSION));

  function sendJson(res: ServerResponse, status: number, body: unknown) {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
    res.end(JSON.stringify(body));
  }

  async function graphqlOverHttp(req: IncomingMessage, res: ServerResponse, requestId: string) {
    if (req.method === "POST" && !/^application\/(graphql-response\+)?json\b/i.test(req.headers["content-type"] ?? "")) {
      // Forms and text/plain can be posted by any site without a preflight: GraphQL POSTs are JSON.
      return sendJson(res, 415, {
        errors: [{ message: "Send GraphQL POST requests as application/json", extensions: { code: "UNSUPPORTED_MEDIA_TYPE" } }],
      });
    }
    const tooLarge = () => {
      res.setHeader("connection", "close");
      sendJson(res, 413, { errors: [{ message: `Request body over ${MAX_BODY_BYTES} bytes`, extensions: { code: "PAYLOAD_TOO_LARGE" } }] });
    };
    if (Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES) return tooLarge();
    // Without a Content-Length (chunked), the size is only known by reading: read it here, within
    // the limit, and hand yoga the bytes (@whatwg-node/server takes a pre-read `body`).
    if (req.headers["content-length"] === undefined && req.headers["transfer-encoding"] !== undefined) {
      const body = await readBodyUpTo(req, MAX_BODY_BYTES);
      if (!body) return tooLarge();
      (req as IncomingMessage & { body?: string | Buffer }).body = body.length > 0 ? body : " ";
    }
    return yoga(req, res, { requestId, client: clientOf(req), transport: "http" });
  }

  // graphql-ws on /graphql, through yoga's envelop so plugins, context and masking are shared.
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES });

  const http = createHttpTable({
    routes: [
      { name: "/graphql", path: "/graphql", originChecked: true, handle: graphqlOverHttp },
      {
        name: "/health",
        path: "/health",
        handle: async (req, res) => {
          if (req.method !== "GET") return false;
          const report = await health();
          sendJson(res, report.status === "down" ? 503 : 200, report);
        },
      },
      {
        name: "/metrics",
        path: "/metrics",
        handle: async (req, res) => {
          if (req.method !== "GET") return false;
          res.writeHead(200, { "content-type": metrics.registry.contentType });
          res.end(await metrics.registry.metrics());
        },
      },
      {
        name: "/api/openapi.json",
        path: "/api/openapi.json",
        handle: async (req, res) => (req.method === "GET" ? sendJson(res, 200, openApi()) : false),
      },
      { name: "/api/docs", path: (p) => DOCS_PAGE_PATHS.includes(p), handle: (req, res) => serveDocsPage(req, res) },
      {
        name: "rest",
        path: () => true,
        originChecked: true,
        handle: (req, res, requestId) =>
          legacyRest.handle(req, res, {
            requestId,
            health,
            connectedMachines: () => services.machines.connectedCount(),
            metrics: async () => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() }),
            graphql: async (request) => yoga.fetch(request, { requestId, client: clientOf(req), transport: "http" }),
          }),
      },
    ],
    upgrades: [
      { path: "/graphql", handle: (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req)) },
      { path: AGENT_SOCKET_PATH, handle: (req, socket, head) => agentSocket.handleUpgrade(req, socket, head) },
      { path: API_V1_SOCKET_PATH, handle: (req, socket, head) => apiV1Socket.handleUpgrade(req, socket, head) },
    ],
    originAllowed: (req) => originAllowed(req, config.http.corsOrigins),
    refuseOrigin(res, route, origin) {
      const message = `Requests from origin ${origin} are not allowed; list it in SPINDLE_CORS_ORIGINS`;
      sendJson(res, 403, route.name === "/graphql" ? { errors: [{ message, extensions: { code: "FORBIDDEN" } }] } : { error: message });
    },
  });

  const server = createServer((req, res) => {
    const requestId = pickRequestId(req.headers["x-request-id"]);
    res.setHeader("x-request-id", requestId);
    const route = http.nameOf((req.url ?? "/").split("?")[0]!);
    const timer = metrics.httpDuration.startTimer({ method: req.method, route });
    res.on("finish", () => {
      timer();
      metrics.httpRequests.inc({ method: req.method, route, status: String(res.statusCode) });
    });
    requestScope.run({ requestId }, () => {
      http
        .dispatch(req, res, requestId)
        .then((answered) => {
          if (!answered) sendJson(res, 404, { error: `Nothing at ${req.method} ${req.url?.split("?")[0]}; GraphQL is at /graphql` });
        })
        .catch((error: unknown) => {
          log.error({ err: error, requestId }, "request failed");
          if (!res.headersSent) sendJson(res, 500, { error: "Internal server error", requestId });
          else res.destroy();
        });
    });
  });
  server.on("upgrade", (req, socket: Socket, head) => http.upgrade(req, socket, head));

  type WsExtra = {
    socket: WebSocket;
    request: IncomingMessage;
    viewer?: Viewer;
    /** What connection_init presented, checked again for each operation. */
    authorization?: string;
    requestId?: string;
  };
  const wsServer = useServer<Record<string, unknown> | undefined, WsExtra>(
    {
      connectionInitWaitTimeout: WS_INIT_TIMEOUT_MS,
      onConnect: async (ctx) => {
        const params = ctx.connectionParams ?? {};
        const raw = params.authorization ?? params.Authorization ?? (params.token ? `Bearer ${String(params.token)}` : undefined);
        ctx.extra.requestId = pickRequestId(ctx.extra.request.headers["x-request-id"]);
        ctx.extra.authorization = raw ? String(raw) : undefined;
        try {
          const viewer = await authenticateSocket(ctx.extra);
          ctx.extra.viewer = viewer;
          metrics.websocketConnections.inc();
          return true;
        } catch (error) {
          log.info({ requestId: ctx.extra.requestId, reason: (error as Error).message }, "websocket connection refused");
          return false;
        }
      },
      onClose: (ctx) => {
        if (ctx.extra.viewer) metrics.websocketConnections.dec();
      },
      onSubscribe: async (ctx, _id, payload) => {
        // The connection's credential may have ended since connection_init (logout, revocation,
        // expiry): each operation runs as whoever the credential is now, like an HTTP request.
        let viewer: Viewer;
        try {
          viewer = await authenticateSocket(ctx.extra);
        } catch (error) {
          return [error instanceof GraphQLError ? error : notAuthenticated()];
        }
        return prepareOperation(viewer, ctx.extra.request, ctx.extra.requestId!, payload);
      },
      execute: (args) => runInScope(args, "execute"),
      subscribe: (args) => runInScope(args, "subscribe"),
    },
    wss,
  );

  /** The WebSocket's viewer from its connection_init credentials; never anonymous. */
  async function authenticateSocket(extra: WsExtra): Promise<Viewer> {
    // The Origin was checked at the upgrade, so a session cookie is as good as a token here.
    const viewer = await authenticate({ authorization: extra.authorization, cookie: extra.request.headers.cookie, csrfSafe: true });
    if (viewer.kind === "anonymous") throw notAuthenticated("The session of this connection has ended; sign in and reconnect");
    return viewer;
  }

  /**
   * One operation over a socket, as `viewer`, through yoga's envelop (plugins, context, masking):
   * its execution arguments, or the parse and validation errors.
   */
  async function prepareOperation(
    viewer: Viewer,
    request: IncomingMessage,
    requestId: string,
    payload: { query: string; operationName?: string | null; variables?: Record<string, unknown> | null },
  ): Promise<ExecutionArgs | GraphQLError[]> {
    const enveloped = yoga.getEnveloped({
      requestId,
      viewer,
      client: clientOf(request),
      transport: "websocket",
      request: undefined,
      params: payload,
    } as unknown as ServerContext);
    let document;
    try {
      document = enveloped.parse(payload.query);
    } catch (error) {
      return [error instanceof GraphQLError ? error : new GraphQLError((error as Error).message)];
    }
    let errors: readonly GraphQLError[];
    try {
      errors = enveloped.validate(enveloped.schema, document);
    } catch (error) {
      errors = [error instanceof GraphQLError ? error : new GraphQLError((error as Error).message)];
    }
    if (errors.length > 0) return [...errors];
    return {
      schema: enveloped.schema,
      document,
      operationName: payload.operationName,
      variableValues: payload.variables,
      contextValue: await enveloped.contextFactory({ viewer }),
      rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe, requestId },
    };
  }

  // The REST dialects' own WebSockets: each authenticates a token from its query or messages, and
  // runs typed operations in-process as that viewer, through yoga's envelop like graphql-ws.
  const socketDeps: AgentSocketDeps & ApiV1SocketDeps = {
    log,
    authenticate: (token) => authenticate({ authorization: `Bearer ${token}`, csrfSafe: true }),
    async run(viewer, request, document, variables) {
      const requestId = pickRequestId(undefined);
      const prepared = await prepareOperation(viewer, request, requestId, { query: printOperation(document), variables });
      if (Array.isArray(prepared)) return { errors: prepared };
      const subscription = (document.definitions[0] as { operation?: string }).operation === "subscription";
      return (await runInScope(prepared, subscription ? "subscribe" : "execute")) as ExecutionResult | AsyncIterable<ExecutionResult>;
    },
  };
  // Spunto's node connection: a WebSocket of its own on /api/agent/connect (rest/spunto-agent-socket.ts).
  const agentSocket = createAgentSocket(socketDeps);
  // api-v1's event stream on /api/v1/ws (rest/api-v1/socket.ts).
  const apiV1Socket = createApiV1Socket(socketDeps);

  type Runner = (args: ExecutionArgs) => unknown;
  function runInScope(args: ExecutionArgs, kind: "execute" | "subscribe") {
    const root = args.rootValue as { execute: Runner; subscribe: Runner; requestId: string };
    // graphql-ws only passes results through; their type is whatever yoga's execute returns.
    return requestScope.run({ requestId: root.requestId }, () => root[kind](args)) as ReturnType<typeof execute>;
  }

  let stopping: Promise<void> | undefined;

  return {
    server,
    services,
    fetch: yoga.fetch,
    async start() {
      // Credentials are cached only while changes to them are heard (see auth/credential-cache.ts).
      let heard = false;
      credentialNotices = await db.listen(CREDENTIAL_NOTICE_CHANNEL, credentialCache.forget, (listening) => {
        credentialCache.setListening(listening);
        if (listening !== heard && !stopping) {
          if (listening) log.info("credential change notices are heard: checked credentials are cached");
          else log.warn("credential change notices are not heard: every request checks its credential in the database until they are");
        }
        heard = listening;
      });
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(config.http.port, config.http.host, () => {
          server.off("error", reject);
          const address = server.address();
          const port = typeof address === "object" && address ? address.port : config.http.port;
          services.logs.start();
          services.machines.startSweep();
          resolve({ port, url: `http://${config.http.host}:${port}` });
        });
      });
    },
    stop() {
      stopping ??= (async () => {
        // First: no machine sweep or tick notice may start once shutdown has begun.
        await services.machines.stopSweep();
        services.events.stop();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // Live streams end cleanly ("complete" over SSE) rather than being cut.
        streams.closeAll();
        for (const client of wss.clients) client.close(1001, "Server shutting down");
        agentSocket.close();
        apiV1Socket.close();
        await wsServer.dispose();
        const grace = new Promise<void>((resolve) => setTimeout(resolve, config.http.shutdownGraceMs).unref());
        await Promise.race([closed, grace]);
        // Past the grace period whatever is left is cut: slow requests, sockets that ignored the close.
        server.closeAllConnections();
        for (const client of wss.clients) client.terminate();
        agentSocket.terminate();
        apiV1Socket.terminate();
        await closed;
        await yoga.dispose();
        await services.logs.stop();
        await credentialNotices?.stop();
        mailer.close();
      })();
      return stopping;
    },
  };
}
