// The database: embedded PGlite (no server) or PostgreSQL, behind one Prisma client.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import { Prisma, PrismaClient } from "../generated/prisma/client.js";
import { requestScope } from "./request-context.js";

/** A raw connection, used by the migrator and the health check. */
/** A unique constraint refused the write (two requests claimed the same name at once). */
/**
 * A unique constraint refused the write: Prisma's P2002, or, from some interactive transactions on
 * a driver adapter, the adapter's own error (its `cause` names the violation).
 */
export const isUniqueViolation = (error: unknown) =>
  (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") ||
  (error instanceof Error && error.name === "DriverAdapterError" && isUniqueCause(error.cause as { kind?: string; code?: string } | undefined));

/** The adapter's cause: classified (`pg`), or PostgreSQL's own SQLSTATE (PGlite). */
const isUniqueCause = (cause: { kind?: string; code?: string } | undefined) => cause?.kind === "UniqueConstraintViolation" || cause?.code === "23505";

export interface SqlConnection {
  exec(sql: string): Promise<void>;
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
}

export interface Database {
  kind: "pglite" | "postgres";
  prisma: PrismaClient;
  /** Counts the SQL statements Prisma sends while serving requests; tests read it to catch N+1 queries. */
  statements: { count: number };
  /**
   * One SQL statement without Prisma, for the hottest reads (membership, point reads): a prepared
   * statement on PostgreSQL. Prisma's query compiler costs ~0.6 ms of CPU per query here against
   * ~0.13 ms for this (BENCHMARKS.md). Counted like Prisma's statements.
   */
  sql<Row = Record<string, unknown>>(text: string, params?: unknown[]): Promise<Row[]>;
  /**
   * Calls `onNotice` with each payload NOTIFYed on `channel`, from a dedicated connection;
   * `onState` says whether notices are being received (false while that connection is lost: a
   * cache fed by notices must not be trusted then). `sync` resolves once every notice committed
   * before it was called has been handed to `onNotice` (PostgreSQL delivers pending notices before
   * answering a query on the listening connection).
   */
  listen(channel: string, onNotice: (payload: string) => void, onState: (listening: boolean) => void): Promise<Listener>;
  /** Runs `fn` on one dedicated connection (advisory locks need that). */
  withConnection<T>(fn: (conn: SqlConnection) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface Listener {
  sync(): Promise<void>;
  stop(): Promise<void>;
}

export type DatabaseOptions =
  | { kind: "postgres"; url: string; poolSize?: number }
  /** `dir` unset keeps the database in memory (tests). */
  | { kind: "pglite"; dir?: string };

// Prisma's adapter interfaces differ slightly between the 6.x client and 7.x adapters; the
// counting wrapper only relies on the method names both share.
type Queryable = { queryRaw: (...a: unknown[]) => unknown; executeRaw: (...a: unknown[]) => unknown };
type AdapterFactory = { connect(): Promise<unknown> };
// pglite-prisma-adapter is typed against an older @prisma/driver-adapter-utils than the client;
// the runtime contract is the same, so the factory is handed over under the client's own type.
type ClientAdapter = NonNullable<ConstructorParameters<typeof PrismaClient>[0]>["adapter"];

function countStatements<T extends object>(target: T, statements: { count: number }): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver);
      if (typeof value !== "function") return value;
      if (prop === "queryRaw" || prop === "executeRaw") {
        return (...args: unknown[]) => {
          // Only statements made for a request: background jobs (machine sweep, log retention)
          // must not blur the per-request counts the N+1 tests compare.
          if (requestScope.getStore()) statements.count += 1;
          return (value as (...a: unknown[]) => unknown).apply(obj, args);
        };
      }
      if (prop === "startTransaction") {
        return async (...args: unknown[]) => {
          const tx = await (value as (...a: unknown[]) => Promise<Queryable>).apply(obj, args);
          return countStatements(tx, statements);
        };
      }
      return value.bind(obj);
    },
  });
}

function countingFactory(factory: AdapterFactory, statements: { count: number }): ClientAdapter {
  return new Proxy(factory, {
    get(obj, prop, receiver) {
      if (prop === "connect") {
        return async () => countStatements((await obj.connect()) as object, statements);
      }
      const value = Reflect.get(obj, prop, receiver);
      return typeof value === "function" ? value.bind(obj) : value;
    },
  }) as unknown as ClientAdapter;
}

const CONNECT_TIMEOUT_MS = 5_000;
const LISTEN_RETRY_MS = { first: 200, max: 5_000 };

/**
 * LISTEN on a connection of its own, reconnecting with backoff for as long as it is wanted. A
 * notice sent while the connection is down is lost, so `onState(false)` is called at once and
 * `onState(true)` only when LISTEN is in place again.
 */
async function listenOnPostgres(
  url: string,
  channel: string,
  onNotice: (payload: string) => void,
  onState: (listening: boolean) => void,
): Promise<Listener> {
  let stopped = false;
  let client: pg.Client | undefined;
  let retryMs = LISTEN_RETRY_MS.first;
  let timer: NodeJS.Timeout | undefined;
  const quoted = `"${channel.replaceAll('"', '""')}"`;

  const lost = () => {
    onState(false);
    client?.removeAllListeners();
    client?.on("error", () => {});
    client?.end().catch(() => {});
    client = undefined;
    if (stopped) return;
    timer = setTimeout(() => void connect(), retryMs);
    retryMs = Math.min(retryMs * 2, LISTEN_RETRY_MS.max);
  };
  async function connect() {
    const next = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, keepAlive: true });
    client = next;
    next.on("notification", (message) => {
      if (message.channel === channel && message.payload !== undefined) onNotice(message.payload);
    });
    next.on("error", () => client === next && lost());
    next.on("end", () => client === next && lost());
    try {
      await next.connect();
      await next.query(`LISTEN ${quoted}`);
      if (client !== next || stopped) return;
      retryMs = LISTEN_RETRY_MS.first;
      onState(true);
    } catch {
      if (client === next) lost();
    }
  }
  await connect();
  return {
    async sync() {
      // Not listening: nothing is cached meanwhile, so there is nothing to wait for.
      await client?.query("SELECT 1").catch(() => {});
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      onState(false);
      const last = client;
      client = undefined;
      await last?.end().catch(() => {});
    },
  };
}

// What "the database cannot be reached right now" looks like on the way up, from Prisma, its
// PostgreSQL adapter, node-postgres (which words a lost or unobtainable connection in its message
// only) and the socket below them.
const UNREACHABLE_CODES = new Set([
  // Prisma: can't reach, timed out, operations timed out, connection closed, pool timeout.
  ...["P1001", "P1002", "P1008", "P1017", "P2024"],
  ...["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"],
  // SQLSTATE: shutting down, crashed, starting up; too many connections (class 08 is tested below).
  ...["57P01", "57P02", "57P03", "53300"],
]);
const UNREACHABLE_KINDS = new Set(["DatabaseNotReachable", "ConnectionClosed", "SocketTimeout", "TooManyConnections"]);
const UNREACHABLE_MESSAGE = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

/**
 * True when `error` (or what it wraps) says the database is unreachable: the request may succeed
 * if retried, and nothing about it is a bug.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  const pending = [error];
  while (pending.length > 0) {
    const e = pending.pop();
    if (!e || typeof e !== "object" || seen.has(e)) continue;
    seen.add(e);
    const { code, originalCode, kind, message, cause, meta } = e as Record<string, unknown>;
    for (const value of [code, originalCode]) {
      // SQLSTATE class 08: connection exception.
      if (typeof value === "string" && (UNREACHABLE_CODES.has(value) || value.startsWith("08"))) return true;
    }
    if (typeof kind === "string" && UNREACHABLE_KINDS.has(kind)) return true;
    if (typeof message === "string" && UNREACHABLE_MESSAGE.test(message)) return true;
    pending.push(cause, (meta as { driverAdapterError?: unknown } | undefined)?.driverAdapterError);
  }
  return false;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const statements = { count: 0 };
  if (options.kind === "postgres") {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      // A database that accepts connections and then says nothing must not hang requests forever.
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    // An idle client losing its server must not crash the process; the next query reconnects.
    pool.on("error", () => {});
    const prisma = new PrismaClient({
      adapter: countingFactory(new PrismaPg(pool), statements),
    });
    const prepared = new Map<string, string>();
    const statementName = (text: string) => {
      let name = prepared.get(text);
      if (!name) prepared.set(text, (name = `spindle_${prepared.size}`));
      return name;
    };
    return {
      kind: "postgres",
      prisma,
      statements,
      async sql<Row>(text: string, params: unknown[] = []) {
        if (requestScope.getStore()) statements.count += 1;
        return (await pool.query({ name: statementName(text), text, values: params })).rows as Row[];
      },
      listen: (channel, onNotice, onState) => listenOnPostgres(options.url, channel, onNotice, onState),
      async withConnection(fn) {
        const client = await pool.connect();
        try {
          return await fn({
            exec: async (sql) => {
              await client.query(sql);
            },
            query: async (sql, params) => (await client.query(sql, params)).rows,
          });
        } finally {
          client.release();
        }
      },
      async ping() {
        await pool.query("SELECT 1");
      },
      async close() {
        await prisma.$disconnect();
        await pool.end();
      },
    };
  }

  if (options.dir) mkdirSync(path.dirname(options.dir), { recursive: true });
  const pglite = options.dir ? new PGlite(options.dir) : new PGlite();
  await pglite.waitReady;
  const prisma = new PrismaClient({ adapter: countingFactory(new PrismaPGlite(pglite), statements) });
  const conn: SqlConnection = {
    exec: async (sql) => {
      await pglite.exec(sql);
    },
    query: async <Row>(sql: string, params?: unknown[]) =>
      (await pglite.query<Row>(sql, params)).rows,
  };
  return {
    kind: "pglite",
    prisma,
    statements,
    async sql<Row>(text: string, params: unknown[] = []) {
      if (requestScope.getStore()) statements.count += 1;
      return (await pglite.query<Row>(text, params)).rows;
    },
    async listen(channel, onNotice, onState) {
      // One process owns an embedded database: notices cannot be lost.
      const unlisten = await pglite.listen(channel, onNotice);
      onState(true);
      return {
        sync: async () => {
          await pglite.query("SELECT 1");
        },
        async stop() {
          onState(false);
          await unlisten();
        },
      };
    },
    withConnection: (fn) => fn(conn),
    async ping() {
      await pglite.query("SELECT 1");
    },
    async close() {
      await prisma.$disconnect();
      await pglite.close();
    },
  };
}
