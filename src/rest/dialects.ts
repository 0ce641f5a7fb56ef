// How each legacy dialect speaks: its error body and the HTTP status of each Spindle error code.
// Everything else about a dialect (names, casing, envelopes) lives in its own route file.
import type { Dialect } from "./route.js";

export interface DialectStyle {
  /** The error body this dialect's clients read. */
  errorBody(message: string): Record<string, unknown>;
  /** The HTTP status for a Spindle error code. */
  status(code: string): number;
}

const STATUS: Record<string, number> = {
  NOT_AUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  VALIDATION: 400,
  BAD_REQUEST: 400,
  BAD_USER_INPUT: 400,
  GRAPHQL_VALIDATION_FAILED: 400,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UPGRADE_REQUIRED: 426,
  RATE_LIMITED: 429,
  NOT_IMPLEMENTED: 501,
  SERVICE_UNAVAILABLE: 503,
};

function style(errorBody: DialectStyle["errorBody"], overrides: Record<string, number> = {}): DialectStyle {
  return { errorBody, status: (code) => overrides[code] ?? STATUS[code] ?? 500 };
}

const detail = (message: string) => ({ detail: message });
const error = (message: string) => ({ error: message });

export const DIALECT_STYLES: Record<Dialect, DialectStyle> = {
  // FastAPI-style: {"detail"}, 422 for validation.
  aispinner: style(detail, { VALIDATION: 422, BAD_REQUEST: 422, BAD_USER_INPUT: 422 }),
  // {"error"}, and only 400/401/403/404 (and 500) documented: a conflict is a bad request there.
  flows: style(error, { CONFLICT: 400 }),
  // Spunto and api-web document no error body: {"error"}, as their JavaScript families answer.
  spunto: style(error),
  "api-web": style(error),
  // FastAPI-style, as its document's framework answers: {"detail"}, 422 for validation.
  "api-v1": style(detail, { VALIDATION: 422, BAD_REQUEST: 422, BAD_USER_INPUT: 422 }),
};
