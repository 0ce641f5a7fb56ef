// Counted limits (sign-in failures, sign-ups). Every attempt reserves its point before the expensive
// or secret check runs, so requests sent at the same moment cannot all slip past the limit; an
// attempt that turns out not to count (a successful sign-in) gives its point back. Counters live in
// Redis when there is one, shared by every replica; while Redis is unreachable each process counts
// in memory instead.
import type { Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";
import { rateLimited } from "../schema/errors.js";

export interface Limit {
  /** Takes one point for `key`; throws RATE_LIMITED (with Retry-After) when none is left. */
  reserve(key: string): Promise<void>;
  /** Gives one reserved point back. */
  refund(key: string): Promise<void>;
  /** Forgets what was counted for `key`. */
  reset(key: string): Promise<void>;
}

export interface LimitStore {
  redis?: Redis;
  /** Key prefix, so installations sharing one Redis count apart. */
  prefix: string;
}

export interface LimitOptions {
  name: string;
  points: number;
  windowSeconds: number;
  /** What the 429 says. */
  message: string;
}

export function createLimit(store: LimitStore, options: LimitOptions): Limit {
  const opts = { points: options.points, duration: options.windowSeconds, keyPrefix: `${store.prefix}${options.name}` };
  const limiter: RateLimiterAbstract = store.redis
    ? new RateLimiterRedis({
        ...opts,
        storeClient: store.redis,
        // Not ready means not waiting for a reconnect: the in-memory insurance counts at once.
        rejectIfRedisNotReady: true,
        insuranceLimiter: new RateLimiterMemory(opts),
      })
    : new RateLimiterMemory(opts);
  return {
    async reserve(key) {
      try {
        await limiter.consume(key);
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) {
          throw rateLimited(Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)), options.message);
        }
        throw rejection;
      }
    },
    async refund(key) {
      await limiter.reward(key, 1);
    },
    async reset(key) {
      await limiter.delete(key);
    },
  };
}

/** Reserves a point on each limit in turn; if one refuses, the points already taken are given back. */
export async function reserveAll(reservations: [Limit, string][]): Promise<void> {
  const taken: [Limit, string][] = [];
  try {
    for (const [limit, key] of reservations) {
      await limit.reserve(key);
      taken.push([limit, key]);
    }
  } catch (error) {
    await Promise.all(taken.map(([limit, key]) => limit.refund(key)));
    throw error;
  }
}
