// One live `logs` stream: stored lines after the client's cursor, then new ones as they are
// announced, with no gap and no duplicate. The database is the truth; pub/sub only says "there is
// more". The stream listens first, replays from the store, then takes announcements, dropping
// what it already sent. Whenever it cannot trust the announcements (one skipped a cursor, its queue
// overflowed, Redis reconnected) it reads the missing range from the store instead.
//
// Written as a plain iterator, not an async generator: a generator parked in an `await` cannot be
// returned, so a client leaving a quiet stream would leave its listeners behind.
import type { Viewer } from "../../auth/viewer.js";
import type { LogLevel, PrismaClient } from "../../generated/prisma/client.js";
import type { AccessNotice, AccountEvent, LogNotice, PubSubService } from "../../infra/pubsub.js";
import { createWorkspaceAccess } from "../shared/access.js";

export type LogStreamEnd = "SOURCE_FINISHED" | "ACCESS_REVOKED" | "CREDENTIAL_EXPIRED" | "CREDENTIAL_REVOKED";

export interface LogStreamLine {
  cursor: string;
  level: LogLevel;
  message: string;
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
  prisma: PrismaClient;
  pubsub: PubSubService;
  viewer: Viewer;
  sourceId: string;
  workspaceId: string;
  after: bigint;
  /** Levels to deliver (all when unset). */
  levels?: readonly LogLevel[];
  /** When the credential that opened the stream stops being valid. */
  expiresAt?: Date;
  /** Lines per item read from the store. */
  pageLines?: number;
  /** Announced lines waiting for the client; past this the queue is dropped and the store read instead. */
  queueLines?: number;
}

/** Extra store checks after subscribing: Redis confirms a SUBSCRIBE asynchronously, so an announcement in that window can be missed. */
const SETTLE_CHECKS_MS = [1_000, 5_000];
const MAX_TIMER_MS = 2 ** 31 - 1;

const done: IteratorReturnResult<undefined> = { done: true, value: undefined };

interface TopicListeners {
  listeners: Set<(value: unknown) => void>;
  onLoss: Set<() => void>;
  iterator: AsyncIterator<unknown>;
}
const joined = new WeakMap<PubSubService, Map<string, TopicListeners>>();

/**
 * One pub/sub subscription per topic and id in this process, shared by every stream on it: a
 * thousand viewers of one source cost one listener (and one Redis channel), and each notice is
 * decoded once. The subscription starts with the first stream, synchronously, before its replay.
 */
type SharedTopic = "logs" | "access" | "account";

function subscribeTo(pubsub: PubSubService, topic: SharedTopic, id: string): AsyncIterable<unknown> {
  if (topic === "logs") return pubsub.pubsub.subscribe("logs", id);
  if (topic === "access") return pubsub.pubsub.subscribe("access", id);
  return pubsub.pubsub.subscribe("account", id);
}

function joinTopic(pubsub: PubSubService, topic: SharedTopic, id: string, listener: (value: unknown) => void, onLoss: () => void): () => void {
  let topics = joined.get(pubsub);
  if (!topics) {
    topics = new Map();
    joined.set(pubsub, topics);
  }
  const key = `${topic}:${id}`;
  let entry = topics.get(key);
  if (!entry) {
    const iterator = subscribeTo(pubsub, topic, id)[Symbol.asyncIterator]();
    const created: TopicListeners = { listeners: new Set(), onLoss: new Set(), iterator };
    entry = created;
    topics.set(key, created);
    const pump = async () => {
      for (;;) {
        const result = await iterator.next();
        if (result.done) return;
        for (const each of created.listeners) each(result.value);
      }
    };
    pump().catch(() => {
      if (topics.get(key) === created) topics.delete(key);
      for (const lost of created.onLoss) lost();
    });
  }
  const current = entry;
  current.listeners.add(listener);
  current.onLoss.add(onLoss);
  return () => {
    current.listeners.delete(listener);
    current.onLoss.delete(onLoss);
    if (current.listeners.size === 0 && topics.get(key) === current) {
      topics.delete(key);
      void current.iterator.return?.();
    }
  };
}

export class LogStream implements AsyncIterableIterator<LogStreamItem> {
  private position: bigint;
  private notices: LogNotice[] = [];
  private queuedLines = 0;
  /** The store has (or may have) lines the client has not had. Starts true: the replay. */
  private catchUp = true;
  private finishing = false;
  private endReason: LogStreamEnd | null = null;
  private closed = false;
  private wake: (() => void) | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly leaves: (() => void)[] = [];
  private readonly removeReconnectListener: () => void;
  private readonly pageLines: number;
  private readonly queueLines: number;
  private readonly levels?: Set<LogLevel>;

  /** Lines delivered so far (for tests and metrics). */
  delivered = 0;
  /** How many times the queue overflowed and the stream fell back to the store. */
  overflows = 0;

  constructor(private readonly options: LogStreamOptions) {
    this.position = options.after;
    this.pageLines = options.pageLines ?? 500;
    this.queueLines = options.queueLines ?? 5_000;
    this.levels = options.levels ? new Set(options.levels) : undefined;
    const { pubsub, viewer } = options;
    // Listening starts here, before the first read of the store (the iterator's first next() attaches the listener).
    this.listen("logs", options.sourceId, (notice) => this.onNotice(notice as LogNotice));
    if (viewer.kind === "session" || viewer.kind === "apiKey") {
      const userId = viewer.userId;
      this.listen("access", options.workspaceId, (notice) => {
        if ((notice as AccessNotice).userId === userId) void this.recheckAccess();
      });
      this.listen("account", userId, (value) => {
        const event = value as AccountEvent;
        const revoked =
          (event.type === "SESSION_REVOKED" && viewer.kind === "session" && event.subjectId === viewer.sessionId) ||
          (event.type === "API_KEY_REVOKED" && viewer.kind === "apiKey" && event.subjectId === viewer.apiKeyId);
        if (revoked) this.endWith("CREDENTIAL_REVOKED");
      });
    }
    this.removeReconnectListener = pubsub.onReconnect(() => {
      this.requestCatchUp();
      void this.recheckAccess();
    });
    for (const ms of SETTLE_CHECKS_MS) this.timers.push(setTimeout(() => this.requestCatchUp(), ms).unref());
    if (options.expiresAt) this.endAt(options.expiresAt);
  }

  /** Timers reach about 24 days; a later expiry re-arms until it is due. */
  private endAt(at: Date) {
    const left = at.getTime() - Date.now();
    if (left <= 0) return this.endWith("CREDENTIAL_EXPIRED");
    this.timers.push(setTimeout(() => this.endAt(at), Math.min(left, MAX_TIMER_MS)).unref());
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  private listen(topic: SharedTopic, id: string, handle: (value: unknown) => void) {
    this.leaves.push(joinTopic(this.options.pubsub, topic, id, handle, () => this.requestCatchUp()));
  }

  private notify() {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private requestCatchUp() {
    this.catchUp = true;
    this.notify();
  }

  private endWith(reason: LogStreamEnd) {
    this.endReason ??= reason;
    this.notify();
  }

  private onNotice(notice: LogNotice) {
    if (this.closed) return;
    if (notice.finished) {
      // Whatever is left is in the store; read it, then say the source finished.
      this.finishing = true;
      this.requestCatchUp();
      return;
    }
    if (this.queuedLines + notice.lines.length > this.queueLines) {
      // A slow client: forget the queue (bounded memory) and read from the store when it asks again.
      this.notices = [];
      this.queuedLines = 0;
      this.overflows++;
      this.requestCatchUp();
      return;
    }
    this.notices.push(notice);
    this.queuedLines += notice.lines.length;
    this.notify();
  }

  /** A fresh membership check (not a request's cache): ends the stream when the viewer lost access. */
  private async recheckAccess() {
    const { viewer, prisma, workspaceId } = this.options;
    if (viewer.kind !== "session" && viewer.kind !== "apiKey") return;
    try {
      const role = await createWorkspaceAccess(viewer, prisma).roleIn(workspaceId);
      if (!role) this.endWith("ACCESS_REVOKED");
    } catch {
      // The database is unreachable: the next notice or reconnect checks again.
    }
  }

  private item(lines: LogStreamLine[], gap: LogStreamItem["gap"] = null, end: LogStreamEnd | null = null): IteratorYieldResult<LogStreamItem> {
    this.delivered += lines.length;
    return { done: false, value: { lines, cursor: this.position.toString(), gap, finished: end === "SOURCE_FINISHED", end } };
  }

  async next(): Promise<IteratorResult<LogStreamItem>> {
    for (;;) {
      if (this.closed) return done;
      if (this.endReason) {
        const last = this.item([], null, this.endReason);
        this.close();
        return last;
      }
      if (this.catchUp) {
        const read = await this.readStore();
        if (this.closed) return done;
        if (read) return read;
        continue;
      }
      if (this.finishing) {
        this.endReason = "SOURCE_FINISHED";
        continue;
      }
      const notice = this.notices.shift();
      if (notice) {
        this.queuedLines -= notice.lines.length;
        const fresh = this.fromNotice(notice);
        if (fresh) return fresh;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  /** The next page of stored lines after the position, bounded by the source's lastCursor as read first. */
  private async readStore(): Promise<IteratorYieldResult<LogStreamItem> | null> {
    const { prisma, sourceId } = this.options;
    const source = await prisma.logSource.findUnique({
      where: { sourceId },
      select: { lastCursor: true, prunedThrough: true, finishedAt: true },
    });
    if (!source) {
      this.catchUp = false;
      return null;
    }
    let gap: LogStreamItem["gap"] = null;
    if (this.position < source.prunedThrough) {
      gap = { from: (this.position + 1n).toString(), to: source.prunedThrough.toString() };
      this.position = source.prunedThrough;
    }
    const rows =
      this.position >= source.lastCursor
        ? []
        : await prisma.logLine.findMany({
            where: {
              sourceId,
              cursor: { gt: this.position, lte: source.lastCursor },
              ...(this.levels ? { level: { in: [...this.levels] } } : {}),
            },
            orderBy: { cursor: "asc" },
            take: this.pageLines + 1,
            select: { cursor: true, level: true, message: true, step: true, at: true },
          });
    const more = rows.length > this.pageLines;
    const page = more ? rows.slice(0, this.pageLines) : rows;
    if (more) {
      this.position = page[page.length - 1]!.cursor;
    } else {
      if (source.lastCursor > this.position) this.position = source.lastCursor;
      this.catchUp = false;
      if (source.finishedAt) this.finishing = true;
    }
    if (page.length === 0 && !gap) return null;
    return this.item(
      page.map((l) => ({ cursor: l.cursor.toString(), level: l.level, message: l.message, at: l.at })),
      gap,
    );
  }

  /** The announced lines the client has not had; a skipped cursor means reading the store instead. */
  private fromNotice(notice: LogNotice): IteratorYieldResult<LogStreamItem> | null {
    let expected = this.position + 1n;
    const fresh = [];
    for (const line of notice.lines) {
      const cursor = BigInt(line.cursor);
      if (cursor < expected && fresh.length === 0) continue;
      if (cursor !== expected) {
        // Announcements from another replica came first, or one was lost: the store has them all.
        this.requestCatchUp();
        return null;
      }
      fresh.push(line);
      expected++;
    }
    if (fresh.length === 0) return null;
    this.position = expected - 1n;
    const lines = (this.levels ? fresh.filter((l) => this.levels!.has(l.level)) : fresh).map((l) => ({ ...l, at: new Date(l.at) }));
    if (lines.length === 0) return null;
    return this.item(lines);
  }

  private close() {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.removeReconnectListener();
    for (const leave of this.leaves) leave();
    this.notices = [];
    this.notify();
  }

  async return(): Promise<IteratorResult<LogStreamItem>> {
    this.close();
    return done;
  }
}
