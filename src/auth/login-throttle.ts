// Failed logins are counted per account + client address; past the limit the answer is 429 with
// Retry-After until the window passes. Counters live in Redis when there is one, so every replica
// counts together; if Redis is unreachable the process falls back to counting in memory.
import type { Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";
import { rateLimited } from "../schema/errors.js";

export interface LoginThrottle {
  /** Throws RATE_LIMITED when the key has used up its failures. */
  check(key: string): Promise<void>;
  /** Counts a failure; throws RATE_LIMITED when this one used up the allowance. */
  fail(key: string): Promise<void>;
  reset(key: string): Promise<void>;
}

export function createLoginThrottle(options: { maxFailures: number; windowSeconds: number; redis?: Redis }): LoginThrottle {
  const opts = { points: options.maxFailures, duration: options.windowSeconds, keyPrefix: "spindle:login" };
  const limiter: RateLimiterAbstract = options.redis
    ? new RateLimiterRedis({ ...opts, storeClient: options.redis, insuranceLimiter: new RateLimiterMemory(opts) })
    : new RateLimiterMemory(opts);
  const refuse = (msBeforeNext: number) =>
    rateLimited(
      Math.max(1, Math.ceil(msBeforeNext / 1000)),
      "Too many failed sign-in attempts for this account from this address; try again later",
    );
  return {
    async check(key) {
      const state = await limiter.get(key);
      if (state && state.consumedPoints >= options.maxFailures) throw refuse(state.msBeforeNext);
    },
    async fail(key) {
      try {
        await limiter.consume(key);
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) throw refuse(rejection.msBeforeNext);
        throw rejection;
      }
    },
    async reset(key) {
      await limiter.delete(key);
    },
  };
}
