// The only module that reads process.env. Everything else receives a Config.
import path from "node:path";
import { z } from "zod";

const optionalString = z
  .string()
  .trim()
  .transform((value) => (value === "" ? undefined : value))
  .optional();

const seconds = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const booleanFlag = z
  .enum(["true", "false", "1", "0"])
  .optional()
  .transform((value) => (value === undefined ? undefined : value === "true" || value === "1"));

const envSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  HOST: z.string().trim().min(1).default("127.0.0.1"),
  DATABASE_URL: optionalString.pipe(
    z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL").optional(),
  ),
  REDIS_URL: optionalString.pipe(
    z.string().regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL").optional(),
  ),
  SPINDLE_DATA_DIR: z.string().trim().min(1).default(".spindle"),
  SPINDLE_ADMIN_EMAIL: optionalString.pipe(z.email().optional()),
  SPINDLE_ADMIN_PASSWORD: optionalString.pipe(
    z.string().min(12, "must be at least 12 characters").optional(),
  ),
  JWT_SECRET: optionalString.pipe(z.string().min(32, "must be at least 32 characters").optional()),
  JWT_PRIVATE_KEY_FILE: optionalString,
  JWT_ISSUER: z.string().trim().min(1).default("spindle"),
  JWT_AUDIENCE: z.string().trim().min(1).default("spindle-api"),
  ACCESS_TOKEN_TTL: seconds(15 * 60),
  ACCESS_TOKEN_MAX_TTL: seconds(12 * 60 * 60),
  REFRESH_TOKEN_TTL: seconds(30 * 24 * 60 * 60),
  SMTP_URL: optionalString.pipe(
    z.string().regex(/^smtps?:\/\//, "must be an smtp:// or smtps:// URL").optional(),
  ),
  SMTP_FROM: z.string().trim().min(3).default("Spindle <no-reply@spindle.local>"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  SPINDLE_GRAPHIQL: booleanFlag,
  SPINDLE_LOGIN_MAX_FAILURES: z.coerce.number().int().positive().default(5),
  SPINDLE_LOGIN_WINDOW: seconds(15 * 60),
  SPINDLE_LOGIN_MAX_FAILURES_PER_ADDRESS: z.coerce.number().int().positive().default(20),
  SPINDLE_SIGNUP_MAX_PER_ADDRESS: z.coerce.number().int().positive().default(10),
  SPINDLE_SIGNUP_MAX_PER_EMAIL: z.coerce.number().int().positive().default(3),
  SPINDLE_SIGNUP_WINDOW: seconds(60 * 60),
  SPINDLE_SIGNUP_CONFIRMATION: z.enum(["email", "none"], { error: "must be email or none" }).default("email"),
  SPINDLE_CORS_ORIGINS: z
    .string()
    .optional()
    .transform((value, ctx) => {
      const origins = (value ?? "").split(",").map((o) => o.trim()).filter(Boolean);
      for (const origin of origins) {
        if (!URL.canParse(origin) || new URL(origin).origin !== origin) {
          ctx.addIssue({ code: "custom", message: `"${origin}" is not an origin (scheme://host[:port], no path or trailing slash)` });
        }
      }
      return origins;
    }),
  SPINDLE_DNS_SERVERS: z
    .string()
    .optional()
    .transform((value) => (value ?? "").split(",").map((server) => server.trim()).filter(Boolean)),
  SPINDLE_REDIS_KEY_PREFIX: z.string().trim().min(1).default("spindle:"),
  SPINDLE_SHUTDOWN_GRACE: seconds(10),
  SPINDLE_TRUST_PROXY: booleanFlag,
  SPINDLE_INTROSPECTION: booleanFlag,
  SPINDLE_MACHINE_OFFLINE_AFTER: seconds(60),
  SPINDLE_TASK_LEASE: seconds(300),
  SPINDLE_LOG_MAX_LINES_PER_SOURCE: z.coerce.number().int().positive().default(100_000),
  SPINDLE_LOG_MAX_AGE: seconds(7 * 24 * 60 * 60),
  SPINDLE_LOG_RETENTION_INTERVAL: seconds(60),
  SPINDLE_IDEMPOTENCY_TTL: seconds(24 * 60 * 60),
});

/** The variables Spindle reads, as the environment holds them: strings. */
export type Env = { [K in keyof z.input<typeof envSchema>]?: string };

export interface Config {
  env: "development" | "production" | "test";
  http: {
    port: number;
    host: string;
    graphiql: boolean;
    introspection: boolean;
    /** Take the client address and scheme from X-Forwarded-For/-Proto (behind a load balancer). */
    trustProxy: boolean;
    shutdownGraceMs: number;
    /** Browser origins other than the server's own that may call the API with credentials (CORS). */
    corsOrigins: string[];
  };
  /** Unset means the embedded PGlite database under `dataDir`. */
  databaseUrl?: string;
  /** Unset means in-process pub/sub (one server process). */
  redisUrl?: string;
  /** Prefix of the Redis keys Spindle writes (rate-limit counters). */
  redisKeyPrefix: string;
  dataDir: string;
  admin: { email?: string; password?: string };
  auth: {
    jwtSecret?: string;
    jwtPrivateKeyFile?: string;
    issuer: string;
    audience: string;
    accessTokenTtlSeconds: number;
    /**
     * The longest access token a client may ask for at sign-in (`accessTokenTtl`), for clients that
     * cannot refresh (AiSpinner's work a whole day on one login). Still revocable: a session's end
     * reaches every server at once (auth/credential-cache.ts).
     */
    accessTokenMaxTtlSeconds: number;
    refreshTokenTtlSeconds: number;
    /** Failed sign-ins per account from one address, within the window, before 429. */
    loginMaxFailures: number;
    /** Failed sign-ins from one address over all accounts (password spraying), within the window. */
    loginMaxFailuresPerAddress: number;
    loginWindowSeconds: number;
    signupMaxPerAddress: number;
    signupMaxPerEmail: number;
    signupWindowSeconds: number;
    /**
     * `email` (default): a sign-up is an account once its emailed code is confirmed. `none`: it is
     * one at once, and signed in (api-v1 clients register and log in with no step between); the
     * code then only verifies the address.
     */
    signupConfirmation: "email" | "none";
  };
  mail: { smtpUrl?: string; from: string };
  domain: {
    /** A machine with no heartbeat for this long shows as offline. */
    machineOfflineAfterSeconds: number;
    /** How long a claimed task's attempt is the machine's without a heartbeat renewing it. */
    taskLeaseSeconds: number;
    /** Resolvers (`ip` or `ip:port`) asked for service domains' TXT challenges; empty: the system's. */
    dnsServers: string[];
  };
  logs: {
    /** Retention keeps at most this many of the newest lines per source. */
    maxLinesPerSource: number;
    /** Retention removes lines older than this. */
    maxAgeSeconds: number;
    /** How often each server runs retention (one replica at a time does the work). */
    retentionIntervalSeconds: number;
    /** Idempotency keys (and log batch sequences) are forgotten after this: a retry must come sooner. */
    idempotencyTtlSeconds: number;
  };
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  schema: {
    /**
     * A resolver that ignores the Prisma plugin's `query` (the client's selection, loaded in one
     * batch) is an error rather than silently N+1: everywhere but production.
     */
    failOnUnusedQuery: boolean;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`),
    );
  }
  const e = parsed.data;
  const problems: string[] = [];
  if (e.JWT_SECRET && e.JWT_PRIVATE_KEY_FILE) {
    problems.push("JWT_SECRET and JWT_PRIVATE_KEY_FILE: set one, not both");
  }
  if (e.NODE_ENV === "production" && !e.JWT_SECRET && !e.JWT_PRIVATE_KEY_FILE) {
    problems.push(
      "JWT_SECRET: required in production (or JWT_PRIVATE_KEY_FILE), so that every replica signs with the same key",
    );
  }
  if (e.ACCESS_TOKEN_MAX_TTL < e.ACCESS_TOKEN_TTL || e.ACCESS_TOKEN_MAX_TTL > e.REFRESH_TOKEN_TTL) {
    problems.push("ACCESS_TOKEN_MAX_TTL: must be at least ACCESS_TOKEN_TTL and at most REFRESH_TOKEN_TTL (a token never outlives its session)");
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    env: e.NODE_ENV,
    http: {
      port: e.PORT,
      host: e.HOST,
      graphiql: e.SPINDLE_GRAPHIQL ?? e.NODE_ENV !== "production",
      introspection: e.SPINDLE_INTROSPECTION ?? e.NODE_ENV !== "production",
      trustProxy: e.SPINDLE_TRUST_PROXY ?? false,
      shutdownGraceMs: e.SPINDLE_SHUTDOWN_GRACE * 1000,
      corsOrigins: e.SPINDLE_CORS_ORIGINS,
    },
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    redisKeyPrefix: e.SPINDLE_REDIS_KEY_PREFIX,
    dataDir: path.resolve(e.SPINDLE_DATA_DIR),
    admin: { email: e.SPINDLE_ADMIN_EMAIL, password: e.SPINDLE_ADMIN_PASSWORD },
    auth: {
      jwtSecret: e.JWT_SECRET,
      jwtPrivateKeyFile: e.JWT_PRIVATE_KEY_FILE,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      accessTokenTtlSeconds: e.ACCESS_TOKEN_TTL,
      accessTokenMaxTtlSeconds: e.ACCESS_TOKEN_MAX_TTL,
      refreshTokenTtlSeconds: e.REFRESH_TOKEN_TTL,
      loginMaxFailures: e.SPINDLE_LOGIN_MAX_FAILURES,
      loginMaxFailuresPerAddress: e.SPINDLE_LOGIN_MAX_FAILURES_PER_ADDRESS,
      loginWindowSeconds: e.SPINDLE_LOGIN_WINDOW,
      signupMaxPerAddress: e.SPINDLE_SIGNUP_MAX_PER_ADDRESS,
      signupMaxPerEmail: e.SPINDLE_SIGNUP_MAX_PER_EMAIL,
      signupWindowSeconds: e.SPINDLE_SIGNUP_WINDOW,
      signupConfirmation: e.SPINDLE_SIGNUP_CONFIRMATION,
    },
    mail: { smtpUrl: e.SMTP_URL, from: e.SMTP_FROM },
    domain: {
      machineOfflineAfterSeconds: e.SPINDLE_MACHINE_OFFLINE_AFTER,
      taskLeaseSeconds: e.SPINDLE_TASK_LEASE,
      dnsServers: e.SPINDLE_DNS_SERVERS,
    },
    logs: {
      maxLinesPerSource: e.SPINDLE_LOG_MAX_LINES_PER_SOURCE,
      maxAgeSeconds: e.SPINDLE_LOG_MAX_AGE,
      retentionIntervalSeconds: e.SPINDLE_LOG_RETENTION_INTERVAL,
      idempotencyTtlSeconds: e.SPINDLE_IDEMPOTENCY_TTL,
    },
    logLevel: e.LOG_LEVEL,
    schema: { failOnUnusedQuery: e.NODE_ENV !== "production" },
  };
}
