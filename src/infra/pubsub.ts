// Typed pub/sub topics: in-process for one server, Redis when REDIS_URL is set so that every
// replica hears every event. Pub/sub only wakes subscribers up; the database holds the truth.
import { createRedisEventTarget } from "@graphql-yoga/redis-event-target";
import { createPubSub, type PubSub } from "graphql-yoga";
import { Redis } from "ioredis";
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

/** One stored log line as it travels (cursor as a string: it is a BigInt in the database). */
export interface LogLineMessage {
  cursor: string;
  level: "DEBUG" | "INFO" | "WARN" | "ERROR";
  message: string;
  at: string;
}

/**
 * New lines of one source, already committed, in cursor order (a coalesced batch). `finished`
 * says the source ended (task done, worker destroyed): no line will follow.
 */
export interface LogNotice {
  sourceId: string;
  lines: LogLineMessage[];
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
  const connect = (name: string) => {
    const client = new Redis(options.redisUrl!, { connectionName: `spindle-${name}`, lazyConnect: false });
    // ioredis reconnects by itself; log instead of crashing on the 'error' event.
    client.on("error", (error) => options.log.warn({ err: error, redis: name }, "redis connection error"));
    return client;
  };
  const publishClient = connect("publish");
  const subscribeClient = connect("subscribe");
  const reconnectListeners = new Set<() => void>();
  let lostSubscription = false;
  subscribeClient.on("close", () => {
    lostSubscription = true;
  });
  subscribeClient.on("ready", () => {
    if (!lostSubscription) return;
    lostSubscription = false;
    options.log.info("redis subscription connection is back; live streams catch up from the database");
    for (const listener of reconnectListeners) listener();
  });
  return {
    mode: "redis",
    pubsub: createPubSub<Topics>({
      eventTarget: createRedisEventTarget({ publishClient, subscribeClient }),
    }),
    redis: publishClient,
    status: () =>
      publishClient.status === "ready" && subscribeClient.status === "ready" ? "ok" : "down",
    onReconnect(listener) {
      reconnectListeners.add(listener);
      return () => reconnectListeners.delete(listener);
    },
    async close() {
      reconnectListeners.clear();
      await Promise.allSettled([publishClient.quit(), subscribeClient.quit()]);
    },
  };
}
