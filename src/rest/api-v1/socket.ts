// api-v1's real-time event stream, `WS /api/v1/ws` (../shared/seeds/003, "WebSocket"): one
// WebSocket per client relaying its workspace's stored event stream (the GraphQL subscription
// `events(workspaceId, after)`), translated to what api-v1's event types mean.
//
// Connecting (JSON text frames both ways):
//   ws(s)://<host>/api/v1/ws?token=<access token or API key>[&workspace_id=<id>][&after=<cursor>]
//   A bad token in the query is refused at the upgrade: HTTP 401 {"detail"}, no socket.
//   Without ?token=, the first message authenticates, within 10 s (else close 4401):
//     {"type": "auth", "token": "...", "after"?: "<cursor>"}   (or just {"token": "..."})
//   The workspace is the caller's default one (an API key bound to a workspace: that one), or
//   `workspace_id`. Events are those after `after` (a cursor from an earlier event's `id`: resume
//   with the last one seen to miss nothing), else from the moment of connecting.
//
// Server -> client:
//   {"type": "connected", "workspace_id", "user_id"}                        once authenticated
//   {"type": <event type>, "id": <cursor>, "data": {...}, "timestamp": <ISO-8601>}   each event, in order
//   {"type": "pong"}                                                         for each ping
//   {"type": "subscribed", "events": [...]}                                  the subscription now, after each subscribe or unsubscribe
//   {"type": "error", "detail": "..."}                                       an unknown message or event type (the socket stays open)
// Client -> server:
//   {"type": "ping"}
//   {"type": "subscribe", "event": "task.completed"}     until the first subscribe every event is sent;
//   {"type": "unsubscribe", "event": "task.completed"}   then only the subscribed ones (a set)
//
// Event types: agent.status, task.created, task.updated, task.completed, task.failed,
// worker.online, worker.offline, message.new, notification, system.alert. api-v1's workers are
// Spindle's machines: a machine's presence is worker.online / worker.offline {worker_id, status},
// agent.status is about agents {agent_id, worker_id, name, status}, and Spindle's own worker units
// (which api-v1 has no notion of) are not sent. Data is snake_case, statuses lower-case; the data of
// message.new, notification and system.alert is what its publisher posted, as is.
//
// Close codes: 4401 credential refused, or later expired or revoked (logout, revoked session or
// key): sign in and reconnect with `after`; 4403 no longer a member of the workspace; 4404 no such
// workspace (or none yet); 4400 a frame that is not JSON, or a bad `after`; 1001 server shutdown;
// 1013 service unavailable, retry. The server pings every 30 s and drops a client that does not pong.
//
// The token is never logged (nor the request URL that carries it).
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import type { ExecutionResult } from "graphql";
import { WebSocketServer, type WebSocket } from "ws";
import { isUser, type UserViewer, type Viewer } from "../../auth/viewer.js";
import {
  ApiV1DefaultWorkspaceDocument,
  ApiV1SocketEventsDocument,
  type ApiV1SocketEventsSubscription,
} from "../../generated/rest-api-v1-graphql.js";
import { MAX_BODY_BYTES } from "../../http/body.js";
import type { Logger } from "../../infra/logger.js";
import { RestError } from "../route.js";
import { apiV1Enum, apiV1Route, OPEN } from "./common.js";

export const API_V1_SOCKET_PATH = "/api/v1/ws";

/** Close codes a client can act on (see the header). */
export const API_V1_SOCKET_CLOSE = {
  rejected: 4401,
  forbidden: 4403,
  noWorkspace: 4404,
  badFrame: 4400,
  shutdown: 1001,
  tryAgainLater: 1013,
  internal: 1011,
} as const;

/** The event types api-v1 documents, the only ones a client may subscribe to. */
export const API_V1_EVENT_TYPES = [
  "agent.status",
  "task.created",
  "task.updated",
  "task.completed",
  "task.failed",
  "worker.online",
  "worker.offline",
  "message.new",
  "notification",
  "system.alert",
] as const;
export type ApiV1EventType = (typeof API_V1_EVENT_TYPES)[number];

const AUTH_TIMEOUT_MS = 10_000;
const KEEPALIVE_MS = 30_000;

type Document = TypedDocumentNode<any, any>;

export interface ApiV1SocketDeps {
  /** The viewer for a bearer token or API key (throws on a bad one). */
  authenticate(token: string): Promise<Viewer>;
  /** Runs one operation in-process as `viewer` (a subscription answers an async iterable). */
  run(viewer: Viewer, request: IncomingMessage, document: Document, variables: Record<string, unknown>): Promise<ExecutionResult | AsyncIterable<ExecutionResult>>;
  log: Logger;
}

// ---------------------------------------------------------------------------------------------
// Translation: one stored Spindle event to the api-v1 event it means (or none).

/** One item of Spindle's `events` subscription. */
export type SpindleEvent = ApiV1SocketEventsSubscription["events"];

export interface ApiV1Event {
  type: ApiV1EventType;
  id: string;
  data: unknown;
  timestamp: string;
}

type Data = Record<string, unknown>;

/** Spindle's names for what api-v1 calls otherwise: its workers are Spindle's machines. */
const RENAMED_KEYS: Record<string, string> = { machineId: "worker_id" };
/** Fields whose values are Spindle enums (upper-case); api-v1 shows them lower-case (apiV1Enum). */
const ENUM_KEYS = new Set(["status", "priority", "approval", "from"]);
/** Machine statuses that mean the machine is not there (any other: it is, working or draining). */
const MACHINE_GONE = new Set(["OFFLINE", "DECOMMISSIONED"]);
const PASSED_AS_POSTED = new Set<string>(["message.new", "notification", "system.alert"]);

const snakeCase = (key: string) => RENAMED_KEYS[key] ?? key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);

/** Spindle's event data as api-v1 shows it: snake_case keys, machines as workers, enums lower-case. */
function apiV1Data(data: unknown): Data {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return {};
  const out: Data = {};
  for (const [key, value] of Object.entries(data)) {
    out[snakeCase(key)] = ENUM_KEYS.has(key) && typeof value === "string" ? apiV1Enum(value) : value;
  }
  return out;
}

/** The api-v1 type and data of a Spindle event, or null for one api-v1 has no meaning for. */
function translate(event: SpindleEvent): { type: ApiV1EventType; data: unknown } | null {
  const { type, subjectType } = event;
  if (type === "agent.status" && subjectType === "MACHINE") {
    const status = String((event.data as Data | null)?.status ?? "");
    return { type: MACHINE_GONE.has(status) ? "worker.offline" : "worker.online", data: apiV1Data(event.data) };
  }
  if (type === "agent.status") return subjectType === "AGENT" ? { type, data: apiV1Data(event.data) } : null;
  // Spindle's worker units (containers, processes) are not api-v1 workers.
  if (type === "worker.online" || type === "worker.offline") return subjectType === "WORKER" ? null : { type, data: apiV1Data(event.data) };
  if (type.startsWith("task.") && (API_V1_EVENT_TYPES as readonly string[]).includes(type)) return { type: type as ApiV1EventType, data: apiV1Data(event.data) };
  if (PASSED_AS_POSTED.has(type)) return { type: type as ApiV1EventType, data: event.data };
  return null;
}

/**
 * The api-v1 event frame for a Spindle event, or null when api-v1 has no such event: a machine's
 * agent.status is worker.online / worker.offline, an agent's is agent.status, Spindle's worker
 * units are not sent, tasks' data is snake_case, published events go as posted.
 */
export function toApiV1Event(event: SpindleEvent): ApiV1Event | null {
  const translated = translate(event);
  return translated && { type: translated.type, id: event.cursor, data: translated.data, timestamp: new Date(event.at).toISOString() };
}

// ---------------------------------------------------------------------------------------------
// The connection.

/** The documented row, for a plain HTTP request: the socket itself answers the upgrade before any route is looked at. */
export const apiV1SocketRoute = apiV1Route({
  method: "GET",
  path: API_V1_SOCKET_PATH,
  summary:
    "Real-time event stream: a WebSocket. Connect with ?token=<access token or API key> (or send {\"type\":\"auth\",\"token\"} first); " +
    "optional workspace_id and after=<cursor>. Send {\"type\":\"ping\"}; {\"type\":\"subscribe\",\"event\":\"task.completed\"}. See the README for its messages",
  auth: OPEN,
  async handler() {
    throw new RestError("UPGRADE_REQUIRED", `${API_V1_SOCKET_PATH} is a WebSocket: connect with Upgrade: websocket and ?token=<access token>`);
  },
});

/** What the upgrade request's query says. */
interface Query {
  token: string | null;
  workspaceId: string | null;
  after: string | null;
}

type Message = Record<string, unknown>;

/** Close reasons are at most 123 bytes. */
function reasonOf(text: string): string {
  let reason = text;
  while (Buffer.byteLength(reason) > 123) reason = reason.slice(0, -1);
  return reason;
}

/** How a refusal of the event stream (when it starts or when it ends) closes the socket. */
function closeCodeOf(code: unknown): number {
  switch (code) {
    case "NOT_AUTHENTICATED":
      return API_V1_SOCKET_CLOSE.rejected;
    case "FORBIDDEN":
      return API_V1_SOCKET_CLOSE.forbidden;
    case "NOT_FOUND":
      return API_V1_SOCKET_CLOSE.noWorkspace;
    case "VALIDATION":
    case "BAD_REQUEST":
      return API_V1_SOCKET_CLOSE.badFrame;
    case "SERVICE_UNAVAILABLE":
    case "RATE_LIMITED":
      return API_V1_SOCKET_CLOSE.tryAgainLater;
    default:
      return API_V1_SOCKET_CLOSE.internal;
  }
}

const textOf = (value: unknown) => (typeof value === "string" && value !== "" ? value : null);

export function createApiV1Socket(deps: ApiV1SocketDeps) {
  const { log } = deps;
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES });

  // Keepalive: a client that did not answer the last ping (a dead peer, a dropped NAT mapping) is dropped.
  const answered = new WeakSet<WebSocket>();
  const keepalive = setInterval(() => {
    for (const client of wss.clients) {
      if (!answered.has(client)) {
        client.terminate();
        continue;
      }
      answered.delete(client);
      client.ping();
    }
  }, KEEPALIVE_MS).unref();

  /** A user's viewer for `token`, or why not. */
  async function userFor(token: string): Promise<UserViewer | string> {
    try {
      const viewer = await deps.authenticate(token);
      if (isUser(viewer)) return viewer;
      return viewer.kind === "machine" ? "This stream takes a user's access token or API key, not a machine credential" : "Send a valid access token or API key";
    } catch (error) {
      return (error as Error).message;
    }
  }

  async function handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer) {
    const params = new URL(req.url ?? "/", "http://spindle.internal").searchParams;
    const query: Query = { token: textOf(params.get("token")), workspaceId: textOf(params.get("workspace_id")), after: textOf(params.get("after")) };
    let viewer: UserViewer | undefined;
    if (query.token) {
      const found = await userFor(query.token);
      if (typeof found === "string") {
        const body = JSON.stringify({ detail: `Not authenticated: ${found}` });
        socket.end(
          `HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
        return;
      }
      viewer = found;
    }
    wss.handleUpgrade(req, socket, head, (ws) => serve(ws, req, query, viewer));
  }

  /** One client: authenticated (by the query, or by its first message), then its event stream. */
  function serve(ws: WebSocket, req: IncomingMessage, query: Query, preauthenticated: UserViewer | undefined) {
    answered.add(ws);
    ws.on("pong", () => answered.add(ws));
    const send = (message: unknown) =>
      new Promise<void>((resolve) => {
        if (ws.readyState !== ws.OPEN) return resolve();
        // Resolves once written: a client that reads slowly slows its stream, not the server's memory.
        ws.send(JSON.stringify(message), () => resolve());
      });
    const close = (code: number, reason: string) => {
      if (ws.readyState === ws.OPEN) ws.close(code, reasonOf(reason));
    };

    let viewer: UserViewer | undefined;
    let stream: AsyncIterator<ExecutionResult> | undefined;
    /** null: every event (no subscribe yet); else the subscribed types. */
    let subscribed: Set<ApiV1EventType> | null = null;
    const authTimer = preauthenticated
      ? undefined
      : setTimeout(() => close(API_V1_SOCKET_CLOSE.rejected, 'Not authenticated: send {"type": "auth", "token": "..."} within 10 s'), AUTH_TIMEOUT_MS);
    ws.on("close", () => {
      clearTimeout(authTimer);
      void stream?.return?.();
    });

    // Messages are handled one after another: a subscribe sent right behind the auth message waits for it.
    let handling = Promise.resolve();
    ws.on("message", (data, isBinary) => {
      if (ws.readyState !== ws.OPEN) return; // closing: what follows a refused auth message is not read
      let message: unknown;
      try {
        message = JSON.parse(isBinary ? "" : data.toString("utf8"));
      } catch {
        close(API_V1_SOCKET_CLOSE.badFrame, "Frames are JSON text");
        return;
      }
      handling = handling
        .then(() => (viewer ? answer(message) : authenticateBy(message)))
        .catch((error: unknown) => {
          log.error({ err: error, userId: viewer?.userId }, "api-v1 socket: a message failed");
          close(API_V1_SOCKET_CLOSE.internal, "Internal server error");
        });
    });

    if (preauthenticated) handling = begin(preauthenticated, query.after).catch(failed);

    function failed(error: unknown) {
      log.error({ err: error, userId: viewer?.userId }, "api-v1 socket: the event stream failed");
      close(API_V1_SOCKET_CLOSE.internal, "Internal server error");
    }

    /** The first message (before it, only a ping is answered). */
    async function authenticateBy(message: unknown) {
      const fields = (typeof message === "object" && message !== null ? message : {}) as Message;
      if (fields.type === "ping") return send({ type: "pong" });
      const token = textOf(fields.token);
      if (!token || (fields.type !== undefined && fields.type !== "auth")) {
        return close(API_V1_SOCKET_CLOSE.rejected, 'Not authenticated: the first message is {"type": "auth", "token": "..."}');
      }
      clearTimeout(authTimer);
      const found = await userFor(token);
      if (typeof found === "string") return close(API_V1_SOCKET_CLOSE.rejected, `Not authenticated: ${found}`);
      await begin(found, textOf(fields.after) ?? query.after);
    }

    /** Opens the workspace's event stream as `user`, says connected, and relays events until it ends. */
    async function begin(user: UserViewer, after: string | null) {
      viewer = user;
      const workspaceId = query.workspaceId ?? (await defaultWorkspaceOf(user));
      if (!workspaceId) return close(API_V1_SOCKET_CLOSE.noWorkspace, "You are in no workspace yet: create one or accept an invitation");
      const result = await deps.run(user, req, ApiV1SocketEventsDocument, { workspaceId, after });
      if (!(Symbol.asyncIterator in result)) {
        const error = result.errors?.[0];
        return close(closeCodeOf(error?.extensions?.code), error?.message ?? "The event stream did not start");
      }
      stream = result[Symbol.asyncIterator]();
      if (ws.readyState !== ws.OPEN) return void stream.return?.();
      // Relaying starts the stream's listening; its first event can only follow "connected", sent in the same turn.
      relay(stream).catch(failed);
      await send({ type: "connected", workspace_id: workspaceId, user_id: user.userId });
    }

    async function defaultWorkspaceOf(user: UserViewer): Promise<string | null> {
      const result = (await deps.run(user, req, ApiV1DefaultWorkspaceDocument, {})) as ExecutionResult;
      if (result.errors?.length) throw new Error(result.errors[0]!.message);
      return (result.data as { defaultWorkspace: { id: string } | null }).defaultWorkspace?.id ?? null;
    }

    async function relay(events: AsyncIterator<ExecutionResult>) {
      for (;;) {
        const next = await events.next();
        // The stream only completes when the server closes every stream (shutdown).
        if (next.done) return close(API_V1_SOCKET_CLOSE.shutdown, "Server shutting down");
        const error = next.value.errors?.[0];
        if (error) return close(closeCodeOf(error.extensions?.code), error.message);
        const event = toApiV1Event((next.value.data as ApiV1SocketEventsSubscription).events);
        if (event && (!subscribed || subscribed.has(event.type))) await send(event);
      }
    }

    /** A message once authenticated. */
    async function answer(message: unknown) {
      const fields = (typeof message === "object" && message !== null && !Array.isArray(message) ? message : {}) as Message;
      switch (fields.type) {
        case "ping":
          return send({ type: "pong" });
        case "subscribe":
        case "unsubscribe": {
          const event = fields.event;
          if (typeof event !== "string" || !(API_V1_EVENT_TYPES as readonly string[]).includes(event)) {
            return send({ type: "error", detail: `Unknown event type ${JSON.stringify(event ?? null)}: use one of ${API_V1_EVENT_TYPES.join(", ")}` });
          }
          subscribed ??= new Set();
          if (fields.type === "subscribe") subscribed.add(event as ApiV1EventType);
          else subscribed.delete(event as ApiV1EventType);
          return send({ type: "subscribed", events: [...subscribed] });
        }
        case "auth":
          return send({ type: "error", detail: "Already authenticated" });
        default:
          return send({ type: "error", detail: `Unknown message type ${JSON.stringify(fields.type ?? null)}: send ping, subscribe or unsubscribe` });
      }
    }
  }

  return {
    handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer) {
      handleUpgrade(req, socket, head).catch((error: unknown) => {
        log.error({ err: error }, "api-v1 socket: upgrade failed");
        socket.destroy();
      });
    },
    /** Ends every client's socket (server shutdown). */
    close() {
      clearInterval(keepalive);
      for (const client of wss.clients) client.close(API_V1_SOCKET_CLOSE.shutdown, "Server shutting down");
    },
    terminate() {
      for (const client of wss.clients) client.terminate();
    },
  };
}
