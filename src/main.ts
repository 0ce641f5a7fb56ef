// Composition root: config -> logger -> database, pub/sub -> buildApp(deps).start(); SIGTERM -> stop().
import { buildApp } from "./app.js";
import { ConfigError, loadConfig } from "./config.js";
import { createLogger } from "./infra/logger.js";
import { openInfrastructure } from "./infra/services.js";

async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\nSee the configuration table in README.md.\n`);
      process.exit(78);
    }
    throw error;
  }
  const log = createLogger(config.logLevel);
  const infra = await openInfrastructure(config, log);
  if (infra.signingKey.source === "generated" && config.databaseUrl) {
    log.warn("signing tokens with a key generated in the data folder: replicas sharing this database need one JWT_SECRET");
  }
  const app = buildApp({ config, log, ...infra });

  const admin = await app.services.accounts.ensureFirstAdmin(config.admin).catch((error: Error) => {
    // Two replicas starting on an empty database: the other one created the admin.
    log.warn({ err: error }, "first admin not created here");
    return null;
  });
  const { url } = await app.start();
  log.info({ url: `${url}/graphql`, database: infra.db.kind, pubsub: infra.pubsub.mode }, "Spindle is listening");
  if (admin) {
    const password = admin.generatedPassword ?? "(the SPINDLE_ADMIN_PASSWORD you set)";
    // Printed plainly, once: the password is not stored anywhere in readable form.
    process.stdout.write(
      `\n  First start: administrator account created.\n    login:    ${admin.email}\n    password: ${password}\n  Change it with the changePassword mutation.\n\n`,
    );
  }
  if (config.http.graphiql) log.info(`GraphiQL: ${url}/graphql`);

  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, "shutting down");
    try {
      await app.stop();
      await infra.close();
      log.info("stopped");
      process.exit(0);
    } catch (error) {
      log.error({ err: error }, "shutdown failed");
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((error: unknown) => {
  process.stderr.write(`Spindle failed to start: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
