// Errors a client can act on: a stable code, a sentence saying what to do, and for bad input the
// fields at fault. Services throw these; GraphQL shows them as they are and REST maps the code to a
// status. Anything else is masked (with the request id) by the server.
import { GraphQLError } from "graphql";
import type { z } from "zod";
import { isUuid } from "./validation.js";

export const errorCodes = {
  NOT_AUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  VALIDATION: 400,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  /** The request itself is malformed (the variables or extensions parameter is not JSON, ...). */
  BAD_REQUEST: 400,
  /** A dependency (the database) cannot be reached right now: retry after `Retry-After` seconds. */
  SERVICE_UNAVAILABLE: 503,
} as const;
export type ErrorCode = keyof typeof errorCodes;

export interface FieldProblem {
  field: string;
  message: string;
}

export class AppError extends GraphQLError {
  constructor(
    readonly code: ErrorCode,
    message: string,
    extra: { fields?: FieldProblem[]; headers?: Record<string, string>; [key: string]: unknown } = {},
  ) {
    const { headers, ...rest } = extra;
    super(message, {
      extensions: { code, ...rest, http: { status: errorCodes[code], ...(headers ? { headers } : {}) } },
    });
  }
}

export const notAuthenticated = (message = "Sign in first: send an access token, API key or session cookie") =>
  new AppError("NOT_AUTHENTICATED", message, { headers: { "WWW-Authenticate": 'Bearer realm="spindle"' } });

export const forbidden = (message: string, requiredScope?: string) =>
  new AppError("FORBIDDEN", message, requiredScope ? { requiredScope } : {});

/** Also what a stranger gets for something that exists but is not theirs. */
export const notFound = (what: string, id?: string) =>
  new AppError("NOT_FOUND", id ? `No ${what} with id ${id}` : `No such ${what}`);

export const conflict = (message: string, extra: Record<string, unknown> = {}) =>
  new AppError("CONFLICT", message, extra);

export const rateLimited = (retryAfterSeconds: number, message: string) =>
  new AppError("RATE_LIMITED", message, {
    retryAfter: retryAfterSeconds,
    headers: { "Retry-After": String(retryAfterSeconds) },
  });

export const badRequest = (message: string) => new AppError("BAD_REQUEST", message);

export const serviceUnavailable = (retryAfterSeconds: number, message: string) =>
  new AppError("SERVICE_UNAVAILABLE", message, {
    retryAfter: retryAfterSeconds,
    headers: { "Retry-After": String(retryAfterSeconds) },
  });

export function validationError(fields: FieldProblem[]): AppError {
  const summary = fields.map((f) => `${f.field}: ${f.message}`).join("; ");
  return new AppError("VALIDATION", `Invalid input. ${summary}`, { fields });
}

/** Parses input with a zod schema; on failure throws VALIDATION naming each field (as `input.email`). */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, prefix = "input"): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw validationError(
    result.error.issues.map((issue) => ({
      field: [prefix, ...issue.path.map(String)].filter(Boolean).join("."),
      message: issue.message,
    })),
  );
}

/** Ids are UUIDs; anything else cannot name a row, so it is simply not found. */
export function requireId(id: string, what: string): string {
  if (!isUuid(id)) throw notFound(what, id);
  return id;
}
