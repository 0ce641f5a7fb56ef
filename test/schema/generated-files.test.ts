// The committed artefacts must match the code: schema.graphql, and the migrations history must build
// exactly the database that prisma/schema.prisma describes (no forgotten migration).
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { openDatabase, type Database } from "../../src/infra/db.js";
import { migrate } from "../../src/infra/migrate.js";
import { printedSchema } from "../../src/schema/index.js";

const run = promisify(execFile);

/** Everything about a database's shape that a migration can change, in a comparable form. */
async function catalog(db: Database) {
  return db.withConnection(async (conn) => ({
    columns: await conn.query(
      `SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> '_prisma_migrations'
       ORDER BY table_name, column_name`,
    ),
    indexes: await conn.query(
      `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> '_prisma_migrations' ORDER BY indexname`,
    ),
    constraints: await conn.query(
      `SELECT conrelid::regclass::text AS on_table, conname, pg_get_constraintdef(oid) AS definition
       FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> '_prisma_migrations'
       ORDER BY on_table, conname`,
    ),
    enums: await conn.query(
      `SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
       FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname ORDER BY t.typname`,
    ),
  }));
}

describe("generated and committed files", () => {
  it("schema.graphql is printed from the current code (run `npm run schema:print`)", async () => {
    const committed = await readFile(new URL("../../schema.graphql", import.meta.url), "utf8");
    expect(committed).toBe(printedSchema());
  });

  it("prisma/migrations builds the same database as prisma/schema.prisma (run `npm run db:new-migration -- <name>`)", async () => {
    const { stdout: expectedSql } = await run(
      "npx",
      ["prisma", "migrate", "diff", "--from-empty", "--to-schema-datamodel", "prisma/schema.prisma", "--script"],
    );
    const fromMigrations = await openDatabase({ kind: "pglite" });
    const fromSchema = await openDatabase({ kind: "pglite" });
    try {
      await migrate(fromMigrations);
      await fromSchema.withConnection((conn) => conn.exec(expectedSql));
      expect(await catalog(fromMigrations)).toEqual(await catalog(fromSchema));
    } finally {
      await fromMigrations.close();
      await fromSchema.close();
    }
  });
});
