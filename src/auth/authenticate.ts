// Turns a request's credentials into a Viewer. A credential that is present but wrong is an error
// (401), never a silent fall-back to anonymous.
import { parseCookie } from "cookie";
import { decodeProtectedHeader } from "jose";
import type { PrismaClient } from "../generated/prisma/client.js";
import { notAuthenticated } from "../schema/errors.js";
import { API_KEY_PREFIX, isWellFormedApiKey, isWellFormedSecret, MACHINE_CREDENTIAL_PREFIX } from "./api-key-format.js";
import type { CredentialCache, CredentialSubject } from "./credential-cache.js";
import { sha256 } from "./secrets.js";
import { InvalidTokenError, MACHINE_TOKEN_TYPE, type TokenService } from "./tokens.js";
import { anonymous, effectiveScopes, machineViewer, sessionScopes, type Scope, type Viewer } from "./viewer.js";

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

const MACHINE_FIELDS = { id: true, workspaceId: true, approval: true, decommissionedAt: true, credentialHash: true } as const;

/** Whether a JWT says it is a machine token; its signature is checked afterwards like any other. */
function isMachineToken(token: string): boolean {
  try {
    return decodeProtectedHeader(token).typ === MACHINE_TOKEN_TYPE;
  } catch {
    return false;
  }
}

export function createAuthenticator(deps: { prisma: PrismaClient; tokens: TokenService; cache: CredentialCache }) {
  const { prisma, tokens, cache } = deps;

  type Checked = { viewer: Viewer; subject: CredentialSubject; validUntil?: Date | null };

  /** The cached viewer for `key`, or `load`'s (cached unless a credential notice came meanwhile). */
  async function cached(key: string, load: () => Promise<Checked>): Promise<Viewer>;
  async function cached(key: string, load: () => Promise<Checked | null>): Promise<Viewer | null>;
  async function cached(key: string, load: () => Promise<Checked | null>): Promise<Viewer | null> {
    const hit = cache.get(key);
    if (hit) return hit;
    const ticket = cache.begin();
    const loaded = await load();
    if (!loaded) return null;
    cache.set(key, ticket, loaded);
    return loaded.viewer;
  }

  async function fromApiKey(key: string): Promise<Viewer> {
    if (!isWellFormedApiKey(key)) throw notAuthenticated("The API key is malformed (check that it was copied whole)");
    const keyHash = sha256(key);
    // lastUsedAt is written when the key is checked against the database: about once a minute at most.
    return cached(`key:${keyHash}`, () => apiKeyFromDatabase(keyHash));
  }

  async function apiKeyFromDatabase(keyHash: string): Promise<Checked> {
    const row = await prisma.apiKey.findUnique({
      where: { keyHash },
      include: { user: { select: { role: true } } },
    });
    const now = new Date();
    if (!row || row.revokedAt) throw notAuthenticated("The API key is not valid or has been revoked");
    if (row.expiresAt && row.expiresAt <= now) throw notAuthenticated("The API key has expired");
    if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
      await prisma.apiKey.update({ where: { id: row.id }, data: { lastUsedAt: now } });
    }
    const viewer: Viewer = {
      kind: "apiKey",
      userId: row.userId,
      role: row.user.role,
      apiKeyId: row.id,
      workspaceId: row.workspaceId,
      scopes: effectiveScopes(row.user.role, row.scopes.map((s) => s.toLowerCase() as Scope)),
    };
    return { viewer, subject: `user:${row.userId}`, validUntil: row.expiresAt };
  }

  async function fromMachineCredential(credential: string): Promise<Viewer> {
    if (!isWellFormedSecret(MACHINE_CREDENTIAL_PREFIX, credential)) {
      throw notAuthenticated("The machine credential is malformed (check that it was copied whole)");
    }
    const credentialHash = sha256(credential);
    return cached(`machine:${credentialHash}`, async () => {
      const machine = await prisma.machine.findUnique({ where: { credentialHash }, select: MACHINE_FIELDS });
      if (!machine) throw notAuthenticated("The machine credential is not valid (it may have been rotated)");
      return machineChecked(machine);
    });
  }

  /** A machine token (api-web's worker JWT) stands for the credential it was issued for, until it expires. */
  async function fromMachineToken(token: string): Promise<Viewer> {
    return cached(`mjwt:${token}`, async () => {
      let claims;
      try {
        claims = await tokens.verifyMachineToken(token);
      } catch (error) {
        if (error instanceof InvalidTokenError) throw notAuthenticated(error.message);
        throw error;
      }
      const machine = await prisma.machine.findUnique({ where: { id: claims.machineId }, select: MACHINE_FIELDS });
      if (!machine || !machine.credentialHash.startsWith(claims.credentialMark)) {
        throw notAuthenticated("The machine's credential has changed since this token was issued (rotated or recovered)");
      }
      return { ...machineChecked(machine), validUntil: claims.expiresAt };
    });
  }

  function machineChecked(machine: { id: string; workspaceId: string; approval: string; decommissionedAt: Date | null; credentialHash: string }): Checked {
    if (machine.decommissionedAt) throw notAuthenticated("This machine has been decommissioned");
    if (machine.approval === "REJECTED") throw notAuthenticated("This machine was rejected by a workspace administrator");
    return { viewer: machineViewer(machine), subject: `machine:${machine.id}` };
  }

  async function activeSession(where: { id: string } | { cookieSecretHash: string }) {
    const session = await prisma.session.findUnique({ where, include: { user: { select: { role: true } } } });
    if (!session || session.revokedAt || session.expiresAt <= new Date()) return null;
    return session;
  }

  async function fromAccessToken(token: string): Promise<Viewer> {
    return cached(`jwt:${token}`, () => accessTokenFromDatabase(token));
  }

  async function accessTokenFromDatabase(token: string): Promise<Checked> {
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
    const viewer: Viewer = {
      kind: "session",
      via: "bearer",
      userId: session.userId,
      role: session.user.role,
      sessionId: session.id,
      scopes: sessionScopes(session.user.role),
      expiresAt: claims.expiresAt,
    };
    // Cached until the token or its session ends, whichever comes first.
    const validUntil = session.expiresAt < claims.expiresAt ? session.expiresAt : claims.expiresAt;
    return { viewer, subject: `user:${session.userId}`, validUntil };
  }

  return async function authenticate(credentials: Credentials): Promise<Viewer> {
    const header = credentials.authorization?.trim();
    if (header) {
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      if (!match) throw notAuthenticated('Send the Authorization header as "Bearer <token>"');
      const token = match[1]!;
      if (token.startsWith(API_KEY_PREFIX)) return fromApiKey(token);
      if (token.startsWith(MACHINE_CREDENTIAL_PREFIX)) return fromMachineCredential(token);
      if (isMachineToken(token)) return fromMachineToken(token);
      return fromAccessToken(token);
    }
    const cookieSecret = credentials.cookie ? parseCookie(credentials.cookie)[SESSION_COOKIE] : undefined;
    if (cookieSecret && credentials.csrfSafe) {
      const cookieSecretHash = sha256(cookieSecret);
      const viewer = await cached(`cookie:${cookieSecretHash}`, async () => {
        const session = await activeSession({ cookieSecretHash });
        // A stale cookie is not an error: browsers keep cookies after sign-out on another device.
        if (!session) return null;
        const viewer: Viewer = {
          kind: "session",
          via: "cookie",
          userId: session.userId,
          role: session.user.role,
          sessionId: session.id,
          scopes: sessionScopes(session.user.role),
        };
        return { viewer, subject: `user:${session.userId}`, validUntil: session.expiresAt };
      });
      if (viewer) return viewer;
    }
    return anonymous;
  };
}

export type Authenticate = ReturnType<typeof createAuthenticator>;
