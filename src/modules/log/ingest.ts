// Ingestion: a machine (or a user with write access) appends a batch of lines to a source. The
// batch carries a client sequence, so a retry is stored once and answers the same cursors. Lines
// are committed first, then announced on the `logs` topic at once, by cursor (subscribers read
// the lines from the store, see stream.ts).
//
// The write is one SQL statement, sent without Prisma: passing 500 lines through Prisma's query
// compiler cost about 5 ms of CPU per batch (the parameters travel as JSON through its WASM),
// more than everything else an append does; node-postgres (or PGlite) takes the same arrays for
// about 0.6 ms. See BENCHMARKS.md. It is the one write outside the unit of work
// (shared/unit-of-work.ts): a single autocommit statement has no transaction to share, and its
// notices are the coalesced per-source announcements below. Its idempotency follows the same rule
// as every keyed write (shared/idempotency.ts, replayStored).
import { createHash } from "node:crypto";
import { z } from "zod";
import type { LogLevel, LogSourceType, PrismaClient } from "../../generated/prisma/client.js";
import type { Database } from "../../infra/db.js";
import type { Logger } from "../../infra/logger.js";
import type { PubSubService } from "../../infra/pubsub.js";
import { conflict, notFound, parseInput, requireId } from "../../schema/errors.js";
import { id, list, name, text, utf8Text } from "../../schema/validation.js";
import { replayStored } from "../shared/idempotency.js";
import type { RequestContext } from "../shared/request.js";

export const MAX_LINES_PER_BATCH = 1000;
export const MAX_LINE_BYTES = 16 * 1024;
export const MAX_STEP_LENGTH = 200;
export const MAX_BATCH_BYTES = 1024 * 1024;
export const MAX_SEQUENCE_LENGTH = 200;

const LEVELS = ["DEBUG", "INFO", "WARN", "ERROR"] as const satisfies readonly LogLevel[];
const SOURCE_TYPES = ["WORKER", "TASK", "SERVICE"] as const satisfies readonly LogSourceType[];
const sourceNames: Record<LogSourceType, string> = { WORKER: "worker", TASK: "task", SERVICE: "service" };

const line = z.object({ level: z.enum(LEVELS), message: utf8Text(MAX_LINE_BYTES), step: name(MAX_STEP_LENGTH).nullish(), at: z.date().nullish() });
const appendInput = z
  .object({
    source: z.object({ type: z.enum(SOURCE_TYPES), id }),
    sequence: text(MAX_SEQUENCE_LENGTH).min(1, `must be 1 to ${MAX_SEQUENCE_LENGTH} characters`),
    lines: list(line, MAX_LINES_PER_BATCH, "lines per batch").min(1, "must hold at least one line"),
  })
  .superRefine((input, ctx) => {
    const total = input.lines.reduce((sum, l) => sum + Buffer.byteLength(l.message, "utf8"), 0);
    if (total > MAX_BATCH_BYTES) {
      ctx.addIssue({ code: "custom", path: ["lines"], message: `must total at most ${MAX_BATCH_BYTES} bytes (1 MiB) of messages per batch; this batch has ${total}` });
    }
  });

type AppendInput = z.output<typeof appendInput>;

export interface AppendResult {
  firstCursor: string;
  lastCursor: string;
  count: number;
  /** True when this batch (same source and sequence) had been stored before: nothing was added. */
  replayed: boolean;
}

/** While Redis is away, how often to try again to announce the sources held meanwhile. */
const HELD_RETRY_MS = 200;

/**
 * Announces committed lines on the `logs` topic, each batch at once and by its last cursor only:
 * subscribers read the lines from the store (stream.ts), so a batch costs the same tiny message
 * whether nobody or a thousand viewers follow its source, and a viewer of a quiet source sees a
 * line as soon as it is stored. While Redis is down nothing is published (it would only wait out
 * the retry budget); the newest cursor per source is held and announced when Redis is back.
 */
export function createLogAnnouncer(pubsub: PubSubService, log: Logger) {
  const held = new Map<string, bigint>();
  let timer: NodeJS.Timeout | undefined;

  function publish(sourceId: string, lastCursor: bigint) {
    try {
      pubsub.pubsub.publish("logs", sourceId, { sourceId, lastCursor: lastCursor.toString() });
    } catch (error) {
      log.warn({ err: error, sourceId }, "could not announce log lines; subscribers catch up from the store");
    }
  }

  function retryHeld() {
    timer = undefined;
    if (pubsub.status() === "down") {
      timer = setTimeout(retryHeld, HELD_RETRY_MS).unref();
      return;
    }
    const newest = [...held];
    held.clear();
    for (const [sourceId, lastCursor] of newest) publish(sourceId, lastCursor);
  }

  return {
    add(sourceId: string, lastCursor: bigint) {
      if (pubsub.status() !== "down") return publish(sourceId, lastCursor);
      // Two batches of one source may finish their commits out of order in this process.
      if ((held.get(sourceId) ?? -1n) < lastCursor) held.set(sourceId, lastCursor);
      timer ??= setTimeout(retryHeld, HELD_RETRY_MS).unref();
    },
    /** Announces what is held now (on shutdown). */
    flush() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (pubsub.status() !== "down") for (const [sourceId, lastCursor] of held) publish(sourceId, lastCursor);
      held.clear();
    },
  };
}
export type LogAnnouncer = ReturnType<typeof createLogAnnouncer>;

/**
 * The batch's request hash, as `requestHash({ lines })` (shared/idempotency.ts) computes it: the
 * same canonical JSON (keys sorted, undefined left out, dates as ISO text), written out directly
 * because the generic version took longer than the rest of the validation for 500 lines.
 */
export function linesHash(lines: AppendInput["lines"]): string {
  let json = '{"lines":[';
  lines.forEach((line, i) => {
    json += i === 0 ? "{" : ",{";
    if (line.at !== undefined) json += `"at":${line.at === null ? "null" : JSON.stringify(line.at.toISOString())},`;
    json += `"level":${JSON.stringify(line.level)},"message":${JSON.stringify(line.message)}`;
    if (line.step !== undefined) json += `,"step":${JSON.stringify(line.step)}`;
    json += "}";
  });
  return createHash("sha256").update(`${json}]}`).digest("hex");
}

/**
 * One batch, one statement (autocommit): the source's next `count` cursors are taken (which locks
 * its row until commit, so a source's batches commit in cursor order and a reader bounded by
 * lastCursor sees no hole), the batch's sequence is recorded with that range, and the lines go in
 * from four arrays. A sequence already stored (the NOT EXISTS) or a finished source (the upsert's
 * WHERE) takes no cursor and returns no row. Two retries of one batch racing: the second waits
 * for the first's row lock, then its key INSERT fails on the primary key and the whole statement
 * rolls back (cursors included); the caller then reads the stored answer.
 */
const APPEND_SQL = `
WITH "source" AS (
  INSERT INTO "LogSource" AS s ("sourceId", "sourceType", "workspaceId", "lastCursor", "updatedAt")
  SELECT $1::uuid, $2::"LogSourceType", $3::uuid, $4::bigint, $5::timestamp(3)
   WHERE NOT EXISTS (SELECT 1 FROM "IdempotencyKey" WHERE "caller" = $6 AND "operation" = 'appendLogs' AND "key" = $7)
  ON CONFLICT ("sourceId") DO UPDATE SET "lastCursor" = s."lastCursor" + $4::bigint, "updatedAt" = $5::timestamp(3)
   WHERE s."finishedAt" IS NULL
  RETURNING s."lastCursor"
), "key" AS (
  INSERT INTO "IdempotencyKey" ("caller", "operation", "key", "requestHash", "resultId")
  SELECT $6, 'appendLogs', $7, $8, ("lastCursor" - $4::bigint + 1)::text || '-' || "lastCursor"::text FROM "source"
), "lines" AS (
  INSERT INTO "LogLine" ("sourceId", "cursor", "level", "message", "step", "at")
  SELECT $1::uuid, "source"."lastCursor" - $4::bigint + t.i, t.level::"LogLevel", t.message, t.step, coalesce(t.at, $5::timestamp(3))
    FROM "source", unnest($9::text[], $10::text[], $11::text[], $12::timestamp(3)[]) WITH ORDINALITY AS t(level, message, step, at, i)
)
SELECT "lastCursor"::text AS "lastCursor" FROM "source"`;

const SOURCE_SQL: Record<LogSourceType, string> = {
  WORKER: `SELECT "workspaceId"::text AS "workspaceId", "machineId"::text AS "machineId" FROM "Worker" WHERE "id" = $1::uuid`,
  TASK: `SELECT "workspaceId"::text AS "workspaceId", "machineId"::text AS "machineId" FROM "Task" WHERE "id" = $1::uuid`,
  SERVICE: `SELECT "workspaceId"::text AS "workspaceId", "machineId"::text AS "machineId" FROM "Service" WHERE "id" = $1::uuid`,
};

/** node-postgres and PGlite raise PostgreSQL's own error here (no Prisma in between). */
const isUniqueViolation = (error: unknown) => (error as { code?: unknown } | null)?.code === "23505";

export function createLogIngest(deps: { prisma: PrismaClient; db: Pick<Database, "withConnection">; announcer: LogAnnouncer }) {
  const { prisma, db, announcer } = deps;

  /** The source's workspace, if the caller may write to it: its assigned machine, or a user with write access. */
  async function authorizeWrite(ctx: RequestContext, type: LogSourceType, id: string): Promise<string> {
    const what = sourceNames[type];
    requireId(id, what);
    // Plain SQL like the write: a Prisma lookup spent about 0.7 ms of CPU compiling its query.
    const [row] = await db.withConnection((sql) => sql.query<{ workspaceId: string; machineId: string | null }>(SOURCE_SQL[type], [id]));
    if (!row) throw notFound(what, id);
    if (ctx.viewer.kind === "machine") {
      // Only the machine the work is assigned to now; another machine learns nothing.
      if (row.machineId !== ctx.viewer.machineId || row.workspaceId !== ctx.viewer.workspaceId) throw notFound(what, id);
      return row.workspaceId;
    }
    await ctx.access.require(row.workspaceId, "write", { type: what, id });
    return row.workspaceId;
  }

  /** Stores the batch; null when it took no cursor (stored before, or the source finished). */
  async function store(input: AppendInput, workspaceId: string, caller: string, hash: string): Promise<bigint | null> {
    const { lines } = input;
    const now = new Date().toISOString();
    const params = [
      input.source.id,
      input.source.type,
      workspaceId,
      lines.length,
      now,
      caller,
      input.sequence,
      hash,
      lines.map((l) => l.level),
      lines.map((l) => l.message),
      lines.map((l) => l.step ?? null),
      lines.map((l) => (l.at ? l.at.toISOString() : null)),
    ];
    try {
      const [row] = await db.withConnection((sql) => sql.query<{ lastCursor: string }>(APPEND_SQL, params));
      return row ? BigInt(row.lastCursor) : null;
    } catch (error) {
      if (isUniqueViolation(error)) return null;
      throw error;
    }
  }

  /** Why a batch took no cursor: the answer stored for its sequence, or the source's end. */
  async function stored(input: AppendInput, caller: string, hash: string): Promise<AppendResult | null> {
    const { type, id: sourceId } = input.source;
    const first = await prisma.idempotencyKey.findUnique({
      where: { caller_operation_key: { caller, operation: "appendLogs", key: input.sequence } },
    });
    if (first) {
      const range = replayStored(first, hash, () =>
        conflict(`The batch with sequence "${input.sequence}" of ${sourceNames[type]} ${sourceId} was already stored with different lines`, {
          fields: [{ field: "input.sequence", message: "already used with different lines" }],
        }),
      );
      const [firstCursor, lastCursor] = range.split("-") as [string, string];
      return { replayed: true, firstCursor, lastCursor, count: Number(BigInt(lastCursor) - BigInt(firstCursor) + 1n) };
    }
    const source = await prisma.logSource.findUnique({ where: { sourceId }, select: { finishedAt: true } });
    if (source?.finishedAt) throw conflict(`Cannot append logs to ${sourceNames[type]} ${sourceId}: its log is finished`, { finished: true });
    // The key was there when the statement began and gone when this looked (retention): try again.
    return null;
  }

  return {
    async append(ctx: RequestContext, raw: unknown): Promise<AppendResult> {
      const input = parseInput(appendInput, raw);
      const { id: sourceId } = input.source;
      const workspaceId = await authorizeWrite(ctx, input.source.type, sourceId);
      // Keys are per source, not per caller: the machine retrying after a reassignment is the same batch.
      const caller = `logsource:${sourceId}`;
      const hash = linesHash(input.lines);
      for (let attempt = 1; ; attempt++) {
        const last = await store(input, workspaceId, caller, hash);
        if (last === null) {
          const answer = await stored(input, caller, hash);
          if (answer) return answer;
          if (attempt < 3) continue;
          throw new Error(`appendLogs: the batch of ${sourceId} took no cursor and no answer was stored for it`);
        }
        const count = input.lines.length;
        announcer.add(sourceId, last);
        const first = last - BigInt(count) + 1n;
        return { replayed: false, firstCursor: first.toString(), lastCursor: last.toString(), count };
      }
    },
  };
}
