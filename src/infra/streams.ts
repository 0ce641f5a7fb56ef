// The one engine behind every live stream (logs, workspace events, status of workers, tasks,
// machines and deployments, account events). A stream is a Repeater (graphql-yoga ships it) that
// runs one loop: wait until a notice says something may be new, ask the stream's guard whether the
// viewer may still read, read what is new from the store, send it, and wait again. Pub/sub only
// wakes streams up; what they send is read after the change committed, so a lost or merged notice
// costs a read, never a wrong or missing item, and a client resumes from its last cursor.
//
// Sending waits for the client to take the item before the next read, so a client that keeps up
// gets each change at once, and one that does not gets what piled up in one item the next time it
// asks: batching only where it pays for itself, and memory bounded by one read per stream.
//
// One engine per server, built by the composition root: it holds the process's pub/sub
// subscriptions (one per topic and id, shared by every stream on it), the reads and checks that
// streams waiting at the same place share, and the open streams, which it ends on shutdown.
import { Repeater } from "graphql-yoga";
import type { Logger } from "./logger.js";
import type { PubSubService, Topics } from "./pubsub.js";

export type Topic = keyof Topics;
export type NoticeOf<T extends Topic> = Topics[T][1];

/** The subject is over (a finished log source, a destroyed worker); the viewer lost access; the credential expired or was revoked; a read failed. */
export type StreamEndReason = "FINISHED" | "ACCESS_REVOKED" | "CREDENTIAL_EXPIRED" | "CREDENTIAL_REVOKED" | "FAILED";

/** Why a stream ends; `error` is what a client that only understands errors is told. */
export interface StreamEnd {
  reason: StreamEndReason;
  error?: Error;
  /** The notice that ended it, when one did (an account stream sends the revocation itself). */
  cause?: unknown;
}

/** What a notice handler may do to its stream. */
export interface StreamControl {
  /** Something may be new: read before sending anything else (many wakes before a read make one read). */
  wake(): void;
  /** Ask the guard again before the next item, even if nothing is new. */
  recheck(): void;
  /** Ends the stream; nothing read before goes out after this. */
  end(end: StreamEnd): void;
}

/** A pub/sub topic a stream listens to. Build with `on(...)` for the notice's type. */
export interface Watch {
  topic: Topic;
  id: string;
  onNotice(notice: unknown, control: StreamControl): void;
}

export function on<T extends Topic>(topic: T, id: string, onNotice: (notice: NoticeOf<T>, control: StreamControl) => void): Watch {
  return { topic, id, onNotice: onNotice as Watch["onNotice"] };
}

/** Who may go on reading a stream: checked by the engine, not by each kind of stream. */
export interface StreamGuard {
  /** Notices that end the stream (revocation) or ask for a fresh check (access changed). */
  watches: Watch[];
  /** When the credential that opened the stream stops being valid. */
  expires?: { at: Date; end: StreamEnd };
  /** Before each read, and before the next item after a recheck: null to go on, or why the stream ends. */
  check(): Promise<StreamEnd | null>;
}

export interface StreamRead<T> {
  items: T[];
  /** A full page was read: read again (the client gets these first). */
  more?: boolean;
  /** End after these items. */
  end?: StreamEnd;
}

export interface StreamSpec<T> {
  /** Topics that say something may be new for this stream (or that it is over). */
  watches: Watch[];
  /** Required: no stream reads without checking who still may. */
  guard: StreamGuard;
  /** Reads what is new since the last read (at most a page). */
  read(): Promise<StreamRead<T>>;
  /** The last item of a stream that ends for `end`: an item, an Error to throw, or nothing. */
  last(end: StreamEnd): T | Error | undefined;
  /** Read again this often without a notice (pub/sub delivers at most once). */
  pollMs?: number;
}

/** Reads again this long after a stream opened: Redis confirms a SUBSCRIBE asynchronously, and a notice published before it took effect was missed. */
const SETTLE_MS = [500, 5_000];
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Subscription {
  listeners: Set<(notice: unknown) => void>;
  onLoss: Set<() => void>;
  iterator: AsyncIterator<unknown>;
}

export interface LiveStreams {
  /** A guarded live stream; its pub/sub listening starts with the first `next()`, before the first read. */
  open<T>(spec: StreamSpec<T>): AsyncIterableIterator<T>;
  /**
   * One read for every stream that needs it, keyed by what it reads: callers with the same key
   * join the next read, which gets all their `ask`s and whose result each of them gets. While a
   * read for a key is running, new callers wait for the next one, which starts when it ends: a
   * read always starts after every one of its callers asked (none gets an answer older than its
   * wake), a thousand viewers of one log cost one query per batch however they are paced, and a
   * busy key has at most one read in flight.
   */
  gather<A, R>(key: string, ask: A, read: (asks: A[]) => Promise<R>): Promise<R>;
  /** Streams open now (for metrics and tests). */
  readonly size: number;
  /** Ends every open stream (server shutdown): clients see a clean completion. */
  closeAll(): void;
}

export function createLiveStreams(deps: { pubsub: PubSubService; log: Logger }): LiveStreams {
  const { pubsub, log } = deps;
  const subscriptions = new Map<string, Subscription>();
  /** Each open stream's "read and check again" (Redis came back: notices may have been lost). */
  const open = new Map<AsyncIterableIterator<unknown>, () => void>();
  let closing = false;
  pubsub.onReconnect(() => {
    for (const resync of open.values()) resync();
  });
  /**
   * One timer per poll period for all streams, not one each: the streams it wakes read together, so
   * reads they share (`gather`) are one query per period instead of one per stream. 10,000 idle
   * streams with a timer each kept 40-70 % of a core busy (bench/idle-subs.ts).
   */
  const pollers = new Map<number, { wakes: Set<() => void>; timer: NodeJS.Timeout }>();
  function poll(ms: number, wake: () => void): () => void {
    let poller = pollers.get(ms);
    if (!poller) {
      const wakes = new Set<() => void>();
      const timer = setInterval(() => {
        for (const each of wakes) each();
      }, ms).unref();
      pollers.set(ms, (poller = { wakes, timer }));
    }
    const mine = poller;
    mine.wakes.add(wake);
    return () => {
      mine.wakes.delete(wake);
      if (mine.wakes.size > 0 || pollers.get(ms) !== mine) return;
      clearInterval(mine.timer);
      pollers.delete(ms);
    };
  }

  /**
   * One pub/sub subscription per topic and id in this process, however many streams listen: a
   * thousand viewers of one source cost one listener (and one Redis channel), and each notice is
   * decoded once. It starts synchronously, so listening begins before the stream's first read.
   */
  function join(watch: Watch, listener: (notice: unknown) => void, onLoss: () => void): () => void {
    const key = `${watch.topic}:${watch.id}`;
    let entry = subscriptions.get(key);
    if (!entry) {
      const subscribe = pubsub.pubsub.subscribe as (topic: string, id: string) => AsyncIterable<unknown>;
      const created: Subscription = { listeners: new Set(), onLoss: new Set(), iterator: subscribe(watch.topic, watch.id)[Symbol.asyncIterator]() };
      entry = created;
      subscriptions.set(key, created);
      const pump = async () => {
        for (;;) {
          const result = await created.iterator.next();
          if (result.done) return;
          for (const each of created.listeners) each(result.value);
        }
      };
      pump().catch((error: unknown) => {
        // The subscription broke: its streams read from the store, and the next join starts a new one.
        log.warn({ err: error, topic: key }, "a pub/sub subscription failed; its streams read from the store");
        if (subscriptions.get(key) === created) subscriptions.delete(key);
        for (const lost of created.onLoss) lost();
      });
    }
    const current = entry;
    current.listeners.add(listener);
    current.onLoss.add(onLoss);
    return () => {
      current.listeners.delete(listener);
      current.onLoss.delete(onLoss);
      if (current.listeners.size === 0 && subscriptions.get(key) === current) {
        subscriptions.delete(key);
        void current.iterator.return?.();
      }
    };
  }

  interface Batch {
    asks: unknown[];
    waiters: { resolve: (result: unknown) => void; reject: (error: unknown) => void }[];
    read: (asks: unknown[]) => Promise<unknown>;
  }
  /** Per key: whether a read is running, and the batch that waits for the next one. */
  const reads = new Map<string, { running: boolean; scheduled: boolean; next?: Batch }>();

  function runRead(key: string) {
    const state = reads.get(key)!;
    const batch = state.next!;
    state.next = undefined;
    state.scheduled = false;
    state.running = true;
    Promise.resolve()
      .then(() => batch.read(batch.asks))
      .then(
        (result) => batch.waiters.forEach((waiter) => waiter.resolve(result)),
        (error: unknown) => batch.waiters.forEach((waiter) => waiter.reject(error)),
      )
      .finally(() => {
        state.running = false;
        schedule(key, state);
      });
  }

  function schedule(key: string, state: { running: boolean; scheduled: boolean; next?: Batch }) {
    if (state.running || state.scheduled) return;
    if (!state.next) {
      reads.delete(key);
      return;
    }
    // The callers of this turn of the event loop go together.
    state.scheduled = true;
    setImmediate(() => runRead(key));
  }

  function gather<A, R>(key: string, ask: A, read: (asks: A[]) => Promise<R>): Promise<R> {
    let state = reads.get(key);
    if (!state) {
      state = { running: false, scheduled: false };
      reads.set(key, state);
    }
    const batch = (state.next ??= { asks: [], waiters: [], read: read as Batch["read"] });
    batch.asks.push(ask);
    const result = new Promise<R>((resolve, reject) => batch.waiters.push({ resolve: resolve as (result: unknown) => void, reject }));
    schedule(key, state);
    return result;
  }

  function openStream<T>(spec: StreamSpec<T>): AsyncIterableIterator<T> {
    const stream: AsyncIterableIterator<T> = new Repeater<T>(async (push, stop) => {
      if (closing) return stop();
      let wanted = true;
      let recheck = false;
      let ended: StreamEnd | undefined;
      let stopped = false;
      let signal: (() => void) | undefined;
      const poke = () => {
        const resolve = signal;
        signal = undefined;
        resolve?.();
      };
      const control: StreamControl = {
        wake() {
          wanted = true;
          poke();
        },
        recheck() {
          recheck = true;
          poke();
        },
        end(end) {
          ended ??= end;
          poke();
        },
      };
      const timers: NodeJS.Timeout[] = [];
      const leaves = [...spec.watches, ...spec.guard.watches].map((watch) =>
        join(watch, (notice) => watch.onNotice(notice, control), () => control.wake()),
      );
      open.set(stream, () => {
        control.wake();
        control.recheck();
      });
      for (const ms of SETTLE_MS) timers.push(setTimeout(() => control.wake(), ms).unref());
      if (spec.pollMs) leaves.push(poll(spec.pollMs, () => control.wake()));
      const expires = spec.guard.expires;
      if (expires) {
        // Timers reach about 24 days; a later expiry re-arms until it is due.
        const due = () => {
          const left = expires.at.getTime() - Date.now();
          if (left <= 0) return control.end(expires.end);
          timers.push(setTimeout(due, Math.min(left, MAX_TIMER_MS)).unref());
        };
        due();
      }
      void stop.then(() => {
        stopped = true;
        poke();
      });
      const fail = (error: unknown) => control.end({ reason: "FAILED", error: error instanceof Error ? error : new Error(String(error)) });
      /** Asks the guard; false when the stream is over (refused, or the check failed). */
      const allowed = async () => {
        recheck = false;
        try {
          const refused = await spec.guard.check();
          if (refused) control.end(refused);
        } catch (error) {
          fail(error);
        }
        return !ended && !stopped;
      };

      try {
        while (!stopped) {
          if (ended) {
            const last = spec.last(ended);
            if (last instanceof Error) throw last;
            if (last !== undefined) await push(last);
            break;
          }
          if (!wanted && !recheck) {
            await new Promise<void>((resolve) => {
              signal = resolve;
            });
            continue;
          }
          if (!(await allowed()) || !wanted) continue;
          wanted = false;
          let page: StreamRead<T>;
          try {
            page = await spec.read();
          } catch (error) {
            fail(error);
            continue;
          }
          if (page.more) wanted = true;
          for (const item of page.items) {
            // An access notice (or Redis coming back) during a page: ask again before the next item.
            if (ended || stopped || (recheck && !(await allowed()))) break;
            await push(item);
          }
          if (page.end) control.end(page.end);
        }
      } finally {
        for (const timer of timers) clearTimeout(timer);
        for (const leave of leaves) leave();
        open.delete(stream);
      }
      stop();
    });
    if (closing) void stream.return?.();
    return stream;
  }

  return {
    open: openStream,
    gather,
    get size() {
      return open.size;
    },
    closeAll() {
      closing = true;
      for (const stream of [...open.keys()]) void stream.return?.();
    },
  };
}
