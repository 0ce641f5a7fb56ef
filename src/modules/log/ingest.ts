// Ingestion: a machine (or a user with write access) appends a batch of lines to a source. The
// batch carries a client sequence, so a retry is stored once and answers the same cursors. Lines
// are committed first, then announced on the `logs` topic, coalesced per source so a busy source
// costs a few messages a second rather than one per line.
import { z } from "zod";
import type { LogLevel, LogSourceType, PrismaClient } from "../../generated/prisma/client.js";
import type { Logger } from "../../infra/logger.js";
import type { LogLineMessage, PubSubService } from "../../infra/pubsub.js";
import { conflict, notFound, parseInput, requireId } from "../../schema/errors.js";
import { id, list, name, text, utf8Text } from "../../schema/validation.js";
import { requestHash } from "../shared/idempotency.js";
import type { RequestContext } from "../worker/worker.service.js";

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

export interface AppendResult {
  firstCursor: string;
  lastCursor: string;
  count: number;
  /** True when this batch (same source and sequence) had been stored before: nothing was added. */
  replayed: boolean;
}

/** At most one announcement per source per this many ms, from this process; more lines wait and go together. */
const COALESCE_MS = 200;
/** A pending batch this large goes at once. */
const COALESCE_LINES = 500;
const COALESCE_BYTES = 256 * 1024;

/**
 * Per-source announcements of this process. A quiet source's lines go out at once; a busy
 * source's wait for the next tick and go together, so it costs a few messages a second, not one
 * per batch. While Redis is down nothing is published (it would only wait out the retry budget);
 * only the newest line per source is kept, which is enough: a subscriber that sees a cursor beyond
 * the one it expects reads the missing range from the store.
 */
export function createLogAnnouncer(pubsub: PubSubService, log: Logger) {
  const pending = new Map<string, { lines: LogLineMessage[]; bytes: number }>();
  /** When each source was last announced (entries older than COALESCE_MS are dropped each tick). */
  const recent = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;

  function publish(sourceId: string, lines: LogLineMessage[]) {
    recent.set(sourceId, Date.now());
    try {
      pubsub.pubsub.publish("logs", sourceId, { sourceId, lines });
    } catch (error) {
      log.warn({ err: error, sourceId }, "could not announce log lines; subscribers catch up from the store");
    }
  }

  function tick() {
    timer = undefined;
    const now = Date.now();
    for (const [sourceId, at] of recent) if (now - at >= COALESCE_MS) recent.delete(sourceId);
    if (pubsub.status() === "down") {
      for (const batch of pending.values()) {
        const newest = batch.lines[batch.lines.length - 1]!;
        batch.lines = [newest];
        batch.bytes = newest.message.length;
      }
    } else {
      const batches = [...pending.entries()];
      pending.clear();
      for (const [sourceId, batch] of batches) publish(sourceId, batch.lines);
    }
    schedule();
  }

  function schedule() {
    if (!timer && (pending.size > 0 || recent.size > 0)) timer = setTimeout(tick, COALESCE_MS).unref();
  }

  return {
    add(sourceId: string, lines: LogLineMessage[]) {
      let batch = pending.get(sourceId);
      if (!batch && !recent.has(sourceId) && pubsub.status() !== "down") {
        publish(sourceId, lines);
        schedule();
        return;
      }
      if (!batch) {
        batch = { lines: [], bytes: 0 };
        pending.set(sourceId, batch);
      }
      // Two batches of one source may finish their commits out of order in this process.
      const unordered = batch.lines.length > 0 && BigInt(batch.lines[batch.lines.length - 1]!.cursor) > BigInt(lines[0]!.cursor);
      batch.lines.push(...lines);
      if (unordered) batch.lines.sort((x, y) => (BigInt(x.cursor) < BigInt(y.cursor) ? -1 : 1));
      batch.bytes += lines.reduce((sum, l) => sum + l.message.length, 0);
      if ((batch.lines.length >= COALESCE_LINES || batch.bytes >= COALESCE_BYTES) && pubsub.status() !== "down") {
        pending.delete(sourceId);
        publish(sourceId, batch.lines);
      }
      schedule();
    },
    /** Sends what is pending now (on shutdown). */
    flush() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      recent.clear();
      if (pubsub.status() !== "down") {
        for (const [sourceId, batch] of pending) publish(sourceId, batch.lines);
      }
      pending.clear();
      recent.clear();
    },
  };
}
export type LogAnnouncer = ReturnType<typeof createLogAnnouncer>;

export function createLogIngest(deps: { prisma: PrismaClient; announcer: LogAnnouncer }) {
  const { prisma, announcer } = deps;

  /** The source's workspace, if the caller may write to it: its assigned machine, or a user with write access. */
  async function authorizeWrite(ctx: RequestContext, type: LogSourceType, id: string): Promise<string> {
    const what = sourceNames[type];
    requireId(id, what);
    const where = { where: { id }, select: { workspaceId: true, machineId: true } };
    const row =
      type === "WORKER"
        ? await prisma.worker.findUnique(where)
        : type === "TASK"
          ? await prisma.task.findUnique(where)
          : await prisma.service.findUnique(where);
    if (!row) throw notFound(what, id);
    if (ctx.viewer.kind === "machine") {
      // Only the machine the work is assigned to now; another machine learns nothing.
      if (row.machineId !== ctx.viewer.machineId || row.workspaceId !== ctx.viewer.workspaceId) throw notFound(what, id);
      return row.workspaceId;
    }
    await ctx.access.require(row.workspaceId, "write", { type: what, id });
    return row.workspaceId;
  }

  return {
    async append(ctx: RequestContext, raw: unknown): Promise<AppendResult> {
      const input = parseInput(appendInput, raw);
      const { type, id: sourceId } = input.source;
      const workspaceId = await authorizeWrite(ctx, type, sourceId);
      const count = input.lines.length;
      // Keys are per source, not per caller: the machine retrying after a reassignment is the same batch.
      const caller = `logsource:${sourceId}`;
      const hash = requestHash({ lines: input.lines });
      const now = new Date();

      const outcome = await prisma.$transaction(async (tx) => {
        const inserted = await tx.$executeRaw`
          INSERT INTO "IdempotencyKey" ("caller", "operation", "key", "requestHash")
          VALUES (${caller}, 'appendLogs', ${input.sequence}, ${hash})
          ON CONFLICT DO NOTHING`;
        if (inserted === 0) {
          const first = await tx.idempotencyKey.findUniqueOrThrow({
            where: { caller_operation_key: { caller, operation: "appendLogs", key: input.sequence } },
          });
          if (first.requestHash !== hash) {
            throw conflict(`The batch with sequence "${input.sequence}" of ${sourceNames[type]} ${sourceId} was already stored with different lines`, {
              fields: [{ field: "input.sequence", message: "already used with different lines" }],
            });
          }
          const [firstCursor, lastCursor] = (first.resultId ?? "").split("-");
          return { replayed: true as const, firstCursor: firstCursor!, lastCursor: lastCursor! };
        }
        // One statement allocates the range and locks the source's row until commit, so the
        // source's batches commit in cursor order and a reader bounded by lastCursor sees no hole.
        const allocated = await tx.$queryRaw<{ lastCursor: bigint }[]>`
          INSERT INTO "LogSource" ("sourceId", "sourceType", "workspaceId", "lastCursor", "updatedAt")
          VALUES (${sourceId}::uuid, ${type}::"LogSourceType", ${workspaceId}::uuid, ${count}, ${now.toISOString()}::timestamp(3))
          ON CONFLICT ("sourceId") DO UPDATE SET "lastCursor" = "LogSource"."lastCursor" + ${count}, "updatedAt" = ${now.toISOString()}::timestamp(3)
          WHERE "LogSource"."finishedAt" IS NULL
          RETURNING "lastCursor"`;
        if (allocated.length === 0) {
          throw conflict(`Cannot append logs to ${sourceNames[type]} ${sourceId}: its log is finished`, { finished: true });
        }
        const last = BigInt(allocated[0]!.lastCursor);
        const first = last - BigInt(count) + 1n;
        // One multi-row INSERT from four arrays: Prisma's createMany takes ~10x longer for 500 rows.
        await tx.$executeRaw`
          INSERT INTO "LogLine" ("sourceId", "cursor", "level", "message", "step", "at")
          SELECT ${sourceId}::uuid, ${first}::bigint + t.i - 1, t.level::"LogLevel", t.message, t.step, t.at
          FROM unnest(${input.lines.map((l) => l.level)}::text[], ${input.lines.map((l) => l.message)}::text[], ${input.lines.map((l) => l.step ?? null)}::text[], ${input.lines.map((l) => (l.at ?? now).toISOString())}::timestamp(3)[])
            WITH ORDINALITY AS t(level, message, step, at, i)`;
        await tx.idempotencyKey.update({
          where: { caller_operation_key: { caller, operation: "appendLogs", key: input.sequence } },
          data: { resultId: `${first}-${last}` },
        });
        return { replayed: false as const, firstCursor: first.toString(), lastCursor: last.toString() };
      });

      if (!outcome.replayed) {
        const first = BigInt(outcome.firstCursor);
        announcer.add(
          sourceId,
          input.lines.map((line, i) => ({ cursor: (first + BigInt(i)).toString(), level: line.level, message: line.message, step: line.step ?? null, at: (line.at ?? now).toISOString() })),
        );
      }
      return { ...outcome, count: outcome.replayed ? Number(BigInt(outcome.lastCursor) - BigInt(outcome.firstCursor) + 1n) : count };
    },
  };
}
