// Typed pub/sub topics: in-process for one server, Redis when REDIS_URL is set so that every
// replica hears every event. Pub/sub only wakes subscribers up; the database holds the truth.
import { createPubSub, type PubSub } from "graphql-yoga";
import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "./logger.js";

export const accountEventTypes = [
  "PROFILE_UPDATED",
  "PASSWORD_CHANGED",
  "SESSION_REVOKED",
  "TOTP_ENABLED",
  "TOTP_DISABLED",
  "API_KEY_CREATED",
  "API_KEY_REVOKED",
] as const;
export type AccountEventType = (typeof accountEventTypes)[number];

/** Carries ids, not rows: subscribers read what they show from the database. */
export interface AccountEvent {
  type: AccountEventType;
  userId: string;
  /** The session, API key or user the event is about. */
  subjectId: string;
  occurredAt: string;
}

/**
 * A source has new lines, committed, up to `lastCursor`; or, with `finished`, it ended (task done,
 * worker destroyed) and no line will follow. Subscribers read the lines from the store.
 */
export interface LogNotice {
  sourceId: string;
  lastCursor?: string;
  finished?: boolean;
}

export type StatusSubjectType = "WORKER" | "TASK" | "MACHINE" | "SERVICE" | "DEPLOYMENT";

/** Something about the subject changed (status, counts, stage); subscribers read it from the database. */
export interface StatusNotice {
  subjectType: StatusSubjectType;
  subjectId: string;
  workspaceId: string;
  at: string;
}

/** A workspace event was stored with this cursor; subscribers read it (and any before it they missed). */
export interface WorkspaceEventNotice {
  workspaceId: string;
  cursor: string;
}

/** A user's access to a workspace changed (removed, role changed): their streams re-check it. */
export interface AccessNotice {
  workspaceId: string;
  userId: string;
}

export type Topics = {
  account: [userId: string, event: AccountEvent];
  logs: [sourceId: string, notice: LogNotice];
  status: [subjectId: string, notice: StatusNotice];
  workspaceEvents: [workspaceId: string, notice: WorkspaceEventNotice];
  access: [workspaceId: string, notice: AccessNotice];
};

export interface PubSubService {
  mode: "in-process" | "redis";
  pubsub: PubSub<Topics>;
  /** The Redis command connection, shared with other Redis users (rate limits). */
  redis?: Redis;
  status(): "ok" | "down";
  /**
   * Calls `listener` each time the subscription connection comes back after a loss (Redis only):
   * messages published meanwhile are gone, so live streams catch up from the database then.
   * Returns a function that removes the listener.
   */
  onReconnect(listener: () => void): () => void;
  close(): Promise<void>;
}

export function createPubSubService(options: { redisUrl?: string; log: Logger }): PubSubService {
  if (!options.redisUrl) {
    return {
      mode: "in-process",
      pubsub: createPubSub<Topics>(),
      status: () => "ok",
      onReconnect: () => () => {},
      close: async () => {},
    };
  }
  const { log } = options;
  const connect = (name: string, redisOptions: RedisOptions = {}) => {
    const client = new Redis(options.redisUrl!, { connectionName: `spindle-${name}`, ...redisOptions });
    // ioredis reconnects by itself; log instead of crashing on the 'error' event.
    client.on("error", (error) => log.warn({ err: error, redis: name }, "redis connection error"));
    return client;
  };
  // The command connection keeps ioredis' defaults: a command waits in the offline queue for at
  // most `maxRetriesPerRequest` (20) reconnect attempts, about 10.5 s, then is rejected. That bounds
  // the queue in an outage of any length (`null` would let it grow for as long as Redis is away);
  // every caller handles the rejection (publishes below, the rate limiter falls back to memory).
  const publishClient = connect("publish");
  // The subscription connection queues nothing: a SUBSCRIBE queued in an outage was rejected after
  // the retry budget, unhandled, and ended the process. Instead the channels wanted are kept here
  // and subscribed on every 'ready' (a new connection has none), so ioredis' own resubscribe and
  // resend of unanswered commands are off: what Redis holds after a reconnect is decided in one place.
  const subscribeClient = connect("subscribe", {
    enableOfflineQueue: false,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
  });
  const eventTarget = redisEventTarget(publishClient, subscribeClient, log);
  const reconnectListeners = new Set<() => void>();
  let lostSubscription = false;
  subscribeClient.on("close", () => {
    lostSubscription = true;
  });
  subscribeClient.on("ready", () => {
    // Streams catch up from the database only once the channels are subscribed again, so that
    // nothing published between their read and the SUBSCRIBE is missed. If this fails the
    // connection was lost again, and the next 'ready' retries.
    eventTarget
      .resubscribe()
      .then(() => {
        if (!lostSubscription) return;
        lostSubscription = false;
        log.info("redis subscription connection is back; live streams catch up from the database");
        for (const listener of reconnectListeners) listener();
      })
      .catch((error) => log.warn({ err: error }, "resubscribing to redis channels failed; retrying when the connection is back"));
  });
  return {
    mode: "redis",
    pubsub: createPubSub<Topics>({ eventTarget }),
    redis: publishClient,
    status: () =>
      publishClient.status === "ready" && subscribeClient.status === "ready" ? "ok" : "down",
    onReconnect(listener) {
      reconnectListeners.add(listener);
      return () => reconnectListeners.delete(listener);
    },
    async close() {
      reconnectListeners.clear();
      // QUIT is refused while a connection is down (no offline queue), and would not stop its reconnecting.
      await Promise.allSettled([publishClient, subscribeClient].map((c) => (c.status === "ready" ? c.quit() : c.disconnect())));
    },
  };
}

type TopicEvent = CustomEvent<unknown>;
type TopicListener = ((event: TopicEvent) => void) | { handleEvent(event: TopicEvent): void };

/**
 * yoga's event target over Redis, written so that no command's promise is ever left unhandled.
 * `listeners` is the set of channels this process wants; SUBSCRIBE and UNSUBSCRIBE go out only while
 * the connection is ready, and `resubscribe` applies the whole set on a new connection.
 */
function redisEventTarget(publishClient: Redis, subscribeClient: Redis, log: Logger) {
  const listeners = new Map<string, Set<TopicListener>>();
  const command = (name: "subscribe" | "unsubscribe", channel: string) => {
    // Not ready: nothing to send, the next 'ready' subscribes to what is wanted then. A failure
    // means the connection went away, which also leads to that.
    if (subscribeClient.status !== "ready") return;
    subscribeClient[name](channel).catch((error: Error) => log.warn({ err: error, channel }, `redis ${name} failed`));
  };
  subscribeClient.on("message", (channel: string, message: string) => {
    const callbacks = listeners.get(channel);
    if (!callbacks) return;
    let detail: unknown;
    try {
      detail = message === "" ? null : JSON.parse(message);
    } catch (error) {
      return log.warn({ err: error, channel }, "ignored a redis message that is not JSON");
    }
    const event = new CustomEvent(channel, { detail });
    for (const listener of callbacks) {
      // Thrown here it would surface in ioredis' socket handler, uncaught.
      try {
        if (typeof listener === "function") listener(event);
        else listener.handleEvent(event);
      } catch (error) {
        log.warn({ err: error, channel }, "a pub/sub listener failed");
      }
    }
  });
  return {
    addEventListener(channel: string, listener: TopicListener | null) {
      if (!listener) return;
      let callbacks = listeners.get(channel);
      if (!callbacks) {
        callbacks = new Set();
        listeners.set(channel, callbacks);
        command("subscribe", channel);
      }
      callbacks.add(listener);
    },
    removeEventListener(channel: string, listener: TopicListener | null) {
      const callbacks = listeners.get(channel);
      if (!callbacks || !listener) return;
      callbacks.delete(listener);
      if (callbacks.size > 0) return;
      listeners.delete(channel);
      command("unsubscribe", channel);
    },
    dispatchEvent(event: TopicEvent) {
      // Pub/sub only wakes subscribers up: a notice that cannot go out is logged, and streams read
      // what they missed from the database when Redis is back.
      publishClient
        .publish(event.type, event.detail === undefined ? "" : JSON.stringify(event.detail))
        .catch((error: Error) => log.warn({ err: error, channel: event.type }, "redis publish failed"));
      return true;
    },
    async resubscribe() {
      if (listeners.size > 0) await subscribeClient.subscribe(...listeners.keys());
    },
  };
}
