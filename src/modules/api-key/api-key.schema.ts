import { requireUser, type UserViewer } from "../../auth/viewer.js";
import { builder, pageSize } from "../../schema/builder.js";

const ApiKeyScopeEnum = builder.enumType("ApiKeyScope", {
  values: {
    READ: { description: "Queries and subscriptions" },
    WRITE: { description: "Mutations too (includes READ)" },
    ADMIN: { description: "Administration (includes WRITE; administrators only)" },
  } as const,
});

const ApiKeyType = builder.prismaObject("ApiKey", {
  fields: (t) => ({
    id: t.exposeID("id"),
    name: t.exposeString("name"),
    prefix: t.exposeString("prefix", { description: "The key's first characters, to tell keys apart" }),
    scopes: t.field({ type: [ApiKeyScopeEnum], resolve: (key) => key.scopes }),
    workspaceId: t.exposeID("workspaceId", { nullable: true }),
    owner: t.relation("user", { description: "Whose key it is" }),
    expiresAt: t.expose("expiresAt", { type: "DateTime", nullable: true }),
    revokedAt: t.expose("revokedAt", { type: "DateTime", nullable: true }),
    lastUsedAt: t.expose("lastUsedAt", { type: "DateTime", nullable: true, description: "Updated at most once a minute" }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

const CreateApiKeyPayload = builder.objectRef<{ apiKey: { id: string }; key: string }>("CreateApiKeyPayload").implement({
  fields: (t) => ({
    apiKey: t.prismaField({
      type: "ApiKey",
      resolve: (query, payload, _args, ctx) => ctx.prisma.apiKey.findUniqueOrThrow({ ...query, where: { id: payload.apiKey.id } }),
    }),
    key: t.exposeString("key", { description: "The secret key. Shown only here, once: store it now." }),
  }),
});

const CreateApiKeyInput = builder.inputType("CreateApiKeyInput", {
  fields: (t) => ({
    name: t.string({ required: true }),
    scopes: t.field({ type: [ApiKeyScopeEnum], required: true }),
    workspaceId: t.id({ description: "Limit the key to this workspace" }),
    expiresAt: t.field({ type: "DateTime" }),
  }),
});

/** A key bound to one workspace lists only the keys bound to that workspace, like everything else it sees. */
function keysVisibleTo(viewer: UserViewer) {
  if (viewer.kind === "apiKey" && viewer.workspaceId) return { userId: viewer.userId, workspaceId: viewer.workspaceId };
  return { userId: viewer.userId };
}

builder.queryFields((t) => ({
  apiKeys: t.prismaConnection({
    type: ApiKeyType,
    cursor: "id",
    ...pageSize,
    description: "The viewer's API keys, newest first (revoked ones included).",
    authScopes: { read: true },
    resolve: (query, _root, _args, ctx) =>
      ctx.prisma.apiKey.findMany({
        ...query,
        where: keysVisibleTo(requireUser(ctx.viewer)),
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      }),
  }),
}));

builder.prismaObjectFields("Workspace", (t) => ({
  apiKeys: t.prismaConnection({
    type: ApiKeyType,
    cursor: "id",
    ...pageSize,
    description:
      "The API keys bound to this workspace, newest first: every one for its admins, their own for other members. Needs a signed-in session (keys do not list keys).",
    authScopes: async (workspace, _args, ctx) => {
      await ctx.access.requireToRead(workspace.id, "read");
      return { session: true };
    },
    resolve: async (query, workspace, _args, ctx) => {
      const role = await ctx.access.roleIn(workspace.id);
      const everyone = role === "ADMIN" || role === "OWNER";
      return ctx.prisma.apiKey.findMany({
        ...query,
        where: { workspaceId: workspace.id, ...(everyone ? {} : { userId: requireUser(ctx.viewer).userId }) },
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      });
    },
  }),
}));

builder.mutationFields((t) => ({
  createApiKey: t.field({
    type: CreateApiKeyPayload,
    description: "Creates an API key. Needs a signed-in session: a key cannot create keys.",
    authScopes: { session: true },
    args: { input: t.arg({ type: CreateApiKeyInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.apiKeys.create(ctx, input),
  }),
  revokeApiKey: t.prismaField({
    type: ApiKeyType,
    description: "Revokes an API key at once: the owner's own, or, for a workspace admin, any key bound to that workspace. Needs a signed-in session.",
    authScopes: { session: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_query, _root, { id }, ctx) => ctx.services.apiKeys.revoke(ctx, String(id)),
  }),
}));
