// The database going away under a running server: every operation answers 503 SERVICE_UNAVAILABLE
// with Retry-After (a typed, retryable answer, not a masked bug), and the server serves again as
// soon as the database is back. The server under test reaches PostgreSQL through a TCP proxy the
// test owns and cuts (the machine's PostgreSQL keeps running for every other test file), so the
// failures are the real ones: node-postgres losing or not getting connections, Prisma's P1001.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppendLogsDocument, LoginDocument } from "../generated/graphql.js";
import { createMachineDirect } from "../authz/world.js";
import { ownedWorkspace, unique } from "../helpers/factories.js";
// A plain TCP proxy, whatever the service behind it.
import { tcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";
import { errorOf, ok, startTestServer, type GraphQLResponse, type TestServer } from "../helpers/server.js";

describe.skipIf(!process.env.DATABASE_URL)("the database unreachable (runs only with DATABASE_URL, as .ci/run's second pass)", () => {
  let primary: TestServer;
  let proxy: TcpProxy;
  let server: TestServer;
  let machine: { id: string; credential: string };
  let source: { type: "WORKER"; id: string };
  let sequence = 0;

  beforeAll(async () => {
    primary = await startTestServer();
    proxy = await tcpProxy(primary.databaseUrl!);
    // A second server on the same database, through the proxy.
    server = await startTestServer({}, { sameDatabaseAs: { ...primary, databaseUrl: proxy.url } });
    const { workspaceId } = await ownedWorkspace(primary);
    machine = await createMachineDirect(primary, workspaceId);
    const worker = await primary.db.prisma.worker.create({ data: { workspaceId, kind: "CONTAINER", name: unique("w"), image: "x", machineId: machine.id } });
    source = { type: "WORKER", id: worker.id };
  });
  afterAll(async () => {
    proxy?.restore();
    await server?.close();
    await proxy?.close();
    await primary?.close();
  });

  const append = () =>
    server.execute(AppendLogsDocument, { input: { source, sequence: `s${++sequence}`, lines: [{ level: "INFO", message: "tick" }] } }, { token: machine.credential });

  function expectUnavailable(res: GraphQLResponse<unknown>) {
    expect(errorOf(res)).toMatchObject({ status: 503, code: "SERVICE_UNAVAILABLE" });
    expect(res.headers.get("retry-after")).toBe("5");
    expect(errorOf(res).extensions.retryAfter).toBe(5);
  }

  it("answers 503 SERVICE_UNAVAILABLE with Retry-After while cut, and serves again once it is back", async () => {
    expect(ok(await append()).appendLogs.replayed).toBe(false);
    proxy.cut();
    // Authentication (the machine credential's lookup) finds no database: the whole request.
    expectUnavailable(await append());
    // Sign-in reads the database in its resolver: a field error, the same answer.
    expectUnavailable(await server.execute(LoginDocument, { input: { login: "nobody@example.test", password: "x" } }));
    expect((await fetch(`${server.url}/health`)).status).toBe(503);

    proxy.restore();
    await expect.poll(async () => (await append()).status, { timeout: 10_000, interval: 200 }).toBe(200);
  });

  it("answers the same when connections are refused outright (Prisma's P1001)", async () => {
    proxy.cut();
    await proxy.close();
    expectUnavailable(await append());
    expectUnavailable(await server.execute(LoginDocument, { input: { login: "nobody@example.test", password: "x" } }));
  });
});
