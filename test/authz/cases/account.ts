// Accounts and API keys: the viewer's own things, so roles in a workspace do not matter; what
// matters is the kind of credential. Operations that would spoil the shared world (logout, password,
// TOTP) run as a fresh account of the same kind.
import { currentTotp, newTotpSecret } from "../../../src/auth/totp.js";
import { createUser, latestEmailCode, signedInUser, unique } from "../../helpers/factories.js";
import {
  everyone,
  isUserActor,
  selfRead,
  selfWrite,
  sessionOnly,
  type ActorName,
  type Fixture,
  type MatrixCase,
  type World,
} from "../world.js";

const nobody = { owner: "FORBIDDEN", admin: "FORBIDDEN", member: "FORBIDDEN", viewer: "FORBIDDEN", stranger: "FORBIDDEN", readKey: "FORBIDDEN", machine: "FORBIDDEN", anonymous: "NOT_AUTHENTICATED" } as const;

/** A fresh signed-in account for user actors; other actors keep their world credential. */
async function freshSession(world: World, actor: ActorName): Promise<Fixture> {
  if (!isUserActor(actor)) return {};
  return { user: await signedInUser(world.server) };
}
const asFresh = (world: World, fixture: Fixture, actor: ActorName) => fixture.user?.accessToken ?? world.tokens[actor];

export const cases: MatrixCase[] = [
  { field: "Query.me", request: () => ({ query: "{ me { id } }" }), expect: selfRead },
  { field: "Query.sessions", request: () => ({ query: "{ sessions(first: 5) { edges { node { id } } } }" }), expect: sessionOnly },
  // Only system administrators list accounts; nobody in the world is one.
  { field: "Query.users", request: () => ({ query: "{ users(first: 5) { edges { node { id } } } }" }), expect: nobody },
  // That nobody lists another user's keys is tested in test/graphql/api-keys.test.ts.
  { field: "Query.apiKeys", request: () => ({ query: "{ apiKeys(first: 5) { edges { node { id } } } }" }), expect: selfRead },
  {
    field: "Mutation.register",
    request: () => {
      const name = unique("reg");
      return {
        query: "mutation($i: RegisterInput!) { register(input: $i) { email } }",
        variables: { i: { email: `${name}@example.test`, username: name, password: "a long enough password" } },
      };
    },
    expect: everyone,
  },
  {
    field: "Mutation.confirmRegistration",
    setup: async (world) => {
      const name = unique("conf");
      const email = `${name}@example.test`;
      await world.server.post({
        query: "mutation($i: RegisterInput!) { register(input: $i) { email } }",
        variables: { i: { email, username: name, password: "a long enough password" } },
      });
      return { email, code: await latestEmailCode(world.server, email) };
    },
    request: (_w, f) => ({
      query: "mutation($i: ConfirmRegistrationInput!) { confirmRegistration(input: $i) { accessToken } }",
      variables: { i: { email: f.email, code: f.code } },
    }),
    expect: everyone,
  },
  {
    field: "Mutation.login",
    setup: async (world) => ({ user: await createUser(world.server) }),
    request: (_w, f) => ({
      query: "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
      variables: { i: { login: f.user.email, password: f.user.password } },
    }),
    expect: everyone,
  },
  {
    field: "Mutation.refreshToken",
    setup: async (world) => ({ signed: await signedInUser(world.server) }),
    request: (_w, f) => ({
      query: "mutation($i: RefreshTokenInput!) { refreshToken(input: $i) { accessToken } }",
      variables: { i: { refreshToken: f.signed.refreshToken } },
    }),
    expect: everyone,
  },
  { field: "Mutation.logout", setup: freshSession, as: asFresh, request: () => ({ query: "mutation { logout }" }), expect: sessionOnly },
  {
    field: "Mutation.revokeSession",
    setup: async (world, actor) => {
      const fixture = await freshSession(world, actor);
      const userId = fixture.user?.id ?? world.users.owner.id;
      // A second session of the same account: the one to end.
      const other = await world.server.db.prisma.session.create({
        data: { userId, expiresAt: new Date(Date.now() + 3600_000) },
      });
      return { ...fixture, sessionId: other.id };
    },
    as: asFresh,
    request: (_w, f) => ({ query: "mutation($id: ID!) { revokeSession(id: $id) { id } }", variables: { id: f.sessionId } }),
    expect: sessionOnly,
  },
  {
    // Each user hears about their own account only: the profile change below is the actor's own
    // (the read key's is its owner's), so a stream that shows it listens to the right account.
    field: "Subscription.accountEvents",
    request: () => ({ query: "subscription { accountEvents { type subjectId } }" }),
    expect: selfRead,
    trigger: async (world, _f, actor) => {
      const token = actor === "readKey" ? world.tokens.owner : isUserActor(actor) ? world.tokens[actor] : undefined;
      if (!token) return;
      await world.server.post({ query: "mutation { updateProfile(input: {}) { id } }" }, { token });
    },
    check: (data, actor, world) => {
      const userId = world.users[actor === "readKey" ? "owner" : (actor as keyof World["users"])].id;
      if (data.accountEvents.type !== "PROFILE_UPDATED" || data.accountEvents.subjectId !== userId) throw new Error("another account's event");
    },
  },
  {
    field: "Mutation.updateProfile",
    request: () => ({
      query: "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { id } }",
      variables: { i: { displayName: unique("Name ") } },
    }),
    expect: selfWrite,
  },
  {
    field: "Mutation.changePassword",
    setup: freshSession,
    as: asFresh,
    request: (_w, f) => ({
      query: "mutation($i: ChangePasswordInput!) { changePassword(input: $i) }",
      variables: { i: { currentPassword: f.user?.password ?? "irrelevant password", newPassword: "another long password" } },
    }),
    expect: sessionOnly,
  },
  { field: "Mutation.setupTotp", setup: freshSession, as: asFresh, request: () => ({ query: "mutation { setupTotp { uri } }" }), expect: sessionOnly },
  {
    field: "Mutation.enableTotp",
    setup: async (world, actor) => {
      const fixture = await freshSession(world, actor);
      const { secret } = newTotpSecret("matrix");
      if (fixture.user) await world.server.db.prisma.user.update({ where: { id: fixture.user.id }, data: { totpPendingSecret: secret } });
      return { ...fixture, code: currentTotp(secret) };
    },
    as: asFresh,
    request: (_w, f) => ({ query: "mutation($i: TotpCodeInput!) { enableTotp(input: $i) { id } }", variables: { i: { code: f.code } } }),
    expect: sessionOnly,
  },
  {
    field: "Mutation.disableTotp",
    setup: async (world, actor) => {
      const fixture = await freshSession(world, actor);
      const { secret } = newTotpSecret("matrix");
      if (fixture.user) await world.server.db.prisma.user.update({ where: { id: fixture.user.id }, data: { totpSecret: secret } });
      return { ...fixture, code: currentTotp(secret) };
    },
    as: asFresh,
    request: (_w, f) => ({ query: "mutation($i: TotpCodeInput!) { disableTotp(input: $i) { id } }", variables: { i: { code: f.code } } }),
    expect: sessionOnly,
  },
  {
    field: "Mutation.createApiKey",
    request: () => ({
      query: "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key } }",
      variables: { i: { name: "matrix", scopes: ["READ"] } },
    }),
    expect: sessionOnly,
  },
  {
    field: "Mutation.revokeApiKey",
    setup: async (world, actor) => {
      const owner = isUserActor(actor) ? world.users[actor] : world.users.owner;
      const key = await world.server.db.prisma.apiKey.create({
        data: { userId: owner.id, name: "to revoke", prefix: "spk_xxxxxx", keyHash: unique("hash"), scopes: ["READ"] },
      });
      return { keyId: key.id };
    },
    request: (_w, f) => ({ query: "mutation($id: ID!) { revokeApiKey(id: $id) { id } }", variables: { id: f.keyId } }),
    expect: sessionOnly,
  },
];

// Account administration: system administrators only, and nobody in the world is one (the
// administrator's own path is tested in test/graphql/accounts.test.ts).
cases.push(
  {
    field: "Mutation.createUser",
    request: () => {
      const name = unique("adm");
      return {
        query: "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
        variables: { i: { email: `${name}@example.test`, username: name, password: "a long enough password" } },
      };
    },
    expect: nobody,
  },
  {
    field: "Mutation.updateUser",
    request: (world) => ({
      query: "mutation($i: UpdateUserInput!) { updateUser(input: $i) { id } }",
      variables: { i: { id: world.users.member.id, role: "ADMIN" } },
    }),
    expect: nobody,
  },
  {
    field: "Mutation.resetUserTotp",
    request: (world) => ({ query: "mutation($id: ID!) { resetUserTotp(id: $id) { id } }", variables: { id: world.users.member.id } }),
    expect: nobody,
  },
);
