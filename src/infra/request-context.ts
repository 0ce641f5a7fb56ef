// The request id (and its logger) for code that has no GraphQL context at hand, such as error masking.
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";

export const requestScope = new AsyncLocalStorage<{ requestId: string }>();

const ACCEPTABLE_ID = /^[\w.:-]{1,128}$/;

/** Keeps a caller's X-Request-Id when it is sane, so logs join up across services. */
export function pickRequestId(header: string | string[] | undefined | null): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value && ACCEPTABLE_ID.test(value) ? value : randomUUID();
}
