// Applies prisma/migrations at start. It keeps Prisma's own bookkeeping table, so
// `prisma migrate status` and `prisma migrate deploy` agree with what ran here. It exists because
// the embedded database can be in memory (tests), where the Prisma CLI cannot reach it.
import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Database } from "./db.js";

export const defaultMigrationsDir = fileURLToPath(new URL("../../prisma/migrations", import.meta.url));

// Any constant works; replicas starting together take turns on it.
const MIGRATION_LOCK_ID = 7_370_123_941;

const bookkeepingTable = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id"                  VARCHAR(36) PRIMARY KEY NOT NULL,
  "checksum"            VARCHAR(64) NOT NULL,
  "finished_at"         TIMESTAMPTZ,
  "migration_name"      VARCHAR(255) NOT NULL,
  "logs"                TEXT,
  "rolled_back_at"      TIMESTAMPTZ,
  "started_at"          TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`;

export interface MigrationResult {
  applied: string[];
}

export async function migrate(db: Database, dir = defaultMigrationsDir): Promise<MigrationResult> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();

  return db.withConnection(async (conn) => {
    await conn.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_ID]);
    try {
      await conn.exec(bookkeepingTable);
      const rows = await conn.query<{ migration_name: string; finished_at: Date | null }>(
        `SELECT migration_name, finished_at FROM "_prisma_migrations" WHERE rolled_back_at IS NULL`,
      );
      const unfinished = rows.filter((r) => r.finished_at === null).map((r) => r.migration_name);
      if (unfinished.length > 0) {
        throw new Error(
          `Migration ${unfinished.join(", ")} started but did not finish; fix the database by hand, then mark it with \`prisma migrate resolve\``,
        );
      }
      const done = new Set(rows.map((r) => r.migration_name));
      const applied: string[] = [];
      for (const name of names) {
        if (done.has(name)) continue;
        const sql = await readFile(path.join(dir, name, "migration.sql"), "utf8");
        const checksum = createHash("sha256").update(sql).digest("hex");
        await conn.exec("BEGIN");
        try {
          await conn.exec(sql);
          await conn.query(
            `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, finished_at, applied_steps_count)
             VALUES ($1, $2, $3, now(), 1)`,
            [randomUUID(), checksum, name],
          );
          await conn.exec("COMMIT");
        } catch (error) {
          await conn.exec("ROLLBACK");
          throw new Error(`Migration ${name} failed: ${(error as Error).message}`, { cause: error });
        }
        applied.push(name);
      }
      return { applied };
    } finally {
      await conn.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_ID]);
    }
  });
}
