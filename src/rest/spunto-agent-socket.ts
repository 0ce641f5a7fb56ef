// Spunto's agent connection, `GET /api/agent/connect?token=<node token>`: one WebSocket per node.
// The server pushes the node's assignment (the workers and services it must run, and whether it is
// draining) from the machines' `machineAssignments` stream, and the node sends its reports over the
// same socket; each report runs the GraphQL mutation of the same meaning, as the node.
//
// Protocol (JSON text frames):
//   server -> node  {"type":"assignment", "at", "node", "workers", "services"}   on connect and on every change
//                   {"type":"result", "id", "data"} | {"type":"error", "id", "code", "error"}   one per report
//                   {"type":"pong"}
//   node -> server  {"type":"ping"}
//                   {"type":"heartbeat" | "worker.status" | "worker.stats" | "service.status" | "logs", "id"?, "input": {...}}
//                   where `input` is the input of machineHeartbeat, reportWorkerStatus, reportWorkerTicks,
//                   reportServiceStatus or appendLogs.
// The socket closes with 4401 when the token is rejected later (rotated, node deleted), 4400 on a
// frame that is not JSON, and 1001 when the server shuts down.
//
// The token is taken from the query string on this path only (browsers and many WebSocket clients
// cannot set headers); it is checked like the Authorization header and never logged.
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import type { ExecutionResult } from "graphql";
import { WebSocketServer, type WebSocket } from "ws";
import type { Viewer } from "../auth/viewer.js";
import {
  SpuntoAgentAssignmentsDocument,
  SpuntoAgentHeartbeatDocument,
  SpuntoAgentLogsDocument,
  SpuntoAgentServiceStatusDocument,
  SpuntoAgentWorkerStatsDocument,
  SpuntoAgentWorkerStatusDocument,
  type SpuntoAgentAssignmentsSubscription,
} from "../generated/rest-spunto-graphql.js";
import { MAX_BODY_BYTES } from "../http/body.js";
import type { Logger } from "../infra/logger.js";
import { RestError, route } from "./route.js";

export const AGENT_SOCKET_PATH = "/api/agent/connect";

/** Close codes a node can act on: 4401 get a new token; 4400 fix the client. */
export const AGENT_CLOSE = { rejected: 4401, badFrame: 4400, shutdown: 1001 } as const;

type Document = TypedDocumentNode<any, any>;

export interface AgentSocketDeps {
  /** The viewer for a bearer token (throws on a bad one). */
  authenticate(token: string): Promise<Viewer>;
  /** Runs one operation in-process as `viewer` (a subscription answers an async iterable). */
  run(viewer: Viewer, request: IncomingMessage, document: Document, variables: Record<string, unknown>): Promise<ExecutionResult | AsyncIterable<ExecutionResult>>;
  log: Logger;
}

/** What a node may report, by message type. */
const REPORTS: Record<string, Document> = {
  heartbeat: SpuntoAgentHeartbeatDocument,
  "worker.status": SpuntoAgentWorkerStatusDocument,
  "worker.stats": SpuntoAgentWorkerStatsDocument,
  "service.status": SpuntoAgentServiceStatusDocument,
  logs: SpuntoAgentLogsDocument,
};

type Assignment = SpuntoAgentAssignmentsSubscription["machineAssignments"];

const assignmentOut = (a: Assignment) => ({
  type: "assignment",
  at: a.at,
  node: { ...a.machine, status: a.machine.status.toLowerCase() },
  workers: a.workers.map((w) => ({ ...w, kind: w.kind.toLowerCase(), status: w.status.toLowerCase() })),
  services: a.services.map((s) => ({ ...s, status: s.status.toLowerCase() })),
});

const codeOf = (result: ExecutionResult) => String(result.errors?.[0]?.extensions?.code ?? "INTERNAL_SERVER_ERROR");

/**
 * The documented row, for a plain HTTP request (the inventory and OpenAPI list it): the connection
 * itself is a WebSocket upgrade, answered by the socket below before any route is looked at.
 */
export const agentConnectRoute = route({
  dialect: "spunto",
  method: "GET",
  path: AGENT_SOCKET_PATH,
  summary: "Agent connection (node token): a WebSocket; connect with ?token=<node token> (spm_...). See the README for its messages",
  auth: ["none"],
  async handler() {
    throw new RestError("UPGRADE_REQUIRED", `${AGENT_SOCKET_PATH} is a WebSocket: connect with Upgrade: websocket and ?token=<node token>`);
  },
});

export function createAgentSocket(deps: AgentSocketDeps) {
  const { log } = deps;
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES });

  /** The node's viewer, or an HTTP refusal on the upgrade (401: no socket is opened). */
  async function handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer) {
    const token = new URL(req.url ?? "/", "http://spindle.internal").searchParams.get("token");
    let viewer: Viewer | undefined;
    let refusal = "send the node token as ?token=";
    if (token) {
      viewer = await deps.authenticate(token).catch((error: Error) => {
        refusal = error.message;
        return undefined;
      });
      if (viewer && viewer.kind !== "machine") {
        refusal = "This path takes a node token (spm_...), not a user's token";
        viewer = undefined;
      }
    }
    if (!viewer) {
      const body = JSON.stringify({ error: `Not authenticated: ${refusal}` });
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      return;
    }
    const node = viewer;
    wss.handleUpgrade(req, socket, head, (ws) => serve(ws, req, node, token!));
  }

  function serve(ws: WebSocket, req: IncomingMessage, viewer: Viewer, token: string) {
    const machineId = viewer.kind === "machine" ? viewer.machineId : "";
    const send = (message: unknown) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
    };
    let stream: AsyncIterator<ExecutionResult> | undefined;
    ws.on("close", () => void stream?.return?.());

    (async () => {
      const result = await deps.run(viewer, req, SpuntoAgentAssignmentsDocument, {});
      if (!(Symbol.asyncIterator in result)) throw new Error(result.errors?.[0]?.message ?? "the assignment stream did not start");
      stream = result[Symbol.asyncIterator]();
      for (;;) {
        const next = await stream.next();
        if (next.done) break;
        if (next.value.errors?.length) {
          ws.close(AGENT_CLOSE.rejected, next.value.errors[0]!.message.slice(0, 120));
          return;
        }
        send(assignmentOut((next.value.data as SpuntoAgentAssignmentsSubscription).machineAssignments));
      }
      // The stream ends when the node's credential no longer holds (rotated, recovered, node deleted).
      ws.close(AGENT_CLOSE.rejected, "The node token was rotated or revoked; reconnect with the new token");
    })().catch((error: unknown) => {
      log.error({ err: error, machineId }, "agent socket: assignment stream failed");
      ws.close(1011, "Internal server error");
    });

    ws.on("message", (data, isBinary) => {
      let message: { type?: unknown; id?: unknown; input?: unknown };
      try {
        message = JSON.parse(isBinary ? "" : data.toString("utf8"));
      } catch {
        ws.close(AGENT_CLOSE.badFrame, "Frames are JSON text");
        return;
      }
      void answer(message);
    });

    async function answer(message: { type?: unknown; id?: unknown; input?: unknown }) {
      const id = typeof message.id === "string" || typeof message.id === "number" ? message.id : undefined;
      if (message.type === "ping") return send({ type: "pong" });
      const document = typeof message.type === "string" ? REPORTS[message.type] : undefined;
      if (!document) {
        return send({ type: "error", id, code: "VALIDATION", error: `type: must be ping or one of ${Object.keys(REPORTS).join(", ")}` });
      }
      if (typeof message.input !== "object" || message.input === null || Array.isArray(message.input)) {
        return send({ type: "error", id, code: "VALIDATION", error: "input: must be the JSON object the report takes" });
      }
      // Each report runs as whoever the token is now: a rotated token ends the socket.
      const current = await deps.authenticate(token).catch(() => undefined);
      if (!current) {
        send({ type: "error", id, code: "NOT_AUTHENTICATED", error: "The node token was rotated or revoked" });
        return ws.close(AGENT_CLOSE.rejected, "The node token was rotated or revoked; reconnect with the new token");
      }
      try {
        const result = (await deps.run(current, req, document, { input: message.input })) as ExecutionResult;
        if (result.errors?.length) return send({ type: "error", id, code: codeOf(result), error: result.errors[0]!.message });
        send({ type: "result", id, data: Object.values(result.data ?? {})[0] ?? null });
      } catch (error) {
        log.error({ err: error, machineId }, "agent socket: report failed");
        send({ type: "error", id, code: "INTERNAL_SERVER_ERROR", error: "Internal server error" });
      }
    }
  }

  return {
    handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer) {
      handleUpgrade(req, socket, head).catch((error: unknown) => {
        log.error({ err: error }, "agent socket: upgrade failed");
        socket.destroy();
      });
    },
    /** Ends every node's socket (server shutdown). */
    close() {
      for (const client of wss.clients) client.close(AGENT_CLOSE.shutdown, "Server shutting down");
    },
    terminate() {
      for (const client of wss.clients) client.terminate();
    },
  };
}
