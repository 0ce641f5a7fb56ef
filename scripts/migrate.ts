// `npm run db:migrate`: applies prisma/migrations to the configured database (the server also does
// this at start).
import { loadConfig } from "../src/config.js";
import { migrate } from "../src/infra/migrate.js";
import { openDatabaseFromConfig } from "../src/infra/services.js";

const config = loadConfig();
const db = await openDatabaseFromConfig(config);
try {
  const { applied } = await migrate(db);
  process.stdout.write(applied.length ? `Applied: ${applied.join(", ")}\n` : "Database is up to date.\n");
} finally {
  await db.close();
}
