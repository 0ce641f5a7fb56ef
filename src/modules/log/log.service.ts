// Stored log lines of a worker, task or service: reading pages, appending batches (ingest.ts),
// following live (stream.ts) and retention (retention.ts). A source's cursors are 1, 2, 3 ... and
// never reused, so "everything after cursor N" is a stable way to page and, later, to follow.
// Retention removes old lines and records how far (prunedThrough): a reader that asks for lines
// from before that point is told which range it missed.
import { z } from "zod";
import { Prisma, type LogLevel, type LogSourceType } from "../../generated/prisma/client.js";
import { notFound, parseInput, requireId } from "../../schema/errors.js";
import { id, int, streamCursor } from "../../schema/validation.js";
import type { Database } from "../../infra/db.js";
import type { LiveStreams } from "../../infra/streams.js";
import type { DomainDeps } from "../shared/deps.js";
import type { StreamGuards } from "../shared/live.js";
import type { RequestContext } from "../shared/request.js";
import { createLogAnnouncer, createLogIngest } from "./ingest.js";
import { pruneLogs, startLogRetention } from "./retention.js";
import { logStream, type LogStreamItem } from "./stream.js";

export const LOG_LEVELS = ["DEBUG", "INFO", "WARN", "ERROR"] as const satisfies readonly LogLevel[];
export const LOG_SOURCE_TYPES = ["WORKER", "TASK", "SERVICE"] as const satisfies readonly LogSourceType[];
export const MAX_LOG_LIMIT = 1000;
export const DEFAULT_LOG_LIMIT = 100;
const cursor = streamCursor("must be a cursor from an earlier page (a whole number)");

const readInput = z
  .object({
    source: z.object({ type: z.enum(LOG_SOURCE_TYPES), id }),
    after: cursor.nullish(),
    level: z.enum(LOG_LEVELS).nullish(),
    limit: int(1, MAX_LOG_LIMIT).nullish(),
    tail: z.boolean().nullish(),
  })
  .refine((input) => !(input.tail && input.after != null), { message: "cannot be combined with after", path: ["tail"] });

export interface LogLineView {
  cursor: string;
  level: LogLevel;
  message: string;
  step?: string | null;
  at: Date;
}

export interface LogPage {
  lines: LogLineView[];
  nextCursor: string;
  hasMore: boolean;
  gap: { from: string; to: string } | null;
  finished: boolean;
  finishedAt: Date | null;
}

const streamInput = z.object({
  source: z.object({ type: z.enum(LOG_SOURCE_TYPES), id }),
  after: cursor.nullish(),
  level: z.enum(LOG_LEVELS).nullish(),
});

const recentInput = z.object({
  sourceType: z.enum(LOG_SOURCE_TYPES).nullish(),
  onlyFlowRuns: z.boolean().nullish(),
  limit: int(1, MAX_LOG_LIMIT).nullish(),
});

/** A line with the worker, task or service that wrote it. */
export interface SourcedLogLine extends LogLineView {
  sourceType: LogSourceType;
  sourceId: string;
}

const sourceNames: Record<LogSourceType, string> = { WORKER: "worker", TASK: "task", SERVICE: "service" };

export function createLogService(deps: DomainDeps & { db: Pick<Database, "withConnection">; streams: LiveStreams; guards: StreamGuards }) {
  const { prisma } = deps;
  const announcer = createLogAnnouncer(deps.pubsub, deps.log);
  const ingest = createLogIngest({ prisma, db: deps.db, announcer });
  const limits = {
    maxLinesPerSource: deps.config.logs.maxLinesPerSource,
    maxAgeSeconds: deps.config.logs.maxAgeSeconds,
    idempotencyTtlSeconds: deps.config.logs.idempotencyTtlSeconds,
  };
  let retention: ReturnType<typeof startLogRetention> | undefined;

  /** The workspace of the object that logged; the viewer must be able to read it. */
  async function authorizeSource(ctx: RequestContext, type: LogSourceType, id: string) {
    const what = sourceNames[type];
    requireId(id, what);
    const where = { where: { id }, select: { workspaceId: true } };
    const row =
      type === "WORKER"
        ? await prisma.worker.findUnique(where)
        : type === "TASK"
          ? await prisma.task.findUnique(where)
          : await prisma.service.findUnique(where);
    if (!row) throw notFound(what, id);
    await ctx.access.require(row.workspaceId, "read", { type: what, id });
    return row.workspaceId;
  }

  return {
    /**
     * A page of lines after `after` (oldest first), at `level` or above. With `tail`, the newest
     * `limit` lines instead (still oldest first), for "show me the recent logs".
     */
    async read(ctx: RequestContext, raw: unknown): Promise<LogPage> {
      const input = parseInput(readInput, raw);
      const workspaceId = await authorizeSource(ctx, input.source.type, input.source.id);
      const limit = input.limit ?? DEFAULT_LOG_LIMIT;
      const after = input.after ?? 0n;
      const source = await prisma.logSource.findUnique({ where: { sourceId: input.source.id } });
      if (!source || source.sourceType !== input.source.type || source.workspaceId !== workspaceId) {
        return { lines: [], nextCursor: after.toString(), hasMore: false, gap: null, finished: false, finishedAt: null };
      }
      const levels = input.level ? LOG_LEVELS.slice(LOG_LEVELS.indexOf(input.level)) : undefined;
      // Bounded by lastCursor as read above, so nextCursor never skips a line that commits later.
      const where = {
        sourceId: source.sourceId,
        cursor: { gt: after, lte: source.lastCursor },
        ...(levels ? { level: { in: [...levels] } } : {}),
      };
      const rows = await prisma.logLine.findMany({
        where,
        orderBy: { cursor: input.tail ? "desc" : "asc" },
        take: limit + 1,
        select: { cursor: true, level: true, message: true, step: true, at: true },
      });
      const hasMore = rows.length > limit;
      const page = rows.slice(0, limit);
      if (input.tail) page.reverse();
      const lastCursor = source.lastCursor > after ? source.lastCursor : after;
      const nextCursor = hasMore && !input.tail ? page[page.length - 1]!.cursor : lastCursor;
      const gap =
        !input.tail && after < source.prunedThrough ? { from: (after + 1n).toString(), to: source.prunedThrough.toString() } : null;
      return {
        lines: page.map((l) => ({ ...l, cursor: l.cursor.toString() })),
        nextCursor: nextCursor.toString(),
        hasMore,
        gap,
        finished: source.finishedAt != null,
        finishedAt: source.finishedAt,
      };
    },

    /**
     * The newest lines across a workspace's sources (of one type, or only flow runs'), newest first
     * by the time each line was written, for a view of "what happened lately" (flows' GET /api/logs).
     */
    async recent(ctx: RequestContext, workspaceId: string, raw: unknown): Promise<SourcedLogLine[]> {
      const input = parseInput(recentInput, raw, "");
      await ctx.access.require(requireId(workspaceId, "workspace"), "read");
      const rows = await prisma.$queryRaw<{ sourceId: string; sourceType: LogSourceType; cursor: bigint; level: LogLevel; message: string; step: string | null; at: Date }[]>`
        SELECT l."sourceId"::text AS "sourceId", s."sourceType"::text AS "sourceType", l."cursor", l."level"::text AS "level", l."message", l."step", l."at"
          FROM "LogLine" l
          JOIN "LogSource" s ON s."sourceId" = l."sourceId"
         WHERE s."workspaceId" = ${workspaceId}::uuid
           ${input.sourceType ? Prisma.sql`AND s."sourceType" = ${input.sourceType}::"LogSourceType"` : Prisma.empty}
           ${input.onlyFlowRuns ? Prisma.sql`AND s."sourceId" IN (SELECT "id" FROM "Task" WHERE "workspaceId" = ${workspaceId}::uuid AND "flowId" IS NOT NULL)` : Prisma.empty}
         ORDER BY l."at" DESC, l."sourceId" DESC, l."cursor" DESC
         LIMIT ${input.limit ?? DEFAULT_LOG_LIMIT}`;
      return rows.map((row) => ({ ...row, cursor: row.cursor.toString() }));
    },

    /** Appends a batch of lines (see ingest.ts). */
    append: ingest.append,

    /**
     * A live stream of the source's lines after `after`. Authorizes now (a stranger gets NOT_FOUND
     * before any stream exists); the engine's guard checks again before every read.
     */
    async stream(ctx: RequestContext, raw: unknown): Promise<AsyncIterableIterator<LogStreamItem>> {
      const input = parseInput(streamInput, raw, "");
      const workspaceId = await authorizeSource(ctx, input.source.type, input.source.id);
      const source = await prisma.logSource.findUnique({ where: { sourceId: input.source.id }, select: { sourceType: true } });
      if (source && source.sourceType !== input.source.type) throw notFound(sourceNames[input.source.type], input.source.id);
      return logStream({
        streams: deps.streams,
        db: deps.db,
        guard: await deps.guards.forUser(ctx, workspaceId),
        sourceId: input.source.id,
        after: input.after ?? 0n,
        levels: input.level ? LOG_LEVELS.slice(LOG_LEVELS.indexOf(input.level)) : undefined,
      });
    },

    /** One retention pass now (the periodic job calls the same). */
    prune: (now?: Date) => pruneLogs(deps.work, limits, now),

    /** Starts the periodic retention job (app start). */
    start() {
      retention ??= startLogRetention({ work: deps.work, limits, intervalSeconds: deps.config.logs.retentionIntervalSeconds, log: deps.log });
    },

    /** Stops retention and sends pending announcements (app stop). */
    async stop() {
      announcer.flush();
      await retention?.stop();
      retention = undefined;
    },
  };
}

export type LogService = ReturnType<typeof createLogService>;
