// Spunto's account side: API keys per organization (session only: a key never manages keys), the
// user's settings (dotfilesRepo), and a node's live inventory. Same conventions as spunto.ts.
import { z } from "zod";
import {
  SpuntoCreateApiKeyDocument,
  SpuntoCurrentUserDocument,
  SpuntoNodeInventoryDocument,
  SpuntoOrgApiKeysDocument,
  SpuntoRevokeApiKeyDocument,
  SpuntoUpdateUserDocument,
  type ApiKeyScope,
  type SpuntoApiKeyPartsFragment,
  type SpuntoUserPartsFragment,
} from "../generated/rest-spunto-graphql.js";
import { restNotFound, type Route, type Run } from "./route.js";
import { collect } from "./shared.js";
import { BEARER, done, lower, nodeIn, nodePath, orgPath, spuntoRoute, text, time } from "./spunto.js";

// ---- API keys -----------------------------------------------------------------------------------

const SCOPES = ["read", "write", "admin"] as const;
const apiKeyShape = z.object({
  id: z.string(),
  name: z.string(),
  prefix: z.string().describe("The key's first characters, to tell keys apart"),
  scopes: z.array(z.enum(SCOPES)),
  orgId: z.string(),
  owner: z.object({ id: z.string(), username: z.string(), displayName: z.string().nullable() }),
  createdAt: time,
  expiresAt: time.nullable(),
  lastUsedAt: time.nullable(),
  revokedAt: time.nullable(),
});
const apiKeyOut = (key: SpuntoApiKeyPartsFragment): z.infer<typeof apiKeyShape> => ({
  id: key.id,
  name: key.name,
  prefix: key.prefix,
  scopes: key.scopes.map(lower),
  orgId: key.workspaceId!,
  owner: { id: key.owner.id, username: key.owner.username, displayName: key.owner.displayName ?? null },
  createdAt: key.createdAt,
  expiresAt: key.expiresAt ?? null,
  lastUsedAt: key.lastUsedAt ?? null,
  revokedAt: key.revokedAt ?? null,
});

const keyPath = orgPath.extend({ keyId: z.string() });

/** The organization's keys: every one for an admin, a member's own (GraphQL decides; a key as the credential is 403). */
const keysOf = (run: Run, orgId: string) => collect(async (page) => (await run(SpuntoOrgApiKeysDocument, { orgId, ...page })).workspace.apiKeys);

const apiKeyRoutes: Route[] = [
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/api-keys",
    summary: "List keys: an admin sees every key of the organization, a member their own (session only), newest first",
    auth: BEARER,
    params: orgPath,
    response: z.array(apiKeyShape),
    async handler({ params, run }) {
      return (await keysOf(run, params.orgId)).map(apiKeyOut);
    },
  }),
  spuntoRoute({
    method: "POST",
    path: "/api/orgs/:orgId/api-keys",
    summary: "Create a key for the organization (session only; the token is shown once). Body {name, scopes?: read|write|admin (default write), expiresAt?}",
    auth: BEARER,
    status: 201,
    params: orgPath,
    body: z.object({
      name: text(),
      scopes: z
        .array(z.string().transform((scope) => scope.toLowerCase()).pipe(z.enum(SCOPES, "must be read, write or admin")))
        .nullish(),
      expiresAt: z.iso.datetime({ offset: true, message: "must be an ISO-8601 time" }).nullish(),
    }),
    response: apiKeyShape.extend({ token: z.string().describe("The key (spk_...): shown only here, once") }),
    async handler({ params, body, run }) {
      // Left out (or null) means write; an empty list is sent on, for GraphQL to refuse as no scopes.
      const scopes = (body.scopes ?? ["write"]).map((scope) => scope.toUpperCase() as ApiKeyScope);
      const input = { name: body.name, scopes, workspaceId: params.orgId, expiresAt: body.expiresAt };
      const { createApiKey } = await run(SpuntoCreateApiKeyDocument, { input });
      return { ...apiKeyOut(createApiKey.apiKey), token: createApiKey.key };
    },
  }),
  spuntoRoute({
    method: "DELETE",
    path: "/api/orgs/:orgId/api-keys/:keyId",
    summary: "Revoke a key of the organization: one's own, or any for an admin (session only)",
    auth: BEARER,
    params: keyPath,
    response: done,
    async handler({ params, run }) {
      const keys = await keysOf(run, params.orgId);
      if (!keys.some((key) => key.id === params.keyId)) throw restNotFound("API key");
      await run(SpuntoRevokeApiKeyDocument, { id: params.keyId });
      return { ok: true as const };
    },
  }),
];

// ---- The user -----------------------------------------------------------------------------------

const userShape = z.object({
  id: z.string(),
  email: z.string().nullable(),
  username: z.string(),
  displayName: z.string().nullable(),
  gitName: z.string().nullable(),
  gitEmail: z.string().nullable(),
  dotfilesRepo: z.string().nullable().describe("A git repository URL"),
  createdAt: time,
});
const userOut = (user: SpuntoUserPartsFragment): z.infer<typeof userShape> => ({
  id: user.id,
  email: user.email ?? null,
  username: user.username,
  displayName: user.displayName ?? null,
  gitName: user.gitName ?? null,
  gitEmail: user.gitEmail ?? null,
  dotfilesRepo: user.dotfilesRepo ?? null,
  createdAt: user.createdAt,
});

const userRoutes: Route[] = [
  spuntoRoute({
    method: "GET",
    path: "/api/users/me",
    summary: "Get current user (dotfilesRepo)",
    auth: BEARER,
    response: userShape,
    async handler({ run }) {
      return userOut((await run(SpuntoCurrentUserDocument, {})).me);
    },
  }),
  spuntoRoute({
    method: "PATCH",
    path: "/api/users/me",
    summary: "Update user settings: dotfilesRepo, displayName, gitName, gitEmail (null clears; left out stays)",
    auth: BEARER,
    body: z.object({
      dotfilesRepo: z.string("must be a string").nullish(),
      displayName: z.string("must be a string").nullish(),
      gitName: z.string("must be a string").nullish(),
      gitEmail: z.string("must be a string").nullish(),
    }),
    response: userShape,
    async handler({ body, run }) {
      return userOut((await run(SpuntoUpdateUserDocument, { input: body })).updateProfile);
    },
  }),
];

// ---- Node inventory -----------------------------------------------------------------------------

const containerShape = z.object({
  kind: z.enum(["worker", "service"]),
  id: z.string(),
  name: z.string(),
  image: z.string().nullable(),
  command: z.string().nullable(),
  status: z.string().describe("As the node last reported it (lower case)"),
  running: z.boolean().describe("The node reports it running"),
  statusReason: z.string().nullable(),
  projectId: z.string().nullable().describe("Workers: their project"),
  deploymentId: z.string().nullable().describe("Services: their deployment"),
  cpuPercent: z.number().nullable().describe("Workers: last reported CPU use"),
  memoryBytes: z.number().nullable().describe("Workers: last reported memory use"),
  restartCount: z.int().nullable().describe("Services: restarts by the node"),
  updatedAt: time,
});

const inventoryRoutes: Route[] = [
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/nodes/:nodeId/inventory",
    summary:
      "Live container inventory: the workers and services placed on the node, with what the node last reported of each (status, CPU and memory); `reportedAt` is its last heartbeat",
    auth: BEARER,
    params: nodePath,
    response: z.object({ nodeId: z.string(), status: z.string(), reportedAt: time.nullable(), containers: z.array(containerShape) }),
    async handler({ params, run }) {
      const node = await nodeIn(run, params);
      let services: NonNullable<Awaited<ReturnType<typeof inventoryPage>>["services"]> = [];
      const workers = await collect(async (page) => {
        const machine = await inventoryPage(run, params.nodeId, page);
        services = machine.services;
        return machine.workers;
      });
      const containers: z.infer<typeof containerShape>[] = [
        ...workers.map((w) => ({
          kind: "worker" as const,
          id: w.id,
          name: w.name,
          image: w.image ?? null,
          command: w.command ?? null,
          status: lower(w.status),
          running: w.status === "RUNNING",
          statusReason: w.statusReason ?? null,
          projectId: w.projectId ?? null,
          deploymentId: null,
          cpuPercent: w.cpuPercent ?? null,
          memoryBytes: w.memoryBytes ?? null,
          restartCount: null,
          updatedAt: w.updatedAt,
        })),
        ...services.map((s) => ({
          kind: "service" as const,
          id: s.id,
          name: s.name,
          image: s.image ?? null,
          command: s.command ?? null,
          status: lower(s.status),
          running: s.status === "RUNNING",
          statusReason: s.statusReason ?? null,
          projectId: null,
          deploymentId: s.deploymentId,
          cpuPercent: null,
          memoryBytes: null,
          restartCount: s.restartCount,
          updatedAt: s.updatedAt,
        })),
      ];
      return { nodeId: node.id, status: lower(node.status), reportedAt: node.lastHeartbeatAt ?? null, containers };
    },
  }),
];

async function inventoryPage(run: Run, id: string, page: { first: number; after?: string }) {
  return (await run(SpuntoNodeInventoryDocument, { id, first: page.first, after: page.after })).machine;
}

export const spuntoAccountRoutes: Route[] = [...apiKeyRoutes, ...userRoutes, ...inventoryRoutes];
