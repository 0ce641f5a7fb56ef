// The production build: scripts/build.mjs (`npm run build`) compiles src/ with tsc, and plain
// `node dist/main.js` (what `npm start` runs) serves everything the server reads at run time from
// files beside dist/: migrations, the legacy endpoint inventory, package.json's version, the
// GraphiQL and Swagger UI packages. The build goes to a scratch folder laid out like the repository
// (docs/, prisma/, node_modules/ and package.json linked in), so the developer's dist/ is left alone
// and a path that only resolves from src/ fails here as it would in production. The compiled agent
// (dist/cli/index.js agent) runs against it too: its reaper and Python harness are found beside it.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, symlink, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backend, freshPostgresDatabase } from "../helpers/server.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const admin = { email: "build-test@spindle.local", password: "build-test-password" };
let scratch: string;
let dist: string;

function build(...args: string[]) {
  return spawnSync(process.execPath, [path.join(repo, "scripts/build.mjs"), "--out-dir", dist, ...args], { cwd: repo, encoding: "utf8" });
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "spindle-build-test-"));
  dist = path.join(scratch, "dist");
  for (const entry of ["docs", "prisma", "node_modules", "package.json"]) await symlink(path.join(repo, entry), path.join(scratch, entry));
  const result = build();
  expect(result.status, result.stdout + result.stderr).toBe(0);
}, 300_000);
afterAll(() => rm(scratch, { recursive: true, force: true }));

describe("npm run build", () => {
  it("compiles the server and the generated Prisma client to JavaScript", async () => {
    for (const file of ["main.js", "app.js", "generated/prisma/client.js", "rest/inventory.js"]) {
      expect((await stat(path.join(dist, file))).isFile(), file).toBe(true);
    }
  });

  it("is up to date until a source is newer than the build (what npm start's prestart checks)", async () => {
    expect(build("--check").status).toBe(0);
    // --if-stale on a fresh build compiles nothing: the stamp keeps its time.
    const before = (await stat(path.join(dist, ".built"))).mtimeMs;
    expect(build("--if-stale").status).toBe(0);
    expect((await stat(path.join(dist, ".built"))).mtimeMs).toBe(before);
    // Older than src/: stale.
    const past = new Date("2001-01-01T00:00:00Z");
    await utimes(path.join(dist, ".built"), past, past);
    const stale = build("--check");
    expect(stale.status).toBe(1);
    expect(stale.stderr).toContain("src/ or a tsconfig changed");
  });
});

/** Polls `read` until it gives a value, for at most `ms`. */
async function until<T>(read: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`nothing after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe(`node dist/main.js (${backend})`, () => {
  let server: ChildProcess;
  let url: string;
  let dropDatabase = async () => {};
  let exited: Promise<number | null>;

  beforeAll(async () => {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      NODE_ENV: "production",
      PORT: "0",
      LOG_LEVEL: "info",
      JWT_SECRET: randomBytes(32).toString("base64url"),
      SPINDLE_DATA_DIR: path.join(scratch, "data"),
      SPINDLE_ADMIN_EMAIL: admin.email,
      SPINDLE_ADMIN_PASSWORD: admin.password,
      SPINDLE_GRAPHIQL: "true",
    };
    if (process.env.DATABASE_URL) {
      const fresh = await freshPostgresDatabase(process.env.DATABASE_URL);
      dropDatabase = fresh.drop;
      Object.assign(env, { DATABASE_URL: fresh.url, REDIS_URL: process.env.REDIS_URL ?? "", SPINDLE_REDIS_KEY_PREFIX: `spindle-build-test-${randomBytes(4).toString("hex")}:` });
    }
    // cwd is the scratch folder: a path taken from the working directory would not find the repository's files either.
    server = spawn(process.execPath, [path.join(dist, "main.js")], { cwd: scratch, env, stdio: ["ignore", "pipe", "pipe"] });
    exited = new Promise((resolve) => server.once("exit", resolve));
    let output = "";
    url = await new Promise<string>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        const line = output.split("\n").find((l) => l.includes('"Spindle is listening"'));
        if (line) resolve((JSON.parse(line) as { url: string }).url.replace(/\/graphql$/, ""));
      };
      server.stdout!.on("data", onData);
      server.stderr!.on("data", onData);
      void exited.then((code) => reject(new Error(`the compiled server exited (${code}):\n${output}`)));
    });
  }, 60_000);

  afterAll(async () => {
    if (server.exitCode === null) server.kill("SIGKILL");
    await dropDatabase();
  });

  it("answers /health on its database", async () => {
    const res = await fetch(`${url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok", database: { kind: backend === "embedded" ? "pglite" : "postgres" } });
  });

  it("applied the migrations and signs the first administrator in (the compiled Prisma client)", async () => {
    const res = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        query: "mutation($i: LoginInput!) { login(input: $i) { user { email } } }",
        variables: { i: { login: admin.email, password: admin.password } },
      }),
    });
    expect(await res.json()).toEqual({ data: { login: { user: { email: admin.email } } } });
  });

  it("serves the OpenAPI document from the inventory with package.json's version", async () => {
    const document = (await (await fetch(`${url}/api/openapi.json`)).json()) as { info: { version: string }; paths: object };
    const { version } = JSON.parse(await readFile(path.join(repo, "package.json"), "utf8")) as { version: string };
    expect(document.info.version).toBe(version);
    expect(Object.keys(document.paths).length).toBeGreaterThan(50);
  });

  it("serves Swagger UI's files and the offline GraphiQL page from node_modules", async () => {
    const page = await (await fetch(`${url}/api/docs`)).text();
    const bundle = /src="([^"]+swagger-ui-bundle\.js)"/.exec(page)?.[1];
    expect(bundle).toBeDefined();
    const asset = await fetch(`${url}${bundle}`);
    expect(asset.status).toBe(200);
    expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
    const graphiql = await fetch(`${url}/graphql`, { headers: { accept: "text/html" } });
    expect(graphiql.status).toBe(200);
    expect(await graphiql.text()).toContain("GraphiQL");
  });

  it("runs the compiled agent: it enrolls, and runs a CODE worker through the Python harness copied beside it", async () => {
    const call = async (query: string, variables: Record<string, unknown> = {}, token?: string) => {
      const res = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await res.json()) as { data: any; errors?: unknown };
      if (body.errors) throw new Error(JSON.stringify(body.errors));
      return body.data;
    };
    const token = (await call("mutation($i: LoginInput!) { login(input: $i) { accessToken } }", { i: { login: admin.email, password: admin.password } })).login.accessToken;
    const workspaceId = (await call('mutation { createWorkspace(input: { name: "build" }) { id } }', {}, token)).createWorkspace.id;
    const enrollment = (await call("mutation($i: CreateEnrollmentTokenInput!) { createEnrollmentToken(input: $i) { token } }", { i: { workspaceId, name: "b" } }, token))
      .createEnrollmentToken.token;
    const agent = spawn(process.execPath, [path.join(dist, "cli/index.js"), "agent", "--server", url, "--enroll", enrollment, "--state-dir", path.join(scratch, "agent")], {
      cwd: scratch,
      env: { PATH: process.env.PATH ?? "", HOME: scratch },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    agent.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    agent.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const agentExited = new Promise<number | null>((resolve) => agent.once("exit", resolve));
    try {
      const machineId = await until(async () => (await call(`query($w: ID!) { workspace(id: $w) { machines { edges { node { id } } } } }`, { w: workspaceId }, token)).workspace.machines.edges[0]?.node.id);
      const blockId = `node_${randomBytes(4).toString("hex")}`;
      await call("mutation($i: SaveGraphInput!) { saveGraph(input: $i) { version } }", { i: { workspaceId, version: 0, blocks: [{ id: blockId, type: "code.worker", label: "b" }], edges: [] } }, token);
      const worker = (
        await call(
          "mutation($i: DeployWorkerInput!) { deployWorker(input: $i) { id } }",
          { i: { workspaceId, kind: "CODE", blockId, tickIntervalSeconds: 1, code: "def tick(ctx):\n    ctx.log('compiled tick')\n" } },
          token,
        )
      ).deployWorker;
      const line = await until(async () => {
        const lines = (await call(`query($i: LogLinesInput!) { logLines(input: $i) { lines { message } } }`, { i: { source: { type: "WORKER", id: worker.id }, limit: 5 } }, token)).logLines.lines;
        return lines[0]?.message as string | undefined;
      });
      expect(line).toBe("compiled tick");
      expect(machineId).toBeTruthy();
    } catch (error) {
      throw new Error(`${(error as Error).message}\nagent output:\n${output}`);
    } finally {
      agent.kill("SIGTERM");
    }
    expect(await agentExited).toBe(0);
  }, 60_000);

  it("stops cleanly on SIGTERM", async () => {
    server.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});

