// Schema plumbing only: plugins, scalars, auth scopes. Types live in src/modules/*/*.schema.ts.
import SchemaBuilder, { PothosError } from "@pothos/core";
import { JSONResolver } from "graphql-scalars";
import PrismaPlugin from "@pothos/plugin-prisma";
import RelayPlugin from "@pothos/plugin-relay";
import ScopeAuthPlugin, { type AuthFailure } from "@pothos/plugin-scope-auth";
import { isUser, MACHINE_ONLY_MESSAGE } from "../auth/viewer.js";
import type { Context } from "../context.js";
import { Prisma } from "../generated/prisma/client.js";
import type PrismaTypes from "../generated/pothos-types.js";
import { getDatamodel } from "../generated/pothos-types.js";
import { forbidden, notAuthenticated, validationError } from "./errors.js";
import { DateTimeScalar } from "./scalars.js";

export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 20;

/** Spread into every connection: `first`/`last` must be 1-100; more is an error, not a silent cut. */
export const pageSize = {
  defaultSize: DEFAULT_PAGE_SIZE,
  maxSize: (args: { first?: number | null; last?: number | null }) => {
    for (const name of ["first", "last"] as const) {
      const value = args[name];
      if (value != null && (value < 1 || value > MAX_PAGE_SIZE)) {
        throw validationError([{ field: name, message: `must be between 1 and ${MAX_PAGE_SIZE}` }]);
      }
    }
    return MAX_PAGE_SIZE;
  },
};

/** Per server, from its config: in the extensions of the schema it runs (schemaFor in index.ts). */
export interface SchemaOptions {
  failOnUnusedQuery: boolean;
}

declare module "graphql" {
  interface GraphQLSchemaExtensions extends Partial<SchemaOptions> {}
}

function missingScopes(failure: AuthFailure): string[] {
  switch (failure.kind) {
    case "AuthScope":
    case "GrantedScope":
      return [failure.scope];
    case "AnyAuthScopes":
    case "AllAuthScopes":
      return failure.failures.flatMap(missingScopes);
    default:
      return [];
  }
}

const scopeHelp: Record<string, string> = {
  session: "needs a signed-in session (an API key cannot do this)",
  read: 'needs the "read" scope',
  write: 'needs the "write" scope',
  admin: 'needs the "admin" scope',
  systemAdmin: "needs an administrator account",
  machine: "needs a machine credential (spm_...)",
};

export const builder = new SchemaBuilder<{
  Context: Context;
  PrismaTypes: PrismaTypes;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    /** Free-form JSON (graph cfg, pipeline settings, hardware, task input/output). */
    JSON: { Input: unknown; Output: unknown };
  };
  AuthScopes: {
    /** Anyone, signed in or not: every public field says so by name. */
    public: boolean;
    authenticated: boolean;
    session: boolean;
    read: boolean;
    write: boolean;
    admin: boolean;
    systemAdmin: boolean;
    /** A machine's own credential (heartbeat, claim, report). */
    machine: boolean;
    /** A user with a role in this workspace (by id). Cached per request with the membership. */
    workspaceMember: string;
    /** The caller is this machine (by id); false for a null id. */
    machineIs: string | null;
    /** The caller is a machine of this workspace (by id). */
    machineOf: string;
    /** A user who shares a workspace with this user (by id). */
    coMember: string;
  };
}>({
  defaultFieldNullability: false,
  plugins: [ScopeAuthPlugin, PrismaPlugin, RelayPlugin],
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: ({ viewer, access }) => {
      const scopes = viewer.kind === "anonymous" ? new Set<string>() : viewer.scopes;
      return {
        workspaceMember: (workspaceId: string) => access.roleIn(workspaceId).then((role) => role !== null),
        machineIs: (machineId: string | null) => viewer.kind === "machine" && machineId !== null && viewer.machineId === machineId,
        machineOf: (workspaceId: string) => viewer.kind === "machine" && viewer.workspaceId === workspaceId,
        coMember: (userId: string) => access.sharesWorkspaceWith(userId),
        public: true,
        authenticated: viewer.kind !== "anonymous",
        session: viewer.kind === "session",
        read: scopes.has("read"),
        write: scopes.has("write"),
        admin: scopes.has("admin"),
        systemAdmin: isUser(viewer) && viewer.role === "ADMIN" && scopes.has("admin"),
        machine: viewer.kind === "machine",
      };
    },
    unauthorizedError: (_parent, context, info, result) => {
      if (context.viewer.kind === "anonymous") return notAuthenticated();
      if (context.viewer.kind === "machine" && !missingScopes(result.failure).includes("machine")) {
        return forbidden(`${info.parentType.name}.${info.fieldName}: ${MACHINE_ONLY_MESSAGE}`);
      }
      const missing = [...new Set(missingScopes(result.failure))];
      const what = missing.map((scope) => scopeHelp[scope] ?? `needs the "${scope}" scope`).join(", or ");
      return forbidden(`${info.parentType.name}.${info.fieldName} ${what || "is not allowed for you"}`, missing[0]);
    },
  },
  prisma: {
    client: (ctx) => ctx.prisma,
    dmmf: getDatamodel(),
    exposeDescriptions: false,
    filterConnectionTotalCount: true,
    onUnusedQuery: (info) => {
      if (info.schema.extensions.failOnUnusedQuery) {
        throw new PothosError(`Prisma query was unused in resolver for ${info.parentType.name}.${info.fieldName}`);
      }
    },
  },
  relay: {
    clientMutationId: "omit",
    cursorType: "String",
    nodeQueryOptions: false,
    nodesQueryOptions: false,
    firstArgOptions: { description: `Page size, 1 to ${MAX_PAGE_SIZE} (default ${DEFAULT_PAGE_SIZE})` },
    lastArgOptions: { description: `Page size from the end, 1 to ${MAX_PAGE_SIZE}` },
  },
});

builder.addScalarType("DateTime", DateTimeScalar);
builder.addScalarType("JSON", JSONResolver);
builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

export { Prisma };
