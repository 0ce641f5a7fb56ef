// The shared vocabulary of input checks. Modules (and the REST layer) build their zod schemas from
// these pieces, so "a name", "text" or "JSON" mean the same everywhere, and no value that passes
// can make PostgreSQL (or Prisma on the way there) fail. The GraphQL input guard (input-guard.ts)
// applies the generic part of the same rules to every argument before any resolver runs.
import { z } from "zod";

export const INPUT_LIMITS = {
  /**
   * Items in one GraphQL list argument. The largest legitimate lists are saveGraph's (5000 edges,
   * 2000 blocks) and appendLogs' (1000 lines); a filter list has a handful of values.
   */
  listLength: 10_000,
  /** Nesting of objects and arrays inside one JSON value (a graph block's cfg, a task's input). */
  jsonDepth: 32,
  /**
   * Magnitude of a number. Prisma writes a Float parameter with 16 significant digits, which rounds
   * the largest doubles (above about 1.797693134862315e308) past PostgreSQL's float8 maximum: "out
   * of range for type double precision".
   */
  number: 1e308,
} as const;

// Without the `u` flag, a regular expression sees UTF-16 code units: a high surrogate not followed
// by a low one, or a low one not preceded by a high one, is a lone surrogate.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Why PostgreSQL cannot store this text, or null. It refuses NUL in text and in JSON; a lone
 * surrogate is not Unicode at all (Prisma cannot even encode it for the database).
 */
export function textProblem(value: string): string | null {
  if (value.includes("\u0000")) return "must not contain NUL characters (\\u0000)";
  if (LONE_SURROGATE.test(value)) return "must be valid Unicode (it holds a lone surrogate, half of a UTF-16 pair)";
  return null;
}

export function numberProblem(value: number): string | null {
  if (!Number.isFinite(value)) return "must be a finite number";
  if (Math.abs(value) > INPUT_LIMITS.number) return `must be between -${INPUT_LIMITS.number} and ${INPUT_LIMITS.number}`;
  return null;
}

export interface ValueProblem {
  /** Keys and indexes from the value's root to the part at fault. */
  path: (string | number)[];
  message: string;
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === "object" && !Array.isArray(value);

/**
 * The first part of a JSON value the database could not store: text (keys included) or a number
 * out of bounds, or nesting deeper than INPUT_LIMITS.jsonDepth. Iterative, so a value nested
 * 20,000 deep costs a walk to depth 33, not a stack overflow.
 */
export function jsonProblem(root: unknown): ValueProblem | null {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value: root, path: [] }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (typeof value === "string") {
      const message = textProblem(value);
      if (message) return { path, message };
    } else if (typeof value === "number") {
      const message = numberProblem(value);
      if (message) return { path, message };
    } else if (value !== null && typeof value === "object") {
      if (path.length >= INPUT_LIMITS.jsonDepth) {
        return { path: [], message: `must not nest objects and arrays more than ${INPUT_LIMITS.jsonDepth} levels deep` };
      }
      for (const [key, item] of Object.entries(value)) {
        const message = textProblem(key);
        if (message) return { path: [...path, key], message: `has a key that ${message}` };
        stack.push({ value: item, path: [...path, Array.isArray(value) ? Number(key) : key] });
      }
    }
  }
  return null;
}

const kib = (bytes: number) => `${Math.ceil(bytes / 1024)} KiB`;

/** Checks shared by the JSON schemas: storable, then (only then, it is safe to serialize) small enough. */
function checkJson(value: unknown, maxBytes: number, ctx: z.RefinementCtx) {
  const problem = jsonProblem(value);
  if (problem) return void ctx.addIssue({ code: "custom", path: problem.path, message: problem.message });
  const size = Buffer.byteLength(JSON.stringify(value) ?? "", "utf8");
  if (size > maxBytes) ctx.addIssue({ code: "custom", message: `must be at most ${kib(maxBytes)} of JSON (this is ${kib(size)})` });
}

const storable = (value: string, ctx: z.RefinementCtx) => {
  const message = textProblem(value);
  if (message) ctx.addIssue({ code: "custom", message });
};

/** Text the database can store, up to `max` characters (kept as sent; empty allowed). */
export const text = (max: number) => z.string().max(max, `must be at most ${max} characters`).superRefine(storable);

/** Text the database can store, up to `maxBytes` in UTF-8 (code, log lines: sized in bytes, not characters). */
export const utf8Text = (maxBytes: number) =>
  z
    .string()
    .refine((value) => Buffer.byteLength(value, "utf8") <= maxBytes, `must be at most ${maxBytes >= 1024 ? kib(maxBytes) : `${maxBytes} bytes`} in UTF-8`)
    .superRefine(storable);

/** A name or title: trimmed, 1 to `max` characters. */
export const name = (max: number) =>
  z.string().trim().min(1, "must not be empty").max(max, `must be at most ${max} characters`).superRefine(storable);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (value: string) => UUID.test(value);

/** An id the input must get right (VALIDATION when it is not a UUID). */
export const uuid = (what: string) => z.uuid(`must be ${what} id`);

/**
 * An id looked up afterwards (requireId, for UUIDs): a malformed one is NOT_FOUND, exactly like an
 * id that does not exist or is not the caller's.
 */
export const id = z.string();

const MAX_STREAM_CURSOR = 2n ** 63n - 1n;
/** A cursor of a stored stream (log lines, workspace events): digits that fit the database's int8. */
export const streamCursor = (message: string) =>
  z
    .string()
    .regex(/^\d{1,19}$/, message)
    .transform((digits) => BigInt(digits))
    .refine((n) => n <= MAX_STREAM_CURSOR, "is too large to be a cursor");

export const IDEMPOTENCY_KEY_MAX = 200;
export const idempotencyKey = text(IDEMPOTENCY_KEY_MAX).min(1, `must be 1 to ${IDEMPOTENCY_KEY_MAX} characters`);

/** Any JSON value the database can store, at most `maxBytes` once serialized. */
export const jsonValue = (maxBytes: number) => z.unknown().superRefine((value, ctx) => checkJson(value, maxBytes, ctx));

/** A JSON object (not an array or a scalar) the database can store, at most `maxBytes` serialized. */
export const jsonObject = <T extends object = Record<string, unknown>>(maxBytes: number) =>
  z.custom<T>(isObject, "must be a JSON object").superRefine((value, ctx) => checkJson(value, maxBytes, ctx));

/** Environment variables: an object of text values under names like PORT, at most `maxBytes` as JSON. */
export const envVars = (maxBytes: number) =>
  z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "names must be letters, digits and _"), text(maxBytes), {
      error: 'must be an object of string values, like {"PORT": "8080"}',
    })
    .refine((env) => Buffer.byteLength(JSON.stringify(env), "utf8") <= maxBytes, `must be at most ${kib(maxBytes)} of JSON`);

/** A number within [min, max] (zod refuses NaN and Infinity already). */
export const number = (min: number, max: number, message = `must be between ${min} and ${max}`) => z.number().min(min, message).max(max, message);

/** Any number the database can store (in a float8 column or in JSON). */
export const storableNumber = number(-INPUT_LIMITS.number, INPUT_LIMITS.number);

/** A whole number within [min, max]. */
export const int = (min: number, max: number, message = `must be ${min} to ${max}`) => z.int("must be a whole number").min(min, message).max(max, message);

/** At most `max` items. */
export const list = <T extends z.ZodType>(item: T, max: number, what = "items") => z.array(item).max(max, `at most ${max} ${what}`);

/** Short words without spaces (labels, capabilities), de-duplicated. */
export const tags = (what: string, max: number) =>
  list(name(100).regex(/^\S+$/, `a ${what} must not contain spaces`), max, `${what}s`).transform((values) => [...new Set(values)]);
