// The `spindle` command (bin/spindle.mjs runs the compiled copy of this file):
//   spindle serve                        the server (what `npm start` runs)
//   spindle migrate                      apply the database migrations and exit
//   spindle admin reset-password LOGIN   a new password for an account, printed once
//   spindle agent [rotate|recover]       the machine agent (src/agent/cli.ts)
// Configuration comes from the same environment variables as the server (README, Configuration).
// Exit codes follow sysexits: 0 ok, 1 failed, 64 usage, 69 unavailable, 77 refused, 78 configuration.
import { parseArgs } from "node:util";
import { ConfigError, loadConfig, type Config } from "../config.js";
import { AGENT_HELP } from "../agent/help.js";

// The server side (Prisma, pg, the schema) and the agent are loaded by the commands that use them:
// a machine running `spindle agent` never loads the database client.
const serverSide = async () => ({
  ...(await import("../infra/migrate.js")),
  ...(await import("../infra/services.js")),
  ...(await import("./reset-password.js")),
});

const EXIT = { ok: 0, failed: 1, usage: 64, unavailable: 69, config: 78 } as const;

const HELP: Record<string, string> = {
  spindle: `Usage: spindle <command> [options]

Commands:
  serve                         Run the server (what \`npm start\` runs)
  migrate                       Apply the database migrations, then exit
  admin reset-password <login>  Give an account (email or username) a new password, printed once
  agent                         Run the machine agent (enroll, run work, ship logs)
  agent rotate | recover        Replace the machine's credential

Configuration is read from the environment, as the server reads it: DATABASE_URL (else the
embedded database in SPINDLE_DATA_DIR, default ./.spindle), REDIS_URL, and the rest in README.md.
Run \`spindle <command> --help\` for a command's options.
`,
  serve: `Usage: spindle serve

Runs the server with the configuration in the environment (README.md, Configuration). It applies
pending migrations at start, and stops cleanly on SIGTERM or SIGINT.
`,
  migrate: `Usage: spindle migrate

Applies the migrations in prisma/migrations that the database has not had yet, then exits. Replicas
starting at the same time take turns; running this before a deploy keeps that out of start-up.
`,
  "admin reset-password": `Usage: spindle admin reset-password <login> [--disable-totp]

Sets a new random password for the account whose email or username is <login> and prints it once.
Every session of the account ends (on every server, at once). Recorded in the audit log as done by
SYSTEM. Needs the database the server uses: the same DATABASE_URL, or the same SPINDLE_DATA_DIR with
the server stopped (the embedded database has one user at a time).

Options:
  --disable-totp   Also turn two-factor sign-in off (the authenticator was lost with the password)
`,
  agent: AGENT_HELP.agent,
};

class UsageError extends Error {}

function loadConfigOrExplain(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\nSee the configuration table in README.md.\n`);
      process.exit(EXIT.config);
    }
    throw error;
  }
}

async function runMigrate(): Promise<number> {
  const { migrate, openDatabaseFromConfig } = await serverSide();
  const db = await openDatabaseFromConfig(loadConfigOrExplain());
  try {
    const { applied } = await migrate(db);
    process.stdout.write(applied.length ? `Applied: ${applied.join(", ")}\n` : "The database is up to date.\n");
    return EXIT.ok;
  } finally {
    await db.close();
  }
}

async function runResetPassword(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { "disable-totp": { type: "boolean" } }, allowPositionals: true });
  if (positionals.length !== 1) throw new UsageError("admin reset-password takes one <login>: the account's email or username");
  const { openDatabaseFromConfig, resetPassword, UnknownLoginError } = await serverSide();
  const db = await openDatabaseFromConfig(loadConfigOrExplain());
  try {
    const reset = await resetPassword(db.prisma, positionals[0]!, { disableTotp: values["disable-totp"] });
    process.stdout.write(
      `New password for ${reset.username} <${reset.email}>:\n  ${reset.password}\n` +
        `${reset.sessionsEnded} session(s) ended${values["disable-totp"] ? "; two-factor sign-in is off" : ""}. Change it after signing in (changePassword).\n`,
    );
    return EXIT.ok;
  } catch (error) {
    if (!(error instanceof UnknownLoginError)) throw error;
    process.stderr.write(`${error.message}.\n`);
    return EXIT.failed;
  } finally {
    await db.close();
  }
}

export async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const sub = command === "admin" ? rest[0] : undefined;
  const name = command === "admin" && sub ? `admin ${sub}` : command;
  const args = command === "admin" ? rest.slice(1) : rest;
  // The agent parses its own subcommands and options (rotate, recover, --help on each).
  if (command === "agent") return (await import("../agent/cli.js")).agentCommand(rest);
  if (!command || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(HELP.spindle!);
    return command ? EXIT.ok : EXIT.usage;
  }
  if (!name || !HELP[name]) {
    process.stderr.write(`Unknown command "${[command, sub].filter(Boolean).join(" ")}".\n\n${HELP.spindle}`);
    return EXIT.usage;
  }
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(HELP[name]!);
    return EXIT.ok;
  }
  try {
    switch (name) {
      case "serve":
        if (args.length) throw new UsageError("serve takes no arguments: configure it with environment variables");
        // The server entry point starts on import and owns the process from then on.
        await import("../main.js");
        return -1;
      case "migrate":
        if (args.length) throw new UsageError("migrate takes no arguments");
        return await runMigrate();
      case "admin reset-password":
        return await runResetPassword(args);
      default:
        process.stderr.write(HELP.spindle!);
        return EXIT.usage;
    }
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`${(error as Error).message}\n\n${HELP[name]}`);
      return EXIT.usage;
    }
    process.stderr.write(`spindle ${name} failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failed;
  }
}

const code = await run(process.argv.slice(2));
// serve keeps running; everything else ends with its exit code.
if (code >= 0) process.exit(code);
