// Every write goes through the unit of work (src/modules/shared/unit-of-work.ts), and each module
// writes only the tables it owns: another module's rows change through a capability that module
// offers (handed over by the composition root, modules/domain.ts). The type system holds most of
// this (notes and audit entries need the unit of work's `WorkTx`); these checks read the sources
// for what it cannot: a bare `$transaction`, a write straight on the client, a module-level
// registry, a write to a table of another module.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { filesUnder, SRC } from "../helpers/source-files.js";

const files = filesUnder(SRC).map((file) => ({ file: path.relative(SRC, file), text: readFileSync(file, "utf8") }));

/** Lines of `text` matching `pattern`, as "file:line: text". */
function matches(pattern: RegExp, only?: (file: string) => boolean): string[] {
  return files
    .filter(({ file }) => !only || only(file))
    .flatMap(({ file, text }) =>
      text.split("\n").flatMap((line, i) => (pattern.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : [])),
    );
}

/** Which module owns each table: only files under modules/<owner>/ write it. */
const OWNERS: Record<string, string[]> = {
  User: ["account"],
  Session: ["account"],
  RefreshToken: ["account"],
  PendingRegistration: ["account"],
  ApiKey: ["api-key"],
  Workspace: ["workspace"],
  WorkspaceMember: ["workspace"],
  WorkspaceInvitation: ["workspace"],
  Project: ["workspace"],
  ProjectMember: ["workspace"],
  GraphBlock: ["workspace"],
  GraphEdge: ["workspace"],
  EnrollmentToken: ["machine"],
  Machine: ["machine"],
  Agent: ["agent"],
  Worker: ["worker"],
  WorkerTransition: ["worker"],
  Task: ["task"],
  TaskStage: ["task"],
  TaskEvent: ["task"],
  Flow: ["flow"],
  Deployment: ["deployment"],
  Service: ["deployment"],
  LogSource: ["log"],
  LogLine: ["log"],
  // Written in every mutation's transaction by the shared pieces of the unit of work.
  AuditEntry: ["shared"],
  WorkspaceEvent: ["shared"],
  // The unit of work's keys; log ingestion stores (and its retention prunes) its own appendLogs keys
  // in the same table, in its one-statement append (log/ingest.ts says why it is not a transaction).
  IdempotencyKey: ["shared", "log"],
};

/** Writes that are another module's on purpose, each with its reason. */
const SHARED_COLUMNS = new Set([
  // The workspace's event counter: live.ts takes the next cursors from it while writing events.
  "shared/live.ts Workspace",
]);

const WRITE = /\b(?:tx|prisma)\.(\w+)\.(?:create|createMany|createManyAndReturn|update|updateMany|updateManyAndReturn|upsert|delete|deleteMany)\(/g;
const RAW_WRITE = /\b(?:UPDATE|INSERT INTO|DELETE FROM)\s+"(\w+)"/g;
const model = (delegate: string) => delegate[0]!.toUpperCase() + delegate.slice(1);

describe("every write goes through the unit of work", () => {
  it("no code opens a transaction but the unit of work", () => {
    expect(matches(/\$transaction\(/, (file) => file !== "modules/shared/unit-of-work.ts")).toEqual([]);
  });

  it("no service writes through the client outside a unit of work", () => {
    // Outside modules/: bookkeeping that is no one's mutation (an API key's last use, the mail outbox).
    const allowed = new Set(["auth/authenticate.ts", "infra/mailer.ts"]);
    expect(matches(/\bprisma\.\w+\.(create|update|upsert|delete)\w*\(|\bprisma\.\$executeRaw/, (file) => !allowed.has(file))).toEqual([]);
  });

  it("no module-level registry maps objects to hidden state", () => {
    expect(matches(/^(export )?(const|let) \w+ = new WeakMap/)).toEqual([]);
  });
});

describe("each module writes only its own tables", () => {
  it("declares an owner for every table in the Prisma schema", () => {
    const schema = readFileSync(path.resolve(SRC, "../prisma/schema.prisma"), "utf8");
    const tables = [...schema.matchAll(/^model (\w+) \{/gm)].map((m) => m[1]!);
    const undeclared = tables.filter((table) => !OWNERS[table] && table !== "EmailOutbox");
    expect(undeclared).toEqual([]);
  });

  it("finds every write in modules/ in a file of the table's owner", () => {
    const strays: string[] = [];
    let seen = 0;
    for (const { file, text } of files) {
      if (!file.startsWith("modules/")) continue;
      const module = file.split(path.sep)[1]!;
      const written = [...text.matchAll(WRITE)].map((m) => model(m[1]!)).concat([...text.matchAll(RAW_WRITE)].map((m) => m[1]!));
      for (const table of written) {
        seen += 1;
        if (SHARED_COLUMNS.has(`${file.slice("modules/".length)} ${table}`)) continue;
        const owners = OWNERS[table];
        if (!owners?.includes(module)) strays.push(`${file} writes ${table} (owned by ${owners?.join(", ") ?? "nobody"})`);
      }
    }
    // The scan sees the writes (a broken pattern would pass with nothing found).
    expect(seen).toBeGreaterThan(100);
    expect(strays).toEqual([]);
  });
});
