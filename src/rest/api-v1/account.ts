// api-v1's accounts (../shared/seeds/003, "Authentication" and the admin's users): sign-in with an
// access and refresh token pair, sign-up, the caller's profile, password and two-factor sign-in, and
// the system administrators' user list. Users are Spindle's (UUID ids); `full_name` is the display
// name, `mfa_enabled` two-factor sign-in. Answers without an object are {"message": "..."}.
import { randomBytes } from "node:crypto";
import QRCode from "qrcode";
import { z } from "zod";
import {
  ApiV1AdminCreateUserDocument,
  ApiV1AdminUsersDocument,
  ApiV1AuthChangePasswordDocument,
  ApiV1AuthDisableTotpDocument,
  ApiV1AuthEnableTotpDocument,
  ApiV1AuthLoginDocument,
  ApiV1AuthLogoutDocument,
  ApiV1AuthMeDocument,
  ApiV1AuthRefreshDocument,
  ApiV1AuthRegisterDocument,
  ApiV1AuthSetupTotpDocument,
  ApiV1AuthUpdateProfileDocument,
  type ApiV1AuthSessionFragment,
  type ApiV1AuthUserFragment,
} from "../../generated/rest-api-v1-graphql.js";
import { Answer, RestError, type Route, type Run } from "../route.js";
import { collect, namingFields } from "../shared.js";
import { BEARER, OPEN, apiV1Route, badInput, lower, time } from "./common.js";

// ---- Shapes ----------------------------------------------------------------------------------

const tokenShape = z.object({
  access_token: z.string(),
  refresh_token: z.string().describe("Single use: each refresh answers a new one (reusing an old one ends the session)"),
  token_type: z.literal("bearer"),
  expires_in: z.int().describe("Seconds the access token lasts"),
});

function tokensOut(session: ApiV1AuthSessionFragment): z.infer<typeof tokenShape> {
  const expiresIn = Math.round((Date.parse(session.accessTokenExpiresAt) - Date.now()) / 1000);
  return { access_token: session.accessToken, refresh_token: session.refreshToken, token_type: "bearer", expires_in: Math.max(0, expiresIn) };
}

const userShape = z.object({
  id: z.string().describe("Spindle's user id (a UUID)"),
  email: z.string().nullable().describe("Null for an account made without one (api-web developers sign in by username)"),
  full_name: z.string().nullable(),
  role: z.enum(["admin", "user"]).describe("admin: a system administrator"),
  mfa_enabled: z.boolean().describe("Whether sign-in asks for a TOTP code"),
  is_active: z.literal(true).describe("Always true: Spindle has no deactivated accounts"),
  created_at: time,
});

const userOut = (user: ApiV1AuthUserFragment): z.infer<typeof userShape> => ({
  id: user.id,
  email: user.email ?? null,
  full_name: user.displayName ?? null,
  role: lower(user.role),
  mfa_enabled: user.totpEnabled,
  is_active: true,
  created_at: user.createdAt,
});

/** A sign-up the server let in at once (SPINDLE_SIGNUP_CONFIRMATION=none): the account, signed in. */
const registeredShape = userShape.extend(tokenShape.shape);

/** A sign-up waiting for its emailed code (the server's default): 202, no account yet. */
const pendingSignUpShape = z.object({
  detail: z.string(),
  email: z.string(),
  confirmation_required: z.literal(true),
});

const messageShape = z.object({ message: z.string() });
const mfaShape = messageShape.extend({ mfa_enabled: z.boolean() });

// ---- Inputs ----------------------------------------------------------------------------------

const text = () => z.string("must be a string");
const required = () => text().min(1, "must not be empty");
const email = () => z.email("must be an email address");

/** api-v1's roles onto Spindle's system roles, in any case. */
const role = text()
  .transform((value) => value.toLowerCase())
  .pipe(z.enum(["admin", "user"], "must be admin or user"))
  .transform((value) => (value === "admin" ? ("ADMIN" as const) : ("USER" as const)));

/** A TOTP code as `code`, or as `token` (what many FastAPI clients send): which one it was, to name it back in errors. */
const mfaCode = z
  .object({
    code: text().optional().describe("The 6-digit code from the authenticator app"),
    token: text().optional().describe("The same code, under the name some clients send it"),
  })
  .transform((body, ctx) => {
    const sent = body.code !== undefined ? { field: "code", code: body.code } : body.token !== undefined ? { field: "token", code: body.token } : undefined;
    if (!sent) {
      ctx.addIssue({ code: "custom", path: ["code"], message: "required (or send it as token)" });
      return z.NEVER;
    }
    return sent;
  });

/** Runs a TOTP mutation so a wrong code is named as the client sent it (`body.token` or `body.code`). */
const namingCode = (run: Run, field: string): Run => (field === "code" ? run : namingFields(run, [["body.code", `body.${field}`]]));

// ---- Usernames -------------------------------------------------------------------------------

/**
 * Spindle accounts need a username (3-32 letters, digits, '_', '.' or '-', from a letter or digit);
 * api-v1 sends only an email. Its local part, cut to that, is the first choice.
 */
function usernameFrom(address: string): string {
  const local = (address.split("@")[0] ?? "").replace(/\+.*$/, "").toLowerCase();
  const cleaned = local.replace(/[^a-z0-9_.-]+/g, "-").replace(/^[^a-z0-9]+/, "").slice(0, 32);
  return cleaned.length >= 3 ? cleaned : `user${cleaned ? `-${cleaned}` : ""}`;
}

/** The same with a short random suffix, for when the plain one is taken. */
const withSuffix = (username: string) => `${username.slice(0, 32 - 7)}-${randomBytes(3).toString("hex")}`;

const usernameTaken = (error: unknown) =>
  error instanceof RestError &&
  error.code === "CONFLICT" &&
  ((error.extensions.fields as { field: string }[] | undefined) ?? []).some((f) => f.field === "input.username");

/**
 * Runs `create` with the username the email suggests and, while that username is taken, with a
 * suffixed one. Two tries are the rule (a random suffix is practically never taken): each try of a
 * sign-up counts against the email's sign-up limit.
 */
async function withDerivedUsername<T>(address: string, create: (username: string) => Promise<T>): Promise<T> {
  const base = usernameFrom(address);
  for (let attempt = 0; ; attempt++) {
    try {
      return await create(attempt === 0 ? base : withSuffix(base));
    } catch (error) {
      if (!usernameTaken(error) || attempt >= 2) throw error;
    }
  }
}

// ---- Routes: signing in ----------------------------------------------------------------------

const sessionRoutes: Route[] = [
  apiV1Route({
    method: "POST",
    path: "/api/v1/auth/login",
    summary: "Sign in with email (or username) and password, and totp_code when MFA is on: an access and refresh token pair",
    auth: OPEN,
    body: z.object({
      email: required().describe("The account's email address (its username works too)"),
      password: required(),
      totp_code: text().nullish().describe("The 6-digit code from the authenticator app, when MFA is on"),
    }),
    response: tokenShape,
    async handler({ body, run }) {
      try {
        const { login } = await run(ApiV1AuthLoginDocument, { input: { login: body.email, password: body.password, totpCode: body.totp_code ?? undefined } });
        return tokensOut(login);
      } catch (error) {
        // Spindle's message asks for "the code"; api-v1's client needs the field it goes in.
        if (error instanceof RestError && error.extensions.reason === "TOTP_REQUIRED") {
          throw new RestError(error.code, `${error.message} (as totp_code)`, error.extensions);
        }
        throw error;
      }
    },
  }),
  apiV1Route({
    method: "POST",
    path: "/api/v1/auth/register",
    summary:
      "Register an account (its username, to sign in with beside the email, comes from the email). 201 with the account and its tokens " +
      "where the server signs sign-ups in at once; else 202: a code was emailed, and the account exists once it is confirmed (GraphQL confirmRegistration)",
    auth: OPEN,
    status: 201,
    body: z.object({
      email: email(),
      password: required().describe("At least 10 characters"),
      full_name: text().nullish().describe("At most 64 characters"),
    }),
    response: z.union([registeredShape, pendingSignUpShape]).describe("202 answers the second shape"),
    async handler({ body, run }) {
      const input = { email: body.email, password: body.password, displayName: body.full_name };
      const { register } = await withDerivedUsername(body.email, (username) => run(ApiV1AuthRegisterDocument, { input: { ...input, username } }));
      if (register.session) return { ...userOut(register.session.user), ...tokensOut(register.session) };
      const pending: z.infer<typeof pendingSignUpShape> = {
        // An address with an account gets the same answer (and a notice by mail): the form tells nobody who has one.
        detail: `A confirmation code was sent to ${register.email} (unless it has an account already: then a notice was); the account exists once confirmed (GraphQL confirmRegistration with the email and code)`,
        email: register.email,
        confirmation_required: true,
      };
      return new Answer(pending, { status: 202 });
    },
  }),
  apiV1Route({
    method: "POST",
    path: "/api/v1/auth/refresh",
    summary: "A new token pair for a refresh token; each refresh token works once (reusing one ends its session)",
    auth: OPEN,
    body: z.object({ refresh_token: required() }),
    response: tokenShape,
    async handler({ body, run }) {
      return tokensOut((await run(ApiV1AuthRefreshDocument, { input: { refreshToken: body.refresh_token } })).refreshToken);
    },
  }),
  apiV1Route({
    method: "POST",
    path: "/api/v1/auth/logout",
    summary: "Sign out: ends the session of the bearer token (its refresh token stops working), and that of refresh_token if it is another of yours",
    auth: BEARER,
    body: z.object({ refresh_token: text().nullish().describe("Optional: a refresh token of another of your sessions to end too") }),
    response: messageShape,
    async handler({ body, run }) {
      await run(ApiV1AuthLogoutDocument, { refreshToken: body.refresh_token ?? undefined });
      return { message: "Logged out" };
    },
  }),
];

// ---- Routes: the caller's account ------------------------------------------------------------

const profileRoutes: Route[] = [
  apiV1Route({
    method: "GET",
    path: "/api/v1/auth/me",
    summary: "Your profile",
    auth: BEARER,
    response: userShape,
    async handler({ run }) {
      return userOut((await run(ApiV1AuthMeDocument, {})).me);
    },
  }),
  apiV1Route({
    method: "PUT",
    path: "/api/v1/auth/me",
    summary: "Change your full_name (null clears it); the email cannot change (sending the current one is fine)",
    auth: BEARER,
    body: z.object({
      full_name: text().nullish().describe("At most 64 characters"),
      email: text().optional().describe("Only your current address: it cannot change"),
    }),
    response: userShape,
    async handler({ body, run }) {
      if (body.email !== undefined) {
        const { me } = await run(ApiV1AuthMeDocument, {});
        if (body.email.trim().toLowerCase() !== me.email?.toLowerCase()) throw badInput("body.email", "email cannot be changed");
      }
      return userOut((await run(ApiV1AuthUpdateProfileDocument, { input: { displayName: body.full_name } })).updateProfile);
    },
  }),
  apiV1Route({
    method: "POST",
    path: "/api/v1/auth/change-password",
    summary: "Change your password (signed in with it, not an API key); your other sessions end",
    auth: BEARER,
    body: z.object({ current_password: required(), new_password: required().describe("At least 10 characters") }),
    response: messageShape,
    async handler({ body, run }) {
      await run(ApiV1AuthChangePasswordDocument, { input: { currentPassword: body.current_password, newPassword: body.new_password } });
      return { message: "Password changed; your other sessions have ended" };
    },
  }),
];

// ---- Routes: two-factor sign-in --------------------------------------------------------------

const mfaRoutes: Route[] = [
  apiV1Route({
    method: "POST",
    path: "/api/v1/auth/mfa/setup",
    summary: "Start MFA set-up: a TOTP secret, its otpauth:// URI and that URI as a QR code (PNG data URL); nothing changes until verify",
    auth: BEARER,
    response: z.object({
      secret: z.string().describe("Base32, for typing into an authenticator app"),
      uri: z.string().describe("otpauth://totp/..."),
      qr_code: z.string().describe("The URI as a QR code: data:image/png;base64,..."),
    }),
    async handler({ run }) {
      const { setupTotp } = await run(ApiV1AuthSetupTotpDocument, {});
      return { secret: setupTotp.secret, uri: setupTotp.uri, qr_code: await QRCode.toDataURL(setupTotp.uri) };
    },
  }),
  apiV1Route({
    method: "POST",
    path: "/api/v1/auth/mfa/verify",
    summary: "Confirm MFA set-up with a code from the app (as code or token): sign-in asks for totp_code from then on",
    auth: BEARER,
    body: mfaCode,
    response: mfaShape,
    async handler({ body, run }) {
      const { enableTotp } = await namingCode(run, body.field)(ApiV1AuthEnableTotpDocument, { input: { code: body.code } });
      return { message: "MFA enabled", mfa_enabled: enableTotp.totpEnabled };
    },
  }),
  apiV1Route({
    method: "POST",
    path: "/api/v1/auth/mfa/disable",
    summary: "Turn MFA off, with a current code from the app (as code or token)",
    auth: BEARER,
    body: mfaCode,
    response: mfaShape,
    async handler({ body, run }) {
      const { disableTotp } = await namingCode(run, body.field)(ApiV1AuthDisableTotpDocument, { input: { code: body.code } });
      return { message: "MFA disabled", mfa_enabled: disableTotp.totpEnabled };
    },
  }),
];

// ---- Routes: users (system administrators) ---------------------------------------------------

const adminRoutes: Route[] = [
  apiV1Route({
    method: "GET",
    path: "/api/v1/admin/users",
    summary: "Every user account, oldest first (system administrators). Takes no paging: the whole list",
    auth: BEARER,
    // Query.users pages by cursor only: a limit or offset would be silently ignored, so it is refused.
    query: z.strictObject({}, { error: (issue) => `takes no parameters (got ${issue.code === "unrecognized_keys" ? issue.keys.join(", ") : "some"}): it answers every user` }),
    response: z.array(userShape),
    async handler({ run }) {
      const users = await collect(async (page) => (await run(ApiV1AdminUsersDocument, page)).users);
      return users.map(userOut);
    },
  }),
  apiV1Route({
    method: "POST",
    path: "/api/v1/admin/users",
    summary: "Create a confirmed user account (system administrators); its username (to sign in with, beside the email) comes from the email",
    auth: BEARER,
    status: 201,
    body: z.object({
      email: email(),
      password: required().describe("At least 10 characters"),
      full_name: text().nullish(),
      role: role.optional().describe("admin or user (the default)"),
    }),
    response: userShape,
    async handler({ body, run }) {
      const input = { email: body.email, password: body.password, displayName: body.full_name, role: body.role ?? "USER" };
      const created = await withDerivedUsername(body.email, async (username) => (await run(ApiV1AdminCreateUserDocument, { input: { ...input, username } })).createUser);
      return userOut(created);
    },
  }),
];

export const apiV1AccountRoutes: Route[] = [...sessionRoutes, ...profileRoutes, ...mfaRoutes, ...adminRoutes];
