// Accounts and sessions: sign-up with an emailed code, sign-in (password, then TOTP when enabled),
// refresh-token rotation with reuse detection, profile, password and TOTP changes.
import { timingSafeEqual } from "node:crypto";
import { z } from "zod";
import type { PrismaClient, User } from "../../generated/prisma/client.js";
import type { LoginThrottle } from "../../auth/login-throttle.js";
import { decoyPasswordHash, hashPassword, verifyPassword } from "../../auth/passwords.js";
import { randomToken, sha256, sixDigitCode } from "../../auth/secrets.js";
import type { TokenService } from "../../auth/tokens.js";
import { matchTotp, newTotpSecret } from "../../auth/totp.js";
import { requireUser, type Viewer } from "../../auth/viewer.js";
import type { Logger } from "../../infra/logger.js";
import type { Mailer } from "../../infra/mailer.js";
import type { AccountEventType, PubSubService } from "../../infra/pubsub.js";
import { AppError, notAuthenticated, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";

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

const registerInput = z.object({ email, username, password, displayName: optionalText(64) });
const confirmInput = z.object({ email, code: z.string().regex(/^\d{6}$/, "must be the 6-digit code from the email") });
const loginInput = z.object({
  login: z.string().trim().min(1, "enter your email or username").max(254),
  password: z.string().min(1, "enter your password").max(256),
  totpCode: totpCode.nullish(),
});
const profileInput = z.object({
  displayName: optionalText(64),
  gitName: optionalText(128),
  gitEmail: z.email("must be an email address").max(254).nullish(),
});
const changePasswordInput = z.object({ currentPassword: z.string().min(1).max(256), newPassword: password });

export interface ClientInfo {
  ip: string;
  userAgent?: string;
}

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
  tokens: TokenService;
  mailer: Mailer;
  pubsub: PubSubService;
  throttle: LoginThrottle;
  refreshTokenTtlSeconds: number;
  log: Logger;
}

const wrongCode = () => validationError([{ field: "input.code", message: "wrong or expired code; register again to get a new one" }]);

export { requireUser };

export function createAccountService(deps: AccountServiceDeps) {
  const { prisma, tokens, mailer, throttle, log } = deps;

  function publish(type: AccountEventType, userId: string, subjectId: string) {
    deps.pubsub.pubsub.publish("account", userId, { type, userId, subjectId, occurredAt: new Date().toISOString() });
  }

  async function issueSession(user: User, client: ClientInfo): Promise<IssuedSession> {
    const refreshToken = randomToken();
    const cookieSecret = randomToken();
    const refreshTokenExpiresAt = new Date(Date.now() + deps.refreshTokenTtlSeconds * 1000);
    const session = await prisma.session.create({
      data: {
        userId: user.id,
        cookieSecretHash: sha256(cookieSecret),
        userAgent: client.userAgent?.slice(0, 512),
        ip: client.ip,
        expiresAt: refreshTokenExpiresAt,
        refreshTokens: { create: { tokenHash: sha256(refreshToken) } },
      },
    });
    const access = await tokens.signAccessToken({ userId: user.id, sessionId: session.id });
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

  async function revokeSessions(where: { userId: string; NOT?: { id: string } } | { id: string }, reason: string) {
    const sessions = await prisma.session.findMany({ where: { ...where, revokedAt: null }, select: { id: true, userId: true } });
    if (sessions.length === 0) return;
    await prisma.session.updateMany({
      where: { id: { in: sessions.map((s) => s.id) }, revokedAt: null },
      data: { revokedAt: new Date(), revokedReason: reason },
    });
    for (const s of sessions) publish("SESSION_REVOKED", s.userId, s.id);
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
      (await prisma.user.updateMany({
        where: { id: user.id, OR: [{ totpLastStep: null }, { totpLastStep: { lt: step } }] },
        data: { totpLastStep: step },
      })).count === 1;
    if (!accepted) {
      throw new AppError("NOT_AUTHENTICATED", "Wrong or already used two-factor code", {
        reason: "TOTP_INVALID",
        fields: [{ field, message: "wrong or already used code" }],
      });
    }
  }

  return {
    issueSession,

    async register(raw: unknown) {
      const input = parseInput(registerInput, raw);
      const existing = await prisma.user.findUnique({ where: { email: input.email } });
      const codeExpiresAt = new Date(Date.now() + CODE_TTL_MS);
      if (existing?.emailVerifiedAt) {
        // Same answer as a new sign-up, so the form cannot be used to find out who has an account.
        await mailer.send({
          to: input.email,
          subject: "Someone tried to sign up with your email",
          body: "Somebody tried to create a Spindle account with this address, which already has one. If it was you, sign in instead (or reset your password). Otherwise you can ignore this message.",
        });
        return { email: input.email, codeExpiresAt };
      }
      const holder = await prisma.user.findUnique({ where: { username: input.username }, select: { id: true } });
      if (holder && holder.id !== existing?.id) {
        throw new AppError("CONFLICT", `The username "${input.username}" is taken; choose another`, {
          fields: [{ field: "input.username", message: "already taken" }],
        });
      }
      const code = sixDigitCode();
      const passwordHash = await hashPassword(input.password);
      await prisma.$transaction(async (tx) => {
        const profile = { username: input.username, passwordHash, displayName: input.displayName ?? null };
        const user = existing
          ? await tx.user.update({ where: { id: existing.id }, data: profile })
          : await tx.user.create({ data: { email: input.email, ...profile } });
        await tx.emailCode.deleteMany({ where: { userId: user.id, purpose: "REGISTRATION" } });
        await tx.emailCode.create({
          data: { userId: user.id, purpose: "REGISTRATION", codeHash: sha256(code), expiresAt: codeExpiresAt },
        });
      });
      await mailer.send({
        to: input.email,
        subject: `Your Spindle confirmation code: ${code}`,
        body: `Your Spindle confirmation code is ${code}. It expires in 15 minutes.`,
      });
      return { email: input.email, codeExpiresAt };
    },

    async confirmRegistration(raw: unknown, client: ClientInfo) {
      const input = parseInput(confirmInput, raw);
      const user = await prisma.user.findUnique({ where: { email: input.email } });
      if (!user || user.emailVerifiedAt) throw wrongCode();
      const pending = await prisma.emailCode.findFirst({
        where: { userId: user.id, purpose: "REGISTRATION", consumedAt: null, expiresAt: { gt: new Date() } },
        orderBy: { createdAt: "desc" },
      });
      if (!pending || pending.attempts >= CODE_MAX_ATTEMPTS) throw wrongCode();
      const matches = timingSafeEqual(Buffer.from(sha256(input.code)), Buffer.from(pending.codeHash));
      if (!matches) {
        await prisma.emailCode.update({ where: { id: pending.id }, data: { attempts: { increment: 1 } } });
        throw wrongCode();
      }
      const now = new Date();
      const verified = await prisma.$transaction(async (tx) => {
        const consumed = await tx.emailCode.updateMany({ where: { id: pending.id, consumedAt: null }, data: { consumedAt: now } });
        if (consumed.count !== 1) throw wrongCode();
        return tx.user.update({ where: { id: user.id }, data: { emailVerifiedAt: now } });
      });
      return issueSession(verified, client);
    },

    async login(raw: unknown, client: ClientInfo) {
      const input = parseInput(loginInput, raw);
      const login = input.login.toLowerCase();
      const throttleKey = `${login}|${client.ip}`;
      await throttle.check(throttleKey);
      const user = await prisma.user.findFirst({ where: login.includes("@") ? { email: login } : { username: login } });
      const passwordOk = await verifyPassword(input.password, user?.passwordHash ?? (await decoyPasswordHash()));
      if (!user || !passwordOk) {
        await throttle.fail(throttleKey);
        throw new AppError("NOT_AUTHENTICATED", "Wrong email, username or password", { reason: "INVALID_CREDENTIALS" });
      }
      if (!user.emailVerifiedAt) {
        throw new AppError("NOT_AUTHENTICATED", "Confirm your email first with the code we sent (register again for a new code)", {
          reason: "EMAIL_NOT_CONFIRMED",
        });
      }
      try {
        await checkTotp(user, input.totpCode, "input.totpCode");
      } catch (error) {
        if (input.totpCode) await throttle.fail(throttleKey);
        throw error;
      }
      await throttle.reset(throttleKey);
      return issueSession(user, client);
    },

    /** Exchanges a refresh token for a new pair. Reusing a rotated token revokes its whole session. */
    async refresh(raw: unknown) {
      const { refreshToken } = parseInput(z.object({ refreshToken: z.string().min(1).max(256) }), raw);
      const tokenHash = sha256(refreshToken);
      const next = randomToken();
      // One UPDATE claims the token: of two concurrent refreshes exactly one sees a row come back.
      const outcome = await prisma.$transaction(async (tx) => {
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

    async logout(viewer: Viewer) {
      if (viewer.kind !== "session") throw notAuthenticated("Sign out needs a session (API keys are revoked instead)");
      await revokeSessions({ id: viewer.sessionId }, "signed out");
      return true;
    },

    async revokeSession(viewer: Viewer, sessionId: string) {
      const me = requireUser(viewer);
      const session = await prisma.session.findFirst({ where: { id: requireId(sessionId, "session"), userId: me.userId } });
      if (!session) throw notFound("session", sessionId);
      await revokeSessions({ id: session.id }, "revoked by the user");
      return prisma.session.findUniqueOrThrow({ where: { id: session.id } });
    },

    async updateProfile(viewer: Viewer, raw: unknown) {
      const me = requireUser(viewer);
      const input = parseInput(profileInput, raw);
      const data = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
      const user = await prisma.user.update({ where: { id: me.userId }, data });
      publish("PROFILE_UPDATED", me.userId, me.userId);
      return user;
    },

    async changePassword(viewer: Viewer, raw: unknown) {
      if (viewer.kind !== "session") throw notAuthenticated("Changing the password needs a signed-in session");
      const input = parseInput(changePasswordInput, raw);
      const user = await prisma.user.findUniqueOrThrow({ where: { id: viewer.userId } });
      if (!(await verifyPassword(input.currentPassword, user.passwordHash))) {
        throw validationError([{ field: "input.currentPassword", message: "is not your current password" }]);
      }
      await prisma.user.update({ where: { id: user.id }, data: { passwordHash: await hashPassword(input.newPassword) } });
      await revokeSessions({ userId: user.id, NOT: { id: viewer.sessionId } }, "password changed");
      publish("PASSWORD_CHANGED", user.id, user.id);
      return true;
    },

    async setupTotp(viewer: Viewer) {
      const me = requireUser(viewer);
      const user = await prisma.user.findUniqueOrThrow({ where: { id: me.userId } });
      if (user.totpSecret) throw new AppError("CONFLICT", "Two-factor sign-in is already on; disable it first to set up a new device");
      const { secret, uri } = newTotpSecret(user.email);
      await prisma.user.update({ where: { id: user.id }, data: { totpPendingSecret: secret } });
      return { secret, uri };
    },

    async enableTotp(viewer: Viewer, raw: unknown) {
      const me = requireUser(viewer);
      const { code } = parseInput(z.object({ code: totpCode }), raw);
      const user = await prisma.user.findUniqueOrThrow({ where: { id: me.userId } });
      if (user.totpSecret) throw new AppError("CONFLICT", "Two-factor sign-in is already on");
      if (!user.totpPendingSecret) throw new AppError("CONFLICT", "Call setupTotp first, then confirm with a code");
      const step = matchTotp(user.totpPendingSecret, code);
      if (step === null) throw validationError([{ field: "input.code", message: "wrong code; check the device's clock" }]);
      const updated = await prisma.user.update({
        where: { id: user.id },
        data: { totpSecret: user.totpPendingSecret, totpPendingSecret: null, totpLastStep: step },
      });
      publish("TOTP_ENABLED", user.id, user.id);
      return updated;
    },

    async disableTotp(viewer: Viewer, raw: unknown) {
      const me = requireUser(viewer);
      const { code } = parseInput(z.object({ code: totpCode }), raw);
      const user = await prisma.user.findUniqueOrThrow({ where: { id: me.userId } });
      if (!user.totpSecret) throw new AppError("CONFLICT", "Two-factor sign-in is not on");
      try {
        await checkTotp(user, code, "input.code");
      } catch {
        throw validationError([{ field: "input.code", message: "wrong or already used code" }]);
      }
      const updated = await prisma.user.update({
        where: { id: user.id },
        data: { totpSecret: null, totpPendingSecret: null, totpLastStep: null },
      });
      publish("TOTP_DISABLED", user.id, user.id);
      return updated;
    },

    /**
     * On a database without users, creates the first admin: from SPINDLE_ADMIN_EMAIL/PASSWORD, or
     * admin@spindle.local with a generated password that the caller prints once.
     */
    async ensureFirstAdmin(options: { email?: string; password?: string }) {
      if ((await prisma.user.count()) > 0) return null;
      const adminEmail = (options.email ?? "admin@spindle.local").toLowerCase();
      const adminPassword = options.password ?? randomToken(15);
      await prisma.user.create({
        data: {
          email: adminEmail,
          username: "admin",
          displayName: "Administrator",
          passwordHash: await hashPassword(adminPassword),
          role: "ADMIN",
          emailVerifiedAt: new Date(),
        },
      });
      return { email: adminEmail, generatedPassword: options.password ? undefined : adminPassword };
    },
  };
}

export type AccountService = ReturnType<typeof createAccountService>;
