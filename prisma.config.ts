// Prisma CLI configuration: runs the JavaScript schema engine through a driver adapter, so no
// native engine binary is ever downloaded. The server itself does not read this file.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { defineConfig } from "prisma/config";

const placeholderUrl = "postgresql://placeholder@localhost/placeholder";
// An empty value counts as unset: Prisma would otherwise fail to load the schema and try to
// download a native engine instead.
if (!process.env.DATABASE_URL) process.env.DATABASE_URL = placeholderUrl;

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: path.join("prisma", "schema.prisma"),
  migrations: { path: path.join("prisma", "migrations") },
  async adapter() {
    const url = process.env.DATABASE_URL;
    const { PrismaPg } = await import("@prisma/adapter-pg");
    if (url && url !== placeholderUrl) return new PrismaPg({ connectionString: url });
    const { PGlite } = await import("@electric-sql/pglite");
    const { PrismaPGlite } = await import("pglite-prisma-adapter");
    const dir = path.join(process.env.SPINDLE_DATA_DIR ?? ".spindle", "pgdata");
    mkdirSync(dir, { recursive: true });
    // Typed against an older @prisma/driver-adapter-utils than the CLI; same runtime contract.
    return new PrismaPGlite(new PGlite(dir)) as unknown as InstanceType<typeof PrismaPg>;
  },
});
