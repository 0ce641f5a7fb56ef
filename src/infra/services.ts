// Opens what the app depends on, from config: the database (migrated), pub/sub and the signing key.
import path from "node:path";
import { loadSigningKey, type SigningKey } from "../auth/tokens.js";
import type { Config } from "../config.js";
import { openDatabase, type Database } from "./db.js";
import type { Logger } from "./logger.js";
import { migrate } from "./migrate.js";
import { createPubSubService, type PubSubService } from "./pubsub.js";

export interface Infrastructure {
  db: Database;
  pubsub: PubSubService;
  signingKey: SigningKey;
  close(): Promise<void>;
}

export async function openDatabaseFromConfig(config: Config): Promise<Database> {
  return config.databaseUrl
    ? openDatabase({ kind: "postgres", url: config.databaseUrl })
    : openDatabase({ kind: "pglite", dir: path.join(config.dataDir, "pgdata") });
}

export async function openInfrastructure(config: Config, log: Logger): Promise<Infrastructure> {
  const db = await openDatabaseFromConfig(config);
  try {
    const { applied } = await migrate(db);
    if (applied.length > 0) log.info({ applied }, "database migrations applied");
  } catch (error) {
    await db.close();
    throw error;
  }
  const pubsub = createPubSubService({ redisUrl: config.redisUrl, log });
  const signingKey = await loadSigningKey({
    secret: config.auth.jwtSecret,
    privateKeyFile: config.auth.jwtPrivateKeyFile,
    dataDir: config.dataDir,
  });
  return {
    db,
    pubsub,
    signingKey,
    async close() {
      await pubsub.close();
      await db.close();
    },
  };
}
