// The `spindle` command, run as a process (through tsx, as bin/spindle.mjs runs the compiled copy)
// on this suite's backend: usage and exit codes, migrate, and admin reset-password end to end.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyPassword } from "../../src/auth/passwords.js";
import { openDatabase, type Database } from "../../src/infra/db.js";
import { backend, freshPostgresDatabase } from "../helpers/server.js";

const root = fileURLToPath(new URL("../..", import.meta.url));

// Each case runs several `spindle` processes (tsx compiles the CLI at each start): on a busy machine
// that takes longer than the default 30 s.
describe(`spindle command (${backend})`, { timeout: 90_000 }, () => {
  let env: Record<string, string>;
  let cleanup: () => Promise<void>;
  /** The database the command uses, opened only between commands (PGlite has one user at a time). */
  let withDb: <T>(fn: (db: Database) => Promise<T>) => Promise<T>;

  beforeAll(async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "spindle-cli-"));
    if (process.env.DATABASE_URL) {
      const fresh = await freshPostgresDatabase(process.env.DATABASE_URL);
      env = { DATABASE_URL: fresh.url, SPINDLE_DATA_DIR: dataDir };
      cleanup = async () => {
        await fresh.drop();
        rmSync(dataDir, { recursive: true, force: true });
      };
    } else {
      env = { SPINDLE_DATA_DIR: dataDir };
      cleanup = async () => rmSync(dataDir, { recursive: true, force: true });
    }
    withDb = async (fn) => {
      const db = process.env.DATABASE_URL
        ? await openDatabase({ kind: "postgres", url: env.DATABASE_URL! })
        : await openDatabase({ kind: "pglite", dir: path.join(dataDir, "pgdata") });
      try {
        return await fn(db);
      } finally {
        await db.close();
      }
    };
  });
  afterAll(() => cleanup?.());

  const spindle = (...args: string[]) => {
    const result = spawnSync(process.execPath, ["--import", "tsx", path.join(root, "src/cli/index.ts"), ...args], {
      cwd: root,
      env: { PATH: process.env.PATH!, LOG_LEVEL: "silent", ...env },
      encoding: "utf8",
      timeout: 60_000,
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };

  it("explains itself: --help on each command, usage errors exit 64, an agent not enrolled 78, a server not reachable 69", () => {
    const help = spindle("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/serve[\s\S]*migrate[\s\S]*admin reset-password <login>[\s\S]*agent/);
    for (const command of [["serve"], ["migrate"], ["admin", "reset-password"], ["agent"]]) {
      const res = spindle(...command, "--help");
      expect([res.code, res.stdout]).toEqual([0, expect.stringContaining(`Usage: spindle ${command.join(" ")}`)]);
    }
    expect(spindle().code).toBe(64);
    const unknown = spindle("frobnicate");
    expect([unknown.code, unknown.stderr]).toEqual([64, expect.stringContaining('Unknown command "frobnicate"')]);
    const noLogin = spindle("admin", "reset-password");
    expect([noLogin.code, noLogin.stderr]).toEqual([64, expect.stringContaining("takes one <login>")]);
    for (const sub of ["rotate", "recover"]) {
      const res = spindle("agent", sub, "--help");
      expect([res.code, res.stdout]).toEqual([0, expect.stringContaining(`Usage: spindle agent ${sub}`)]);
    }
    const state = mkdtempSync(path.join(tmpdir(), "spindle-agent-"));
    const notEnrolled = spindle("agent", "--state-dir", state);
    expect([notEnrolled.code, notEnrolled.stderr]).toEqual([78, expect.stringContaining("spindle agent --server URL --enroll spe_")]);
    const badExecutor = spindle("agent", "--state-dir", state, "--executor", "nope");
    expect([badExecutor.code, badExecutor.stderr]).toEqual([64, expect.stringContaining("--executor takes NAME=COMMAND")]);
    const unreachable = spindle("agent", "--state-dir", state, "--server", "http://127.0.0.1:9", "--enroll", "spe_x");
    expect([unreachable.code, unreachable.stderr]).toEqual([69, expect.stringContaining("Cannot reach http://127.0.0.1:9/graphql")]);
    rmSync(state, { recursive: true, force: true });
  });

  it("migrates, then resets a lost password: printed once, every session ended, audited", async () => {
    const first = spindle("migrate");
    expect([first.code, first.stdout]).toEqual([0, expect.stringMatching(/^Applied: /)]);
    expect(spindle("migrate").stdout).toBe("The database is up to date.\n");

    const user = await withDb(async (db) => {
      const created = await db.prisma.user.create({
        data: { email: "Lost@Example.test", username: "lost", passwordHash: "scrypt$unusable", role: "ADMIN", emailVerifiedAt: new Date(), totpSecret: "JBSWY3DPEHPK3PXP" },
      });
      await db.prisma.session.create({ data: { userId: created.id, expiresAt: new Date(Date.now() + 3_600_000) } });
      return created;
    });

    const unknown = spindle("admin", "reset-password", "nobody@example.test");
    expect([unknown.code, unknown.stderr]).toEqual([1, expect.stringContaining('No account has the email or username "nobody@example.test"')]);

    const reset = spindle("admin", "reset-password", "lost@example.test", "--disable-totp");
    expect(reset.code).toBe(0);
    const password = /New password for lost <Lost@Example.test>:\n {2}(\S+)\n/.exec(reset.stdout)?.[1];
    expect(password).toBeDefined();
    expect(reset.stdout).toContain("1 session(s) ended; two-factor sign-in is off");

    await withDb(async (db) => {
      const stored = await db.prisma.user.findUniqueOrThrow({ where: { id: user.id } });
      expect(await verifyPassword(password!, stored.passwordHash)).toBe(true);
      expect(stored.totpSecret).toBeNull();
      expect(await db.prisma.session.count({ where: { userId: user.id, revokedAt: null } })).toBe(0);
      const entry = await db.prisma.auditEntry.findFirstOrThrow({ where: { action: "user.resetPassword", targetId: user.id } });
      expect(entry).toMatchObject({ actorType: "SYSTEM", data: { via: "cli", sessionsEnded: 1, totpDisabled: true } });
    });

    // By username too; the password changes again.
    const again = spindle("admin", "reset-password", "LOST");
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain(password!);
  });
});
