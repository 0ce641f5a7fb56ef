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

export type Topics = {
  account: [userId: string, event: AccountEvent];
};

export interface PubSubService {
  mode: "in-process" | "redis";
  pubsub: PubSub<Topics>;
  /** The Redis command connection, shared with other Redis users (rate limits). */
  redis?: Redis;
  status(): "ok" | "down";
  close(): Promise<void>;
}

export function createPubSubService(options: { redisUrl?: string; log: Logger }): PubSubService {
  if (!options.redisUrl) {
    return {
      mode: "in-process",
      pubsub: createPubSub<Topics>(),
      status: () => "ok",
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
  return {
    mode: "redis",
    pubsub: createPubSub<Topics>({
      eventTarget: createRedisEventTarget({ publishClient, subscribeClient }),
    }),
    redis: publishClient,
    status: () =>
      publishClient.status === "ready" && subscribeClient.status === "ready" ? "ok" : "down",
    async close() {
      await Promise.allSettled([publishClient.quit(), subscribeClient.quit()]);
    },
  };
}
