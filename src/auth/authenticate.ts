// Turns a request's credentials into a Viewer. A credential that is present but wrong is an error
// (401), never a silent fall-back to anonymous.
import { parseCookie } from "cookie";
import type { PrismaClient } from "../generated/prisma/client.js";
import { notAuthenticated } from "../schema/errors.js";
import { API_KEY_PREFIX, isWellFormedApiKey, isWellFormedSecret, MACHINE_CREDENTIAL_PREFIX } from "./api-key-format.js";
import { sha256 } from "./secrets.js";
import { InvalidTokenError, type TokenService } from "./tokens.js";
import { anonymous, effectiveScopes, sessionScopes, type Scope, type Viewer } from "./viewer.js";

export const SESSION_COOKIE = "spindle_session";
/** Browsers send this only when our own pages ask them to; cross-site forms cannot set it. */
export const CSRF_HEADER = "x-spindle-csrf";
// Last-used times are written at most this often, not on every request.
const LAST_USED_RESOLUTION_MS = 60_000;

export interface Credentials {
  authorization?: string | null;
  cookie?: string | null;
  /** True when the request could not have been forged by another site (see isCsrfSafe). */
  csrfSafe: boolean;
}

/**
 * A cookie-authenticated request is accepted only when a cross-site page could not have sent it:
 * a JSON POST (needs a CORS preflight) or one carrying our CSRF header. SameSite=Lax covers the rest.
 */
export function isCsrfSafe(method: string, contentType: string | null, csrfHeader: string | null): boolean {
  if (csrfHeader) return true;
  return method === "POST" && (contentType ?? "").toLowerCase().startsWith("application/json");
}

export function createAuthenticator(deps: { prisma: PrismaClient; tokens: TokenService }) {
  const { prisma, tokens } = deps;

  async function fromApiKey(key: string): Promise<Viewer> {
    if (!isWellFormedApiKey(key)) throw notAuthenticated("The API key is malformed (check that it was copied whole)");
    const row = await prisma.apiKey.findUnique({
      where: { keyHash: sha256(key) },
      include: { user: { select: { role: true } } },
    });
    const now = new Date();
    if (!row || row.revokedAt) throw notAuthenticated("The API key is not valid or has been revoked");
    if (row.expiresAt && row.expiresAt <= now) throw notAuthenticated("The API key has expired");
    if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
      await prisma.apiKey.update({ where: { id: row.id }, data: { lastUsedAt: now } });
    }
    return {
      kind: "apiKey",
      userId: row.userId,
      role: row.user.role,
      apiKeyId: row.id,
      workspaceId: row.workspaceId,
      scopes: effectiveScopes(row.user.role, row.scopes.map((s) => s.toLowerCase() as Scope)),
    };
  }

  async function fromMachineCredential(credential: string): Promise<Viewer> {
    if (!isWellFormedSecret(MACHINE_CREDENTIAL_PREFIX, credential)) {
      throw notAuthenticated("The machine credential is malformed (check that it was copied whole)");
    }
    const machine = await prisma.machine.findUnique({
      where: { credentialHash: sha256(credential) },
      select: { id: true, workspaceId: true, approval: true, decommissionedAt: true },
    });
    if (!machine) throw notAuthenticated("The machine credential is not valid (it may have been rotated)");
    if (machine.decommissionedAt) throw notAuthenticated("This machine has been decommissioned");
    if (machine.approval === "REJECTED") throw notAuthenticated("This machine was rejected by a workspace administrator");
    return {
      kind: "machine",
      machineId: machine.id,
      workspaceId: machine.workspaceId,
      approved: machine.approval === "APPROVED",
      scopes: new Set(),
    };
  }

  async function activeSession(where: { id: string } | { cookieSecretHash: string }) {
    const session = await prisma.session.findUnique({ where, include: { user: { select: { role: true } } } });
    if (!session || session.revokedAt || session.expiresAt <= new Date()) return null;
    return session;
  }

  async function fromAccessToken(token: string): Promise<Viewer> {
    let claims;
    try {
      claims = await tokens.verifyAccessToken(token);
    } catch (error) {
      if (error instanceof InvalidTokenError) throw notAuthenticated(error.message);
      throw error;
    }
    const session = await activeSession({ id: claims.sessionId });
    if (!session || session.userId !== claims.userId) {
      throw notAuthenticated("The session of this access token has ended; sign in again");
    }
    return {
      kind: "session",
      via: "bearer",
      userId: session.userId,
      role: session.user.role,
      sessionId: session.id,
      scopes: sessionScopes(session.user.role),
      expiresAt: claims.expiresAt,
    };
  }

  return async function authenticate(credentials: Credentials): Promise<Viewer> {
    const header = credentials.authorization?.trim();
    if (header) {
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      if (!match) throw notAuthenticated('Send the Authorization header as "Bearer <token>"');
      const token = match[1]!;
      if (token.startsWith(API_KEY_PREFIX)) return fromApiKey(token);
      if (token.startsWith(MACHINE_CREDENTIAL_PREFIX)) return fromMachineCredential(token);
      return fromAccessToken(token);
    }
    const cookieSecret = credentials.cookie ? parseCookie(credentials.cookie)[SESSION_COOKIE] : undefined;
    if (cookieSecret && credentials.csrfSafe) {
      const session = await activeSession({ cookieSecretHash: sha256(cookieSecret) });
      // A stale cookie is not an error: browsers keep cookies after sign-out on another device.
      if (session) {
        return {
          kind: "session",
          via: "cookie",
          userId: session.userId,
          role: session.user.role,
          sessionId: session.id,
          scopes: sessionScopes(session.user.role),
        };
      }
    }
    return anonymous;
  };
}

export type Authenticate = ReturnType<typeof createAuthenticator>;
