// graphql-ws on /graphql against a real server: the handshake (timeout, credentials, Origin), account
// events for the right user only, the end of a stream when its session or key is revoked, and the
// same request limits as over HTTP.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  AccountEventsDocument,
  type AccountEventsSubscription,
  CreateApiKeyDocument,
  CurrentSessionDocument,
  LogoutDocument,
  RevokeApiKeyDocument,
  RevokeSessionDocument,
  UpdateProfileDocument,
  WhoAmIDocument,
} from "../generated/graphql.js";
import { createUser, signedInUser, signIn, type SignedIn } from "../helpers/factories.js";
import { acknowledgedSocket, firstDelivery, type Inbox, rawSocket, tracker, within, wsClient, wsSubscribe, type WsResult } from "../helpers/live.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
const t = tracker();
beforeAll(async () => {
  server = await startTestServer();
});
afterEach(() => t.closeAll());
afterAll(() => server?.close());

type Event = WsResult<AccountEventsSubscription>;
const eventOf = (result: Event) => {
  if (result.errors?.length || !result.data) throw new Error(`Expected an event, got ${JSON.stringify(result)}`);
  return result.data.accountEvents;
};

/** Bumps the user's profile over HTTP (each call publishes PROFILE_UPDATED). */
const touchProfile = (user: SignedIn, displayName = "Touched") =>
  server.execute(UpdateProfileDocument, { input: { displayName } }, { token: user.accessToken }).then(ok);

/** Subscribes to accountEvents and returns once the subscription demonstrably receives events. */
async function liveAccountEvents(user: SignedIn, connectionParams: Record<string, unknown>): Promise<Inbox<Event>> {
  const client = wsClient(server, t, connectionParams);
  const events = wsSubscribe(client, t, AccountEventsDocument);
  const first = eventOf(await firstDelivery(events, () => touchProfile(user)));
  expect(first).toMatchObject({ type: "PROFILE_UPDATED", subjectId: user.id });
  return events;
}

async function currentSessionId(user: SignedIn): Promise<string> {
  const { sessions } = ok(await server.execute(CurrentSessionDocument, {}, { token: user.accessToken }));
  const current = sessions.edges.find((e) => e.node.current);
  if (!current) throw new Error("no current session");
  return current.node.id;
}

describe(`graphql-ws handshake (${backend})`, () => {
  it("closes with 4408 when no connection_init comes within the server's 5 s", async () => {
    const socket = rawSocket(server, t);
    await within(socket.opened, 5_000, "WebSocket open");
    expect(socket.ws.protocol).toBe("graphql-transport-ws");
    const started = Date.now();
    const closed = await within(socket.closed, 8_000, "close after the init timeout");
    expect(closed.code).toBe(4408);
    expect(Date.now() - started).toBeGreaterThanOrEqual(4_500);
    expect(socket.messages.pending).toEqual([]);
  }, 15_000);

  it("closes with 4403 on a connection_init without credentials", async () => {
    for (const payload of [undefined, {}]) {
      const socket = rawSocket(server, t);
      await within(socket.opened, 5_000, "WebSocket open");
      socket.send(payload === undefined ? { type: "connection_init" } : { type: "connection_init", payload });
      const closed = await within(socket.closed, 5_000, "close after an anonymous init");
      expect(closed.code).toBe(4403);
      // No connection_ack before the close.
      expect(socket.messages.pending).toEqual([]);
    }
  });

  it("refuses a garbage token, a malformed spk_ key and a well-formed unknown key with 4403", async () => {
    const unknownKey = `spk_${"A".repeat(46)}`;
    for (const params of [
      { authorization: "Bearer not-a-jwt" },
      { authorization: "Basic dXNlcjpwYXNz" },
      { token: "garbage.garbage.garbage" },
      { authorization: "Bearer spk_short" },
      { authorization: `Bearer ${unknownKey}` },
    ]) {
      const client = wsClient(server, t, params);
      const result = wsSubscribe(client, t, WhoAmIDocument);
      const end = await result.ended(5_000);
      expect(end.error, JSON.stringify(params)).toMatchObject({ code: 4403 });
      expect(result.pending).toEqual([]);
    }
  });

  it("refuses the upgrade with 403 when the Origin is another site, and 404 off /graphql", async () => {
    const user = await signedInUser(server);
    const host = new URL(server.url).host;
    for (const origin of ["https://evil.example", `http://${host}.evil.example`, "null"]) {
      const socket = rawSocket(server, t, { headers: { origin } });
      expect(await within(socket.refused, 5_000, `upgrade with Origin ${origin}`), origin).toBe(403);
    }
    const elsewhere = rawSocket(server, t, { path: "/elsewhere" });
    expect(await within(elsewhere.refused, 5_000, "upgrade off /graphql")).toBe(404);

    // The server is still up, and its own origin is accepted.
    const client = wsClient(server, t, { authorization: `Bearer ${user.accessToken}` }, { headers: { origin: `http://${host}` } });
    const me = await wsSubscribe(client, t, WhoAmIDocument).next();
    expect(me.data?.me.id).toBe(user.id);
  });
});

describe(`account events over graphql-ws (${backend})`, () => {
  it("delivers PROFILE_UPDATED to a subscriber with an Authorization connection param", async () => {
    const user = await signedInUser(server);
    const events = await liveAccountEvents(user, { authorization: `Bearer ${user.accessToken}` });
    await touchProfile(user, "Again");
    const [event] = await events.until((e) => eventOf(e).type === "PROFILE_UPDATED");
    expect(eventOf(event!)).toMatchObject({ type: "PROFILE_UPDATED", subjectId: user.id });
    expect(new Date(eventOf(event!).occurredAt).getTime()).toBeGreaterThan(Date.now() - 60_000);
  });

  it("accepts the access token as a `token` connection param", async () => {
    const user = await signedInUser(server);
    const events = await liveAccountEvents(user, { token: user.accessToken });
    expect(events.end).toBeUndefined();
  });

  it("does not deliver another user's events", async () => {
    const user = await signedInUser(server);
    const other = await signedInUser(server);
    const events = await liveAccountEvents(user, { authorization: `Bearer ${user.accessToken}` });

    await touchProfile(other, "Someone else");
    // A fence: the user's own next event. Pub/sub keeps order, so anything about the other user
    // would have arrived before it.
    const { createApiKey } = ok(
      await server.execute(CreateApiKeyDocument, { input: { name: "fence", scopes: ["READ"] } }, { token: user.accessToken }),
    );
    const seen = (await events.until((e) => eventOf(e).type === "API_KEY_CREATED")).map(eventOf);
    expect(seen.at(-1)).toMatchObject({ type: "API_KEY_CREATED", subjectId: createApiKey.apiKey.id });
    for (const event of seen.slice(0, -1)) expect(event).toMatchObject({ type: "PROFILE_UPDATED", subjectId: user.id });
    expect(seen.map((e) => e.subjectId)).not.toContain(other.id);
  });

  it("sends SESSION_REVOKED and completes when another session of the user revokes the subscribing one", async () => {
    const user = await createUser(server);
    const phone = await signIn(server, user);
    const laptop = await signIn(server, user);
    const phoneSession = await currentSessionId(phone);
    const events = await liveAccountEvents(phone, { authorization: `Bearer ${phone.accessToken}` });

    ok(await server.execute(RevokeSessionDocument, { id: phoneSession }, { token: laptop.accessToken }));
    const seen = (await events.until((e) => eventOf(e).type === "SESSION_REVOKED")).map(eventOf);
    expect(seen.at(-1)).toMatchObject({ type: "SESSION_REVOKED", subjectId: phoneSession });
    expect(await events.ended(5_000)).toEqual({ error: undefined });
    expect(events.pending).toEqual([]);
  });

  it("keeps streaming when a different session of the same user is revoked", async () => {
    const user = await createUser(server);
    const phone = await signIn(server, user);
    const laptop = await signIn(server, user);
    const laptopSession = await currentSessionId(laptop);
    const events = await liveAccountEvents(phone, { authorization: `Bearer ${phone.accessToken}` });

    ok(await server.execute(RevokeSessionDocument, { id: laptopSession }, { token: phone.accessToken }));
    const seen = (await events.until((e) => eventOf(e).type === "SESSION_REVOKED")).map(eventOf);
    expect(seen.at(-1)).toMatchObject({ subjectId: laptopSession });
    await touchProfile(phone, "Still here");
    const after = (await events.until((e) => eventOf(e).type === "PROFILE_UPDATED")).map(eventOf);
    expect(after).toEqual([expect.objectContaining({ type: "PROFILE_UPDATED", subjectId: user.id })]);
    expect(events.end).toBeUndefined();
  });

  it("sends SESSION_REVOKED and completes on logout, and the connection cannot start new operations", async () => {
    const user = await signedInUser(server);
    const session = await currentSessionId(user);
    const client = wsClient(server, t, { authorization: `Bearer ${user.accessToken}` }, { keepOpenMs: 60_000 });
    const events = wsSubscribe(client, t, AccountEventsDocument);
    await firstDelivery(events, () => touchProfile(user));

    ok(await server.execute(LogoutDocument, {}, { token: user.accessToken }));
    const seen = (await events.until((e) => eventOf(e).type === "SESSION_REVOKED")).map(eventOf);
    expect(seen.at(-1)).toMatchObject({ type: "SESSION_REVOKED", subjectId: session });
    expect(await events.ended(5_000)).toEqual({ error: undefined });

    // The socket (still the same one) was authenticated at connection_init, with a session that has
    // now ended: it cannot be used for anything else.
    const after = wsSubscribe(client, t, WhoAmIDocument);
    const refused = await after.ended(5_000);
    expect(after.pending).toEqual([]);
    expect(refused.error).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: "NOT_AUTHENTICATED" }) })]);
    expect(client.closes).toEqual([]);
  });

  it("lets an API key with the READ scope subscribe, and ends its stream when the key is revoked", async () => {
    const user = await signedInUser(server);
    const { createApiKey } = ok(
      await server.execute(CreateApiKeyDocument, { input: { name: "reader", scopes: ["READ"] } }, { token: user.accessToken }),
    );
    const events = await liveAccountEvents(user, { authorization: `Bearer ${createApiKey.key}` });

    ok(await server.execute(RevokeApiKeyDocument, { id: createApiKey.apiKey.id }, { token: user.accessToken }));
    const seen = (await events.until((e) => eventOf(e).type === "API_KEY_REVOKED")).map(eventOf);
    expect(seen.at(-1)).toMatchObject({ type: "API_KEY_REVOKED", subjectId: createApiKey.apiKey.id });
    expect(await events.ended(5_000)).toEqual({ error: undefined });
  });
});

describe(`request limits over graphql-ws (${backend})`, () => {
  let user: SignedIn;
  beforeAll(async () => {
    user = await signedInUser(server);
  });

  const cases: [string, () => string, RegExp][] = [
    ["more than 15 aliases", () => `{ ${Array.from({ length: 16 }, (_, i) => `a${i}: me { id }`).join(" ")} }`, /aliases limit of 15/i],
    ["more than 2000 tokens", () => `{ me { ${"id ".repeat(2_100)} } }`, /token limit of 2000/i],
    ["a depth over 10", () => `{ me { ${"... on User { ".repeat(11)}id${" }".repeat(11)} } }`, /depth limit of 10/i],
    ["more than 20 directives", () => `{ me { ${"id @include(if: true) ".repeat(21)} } }`, /directives limit of 20/i],
  ];
  it.each(cases)("answers a query with %s with an error message, and the connection goes on", async (_name, query, message) => {
    const socket = await acknowledgedSocket(server, t, { authorization: `Bearer ${user.accessToken}` });
    const before = server.db.statements.count;
    socket.send({ id: "over", type: "subscribe", payload: { query: query() } });
    const refused = await socket.messages.next();
    expect(refused).toMatchObject({ id: "over", type: "error" });
    expect(refused.payload).toEqual([expect.objectContaining({ message: expect.stringMatching(message) })]);
    expect(server.db.statements.count).toBe(before);

    // Same socket, a query within the limits: data.
    socket.send({ id: "fine", type: "subscribe", payload: { query: "{ a1: me { id } a2: me { id } }" } });
    expect(await socket.messages.next()).toEqual({ id: "fine", type: "next", payload: { data: { a1: { id: user.id }, a2: { id: user.id } } } });
    expect(await socket.messages.next()).toEqual({ id: "fine", type: "complete" });
  });

  it("answers the same queries through the graphql-ws client with errors, not data", async () => {
    const client = wsClient(server, t, { authorization: `Bearer ${user.accessToken}` });
    for (const [name, query, message] of cases) {
      const result = wsSubscribe(client, t, query());
      const end = await result.ended();
      expect(result.pending, name).toEqual([]);
      expect(end.error, name).toEqual([expect.objectContaining({ message: expect.stringMatching(message) })]);
    }
  });
});
