// Accounts and sessions: sign-up with an emailed code, sign-in (password, then TOTP when enabled),
// refresh-token rotation with reuse detection, profile, password and TOTP changes.
import { z } from "zod";
import type { PrismaClient, User } from "../../generated/prisma/client.js";
import { createLimit, reserveAll, type Limit, type LimitStore } from "../../auth/limits.js";
import { decoyPasswordHash, hashPassword, verifyPassword } from "../../auth/passwords.js";
import { randomToken, sha256, sixDigitCode } from "../../auth/secrets.js";
import type { TokenService } from "../../auth/tokens.js";
import { matchTotp, newTotpSecret } from "../../auth/totp.js";
import { requireUser } from "../../auth/viewer.js";
import { isUniqueViolation } from "../../infra/db.js";
import type { Logger } from "../../infra/logger.js";
import type { Mailer } from "../../infra/mailer.js";
import type { Config } from "../../config.js";
import { AppError, conflict, notAuthenticated, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";
import { unaudited } from "../shared/audit.js";
import { noteAccount } from "../shared/live.js";
import type { ClientInfo, RequestContext } from "../shared/request.js";
import type { UnitOfWork, WorkTx } from "../shared/unit-of-work.js";

const CODE_TTL_MS = 15 * 60 * 1000;
const CODE_MAX_ATTEMPTS = 5;

const email = z.email("must be an email address").max(254).transform((v) => v.toLowerCase());
const password = z
  .string()
  .min(10, "must be at least 10 characters")
  .max(256, "must be at most 256 characters");
const username = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{2,31}$/, "must be 3-32 letters, digits, '_', '.' or '-', starting with a letter or digit")
  .transform((v) => v.toLowerCase());
const totpCode = z.string().regex(/^\d{6}$/, "must be the 6-digit code from your authenticator app");
const optionalText = (max: number) => z.string().trim().max(max, `must be at most ${max} characters`).nullish();

/** Asked for at sign-in; granted up to the configured maximum (see issueSession). */
const accessTokenTtl = z.int("must be a whole number of seconds").min(60, "must be at least 60 seconds").nullish();

const registerInput = z.object({ email, username, password, displayName: optionalText(64) });
const confirmInput = z.object({ email, code: z.string().regex(/^\d{6}$/, "must be the 6-digit code from the email"), accessTokenTtl });
const loginInput = z.object({
  login: z.string().trim().min(1, "enter your email or username").max(254),
  password: z.string().min(1, "enter your password").max(256),
  totpCode: totpCode.nullish(),
  accessTokenTtl,
});
const profileInput = z.object({
  displayName: optionalText(64),
  gitName: optionalText(128),
  gitEmail: z.email("must be an email address").max(254).nullish(),
  dotfilesRepo: z
    .string()
    .trim()
    .max(512, "must be at most 512 characters")
    .regex(/^(https:\/\/|ssh:\/\/|git:\/\/)\S+$|^git@[^\s:]+:\S+$/, "must be a git repository URL (https://, ssh://, git:// or git@host:path)")
    .nullish(),
});
const changePasswordInput = z.object({ currentPassword: z.string().min(1).max(256), newPassword: password });

export interface IssuedSession {
  user: User;
  sessionId: string;
  accessToken: string;
  accessTokenExpiresAt: Date;
  refreshToken: string;
  refreshTokenExpiresAt: Date;
  /** For the browser cookie; never returned in a response body. */
  cookieSecret: string;
}

export interface AccountServiceDeps {
  prisma: PrismaClient;
  work: UnitOfWork;
  tokens: TokenService;
  mailer: Mailer;
  limits: AccountLimits;
  refreshTokenTtlSeconds: number;
  /** The longest access token a sign-in may ask for (config ACCESS_TOKEN_MAX_TTL). */
  accessTokenMaxTtlSeconds: number;
  /**
   * `email`: an account exists once the emailed code is confirmed. `none` (SPINDLE_SIGNUP_CONFIRMATION,
   * for clients with no confirmation step, such as api-v1's): it exists and signs in at once, its
   * address unverified until the code is confirmed.
   */
  signupConfirmation: "email" | "none";
  log: Logger;
}

/**
 * The counted limits of signing in and up. Sign-in failures count per account (whichever spelling,
 * email or username, named it) from one address, and per address over all accounts (spraying);
 * sign-ups count per address and per email.
 */
export function createAccountLimits(store: LimitStore, auth: Config["auth"]) {
  const login = { windowSeconds: auth.loginWindowSeconds };
  const signup = { windowSeconds: auth.signupWindowSeconds };
  return {
    loginAccount: createLimit(store, {
      ...login,
      name: "login:account",
      points: auth.loginMaxFailures,
      message: "Too many failed sign-in attempts for this account from this address; try again later",
    }),
    loginAddress: createLimit(store, {
      ...login,
      name: "login:address",
      points: auth.loginMaxFailuresPerAddress,
      message: "Too many failed sign-in attempts from this address; try again later",
    }),
    signupAddress: createLimit(store, {
      ...signup,
      name: "signup:address",
      points: auth.signupMaxPerAddress,
      message: "Too many sign-ups from this address; try again later",
    }),
    signupEmail: createLimit(store, {
      ...signup,
      name: "signup:email",
      points: auth.signupMaxPerEmail,
      message: "Too many sign-ups for this email address; use the newest code we sent, or try again later",
    }),
  } satisfies Record<string, Limit>;
}
export type AccountLimits = ReturnType<typeof createAccountLimits>;

const wrongCode = () => validationError([{ field: "input.code", message: "wrong or expired code; register again to get a new one" }]);

export { requireUser };

export function createAccountService(deps: AccountServiceDeps) {
  const { prisma, work, tokens, mailer, limits, log } = deps;
  /** One's own account writes no audit entry (README, "What the audit log holds"). */
  const ownAccount = <T>(fn: (tx: WorkTx) => Promise<T>) =>
    work.run(async (tx) => {
      unaudited(tx, "account");
      return fn(tx);
    });

  /**
   * A new session and its tokens. A client that cannot refresh (AiSpinner has no refresh endpoint,
   * and its clients work a whole day on one login) asks for a longer access token; it gets at most
   * ACCESS_TOKEN_MAX_TTL. That stays revocable: the token is only good while its session is (a
   * session's end reaches every server's credential cache at commit, auth/credential-cache.ts), so
   * signing out, revoking the session or changing the password ends it at once.
   */
  async function issueSession(user: User, client: ClientInfo, accessTokenTtl?: number | null): Promise<IssuedSession> {
    const refreshToken = randomToken();
    const cookieSecret = randomToken();
    const refreshTokenExpiresAt = new Date(Date.now() + deps.refreshTokenTtlSeconds * 1000);
    const session = await ownAccount((tx) => tx.session.create({
      data: {
        userId: user.id,
        cookieSecretHash: sha256(cookieSecret),
        userAgent: client.userAgent?.slice(0, 512),
        ip: client.ip,
        expiresAt: refreshTokenExpiresAt,
        refreshTokens: { create: { tokenHash: sha256(refreshToken) } },
      },
    }));
    const lifetime = accessTokenTtl == null ? undefined : Math.min(accessTokenTtl, deps.accessTokenMaxTtlSeconds);
    const access = await tokens.signAccessToken({ userId: user.id, sessionId: session.id }, lifetime);
    return {
      user,
      sessionId: session.id,
      accessToken: access.token,
      accessTokenExpiresAt: access.expiresAt,
      refreshToken,
      refreshTokenExpiresAt,
      cookieSecret,
    };
  }

  type SessionWhere = { userId: string; NOT?: { id: string } } | { id: string };

  /** Ends the sessions in the caller's unit of work, which announces each after commit. */
  async function endSessions(tx: WorkTx, where: SessionWhere, reason: string) {
    const sessions = await tx.session.findMany({ where: { ...where, revokedAt: null }, select: { id: true, userId: true } });
    if (sessions.length === 0) return;
    await tx.session.updateMany({
      where: { id: { in: sessions.map((s) => s.id) }, revokedAt: null },
      data: { revokedAt: new Date(), revokedReason: reason },
    });
    for (const session of sessions) noteAccount(tx, "SESSION_REVOKED", session.userId, session.id);
  }

  async function revokeSessions(where: SessionWhere, reason: string) {
    await ownAccount((tx) => endSessions(tx, where, reason));
  }

  async function checkTotp(user: User, code: string | null | undefined, field: string) {
    if (!user.totpSecret) return;
    if (!code) {
      throw new AppError("NOT_AUTHENTICATED", "This account uses two-factor sign-in: send the 6-digit code from your authenticator app", {
        reason: "TOTP_REQUIRED",
        fields: [{ field, message: "required for this account" }],
      });
    }
    const step = matchTotp(user.totpSecret, code);
    // The conditional update makes each code usable once, even by two requests at the same moment.
    const accepted =
      step !== null &&
      (await ownAccount((tx) => tx.user.updateMany({
        where: { id: user.id, OR: [{ totpLastStep: null }, { totpLastStep: { lt: step } }] },
        data: { totpLastStep: step },
      }))).count === 1;
    if (!accepted) {
      throw new AppError("NOT_AUTHENTICATED", "Wrong or already used two-factor code", {
        reason: "TOTP_INVALID",
        fields: [{ field, message: "wrong or already used code" }],
      });
    }
  }

  const emailTaken = () =>
    new AppError("CONFLICT", "This email address already has an account; sign in instead", {
      fields: [{ field: "input.email", message: "already has an account" }],
    });

  /**
   * Keeps a sign-up pending under a new code and emails the code. The code creates the account
   * (confirmation `email`), or only verifies the address of the account made at once (`none`).
   */
  async function recordPendingSignUp(input: z.infer<typeof registerInput>, passwordHash: string, codeExpiresAt: Date) {
    const code = sixDigitCode();
    await ownAccount(async (tx) => {
      // Expired sign-ups (with their password hashes) go as new ones come: no job needed.
      await tx.pendingRegistration.deleteMany({ where: { createdAt: { lt: new Date(Date.now() - CODE_TTL_MS) } } });
      await tx.pendingRegistration.create({
        data: {
          email: input.email,
          username: input.username,
          displayName: input.displayName ?? null,
          passwordHash,
          codeHash: sha256(code),
          expiresAt: codeExpiresAt,
        },
      });
    });
    const effect = deps.signupConfirmation === "none" ? "verifies the address of" : "creates";
    await mailer.send({
      to: input.email,
      subject: `Your Spindle confirmation code: ${code}`,
      body: `Your Spindle confirmation code is ${code}. It expires in 15 minutes. It ${effect} the account "${input.username}": if that is not the username you chose, someone else used your address, so do not enter the code.`,
    });
  }

  /**
   * Sign-up without confirmation (SPINDLE_SIGNUP_CONFIRMATION=none): the account exists and is
   * signed in at once, its address unverified (so invitations sent to it stay out of its reach)
   * until the emailed code is confirmed.
   */
  async function registerAtOnce(input: z.infer<typeof registerInput>, passwordHash: string, codeExpiresAt: Date, client: ClientInfo) {
    const user = await prisma.user
      .create({ data: { email: input.email, username: input.username, displayName: input.displayName ?? null, passwordHash } })
      .catch((error: unknown) => {
        if (isUniqueViolation(error)) throw conflict("This email address or username got an account at the same moment; sign in, or register again");
        throw error;
      });
    await recordPendingSignUp(input, passwordHash, codeExpiresAt);
    return { email: input.email, codeExpiresAt, session: await issueSession(user, client) };
  }

  return {
    issueSession,

    /**
     * Starts a sign-up: emails a code and keeps the registration pending until it is confirmed. An
     * email that already has an account takes the same path (a password hash, one mail) and gets the
     * same answer, so the form tells nobody who has an account. Each call makes its own pending row:
     * a second sign-up for the same email cannot touch the first.
     */
    async register(ctx: Pick<RequestContext, "client">, raw: unknown) {
      const { client } = ctx;
      const input = parseInput(registerInput, raw);
      await reserveAll([
        [limits.signupAddress, client.ip],
        [limits.signupEmail, input.email],
      ]);
      if (await prisma.user.findUnique({ where: { username: input.username }, select: { id: true } })) {
        throw new AppError("CONFLICT", `The username "${input.username}" is taken; choose another`, {
          fields: [{ field: "input.username", message: "already taken" }],
        });
      }
      const passwordHash = await hashPassword(input.password);
      const codeExpiresAt = new Date(Date.now() + CODE_TTL_MS);
      const existing = await prisma.user.findUnique({ where: { email: input.email }, select: { id: true } });
      // Signing in at once cannot hide that an address has an account: say so, as for a username.
      if (existing && deps.signupConfirmation === "none") throw emailTaken();
      if (existing) {
        await mailer.send({
          to: input.email,
          subject: "Someone tried to sign up with your email",
          body: "Somebody tried to create a Spindle account with this address, which already has one. If it was you, sign in instead (or reset your password). Otherwise you can ignore this message.",
        });
        return { email: input.email, codeExpiresAt };
      }
      if (deps.signupConfirmation === "none") return registerAtOnce(input, passwordHash, codeExpiresAt, client);
      await recordPendingSignUp(input, passwordHash, codeExpiresAt);
      return { email: input.email, codeExpiresAt };
    },

    /**
     * Creates the account of the pending sign-up whose code this is, with the credentials given in
     * that same sign-up. Each guess first takes one of the email's attempts in a single UPDATE, so
     * guesses sent at once cannot exceed the limit on any database or replica.
     */
    async confirmRegistration(ctx: Pick<RequestContext, "client">, raw: unknown) {
      const { client } = ctx;
      const input = parseInput(confirmInput, raw);
      const now = new Date();
      // Its own unit of work: the attempt stays counted when the code turns out wrong.
      const reserved = await ownAccount(
        (tx) => tx.$queryRaw<{ id: string; codeHash: string }[]>`
          UPDATE "PendingRegistration" SET "attempts" = "attempts" + 1
          WHERE "email" = ${input.email} AND "consumedAt" IS NULL AND "expiresAt" > ${now} AND "attempts" < ${CODE_MAX_ATTEMPTS}
          RETURNING "id", "codeHash"`,
      );
      const codeHash = sha256(input.code);
      const match = reserved.find((row) => row.codeHash === codeHash);
      if (!match) throw wrongCode();
      const user = await ownAccount(async (tx) => {
        const pending = await tx.pendingRegistration.update({ where: { id: match.id }, data: { consumedAt: now } });
        const holder = await tx.user.findUnique({ where: { email: pending.email } });
        // An account made at once by this very sign-up (confirmation `none`): the code verifies its address.
        if (holder && !holder.emailVerifiedAt && holder.username === pending.username) {
          await tx.pendingRegistration.deleteMany({ where: { email: pending.email } });
          return tx.user.update({ where: { id: holder.id }, data: { emailVerifiedAt: now } });
        }
        if (holder) throw conflict("This email address already has an account; sign in instead");
        if (await tx.user.findUnique({ where: { username: pending.username }, select: { id: true } })) {
          throw conflict(`The username "${pending.username}" was taken while this sign-up waited; register again with another`, {
            fields: [{ field: "input.email", message: "its sign-up's username is taken" }],
          });
        }
        const created = await tx.user.create({
          data: {
            email: pending.email,
            username: pending.username,
            displayName: pending.displayName,
            passwordHash: pending.passwordHash,
            emailVerifiedAt: now,
          },
        });
        await tx.pendingRegistration.deleteMany({ where: { email: pending.email } });
        return created;
      }).catch((error: unknown) => {
        if (isUniqueViolation(error)) throw conflict("This email address or username got an account at the same moment; sign in, or register again");
        throw error;
      });
      return issueSession(user, client, input.accessTokenTtl);
    },

    /**
     * Signs in with email or username. Points on the account and address limits are reserved
     * before the password is hashed; failures keep them, a success gives them back.
     */
    async login(ctx: Pick<RequestContext, "client">, raw: unknown) {
      const { client } = ctx;
      const input = parseInput(loginInput, raw);
      const login = input.login.toLowerCase();
      const user = await prisma.user.findFirst({ where: login.includes("@") ? { email: login } : { username: login } });
      // Per account, whichever spelling named it; an unknown login counts under its own name.
      const accountKey = `${user?.id ?? `unknown:${login}`}|${client.ip}`;
      await reserveAll([
        [limits.loginAddress, client.ip],
        [limits.loginAccount, accountKey],
      ]);
      const passwordOk = await verifyPassword(input.password, user?.passwordHash ?? (await decoyPasswordHash()));
      if (!user || !passwordOk) {
        throw new AppError("NOT_AUTHENTICATED", "Wrong email, username or password", { reason: "INVALID_CREDENTIALS" });
      }
      const succeeded = () => Promise.all([limits.loginAccount.reset(accountKey), limits.loginAddress.refund(client.ip)]);
      try {
        await checkTotp(user, input.totpCode, "input.totpCode");
      } catch (error) {
        // The password was right: being asked for the second factor is no failure; a wrong code is.
        if (!input.totpCode) await succeeded();
        throw error;
      }
      await succeeded();
      return issueSession(user, client, input.accessTokenTtl);
    },

    /** Exchanges a refresh token for a new pair. Reusing a rotated token revokes its whole session. */
    async refresh(_ctx: Pick<RequestContext, "client">, raw: unknown) {
      const { refreshToken } = parseInput(z.object({ refreshToken: z.string().min(1).max(256) }), raw);
      const tokenHash = sha256(refreshToken);
      const next = randomToken();
      // One UPDATE claims the token: of two concurrent refreshes exactly one sees a row come back.
      const outcome = await ownAccount(async (tx) => {
        const claimed = await tx.$queryRaw<{ sessionId: string }[]>`
          UPDATE "RefreshToken" SET "rotatedAt" = now()
          WHERE "tokenHash" = ${tokenHash} AND "rotatedAt" IS NULL
          RETURNING "sessionId"`;
        if (claimed.length === 0) return { kind: "unclaimed" as const };
        const session = await tx.session.findUnique({ where: { id: claimed[0]!.sessionId }, include: { user: true } });
        if (!session || session.revokedAt || session.expiresAt <= new Date()) return { kind: "ended" as const };
        await tx.refreshToken.create({ data: { sessionId: session.id, tokenHash: sha256(next) } });
        await tx.session.update({ where: { id: session.id }, data: { lastUsedAt: new Date() } });
        return { kind: "rotated" as const, session };
      });
      if (outcome.kind === "ended") throw notAuthenticated("This session has ended; sign in again");
      if (outcome.kind === "unclaimed") {
        const known = await prisma.refreshToken.findUnique({ where: { tokenHash }, select: { sessionId: true } });
        if (!known) throw notAuthenticated("Unknown refresh token; sign in again");
        await revokeSessions({ id: known.sessionId }, "refresh token reused");
        log.warn({ sessionId: known.sessionId }, "refresh token reused: session revoked");
        throw new AppError("NOT_AUTHENTICATED", "This refresh token was already used, so its session has been ended for safety; sign in again", {
          reason: "REFRESH_TOKEN_REUSED",
        });
      }
      const { session } = outcome;
      const access = await tokens.signAccessToken({ userId: session.userId, sessionId: session.id });
      return {
        user: session.user,
        sessionId: session.id,
        accessToken: access.token,
        accessTokenExpiresAt: access.expiresAt,
        refreshToken: next,
        refreshTokenExpiresAt: session.expiresAt,
      };
    },

    /** Ends every session of the user in the caller's unit of work (an administrator's password reset). */
    endSessionsOf: (tx: WorkTx, userId: string, reason: string) => endSessions(tx, { userId }, reason),

    /** Ends the caller's session, and the session of `refreshToken` when it is another of theirs (api-web logout). */
    async logout({ viewer }: Pick<RequestContext, "viewer">, refreshToken?: string | null) {
      if (viewer.kind !== "session") throw notAuthenticated("Sign out needs a session (API keys are revoked instead)");
      await revokeSessions({ id: viewer.sessionId }, "signed out");
      if (refreshToken) {
        const known = await prisma.refreshToken.findUnique({ where: { tokenHash: sha256(refreshToken) }, select: { session: { select: { id: true, userId: true } } } });
        // Someone else's token is not the caller's to end, and saying so would tell them it exists.
        if (known && known.session.userId === viewer.userId) await revokeSessions({ id: known.session.id }, "signed out");
      }
      return true;
    },

    async revokeSession({ viewer }: Pick<RequestContext, "viewer">, sessionId: string) {
      const me = requireUser(viewer);
      const session = await prisma.session.findFirst({ where: { id: requireId(sessionId, "session"), userId: me.userId } });
      if (!session) throw notFound("session", sessionId);
      await revokeSessions({ id: session.id }, "revoked by the user");
      return prisma.session.findUniqueOrThrow({ where: { id: session.id } });
    },

    async updateProfile({ viewer }: Pick<RequestContext, "viewer">, raw: unknown) {
      const me = requireUser(viewer);
      const input = parseInput(profileInput, raw);
      const data = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
      return ownAccount(async (tx) => {
        const user = await tx.user.update({ where: { id: me.userId }, data });
        noteAccount(tx, "PROFILE_UPDATED", me.userId, me.userId);
        return user;
      });
    },

    async changePassword({ viewer }: Pick<RequestContext, "viewer">, raw: unknown) {
      if (viewer.kind !== "session") throw notAuthenticated("Changing the password needs a signed-in session");
      const input = parseInput(changePasswordInput, raw);
      const user = await prisma.user.findUniqueOrThrow({ where: { id: viewer.userId } });
      if (!(await verifyPassword(input.currentPassword, user.passwordHash))) {
        throw validationError([{ field: "input.currentPassword", message: "is not your current password" }]);
      }
      const passwordHash = await hashPassword(input.newPassword);
      // The new password and the end of the other sessions commit together.
      await ownAccount(async (tx) => {
        await tx.user.update({ where: { id: user.id }, data: { passwordHash } });
        await endSessions(tx, { userId: user.id, NOT: { id: viewer.sessionId } }, "password changed");
        noteAccount(tx, "PASSWORD_CHANGED", user.id, user.id);
      });
      return true;
    },

    async setupTotp({ viewer }: Pick<RequestContext, "viewer">) {
      const me = requireUser(viewer);
      const user = await prisma.user.findUniqueOrThrow({ where: { id: me.userId } });
      if (user.totpSecret) throw new AppError("CONFLICT", "Two-factor sign-in is already on; disable it first to set up a new device");
      const { secret, uri } = newTotpSecret(user.email ?? user.username);
      await ownAccount((tx) => tx.user.update({ where: { id: user.id }, data: { totpPendingSecret: secret } }));
      return { secret, uri };
    },

    async enableTotp({ viewer }: Pick<RequestContext, "viewer">, raw: unknown) {
      const me = requireUser(viewer);
      const { code } = parseInput(z.object({ code: totpCode }), raw);
      const user = await prisma.user.findUniqueOrThrow({ where: { id: me.userId } });
      if (user.totpSecret) throw new AppError("CONFLICT", "Two-factor sign-in is already on");
      if (!user.totpPendingSecret) throw new AppError("CONFLICT", "Call setupTotp first, then confirm with a code");
      const step = matchTotp(user.totpPendingSecret, code);
      if (step === null) throw validationError([{ field: "input.code", message: "wrong code; check the device's clock" }]);
      return ownAccount(async (tx) => {
        const updated = await tx.user.update({
          where: { id: user.id },
          data: { totpSecret: user.totpPendingSecret, totpPendingSecret: null, totpLastStep: step },
        });
        noteAccount(tx, "TOTP_ENABLED", user.id, user.id);
        return updated;
      });
    },

    async disableTotp({ viewer }: Pick<RequestContext, "viewer">, raw: unknown) {
      const me = requireUser(viewer);
      const { code } = parseInput(z.object({ code: totpCode }), raw);
      const user = await prisma.user.findUniqueOrThrow({ where: { id: me.userId } });
      if (!user.totpSecret) throw new AppError("CONFLICT", "Two-factor sign-in is not on");
      try {
        await checkTotp(user, code, "input.code");
      } catch {
        throw validationError([{ field: "input.code", message: "wrong or already used code" }]);
      }
      return ownAccount(async (tx) => {
        const updated = await tx.user.update({
          where: { id: user.id },
          data: { totpSecret: null, totpPendingSecret: null, totpLastStep: null },
        });
        noteAccount(tx, "TOTP_DISABLED", user.id, user.id);
        return updated;
      });
    },

    /**
     * On a database without users, creates the first admin: from SPINDLE_ADMIN_EMAIL/PASSWORD, or
     * admin@spindle.local with a generated password that the caller prints once.
     */
    async ensureFirstAdmin(options: { email?: string; password?: string }) {
      if ((await prisma.user.count()) > 0) return null;
      const adminEmail = (options.email ?? "admin@spindle.local").toLowerCase();
      const adminPassword = options.password ?? randomToken(15);
      const passwordHash = await hashPassword(adminPassword);
      await work.run(async (tx) => {
        unaudited(tx, "server");
        return tx.user.create({
          data: {
            email: adminEmail,
            username: "admin",
            displayName: "Administrator",
            passwordHash,
            role: "ADMIN",
            emailVerifiedAt: new Date(),
          },
        });
      });
      return { email: adminEmail, generatedPassword: options.password ? undefined : adminPassword };
    },
  };
}

export type AccountService = ReturnType<typeof createAccountService>;
