// A legacy REST route is data: its dialect, method and documented path, the schemas of its path
// parameters, query and body (zod, also the source of the OpenAPI document), the credentials it
// takes, and a handler that runs typed GraphQL operations in-process and shapes the answer.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import type { z } from "zod";

export const DIALECTS = ["aispinner", "spunto", "api-web", "api-v1", "flows"] as const;
export type Dialect = (typeof DIALECTS)[number];
export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/**
 * How a route's caller may prove who they are: `bearer` (access token, API key or machine
 * credential in Authorization), `cookie` (the session cookie), `none` (public).
 */
export type Credential = "bearer" | "cookie" | "none";

/** Runs one typed GraphQL operation as the REST request's caller; a GraphQL error throws a RestError. */
export type Run = <R, V>(document: TypedDocumentNode<R, V>, variables: V) => Promise<R>;

export interface RouteRequest<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  run: Run;
  /** The request's Idempotency-Key header, for creating operations. */
  idempotencyKey?: string;
  /** The server's health (database and pub/sub), as `/health` reports it, for the dialects' health routes. */
  health(): Promise<{ status: "ok" | "degraded" | "down" }>;
  /** How many machines of every workspace were heard from lately (a count, nothing else). */
  connectedMachines(): Promise<number>;
  /** The server's Prometheus metrics, as `/metrics` answers them (api-v1's metrics route). */
  metrics(): Promise<{ contentType: string; text: string }>;
}

export interface Route<P = any, Q = any, B = any> {
  dialect: Dialect;
  method: Method;
  /** As the dialect's document writes it: `/workspaces/{id}/graph`, `/api/workflows/:id`. */
  path: string;
  summary: string;
  auth: Credential[];
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** The success answer's shape, for the OpenAPI document. */
  response?: z.ZodType;
  /** Success status (200 unless said). */
  status?: number;
  /** The success answer's content type when it is not JSON (the handler answers an Answer with it). */
  produces?: string;
  /** On a path two dialects share (`POST /api/auth/login`): whether a body is this route's. */
  accepts?: (body: unknown) => boolean;
  handler(request: RouteRequest<P, Q, B>): Promise<unknown>;
}

/** Declares a route; only a typing aid, so handlers see their parsed params, query and body. */
export function route<P = undefined, Q = undefined, B = undefined>(definition: Route<P, Q, B>): Route<P, Q, B> {
  return definition;
}

/**
 * An answer other than success, in Spindle's vocabulary: the dialect turns it into its own body and
 * status. `code` is a GraphQL error code (NOT_FOUND, VALIDATION, ...).
 */
export class RestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "RestError";
  }
}

/**
 * A success answer beyond a route's usual JSON: another status (api-v1's 202 for a sign-up still to
 * be confirmed) and/or a text body sent as is with its own content type (Prometheus metrics).
 */
export class Answer {
  constructor(
    readonly body: unknown,
    readonly options: { status?: number; contentType?: string } = {},
  ) {}
}

export const restNotFound = (what: string) => new RestError("NOT_FOUND", `No such ${what}`);
