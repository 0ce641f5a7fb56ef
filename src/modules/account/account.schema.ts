// Accounts in GraphQL: sign-up, sign-in, tokens, profile, two-factor, sessions, account events.
import { stringifySetCookie } from "cookie";
import { SESSION_COOKIE } from "../../auth/authenticate.js";
import type { Context } from "../../context.js";
import { isUser, requireUser } from "../../auth/viewer.js";
import { accountEventTypes, type AccountEvent } from "../../infra/pubsub.js";
import { StreamFailure } from "../shared/live.js";
import { builder, pageSize } from "../../schema/builder.js";
import { WorkspaceRoleEnum } from "../workspace/workspace.schema.js";
import type { IssuedSession } from "./account.service.js";

export const SystemRoleEnum = builder.enumType("SystemRole", { values: ["ADMIN", "USER"] as const });

export const UserType = builder.prismaObject("User", {
  fields: (t) => ({
    id: t.exposeID("id"),
    legacyId: t.exposeInt("legacyId", { description: "The integer id legacy APIs show (AiSpinner user id, api-web developer id)" }),
    username: t.exposeString("username"),
    displayName: t.exposeString("displayName", { nullable: true }),
    role: t.field({ type: SystemRoleEnum, resolve: (user) => user.role }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    // Private details: the user themself, or an administrator. A field the caller may not see is
    // null (never an error), so a list of users reads the same for everyone.
    email: t.exposeString("email", {
      nullable: true,
      authScopes: privateToUser,
      unauthorizedResolver: () => null,
      description: "The sign-in email: the user themself and administrators only (else null). Null also for an account created without one.",
    }),
    emailConfirmed: t.boolean({
      authScopes: privateToUser,
      select: { emailVerifiedAt: true },
      resolve: (user) => user.emailVerifiedAt !== null,
    }),
    totpEnabled: t.boolean({
      authScopes: privateToUser,
      select: { totpSecret: true },
      resolve: (user) => user.totpSecret !== null,
    }),
    // The git identity is what co-members see on commits anyway: shown to anyone sharing a workspace.
    gitName: t.exposeString("gitName", { nullable: true, authScopes: sharedWithCoMembers, unauthorizedResolver: () => null }),
    gitEmail: t.exposeString("gitEmail", { nullable: true, authScopes: sharedWithCoMembers, unauthorizedResolver: () => null }),
    dotfilesRepo: t.exposeString("dotfilesRepo", {
      nullable: true,
      authScopes: privateToUser,
      unauthorizedResolver: () => null,
      description: "Spunto's dotfiles repository URL (the user themself and administrators; else null)",
    }),
    plan: t.exposeString("plan", { authScopes: privateToUser, description: "AiSpinner's plan name (\"free\" by default); Spindle enforces no plans" }),
  }),
});

/**
 * The user themself (also right after signing in, when the request itself was still anonymous:
 * AuthPayload grants "self"), or an administrator.
 */
function privateToUser(user: { id: string }, _args: object, ctx: Context) {
  if (isUser(ctx.viewer) && ctx.viewer.userId === user.id) return true;
  return { $any: { $granted: "self", systemAdmin: true } };
}

/** The user themself, an administrator, or someone who shares a workspace with them. */
function sharedWithCoMembers(user: { id: string }, _args: object, ctx: Context) {
  if (isUser(ctx.viewer) && ctx.viewer.userId === user.id) return true;
  return { $any: { $granted: "self", systemAdmin: true, coMember: user.id } };
}

export const SessionType = builder.prismaObject("Session", {
  fields: (t) => ({
    id: t.exposeID("id"),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    lastUsedAt: t.expose("lastUsedAt", { type: "DateTime" }),
    expiresAt: t.expose("expiresAt", { type: "DateTime" }),
    revokedAt: t.expose("revokedAt", { type: "DateTime", nullable: true }),
    userAgent: t.exposeString("userAgent", { nullable: true }),
    ip: t.exposeString("ip", { nullable: true }),
    current: t.boolean({
      description: "True for the session making this request.",
      resolve: (session, _args, ctx) => ctx.viewer.kind === "session" && ctx.viewer.sessionId === session.id,
    }),
  }),
});

interface AuthPayloadShape {
  user: IssuedSession["user"];
  accessToken: string;
  accessTokenExpiresAt: Date;
  refreshToken: string;
  refreshTokenExpiresAt: Date;
}

const AuthPayload = builder.objectRef<AuthPayloadShape>("AuthPayload").implement({
  description: "Tokens for a new or refreshed session. Send the access token as `Authorization: Bearer <token>`.",
  fields: (t) => ({
    user: t.field({ type: UserType, grantScopes: ["self"], resolve: (p) => p.user }),
    accessToken: t.exposeString("accessToken"),
    accessTokenExpiresAt: t.expose("accessTokenExpiresAt", { type: "DateTime" }),
    refreshToken: t.exposeString("refreshToken", { description: "Single use: each refresh returns a new one." }),
    refreshTokenExpiresAt: t.expose("refreshTokenExpiresAt", { type: "DateTime" }),
  }),
});

const RegistrationPayload = builder.objectRef<{ email: string; codeExpiresAt: Date; session?: AuthPayloadShape }>("RegistrationPayload").implement({
  description:
    "A confirmation code was sent to the email address; confirm with `confirmRegistration`. On a server that signs " +
    "sign-ups in at once (SPINDLE_SIGNUP_CONFIRMATION=none), `session` holds the new account's tokens and the code only verifies the address.",
  fields: (t) => ({
    email: t.exposeString("email"),
    codeExpiresAt: t.expose("codeExpiresAt", { type: "DateTime" }),
    session: t.field({
      type: AuthPayload,
      nullable: true,
      description: "The new account, signed in: only when the server needs no confirmation first",
      resolve: (p) => p.session ?? null,
    }),
  }),
});

const TotpSetupPayload = builder.objectRef<{ secret: string; uri: string }>("TotpSetupPayload").implement({
  description: "Add the secret (or scan the otpauth URI) in an authenticator app, then call `enableTotp` with a code.",
  fields: (t) => ({
    secret: t.exposeString("secret"),
    uri: t.exposeString("uri", { description: "otpauth:// URI, for a QR code" }),
  }),
});

const AccountEventTypeEnum = builder.enumType("AccountEventType", { values: accountEventTypes });

const AccountEventType = builder.objectRef<AccountEvent>("AccountEvent").implement({
  description: "Something changed in the viewer's account: a security notification.",
  fields: (t) => ({
    type: t.field({ type: AccountEventTypeEnum, resolve: (e) => e.type }),
    subjectId: t.exposeID("subjectId", { description: "The session, API key or user the event is about." }),
    occurredAt: t.field({ type: "DateTime", resolve: (e) => new Date(e.occurredAt) }),
  }),
});

const RegisterInput = builder.inputType("RegisterInput", {
  fields: (t) => ({
    email: t.string({ required: true }),
    username: t.string({ required: true, description: "3-32 letters, digits, '_', '.' or '-'; used to sign in" }),
    password: t.string({ required: true, description: "At least 10 characters" }),
    displayName: t.string(),
  }),
});
const ACCESS_TOKEN_TTL =
  "Seconds the access token should last, at least 60, for a client that cannot refresh; the server grants at most its " +
  "ACCESS_TOKEN_MAX_TTL (12 h by default; see accessTokenExpiresAt). The token still ends with its session. Default: ACCESS_TOKEN_TTL.";
const ConfirmRegistrationInput = builder.inputType("ConfirmRegistrationInput", {
  fields: (t) => ({
    email: t.string({ required: true }),
    code: t.string({ required: true }),
    accessTokenTtl: t.int({ description: ACCESS_TOKEN_TTL }),
  }),
});
const LoginInput = builder.inputType("LoginInput", {
  fields: (t) => ({
    login: t.string({ required: true, description: "Email address or username" }),
    password: t.string({ required: true }),
    totpCode: t.string({ description: "Required when the account has two-factor sign-in" }),
    accessTokenTtl: t.int({ description: ACCESS_TOKEN_TTL }),
  }),
});
const RefreshTokenInput = builder.inputType("RefreshTokenInput", {
  fields: (t) => ({ refreshToken: t.string({ required: true }) }),
});
const UpdateProfileInput = builder.inputType("UpdateProfileInput", {
  fields: (t) => ({
    displayName: t.string(),
    gitName: t.string(),
    gitEmail: t.string(),
    dotfilesRepo: t.string({ description: "A git repository URL (Spunto dotfilesRepo); null clears it" }),
  }),
});
const ChangePasswordInput = builder.inputType("ChangePasswordInput", {
  fields: (t) => ({ currentPassword: t.string({ required: true }), newPassword: t.string({ required: true }) }),
});
const TotpCodeInput = builder.inputType("TotpCodeInput", {
  fields: (t) => ({ code: t.string({ required: true }) }),
});

function setSessionCookie(ctx: Context, secret: string, expires: Date) {
  ctx.setCookie(
    stringifySetCookie(SESSION_COOKIE, secret, { httpOnly: true, sameSite: "lax", secure: ctx.client.secure, path: "/", expires }),
  );
}

function startSession(ctx: Context, issued: IssuedSession): AuthPayloadShape {
  setSessionCookie(ctx, issued.cookieSecret, issued.refreshTokenExpiresAt);
  return issued;
}

builder.queryFields((t) => ({
  me: t.prismaField({
    type: UserType,
    description: "The signed-in user (through a session or an API key).",
    authScopes: { read: true },
    resolve: (query, _root, _args, ctx) =>
      ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: requireUser(ctx.viewer).userId } }),
  }),
  sessions: t.prismaConnection({
    type: "Session",
    cursor: "id",
    ...pageSize,
    description: "The viewer's active sessions, newest first.",
    authScopes: { session: true },
    resolve: (query, _root, _args, ctx) =>
      ctx.prisma.session.findMany({
        ...query,
        where: { userId: requireUser(ctx.viewer).userId, revokedAt: null, expiresAt: { gt: new Date() } },
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      }),
  }),
  users: t.prismaConnection({
    type: "User",
    cursor: "id",
    ...pageSize,
    description: "Every account (administrators only).",
    authScopes: { systemAdmin: true },
    resolve: (query, _root, _args, ctx) => ctx.prisma.user.findMany({ ...query, orderBy: [{ createdAt: "asc" }, { id: "asc" }] }),
  }),
}));

builder.mutationFields((t) => ({
  register: t.field({
    type: RegistrationPayload,
    description:
      "Starts a sign-up: emails a 6-digit code (kept in the outbox and the log when no SMTP is set up). With " +
      "SPINDLE_SIGNUP_CONFIRMATION=none the account exists and is signed in at once (`session`).",
    authScopes: { public: true },
    args: { input: t.arg({ type: RegisterInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const registered = await ctx.services.accounts.register(ctx, input);
      return "session" in registered ? { ...registered, session: startSession(ctx, registered.session) } : registered;
    },
  }),
  confirmRegistration: t.field({
    type: AuthPayload,
    description: "Finishes a sign-up with the emailed code and signs in (or, for an account made at once, verifies its address).",
    authScopes: { public: true },
    args: { input: t.arg({ type: ConfirmRegistrationInput, required: true }) },
    resolve: async (_root, { input }, ctx) => startSession(ctx, await ctx.services.accounts.confirmRegistration(ctx, input)),
  }),
  login: t.field({
    type: AuthPayload,
    description: "Signs in with email or username and password (and a TOTP code when enabled). Also sets a session cookie.",
    authScopes: { public: true },
    args: { input: t.arg({ type: LoginInput, required: true }) },
    resolve: async (_root, { input }, ctx) => startSession(ctx, await ctx.services.accounts.login(ctx, input)),
  }),
  refreshToken: t.field({
    type: AuthPayload,
    description: "Exchanges a refresh token for new tokens. Each refresh token works once; reusing one ends its session.",
    authScopes: { public: true },
    args: { input: t.arg({ type: RefreshTokenInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.accounts.refresh(ctx, input),
  }),
  logout: t.boolean({
    description: "Ends the current session (its refresh tokens and cookie stop working), and the session of `refreshToken` if it is another of the caller's.",
    authScopes: { session: true },
    args: { refreshToken: t.arg.string({ description: "A refresh token of the caller's (api-web logout): its session ends too" }) },
    resolve: async (_root, args, ctx) => {
      const done = await ctx.services.accounts.logout(ctx, args.refreshToken);
      setSessionCookie(ctx, "", new Date(0));
      return done;
    },
  }),
  revokeSession: t.prismaField({
    type: "Session",
    description: "Ends one of the viewer's sessions (another device, say).",
    authScopes: { session: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_query, _root, { id }, ctx) => ctx.services.accounts.revokeSession(ctx, String(id)),
  }),
  updateProfile: t.prismaField({
    type: "User",
    authScopes: { write: true },
    args: { input: t.arg({ type: UpdateProfileInput, required: true }) },
    resolve: (_query, _root, { input }, ctx) => ctx.services.accounts.updateProfile(ctx, input),
  }),
  changePassword: t.boolean({
    description: "Changes the password and ends every other session of the account.",
    authScopes: { session: true },
    args: { input: t.arg({ type: ChangePasswordInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.accounts.changePassword(ctx, input),
  }),
  setupTotp: t.field({
    type: TotpSetupPayload,
    description: "Starts two-factor set-up; nothing changes until `enableTotp` confirms a code.",
    authScopes: { session: true },
    resolve: (_root, _args, ctx) => ctx.services.accounts.setupTotp(ctx),
  }),
  enableTotp: t.prismaField({
    type: "User",
    authScopes: { session: true },
    args: { input: t.arg({ type: TotpCodeInput, required: true }) },
    resolve: (_query, _root, { input }, ctx) => ctx.services.accounts.enableTotp(ctx, input),
  }),
  disableTotp: t.prismaField({
    type: "User",
    authScopes: { session: true },
    args: { input: t.arg({ type: TotpCodeInput, required: true }) },
    resolve: (_query, _root, { input }, ctx) => ctx.services.accounts.disableTotp(ctx, input),
  }),
}));

builder.subscriptionFields((t) => ({
  accountEvents: t.field({
    type: AccountEventType,
    description: "Security notifications for the viewer's account. Ends after the subscribing session or key is revoked.",
    authScopes: { read: true },
    subscribe: (_root, _args, ctx) => ctx.services.events.accountEvents(ctx),
    // The last item of a stream that ended on an error (its credential expired) is that error.
    resolve: (event) => {
      if (event instanceof StreamFailure) throw event.error;
      return event;
    },
  }),
}));

// Administration of accounts (system administrators only).
const CreateUserInput = builder.inputType("CreateUserInput", {
  fields: (t) => ({
    email: t.string({ description: "Optional (api-web developers have none): without one the account signs in by username only" }),
    username: t.string({ required: true }),
    password: t.string({ required: true }),
    displayName: t.string(),
    gitName: t.string(),
    gitEmail: t.string(),
    role: t.field({ type: SystemRoleEnum }),
    workspaceId: t.id({
      description: "The new account joins this workspace at once (api-web: an admin creates a developer of the team); the caller must administer it",
    }),
    workspaceRole: t.field({ type: WorkspaceRoleEnum, description: "Its role there (MEMBER unless given; not OWNER)" }),
  }),
});

const UpdateUserInput = builder.inputType("UpdateUserInput", {
  fields: (t) => ({
    id: t.id({ required: true }),
    displayName: t.string(),
    gitName: t.string(),
    gitEmail: t.string(),
    role: t.field({ type: SystemRoleEnum }),
    password: t.string({ description: "Sets a new password (an administrator's reset): every session of the account ends" }),
  }),
});

builder.mutationFields((t) => ({
  createUser: t.prismaField({
    type: "User",
    description: "Creates a confirmed account (administrators only).",
    authScopes: { systemAdmin: true },
    args: { input: t.arg({ type: CreateUserInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.userAdmin.createUser(ctx, input);
      return ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  updateUser: t.prismaField({
    type: "User",
    description: "Changes an account's names, system role or password (administrators only). The last administrator stays one.",
    authScopes: { systemAdmin: true },
    args: { input: t.arg({ type: UpdateUserInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.userAdmin.updateUser(ctx, { ...input, id: String(input.id) });
      return ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  resetUserTotp: t.prismaField({
    type: "User",
    description: "Turns off an account's two-factor sign-in, for a user who lost their device (administrators only).",
    authScopes: { systemAdmin: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, { id }, ctx) => {
      await ctx.services.userAdmin.resetUserTotp(ctx, String(id));
      return ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: String(id) } });
    },
  }),
}));
