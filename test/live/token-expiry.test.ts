// A live stream lasts as long as its credential: a session's stream ends when the access token it
// was opened with expires (the client refreshes and resubscribes with its cursor). Every kind of
// stream is checked by the same guard, account events included.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AccountEventsDocument, PublishWorkspaceEventDocument, UpdateProfileDocument, WorkspaceEventsDocument } from "../generated/graphql.js";
import { ownedWorkspace } from "../helpers/factories.js";
import { tracker, wsClient, wsSubscribe } from "../helpers/live.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
const t = tracker();
beforeAll(async () => {
  server = await startTestServer({ ACCESS_TOKEN_TTL: "3" });
});
afterEach(() => t.closeAll());
afterAll(() => server?.close());

describe(`stream lifetime (${backend})`, () => {
  it("ends a session's event stream when its access token expires, saying so", async () => {
    const { owner, workspace: ws } = await ownedWorkspace(server);
    const after = String((await server.db.prisma.workspace.findUniqueOrThrow({ where: { id: ws.id } })).lastEventCursor);

    const client = wsClient(server, t, { authorization: `Bearer ${owner.accessToken}` });
    const stream = wsSubscribe(client, t, WorkspaceEventsDocument, { workspaceId: ws.id, after });
    ok(await server.execute(PublishWorkspaceEventDocument, { input: { workspaceId: ws.id, type: "notification", data: { n: 1 } } }, { token: owner.accessToken }));
    const first = await stream.next(5_000);
    expect(first.data?.events.type).toBe("notification");

    const end = await stream.next(10_000);
    expect(end.errors?.[0]).toMatchObject({ extensions: { code: "NOT_AUTHENTICATED" } });
    expect(end.errors?.[0]?.message).toContain("access token");
    expect(await stream.ended(5_000)).toEqual({ error: undefined });
  }, 30_000);

  it("ends a session's account event stream when its access token expires, saying so", async () => {
    const { owner } = await ownedWorkspace(server);
    const stream = wsSubscribe(wsClient(server, t, { authorization: `Bearer ${owner.accessToken}` }), t, AccountEventsDocument, {});
    // Subscribed (its first read) before the event is published.
    await new Promise((resolve) => setTimeout(resolve, 300));
    ok(await server.execute(UpdateProfileDocument, { input: { displayName: "renamed" } }, { token: owner.accessToken }));
    expect((await stream.next(5_000)).data?.accountEvents.type).toBe("PROFILE_UPDATED");

    const end = await stream.next(10_000);
    expect(end.errors?.[0]).toMatchObject({ extensions: { code: "NOT_AUTHENTICATED" } });
    expect(end.errors?.[0]?.message).toContain("access token");
    expect(await stream.ended(5_000)).toEqual({ error: undefined });
  }, 30_000);
});
