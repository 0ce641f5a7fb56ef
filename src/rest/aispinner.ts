// The AiSpinner dialect (../shared/seeds/000): snake_case, integer user and workspace ids (legacyId),
// a graph of nodes whose `data` carries label, position and cfg, code workers addressed by
// (workspace_id, node_id), errors as {"detail": "..."} with 401/403/404/409/422.
import { z } from "zod";
import {
  AiConfirmRegistrationDocument,
  AiDefaultWorkspaceDocument,
  AiDeployWorkerDocument,
  AiLoginDocument,
  AiMeDocument,
  AiNodeConfigDocument,
  AiRegisterDocument,
  AiSaveGraphDocument,
  AiSetNodeConfigDocument,
  AiStartWorkerDocument,
  AiStopWorkerDocument,
  AiWorkerByNodeDocument,
  AiWorkerLogsDocument,
  AiWorkerSettingsDocument,
  AiWorkspaceGraphDocument,
  AiWorkspaceIdDocument,
  AiWorkspacesDocument,
  type AiGraphFragment,
  type AiWorkerFragment,
  type AiWorkspaceFragment,
  type LogLevel,
} from "../generated/rest-graphql.js";
import { RestError, route, type Route, type Run } from "./route.js";

/**
 * AiSpinner has no refresh endpoint: its clients work a whole day on one login. Sign-in asks for an
 * access token this long; the server grants at most ACCESS_TOKEN_MAX_TTL (12 h by default). It stays
 * revocable: every request checks the token's session.
 */
const WORKING_DAY_SECONDS = 12 * 60 * 60;

const dialect = "aispinner";
const bearer: Route["auth"] = ["bearer"];


type Renames = [RegExp, string][];

/**
 * Runs an operation and names the fields of its errors as this client sent them
 * (`input.tickIntervalSeconds` -> `body.tick_interval`); anything else under `input` is `body`.
 */
async function asSent<T>(operation: Promise<T>, renames: Renames = []): Promise<T> {
  try {
    return await operation;
  } catch (error) {
    const fields = error instanceof RestError ? (error.extensions.fields as { field: string; message: string }[] | undefined) : undefined;
    if (!(error instanceof RestError) || !fields?.length) throw error;
    const named = fields.map((f) => ({
      ...f,
      field: [...renames, [/^input\b/, "body"] as const].reduce((name, [from, to]) => name.replace(from, to), f.field),
    }));
    const message = error.code === "VALIDATION" ? `Invalid input. ${named.map((f) => `${f.field}: ${f.message}`).join("; ")}` : error.message;
    throw new RestError(error.code, message, { ...error.extensions, fields: named });
  }
}


const INT32_MAX = 2_147_483_647;

/** An integer id in a path: not a number is a validation error (as the legacy server answers), a number nobody has is 404. */
const legacyIdParam = z.string().regex(/^\d+$/, "must be an integer id").transform(Number);
const nodeIdParam = z.string().min(1);

/** An id GraphQL's Int can carry; a larger one is nobody's workspace (the same 404 as any unknown id). */
function int32(legacyId: number): number {
  if (legacyId > INT32_MAX) throw new RestError("NOT_FOUND", `No workspace with id ${legacyId}`);
  return legacyId;
}

/** The workspace's UUID, or 404 (unknown, or not the caller's: the same answer). */
async function workspaceUuid(run: Run, legacyId: number): Promise<string> {
  return (await run(AiWorkspaceIdDocument, { legacyId: int32(legacyId) })).workspaceByLegacyId.id;
}


const timestamp = z.string().describe("ISO-8601, UTC");
const tokenResponse = z.object({ access_token: z.string(), token_type: z.literal("bearer") });
const workspaceResponse = z.object({ id: z.int(), name: z.string(), created_at: timestamp, updated_at: timestamp });

const workspaceOut = (w: AiWorkspaceFragment) => ({ id: w.legacyId, name: w.name, created_at: w.createdAt, updated_at: w.updatedAt });

const nodeData = z.object({ label: z.string(), x: z.number(), y: z.number(), cfg: z.record(z.string(), z.unknown()) }).catchall(z.unknown());
const graphResponse = z.object({
  version: z.int(),
  graph_json: z.object({
    nodes: z.array(z.object({ id: z.string(), type: z.string(), data: nodeData })),
    edges: z.array(z.object({ id: z.string(), source: z.string(), target: z.string() }).catchall(z.unknown())),
  }),
});

/**
 * A node's `data` holds label, x, y and cfg, which Spindle stores as such, and whatever else the
 * client keeps there, stored in the block's `extra`; an edge's keys beside id, source and target
 * go in the edge's `extra`. Spindle's own keys win over an extra of the same name.
 */
const graphOut = (graph: AiGraphFragment) => ({
  version: graph.version,
  graph_json: {
    nodes: graph.blocks.map((b) => ({ id: b.id, type: b.type, data: { ...b.extra, label: b.label, x: b.x, y: b.y, cfg: b.cfg } })),
    edges: graph.edges.map((e) => ({ ...e.extra, id: e.id, source: e.source, target: e.target })),
  },
});

// Keys of a node beside id, type and data are dropped, as the legacy server's model does; what a
// client keeps on a node belongs in `data`.
const nodeIn = z.object({
  id: z.string(),
  type: z.string(),
  data: z
    .object({
      label: z.string().nullish(),
      x: z.number().nullish(),
      y: z.number().nullish(),
      cfg: z.record(z.string(), z.unknown()).nullish(),
    })
    .catchall(z.unknown())
    .default({}),
});
const edgeIn = z.object({ id: z.string().nullish(), source: z.string(), target: z.string() }).catchall(z.unknown());

const graphRenames: Renames = [
  [/^input\.blocks\.(\d+)\.(id|type)\b/, "body.graph_json.nodes.$1.$2"],
  [/^input\.blocks\.(\d+)\.extra\b/, "body.graph_json.nodes.$1.data"],
  [/^input\.blocks\.(\d+)\.(label|x|y|cfg)\b/, "body.graph_json.nodes.$1.data.$2"],
  [/^input\.blocks\b/, "body.graph_json.nodes"],
  [/^input\.edges\.(\d+)\.extra\b/, "body.graph_json.edges.$1"],
  [/^input\.edges\b/, "body.graph_json.edges"],
];

const WORKER_STATUSES = ["deploying", "running", "stopped", "failed", "destroyed"] as const;
const workerStatusResponse = z.object({
  status: z.enum(WORKER_STATUSES),
  tick_count: z.int(),
  error_count: z.int(),
  tick_interval: z.int().describe("seconds"),
  auto_heal: z.boolean(),
  max_errors: z.int(),
  last_tick_at: timestamp.nullable(),
});

const workerOut = (w: AiWorkerFragment): z.infer<typeof workerStatusResponse> => ({
  status: w.status.toLowerCase() as (typeof WORKER_STATUSES)[number],
  tick_count: w.tickCount,
  error_count: w.errorCount,
  tick_interval: w.tickIntervalSeconds,
  auto_heal: w.autoHeal,
  max_errors: w.maxErrors,
  last_tick_at: w.lastTickAt ?? null,
});

const workerRenames: Renames = [
  [/^input\.workspaceId\b/, "body.workspace_id"],
  [/^input\.blockId\b/, "body.node_id"],
  [/^input\.tickIntervalSeconds\b/, "body.tick_interval"],
  [/^input\.maxErrors\b/, "body.max_errors"],
  [/^input\.autoHeal\b/, "body.auto_heal"],
  [/^input\.connectedBlocks\b/, "body.connected_blocks"],
];

const workerParams = z.object({ workspace_id: legacyIdParam, node_id: nodeIdParam });

/** The live worker of a node, in one round trip, or 404. */
async function workerOf(run: Run, params: z.infer<typeof workerParams>): Promise<AiWorkerFragment> {
  const { workspaceByLegacyId } = await run(AiWorkerByNodeDocument, { legacyId: int32(params.workspace_id), blockId: params.node_id });
  const worker = workspaceByLegacyId.workers.edges[0]?.node;
  if (!worker) throw new RestError("NOT_FOUND", `No worker on node ${params.node_id}`);
  return worker;
}

const LOG_LEVELS: Record<string, LogLevel> = { debug: "DEBUG", info: "INFO", warn: "WARN", warning: "WARN", error: "ERROR" };

const logsResponse = z.object({
  items: z.array(z.object({ timestamp, level: z.enum(["debug", "info", "warn", "error"]), message: z.string() })),
});

const configResponse = z.object({ workspace_id: z.int(), node_id: z.string(), config_json: z.record(z.string(), z.unknown()) });
const configParams = z.object({ workspace_id: legacyIdParam, node_id: nodeIdParam });


export const aispinnerRoutes: Route[] = [
  route({
    dialect,
    method: "POST",
    path: "/login",
    summary: "Login",
    auth: ["none"],
    body: z.object({ email: z.string().min(1), password: z.string().min(1) }),
    response: tokenResponse,
    async handler({ body, run }) {
      const { login } = await asSent(run(AiLoginDocument, { input: { login: body.email, password: body.password, accessTokenTtl: WORKING_DAY_SECONDS } }), [
        [/^input\.login\b/, "body.email"],
      ]);
      return { access_token: login.accessToken, token_type: "bearer" };
    },
  }),
  route({
    dialect,
    method: "GET",
    path: "/me",
    summary: "Get Current User",
    auth: bearer,
    response: z.object({ id: z.int(), email: z.string(), nickname: z.string(), plan: z.string() }),
    async handler({ run }) {
      const { me } = await run(AiMeDocument, {});
      return { id: me.legacyId, email: me.email, nickname: me.username, plan: me.plan };
    },
  }),
  route({
    dialect,
    method: "POST",
    path: "/register/start",
    summary: "Register: sends a confirmation code to the email",
    auth: ["none"],
    body: z.object({ email: z.string(), password: z.string(), nickname: z.string() }),
    response: z.object({ message: z.string(), email: z.string(), code_expires_at: timestamp }),
    async handler({ body, run }) {
      const { register } = await asSent(run(AiRegisterDocument, { input: { email: body.email, password: body.password, username: body.nickname } }), [
        [/^input\.username\b/, "body.nickname"],
      ]);
      return { message: `A confirmation code was sent to ${register.email}`, email: register.email, code_expires_at: register.codeExpiresAt };
    },
  }),
  route({
    dialect,
    method: "POST",
    path: "/register/confirm",
    summary: "Confirm registration with the emailed code",
    auth: ["none"],
    body: z.object({ email: z.string(), code: z.string() }),
    response: tokenResponse,
    async handler({ body, run }) {
      const { confirmRegistration } = await asSent(
        run(AiConfirmRegistrationDocument, { input: { email: body.email, code: body.code, accessTokenTtl: WORKING_DAY_SECONDS } }),
      );
      return { access_token: confirmRegistration.accessToken, token_type: "bearer" };
    },
  }),
  route({
    dialect,
    method: "GET",
    path: "/workspaces",
    summary: "List Workspaces",
    auth: bearer,
    response: z.array(workspaceResponse),
    async handler({ run }) {
      const all: ReturnType<typeof workspaceOut>[] = [];
      let after: string | null | undefined;
      do {
        const { workspaces } = await run(AiWorkspacesDocument, { after });
        all.push(...workspaces.edges.map((e) => workspaceOut(e.node)));
        after = workspaces.pageInfo.hasNextPage ? workspaces.pageInfo.endCursor : null;
      } while (after);
      return all;
    },
  }),
  route({
    dialect,
    method: "GET",
    path: "/workspaces/me",
    summary: "Get Workspace with Graph",
    auth: bearer,
    response: workspaceResponse.extend(graphResponse.shape),
    async handler({ run }) {
      const { defaultWorkspace } = await run(AiDefaultWorkspaceDocument, {});
      if (!defaultWorkspace) throw new RestError("NOT_FOUND", "You have no workspace yet");
      return { ...workspaceOut(defaultWorkspace), ...graphOut(defaultWorkspace.graph) };
    },
  }),
  route({
    dialect,
    method: "GET",
    path: "/workspaces/{id}/graph",
    summary: "Get Graph",
    auth: bearer,
    params: z.object({ id: legacyIdParam }),
    response: graphResponse,
    async handler({ params, run }) {
      const { workspaceByLegacyId } = await run(AiWorkspaceGraphDocument, { legacyId: int32(params.id) });
      return graphOut(workspaceByLegacyId.graph);
    },
  }),
  route({
    dialect,
    method: "PUT",
    path: "/workspaces/{id}/graph",
    summary: "Save Graph",
    auth: bearer,
    params: z.object({ id: legacyIdParam }),
    body: z.object({
      version: z.int().min(0),
      graph_json: z.object({ nodes: z.array(nodeIn), edges: z.array(edgeIn) }),
    }),
    response: graphResponse,
    async handler({ params, body, run }) {
      const workspaceId = await workspaceUuid(run, params.id);
      const blocks = body.graph_json.nodes.map(({ id, type, data: { label, x, y, cfg, ...extra } }) => ({ id, type, label, x, y, cfg, extra }));
      const edges = body.graph_json.edges.map(({ id, source, target, ...extra }) => ({ id, source, target, extra }));
      try {
        const { saveGraph } = await asSent(
          run(AiSaveGraphDocument, { input: { workspaceId, version: body.version, blocks, edges, allowUnknownTypes: true } }),
          graphRenames,
        );
        return graphOut(saveGraph);
      } catch (error) {
        const current = error instanceof RestError ? error.extensions.currentVersion : undefined;
        if (error instanceof RestError && error.code === "CONFLICT" && typeof current === "number") {
          throw new RestError("CONFLICT", `Version conflict: the graph is at version ${current}, not ${body.version}; load it again and reapply your change`, {
            currentVersion: current,
          });
        }
        throw error;
      }
    },
  }),
  route({
    dialect,
    method: "GET",
    path: "/workspaces/{workspace_id}/nodes/{node_id}/config",
    summary: "Get Node Config",
    auth: bearer,
    params: configParams,
    response: configResponse,
    async handler({ params, run }) {
      const workspaceId = await workspaceUuid(run, params.workspace_id);
      const { block } = await run(AiNodeConfigDocument, { workspaceId, blockId: params.node_id });
      return { workspace_id: params.workspace_id, node_id: params.node_id, config_json: block.cfg };
    },
  }),
  route({
    dialect,
    method: "PUT",
    path: "/workspaces/{workspace_id}/nodes/{node_id}/config",
    summary: "Update Node Config",
    auth: bearer,
    params: configParams,
    body: z.object({ config_json: z.record(z.string(), z.unknown()) }),
    response: configResponse,
    async handler({ params, body, run }) {
      const workspaceId = await workspaceUuid(run, params.workspace_id);
      // PUT replaces the whole config (updateBlock), where updateBlockConfig would merge into it.
      const { updateBlock } = await asSent(run(AiSetNodeConfigDocument, { input: { workspaceId, blockId: params.node_id, cfg: body.config_json } }), [
        [/^input\.cfg\b/, "body.config_json"],
      ]);
      return { workspace_id: params.workspace_id, node_id: params.node_id, config_json: updateBlock.block.cfg };
    },
  }),
  route({
    dialect,
    method: "POST",
    path: "/workers/deploy",
    summary: "Deploy Worker Code",
    auth: bearer,
    body: z.object({
      workspace_id: z.int(),
      node_id: z.string().min(1),
      code: z.string(),
      tick_interval: z.int().optional(),
      max_errors: z.int().optional(),
      auto_heal: z.boolean().optional(),
      connected_blocks: z.record(z.string(), z.unknown()).optional(),
    }),
    response: workerStatusResponse,
    async handler({ body, run, idempotencyKey }) {
      const workspaceId = await workspaceUuid(run, body.workspace_id);
      const { deployWorker } = await asSent(
        run(AiDeployWorkerDocument, {
          input: {
            workspaceId,
            kind: "CODE",
            blockId: body.node_id,
            code: body.code,
            tickIntervalSeconds: body.tick_interval,
            maxErrors: body.max_errors,
            autoHeal: body.auto_heal,
            connectedBlocks: body.connected_blocks,
            idempotencyKey,
          },
        }),
        workerRenames,
      );
      return workerOut(deployWorker);
    },
  }),
  route({
    dialect,
    method: "POST",
    path: "/workers/{workspace_id}/{node_id}/start",
    summary: "Start Worker",
    auth: bearer,
    params: workerParams,
    response: workerStatusResponse,
    async handler({ params, run }) {
      const { id } = await workerOf(run, params);
      return workerOut((await run(AiStartWorkerDocument, { id })).startWorker);
    },
  }),
  route({
    dialect,
    method: "POST",
    path: "/workers/{workspace_id}/{node_id}/stop",
    summary: "Stop Worker",
    auth: bearer,
    params: workerParams,
    response: workerStatusResponse,
    async handler({ params, run }) {
      const { id } = await workerOf(run, params);
      return workerOut((await run(AiStopWorkerDocument, { id })).stopWorker);
    },
  }),
  route({
    dialect,
    method: "GET",
    path: "/workers/{workspace_id}/{node_id}/status",
    summary: "Get Worker Status",
    auth: bearer,
    params: workerParams,
    response: workerStatusResponse,
    async handler({ params, run }) {
      return workerOut(await workerOf(run, params));
    },
  }),
  route({
    dialect,
    method: "GET",
    path: "/workers/{workspace_id}/{node_id}/logs",
    summary: "Get Worker Logs: the newest `limit` lines at `level` or above, oldest first, as {items: [...]}",
    auth: bearer,
    params: workerParams,
    query: z.object({
      limit: z.coerce.number().int().min(1).max(1000).default(100),
      level: z
        .string()
        .transform((level) => level.toLowerCase())
        .pipe(z.enum(Object.keys(LOG_LEVELS) as [string, ...string[]], "must be debug, info, warning or error"))
        .optional(),
    }),
    response: logsResponse,
    async handler({ params, query, run }) {
      const { id } = await workerOf(run, params);
      const { logLines } = await run(AiWorkerLogsDocument, {
        input: { source: { type: "WORKER", id }, limit: query.limit, level: query.level ? LOG_LEVELS[query.level] : undefined, tail: true },
      });
      return {
        items: logLines.lines.map((line) => ({ timestamp: line.at, level: line.level.toLowerCase(), message: line.message })),
      };
    },
  }),
  route({
    dialect,
    method: "PATCH",
    path: "/workers/{workspace_id}/{node_id}/settings",
    summary: "Update Worker Settings (applied at once, no redeploy)",
    auth: bearer,
    params: workerParams,
    body: z
      .object({ tick_interval: z.int().optional(), max_errors: z.int().optional(), auto_heal: z.boolean().optional() })
      .refine((b) => b.tick_interval !== undefined || b.max_errors !== undefined || b.auto_heal !== undefined, "give at least one of tick_interval, max_errors, auto_heal"),
    response: workerStatusResponse,
    async handler({ params, body, run }) {
      const { id } = await workerOf(run, params);
      const { updateWorkerSettings } = await asSent(
        run(AiWorkerSettingsDocument, { input: { id, tickIntervalSeconds: body.tick_interval, maxErrors: body.max_errors, autoHeal: body.auto_heal } }),
        workerRenames,
      );
      return workerOut(updateWorkerSettings);
    },
  }),
];
