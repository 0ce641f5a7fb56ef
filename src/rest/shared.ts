// Helpers every dialect uses: naming GraphQL's fields in a VALIDATION answer as the dialect's client
// wrote them, reading a whole connection page by page, and an operation's text.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print } from "graphql";
import { RestError, restNotFound, route, type Dialect, type Route, type RouteRequest, type Run } from "./route.js";

/** `[graphql, dialect]` field-name prefixes, first match wins: `["input.projectKey", "body.projectKey"]`. */
export type FieldNames = readonly (readonly [graphql: string, dialect: string])[];

export function renameField(names: FieldNames, field: string): string {
  const match = names.find(([from]) => field === from || field.startsWith(`${from}.`));
  return match ? match[1] + field.slice(match[0].length) : field;
}

/** A Run whose VALIDATION errors name fields as the dialect's client sent them. */
export function namingFields(run: Run, names: FieldNames): Run {
  return async (document, variables) => {
    try {
      return await run(document, variables);
    } catch (error) {
      const fields = error instanceof RestError && error.code === "VALIDATION" ? (error.extensions.fields as { field: string; message: string }[] | undefined) : undefined;
      if (!fields) throw error;
      const named = fields.map((f) => ({ field: renameField(names, f.field), message: f.message }));
      throw new RestError("VALIDATION", `Invalid input. ${named.map((f) => `${f.field}: ${f.message}`).join("; ")}`, { ...(error as RestError).extensions, fields: named });
    }
  };
}

/** A route factory for one dialect whose handlers' operations answer bad input in that dialect's field names. */
export function dialectRoute(dialect: Dialect, names: FieldNames) {
  return <P = undefined, Q = undefined, B = undefined>(definition: Omit<Route<P, Q, B>, "dialect">): Route<P, Q, B> =>
    route<P, Q, B>({
      ...definition,
      dialect,
      handler: (request: RouteRequest<P, Q, B>) => definition.handler({ ...request, run: namingFields(request.run, names) }),
    });
}

/** An answer that read the caller's default workspace beside what it is about (`defaultWorkspace { id }`). */
export type WithDefaultWorkspace = { defaultWorkspace?: { id: string } | null };

/** The caller's default workspace from such an answer; a caller in none gets a 404 saying so. */
export function defaultWorkspaceId(answer: WithDefaultWorkspace): string {
  if (!answer.defaultWorkspace) throw new RestError("NOT_FOUND", "You are in no workspace yet: create one or accept an invitation");
  return answer.defaultWorkspace.id;
}

/**
 * For dialects whose paths name no workspace: the object `pick` takes from an answer that also read
 * the caller's default workspace, only if it belongs to it. One of another workspace (or a caller in
 * none) is the same 404 as an unknown id.
 */
export function inDefaultWorkspace<R extends WithDefaultWorkspace, T extends { workspaceId: string }>(answer: R, pick: (r: R) => T, what: string): T {
  const found = pick(answer);
  if (found.workspaceId !== answer.defaultWorkspace?.id) throw restNotFound(what);
  return found;
}

/** Connections hand out at most this many nodes a page. */
export const PAGE = 100;

interface Page<N> {
  pageInfo: { hasNextPage: boolean; endCursor?: string | null };
  edges: { node: N }[];
}

/** Every node of a connection, page by page: up to `limit`, after skipping `offset` (where the connection takes one). */
export async function collect<N>(
  page: (args: { first: number; after?: string; offset?: number }) => Promise<Page<N>>,
  limit = Number.POSITIVE_INFINITY,
  offset?: number,
): Promise<N[]> {
  const nodes: N[] = [];
  let after: string | undefined;
  for (;;) {
    // The offset counts from the cursor when there is one, so it goes with the first page only.
    const { pageInfo, edges } = await page({ first: Math.min(PAGE, limit - nodes.length), after, offset: after ? undefined : offset });
    nodes.push(...edges.map((edge) => edge.node));
    if (!pageInfo.hasNextPage || !pageInfo.endCursor || nodes.length >= limit) return nodes;
    after = pageInfo.endCursor;
  }
}

/** An operation document as the text a GraphQL request carries. */
export type OperationPrinter = (document: TypedDocumentNode<any, any>) => string;

/**
 * A printer that prints each document once and keeps the text: one per server, made by the
 * composition root (app.ts) for the REST router and the dialects' sockets.
 */
export function createOperationPrinter(): OperationPrinter {
  const printed = new WeakMap<object, string>();
  return (document) => {
    let text = printed.get(document);
    if (!text) {
      text = print(document);
      printed.set(document, text);
    }
    return text;
  };
}
