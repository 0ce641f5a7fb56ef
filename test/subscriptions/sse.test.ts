// Subscriptions over Server-Sent Events: POST /graphql with `accept: text/event-stream`, the
// credential in the Authorization header, events as `event: next` blocks.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  AccountEventsDocument,
  CreateApiKeyDocument,
  CurrentSessionDocument,
  LogoutDocument,
  UpdateProfileDocument,
} from "../generated/graphql.js";
import { signedInUser, type SignedIn } from "../helpers/factories.js";
import { firstDelivery, type SseEvent, sseSubscribe, tracker } from "../helpers/live.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
const t = tracker();
beforeAll(async () => {
  server = await startTestServer();
});
afterEach(() => t.closeAll());
afterAll(() => server?.close());

const touchProfile = (user: SignedIn, displayName = "Touched") =>
  server.execute(UpdateProfileDocument, { input: { displayName } }, { token: user.accessToken }).then(ok);

const accountEvent = (event: SseEvent) => {
  expect(event.event).toBe("next");
  expect(event.data.errors).toBeUndefined();
  return event.data.data.accountEvents as { type: string; subjectId: string; occurredAt: string };
};

describe(`account events over SSE (${backend})`, () => {
  it("streams PROFILE_UPDATED as `event: next` to the subscriber, and only the subscriber's own", async () => {
    const user = await signedInUser(server);
    const other = await signedInUser(server);
    const stream = await sseSubscribe(server, t, AccountEventsDocument, { token: user.accessToken });
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toMatch(/^text\/event-stream/);

    const first = accountEvent(await firstDelivery(stream.events, () => touchProfile(user)));
    expect(first).toMatchObject({ type: "PROFILE_UPDATED", subjectId: user.id });
    expect(Number.isNaN(Date.parse(first.occurredAt))).toBe(false);

    // Another user's change, then a fence of the user's own: nothing about the other arrives.
    await touchProfile(other, "Someone else");
    const { createApiKey } = ok(
      await server.execute(CreateApiKeyDocument, { input: { name: "fence", scopes: ["READ"] } }, { token: user.accessToken }),
    );
    const seen = (await stream.events.until((e) => e.event === "next" && accountEvent(e).type === "API_KEY_CREATED")).map(accountEvent);
    expect(seen.at(-1)).toMatchObject({ type: "API_KEY_CREATED", subjectId: createApiKey.apiKey.id });
    for (const event of seen.slice(0, -1)) expect(event).toMatchObject({ type: "PROFILE_UPDATED", subjectId: user.id });
  });

  it("ends the stream with `event: complete` after the subscribing session logs out", async () => {
    const user = await signedInUser(server);
    const { sessions } = ok(await server.execute(CurrentSessionDocument, {}, { token: user.accessToken }));
    const sessionId = sessions.edges.find((e) => e.node.current)!.node.id;
    const stream = await sseSubscribe(server, t, AccountEventsDocument, { token: user.accessToken });
    await firstDelivery(stream.events, () => touchProfile(user));

    ok(await server.execute(LogoutDocument, {}, { token: user.accessToken }));
    const seen = await stream.events.until((e) => e.event === "next" && accountEvent(e).type === "SESSION_REVOKED");
    expect(accountEvent(seen.at(-1)!).subjectId).toBe(sessionId);
    expect((await stream.events.next()).event).toBe("complete");
    expect(await stream.events.ended()).toEqual({ error: undefined });
  });

  it("answers a subscription without a token with NOT_AUTHENTICATED and no events", async () => {
    const stream = await sseSubscribe(server, t, AccountEventsDocument);
    const first = await stream.events.next();
    expect(first.event).toBe("next");
    expect(first.data.data ?? null).toBeNull();
    expect(first.data.errors).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: "NOT_AUTHENTICATED" }) })]);
    expect((await stream.events.next()).event).toBe("complete");
    expect(await stream.events.ended()).toEqual({ error: undefined });
  });

  it("answers a subscription with a bad token with NOT_AUTHENTICATED", async () => {
    const stream = await sseSubscribe(server, t, AccountEventsDocument, { token: "not-a-token" });
    const first = await stream.events.next();
    expect(first.data.errors).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: "NOT_AUTHENTICATED" }) })]);
    expect((await stream.events.next()).event).toBe("complete");
  });
});
