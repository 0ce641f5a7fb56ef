// One live `logs` stream, on the live-stream engine (infra/streams.ts): the source's stored lines
// after the client's cursor, then new ones as they are announced, with no gap and no duplicate. A
// notice only says the source has new lines (or finished); the stream reads them from the store,
// bounded by the source's lastCursor as read first, and batches commit in cursor order, so what it
// reads is gap-free and the cursor it hands out is a safe place to resume. The streams of a source
// share its reads (from the lowest cursor among them): a thousand viewers cost one query per batch.
import type { LogLevel } from "../../generated/prisma/client.js";
import type { Database } from "../../infra/db.js";
import { on, type LiveStreams, type StreamEnd, type StreamGuard } from "../../infra/streams.js";

export type LogStreamEnd = "SOURCE_FINISHED" | "ACCESS_REVOKED" | "CREDENTIAL_EXPIRED" | "CREDENTIAL_REVOKED";

export interface LogStreamLine {
  cursor: string;
  level: LogLevel;
  message: string;
  step: string | null;
  at: Date;
}

export interface LogStreamItem {
  lines: LogStreamLine[];
  /** Everything up to here was delivered (or filtered out by level): reconnect with it as `after`. */
  cursor: string;
  gap: { from: string; to: string } | null;
  finished: boolean;
  end: LogStreamEnd | null;
}

export interface LogStreamOptions {
  streams: LiveStreams;
  db: Pick<Database, "withConnection">;
  guard: StreamGuard;
  sourceId: string;
  after: bigint;
  /** Levels to deliver (all when unset). */
  levels?: readonly LogLevel[];
  /** Lines per item read from the store. */
  pageLines?: number;
}

/** What one read of the store found after a cursor, shared by every stream that asked at or after it. */
interface Page {
  /** The cursor the page was read after (the lowest any of its readers asked for). */
  after: bigint;
  lines: LogStreamLine[];
  lastCursor: bigint;
  prunedThrough: bigint;
  /** More stored lines than a page after `after`. */
  full: boolean;
  finished: boolean;
}

// The source's bounds and the page after `after` in one statement (one snapshot), without Prisma:
// this read runs once per new batch for every source someone follows. `at` is stored as UTC
// without a zone; AT TIME ZONE 'UTC' hands it over as an instant.
const PAGE_SQL = `
SELECT s."lastCursor"::text AS "lastCursor", s."prunedThrough"::text AS "prunedThrough", s."finishedAt" IS NOT NULL AS "finished",
       l."cursor"::text AS "cursor", l."level"::text AS "level", l."message", l."step", l."at" AT TIME ZONE 'UTC' AS "at"
  FROM "LogSource" s
  LEFT JOIN LATERAL (
    SELECT "cursor", "level", "message", "step", "at" FROM "LogLine"
     WHERE "sourceId" = s."sourceId" AND "cursor" > greatest($2::bigint, s."prunedThrough") AND "cursor" <= s."lastCursor"
       AND ($4::text[] IS NULL OR "level"::text = ANY($4::text[]))
     ORDER BY "cursor"
     LIMIT $3
  ) l ON true
 WHERE s."sourceId" = $1::uuid
 ORDER BY l."cursor"`;

interface PageRow {
  lastCursor: string;
  prunedThrough: string;
  finished: boolean;
  cursor: string | null;
  level: LogLevel | null;
  message: string | null;
  step: string | null;
  at: Date | null;
}

async function readPage(db: LogStreamOptions["db"], sourceId: string, after: bigint, pageLines: number, levels: readonly LogLevel[] | undefined): Promise<Page | null> {
  const rows = await db.withConnection((sql) => sql.query<PageRow>(PAGE_SQL, [sourceId, after.toString(), pageLines + 1, levels ?? null]));
  const source = rows[0];
  // A source that never logged has no row yet: nothing to send until its first lines.
  if (!source) return null;
  const found = rows.filter((row) => row.cursor !== null);
  return {
    after,
    lines: found.slice(0, pageLines).map((row) => ({
      cursor: row.cursor!,
      level: row.level!,
      message: row.message!,
      step: row.step,
      at: row.at instanceof Date ? row.at : new Date(row.at!),
    })),
    lastCursor: BigInt(source.lastCursor),
    prunedThrough: BigInt(source.prunedThrough),
    full: found.length > pageLines,
    finished: source.finished,
  };
}

export function logStream(options: LogStreamOptions): AsyncIterableIterator<LogStreamItem> {
  const { streams, db, sourceId, levels } = options;
  const pageLines = options.pageLines ?? 500;
  const levelsKey = levels ? levels.join(",") : "all";
  let position = options.after;

  const item = (lines: LogStreamLine[], gap: LogStreamItem["gap"], end: LogStreamEnd | null = null): LogStreamItem => ({
    lines,
    cursor: position.toString(),
    gap,
    finished: end === "SOURCE_FINISHED",
    end,
  });

  return streams.open<LogStreamItem>({
    watches: [
      on("logs", sourceId, (notice, control) => {
        // A notice for lines this stream already read (it read past them while the notice travelled) needs no read.
        if (notice.finished || notice.lastCursor === undefined || BigInt(notice.lastCursor) > position) control.wake();
      }),
    ],
    guard: options.guard,
    async read() {
      // Streams of this source at any cursor share the read: it starts after the lowest of them.
      const page = await streams.gather(`logs:${sourceId}:${levelsKey}:${pageLines}`, position, (asks) =>
        readPage(db, sourceId, asks.reduce((low, at) => (at < low ? at : low)), pageLines, levels),
      );
      if (!page) return { items: [] };
      const gap = position < page.prunedThrough ? { from: (position + 1n).toString(), to: page.prunedThrough.toString() } : null;
      const start = position < page.prunedThrough ? page.prunedThrough : position;
      const lines = start === page.after ? page.lines : page.lines.filter((line) => BigInt(line.cursor) > start);
      // A full page stops at its last line; otherwise everything up to lastCursor was read.
      const through = page.full ? BigInt(page.lines[page.lines.length - 1]!.cursor) : page.lastCursor;
      position = through > start ? through : start;
      const items = lines.length > 0 || gap ? [item(lines, gap)] : [];
      return { items, more: page.full, end: page.finished && !page.full ? { reason: "FINISHED" } : undefined };
    },
    last(end: StreamEnd) {
      if (end.reason === "FAILED") return end.error;
      return item([], null, end.reason === "FINISHED" ? "SOURCE_FINISHED" : end.reason);
    },
  });
}
