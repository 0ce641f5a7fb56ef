// Ships the output of everything the agent runs to the server's logs, line by line, in order.
//
// Lines wait in one queue per source (worker, task, service) and go out in batches of at most
// BATCH_LINES / BATCH_BYTES. Each line is made storable first (no NUL, no lone surrogate, at most
// 16 KiB): the server refuses a whole batch for one line it cannot store. Each batch has a sequence
// number fixed before its first try, so a retry after a lost answer is stored once (appendLogs is
// idempotent per source and sequence). A source's next batch leaves only after the previous one was
// stored: the server keeps each source's order.
//
// While the server is unreachable lines wait, up to `maxBufferedLines` in all. Past that bound new
// lines are dropped and counted per source; as soon as there is room again (a batch was stored, or
// the source writes again) a WARN line says how many lines were dropped and between which times, so
// a gap is never silent, not even at the end of a source's output.
import { randomBytes } from "node:crypto";
import { AgentAppendLogsDocument, type LogLevel, type LogSourceType } from "../generated/agent-graphql.js";
import { backoff, describe, Refused, sleep, type AgentClient } from "./client.js";
import type { AgentLog } from "./log.js";

const BATCH_LINES = 500;
/**
 * Counted in JSON, as the lines travel: the server reads request bodies up to 1 MiB, and escapes
 * make a line's JSON up to six times its message ("\u001b" for each ESC of colored output).
 */
const BATCH_BYTES = 512 * 1024;
/** The server's limit per line (16 KiB); longer lines are cut, with a marker. */
const MAX_LINE_BYTES = 16 * 1024;
const FLUSH_MS = 100;

export interface LogSource {
  type: LogSourceType;
  id: string;
}

interface Line {
  level: LogLevel;
  message: string;
  at: string;
  step?: string;
}

interface Gap {
  count: number;
  first: string;
  last: string;
  /** Why they were dropped, as the WARN line says it. */
  why: string;
}

interface Queue {
  source: LogSource;
  lines: Line[];
  gap?: Gap;
  /** The batch being sent (kept whole across retries: same lines, same sequence). */
  inFlight?: { sequence: string; lines: Line[] };
  /** Refused for good (finished or deleted source): further lines are dropped. */
  closed?: string;
}

export interface LogShipperOptions {
  maxBufferedLines: number;
  /** Bytes of messages waiting, over all sources (default 64 MiB): a bound on memory, whatever the lines' length. */
  maxBufferedBytes?: number;
}

export class LogShipper {
  private readonly queues = new Map<string, Queue>();
  private buffered = 0;
  private bufferedBytes = 0;
  /** Batch sequences are unique per agent run and source; the run id keeps them apart across restarts. */
  private readonly runId = randomBytes(6).toString("hex");
  private sequence = 0;
  private wake?: () => void;
  private readonly stopped = new AbortController();
  private readonly pump: Promise<void>;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly client: AgentClient,
    private readonly log: AgentLog,
    private readonly options: LogShipperOptions,
  ) {
    this.pump = this.run();
  }

  /** Queues one line of a source's output. */
  write(source: LogSource, level: LogLevel, message: string, step?: string) {
    const queue = this.queueOf(source);
    if (queue.closed) return;
    const at = new Date().toISOString();
    if (this.full()) {
      this.dropped(queue, 1, at, at, `the server was unreachable and the agent's buffer (${this.options.maxBufferedLines} lines, ${this.maxBytes / 1024 / 1024} MiB) was full`);
      return;
    }
    this.reportGap(queue, at);
    this.push(queue, { level, message: cut(storable(message)), at, step });
  }

  /** Resolves once every line queued so far for this source was stored (or refused for good), or after `timeoutMs`. */
  async flush(source?: LogSource, timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const pending = () =>
      source ? this.pendingOf(this.queues.get(key(source))) : [...this.queues.values()].some((queue) => this.pendingOf(queue));
    while (pending()) {
      if (Date.now() >= deadline) return false;
      this.wake?.();
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve);
        setTimeout(resolve, Math.min(200, Math.max(1, deadline - Date.now()))).unref();
      });
    }
    return true;
  }

  /** Lines still waiting, over all sources. */
  get size() {
    return this.buffered;
  }

  /** Sends what it can within `timeoutMs`, then stops. */
  async close(timeoutMs: number) {
    await this.flush(undefined, timeoutMs);
    this.stopped.abort();
    this.wake?.();
    await this.pump;
  }

  /** Forgets a source that ended (its lines were flushed before). */
  forget(source: LogSource) {
    const queue = this.queues.get(key(source));
    if (queue && !this.pendingOf(queue)) this.queues.delete(key(source));
  }

  /** Lines to send, or a gap still to report. */
  private pendingOf(queue: Queue | undefined): boolean {
    return Boolean(queue && !queue.closed && (this.sendable(queue) || queue.gap));
  }

  private sendable(queue: Queue): boolean {
    return !queue.closed && (queue.lines.length > 0 || Boolean(queue.inFlight));
  }

  private get maxBytes() {
    return this.options.maxBufferedBytes ?? 64 * 1024 * 1024;
  }

  private full(): boolean {
    return this.buffered >= this.options.maxBufferedLines || this.bufferedBytes >= this.maxBytes;
  }

  /** Counts lines that will not be stored; the WARN line about them goes out once there is room. */
  private dropped(queue: Queue, count: number, first: string, last: string, why: string) {
    queue.gap = queue.gap ? { ...queue.gap, count: queue.gap.count + count, last } : { count, first, last, why };
  }

  /** Lines leave the buffer (stored, or refused for good). */
  private release(lines: readonly Line[]) {
    this.buffered -= lines.length;
    for (const line of lines) this.bufferedBytes -= line.message.length;
  }

  private queueOf(source: LogSource): Queue {
    let queue = this.queues.get(key(source));
    if (!queue) {
      queue = { source, lines: [] };
      this.queues.set(key(source), queue);
    }
    return queue;
  }

  /** Queues the WARN line about the queue's dropped lines, if any, once the buffer has room again. */
  private reportGap(queue: Queue, at = new Date().toISOString()) {
    if (!queue.gap || queue.closed || this.full()) return;
    const { count, first, last, why } = queue.gap;
    queue.gap = undefined;
    this.push(queue, {
      level: "WARN",
      at,
      message: `[spindle agent] ${count} line${count === 1 ? "" : "s"} written between ${first} and ${last} were dropped: ${why}`,
    });
  }

  private push(queue: Queue, line: Line) {
    queue.lines.push(line);
    this.buffered++;
    this.bufferedBytes += line.message.length;
    this.wake?.();
  }

  private async run() {
    let failures = 0;
    while (!this.stopped.signal.aborted) {
      const ready = [...this.queues.values()].filter((queue) => this.sendable(queue));
      if (ready.length === 0) {
        for (const resolve of this.idleWaiters.splice(0)) resolve();
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, FLUSH_MS * 10).unref();
        });
        this.wake = undefined;
        continue;
      }
      let sentAll = true;
      for (const queue of ready) {
        if (!(await this.sendOne(queue))) {
          sentAll = false;
          break;
        }
      }
      for (const resolve of this.idleWaiters.splice(0)) resolve();
      if (sentAll) {
        failures = 0;
        // Let a burst of lines gather into the next batch.
        await sleep(FLUSH_MS, this.stopped.signal);
      } else {
        await sleep(backoff(failures++, 5_000), this.stopped.signal);
      }
    }
  }

  /** Sends the queue's next batch; false when the server could not be reached (retry later, same batch). */
  private async sendOne(queue: Queue): Promise<boolean> {
    if (!queue.inFlight) {
      const lines: Line[] = [];
      let bytes = 0;
      while (queue.lines.length > 0 && lines.length < BATCH_LINES) {
        const size = Buffer.byteLength(JSON.stringify(queue.lines[0]));
        if (lines.length > 0 && bytes + size > BATCH_BYTES) break;
        bytes += size;
        lines.push(queue.lines.shift()!);
      }
      queue.inFlight = { sequence: `${this.runId}-${++this.sequence}`, lines };
    }
    const batch = queue.inFlight;
    try {
      await this.client.request(AgentAppendLogsDocument, {
        input: { source: queue.source, sequence: batch.sequence, lines: batch.lines.map(({ level, message, at, step }) => ({ level, message, at, step })) },
      });
    } catch (error) {
      if (!(error instanceof Refused)) {
        this.log.debug(`log lines of ${queue.source.type} ${queue.source.id} wait: ${describe(error)}`);
        return false;
      }
      // Finished or deleted source, or lines the server will never take: retrying cannot help.
      this.log.warn(`${batch.lines.length} log lines of ${queue.source.type} ${queue.source.id} refused (${error.code}): ${error.message}`);
      if (error.code === "CONFLICT" || error.code === "NOT_FOUND") {
        queue.closed = error.code;
        this.release(queue.lines);
        queue.lines = [];
      } else {
        // The source goes on: what it lost is said in its log.
        this.dropped(queue, batch.lines.length, batch.lines[0]!.at, batch.lines.at(-1)!.at, `the server refused them (${error.code}: ${error.message.slice(0, 200)})`);
      }
    }
    this.release(batch.lines);
    queue.inFlight = undefined;
    // The room just freed goes first to the news of lines dropped for want of it.
    for (const other of this.queues.values()) this.reportGap(other);
    return true;
  }
}

const key = (source: LogSource) => `${source.type}:${source.id}`;

/** NUL and lone surrogates (which PostgreSQL cannot store) become U+FFFD, as undecodable output does. */
function storable(message: string): string {
  return message.replace(/\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
}

function cut(message: string): string {
  if (Buffer.byteLength(message) <= MAX_LINE_BYTES) return message;
  const marker = " [cut: line longer than 16 KiB]";
  return Buffer.from(message).subarray(0, MAX_LINE_BYTES - marker.length).toString("utf8").replace(/\uFFFD$/, "") + marker;
}
