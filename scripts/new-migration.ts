// `npm run db:new-migration -- <name>`: writes the SQL that takes the last committed
// prisma/schema.prisma to the current one into prisma/migrations/<timestamp>_<name>/.
// (`prisma migrate dev` needs a native engine, and `migrate diff --from-migrations` needs a shadow
// database the JavaScript engine cannot describe; diffing two datamodels needs neither.)
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const name = process.argv[2];
if (!name || !/^[a-z0-9_]+$/.test(name)) {
  process.stderr.write("usage: npm run db:new-migration -- <name_in_snake_case>\n");
  process.exit(2);
}
const previous = path.join(mkdtempSync(path.join(tmpdir(), "spindle-schema-")), "schema.prisma");
writeFileSync(previous, execFileSync("git", ["show", "HEAD:prisma/schema.prisma"]));
const sql = execFileSync(
  "npx",
  ["prisma", "migrate", "diff", "--from-schema-datamodel", previous, "--to-schema-datamodel", "prisma/schema.prisma", "--script"],
  { encoding: "utf8" },
);
if (!/\b(CREATE|ALTER|DROP)\b/.test(sql)) {
  process.stdout.write("prisma/schema.prisma has not changed since the last commit: no migration needed.\n");
  process.exit(0);
}
const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
const dir = path.join("prisma", "migrations", `${stamp}_${name}`);
mkdirSync(dir, { recursive: true });
writeFileSync(path.join(dir, "migration.sql"), sql);
process.stdout.write(`Wrote ${dir}/migration.sql: read it before committing.\n`);
