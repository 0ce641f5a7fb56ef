// Access tokens: short-lived JWTs signed with jose. Algorithm, issuer, audience and type are pinned
// when verifying, so `alg: none`, a token for another audience or a refresh token cannot pass.
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from "jose";
import { isUuid } from "../schema/validation.js";

const TOKEN_TYPE = "at+jwt";
/** A machine's short-lived token (api-web's "worker JWT"): its own type, so it never passes as a user's. */
export const MACHINE_TOKEN_TYPE = "machine+jwt";
/** How much of the credential's hash a machine token carries: enough to tell credentials apart. */
const CREDENTIAL_MARK_LENGTH = 32;

export interface SigningKey {
  alg: "HS256" | "EdDSA" | "ES256" | "RS256";
  signKey: Uint8Array | KeyObject;
  verifyKey: Uint8Array | KeyObject;
  /** Where the key came from, for the start-up log. */
  source: "JWT_SECRET" | "JWT_PRIVATE_KEY_FILE" | "generated";
}

export interface AccessClaims {
  userId: string;
  sessionId: string;
}

export interface MachineClaims {
  machineId: string;
  /** The hash of the machine credential the token stands for: rotating or recovering it ends the token. */
  credentialHash: string;
}

export interface TokenService {
  /** For `ttlSeconds` (default: the configured lifetime); callers bound what they ask for. */
  signAccessToken(claims: AccessClaims, ttlSeconds?: number): Promise<{ token: string; expiresAt: Date }>;
  /** Throws InvalidTokenError with a reason a client can show. */
  verifyAccessToken(token: string): Promise<AccessClaims & { expiresAt: Date }>;
  signMachineToken(claims: MachineClaims): Promise<{ token: string; expiresAt: Date }>;
  /** The machine and the start of its credential's hash (compare with `credentialHash.startsWith`). */
  verifyMachineToken(token: string): Promise<{ machineId: string; credentialMark: string; expiresAt: Date }>;
}

export class InvalidTokenError extends Error {
  constructor(readonly reason: "expired" | "invalid") {
    super(reason === "expired" ? "The access token has expired; refresh it" : "The access token is not valid");
  }
}

function algorithmFor(key: KeyObject): SigningKey["alg"] {
  switch (key.asymmetricKeyType) {
    case "ed25519":
      return "EdDSA";
    case "ec":
      if (key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
        throw new Error("JWT_PRIVATE_KEY_FILE: only P-256 EC keys are supported (ES256)");
      }
      return "ES256";
    case "rsa":
      return "RS256";
    default:
      throw new Error(`JWT_PRIVATE_KEY_FILE: unsupported key type ${key.asymmetricKeyType}`);
  }
}

/**
 * JWT_SECRET (HS256), else a PEM private key file (EdDSA, ES256 or RS256), else a secret generated
 * on first start and kept in the data folder (one server; replicas must share a configured key).
 */
export async function loadSigningKey(options: {
  secret?: string;
  privateKeyFile?: string;
  dataDir: string;
}): Promise<SigningKey> {
  if (options.secret) {
    const key = new TextEncoder().encode(options.secret);
    return { alg: "HS256", signKey: key, verifyKey: key, source: "JWT_SECRET" };
  }
  if (options.privateKeyFile) {
    const privateKey = createPrivateKey(await readFile(options.privateKeyFile));
    return {
      alg: algorithmFor(privateKey),
      signKey: privateKey,
      verifyKey: createPublicKey(privateKey),
      source: "JWT_PRIVATE_KEY_FILE",
    };
  }
  const file = path.join(options.dataDir, "jwt-secret");
  let secret: string;
  try {
    secret = (await readFile(file, "utf8")).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    await mkdir(options.dataDir, { recursive: true });
    secret = randomBytes(48).toString("base64url");
    await writeFile(file, `${secret}\n`, { mode: 0o600, flag: "wx" }).catch(async (writeError) => {
      // Another process created it first: use theirs.
      if ((writeError as NodeJS.ErrnoException).code !== "EEXIST") throw writeError;
      secret = (await readFile(file, "utf8")).trim();
    });
    await chmod(file, 0o600);
  }
  const key = new TextEncoder().encode(secret);
  return { alg: "HS256", signKey: key, verifyKey: key, source: "generated" };
}

export function createTokenService(options: {
  key: SigningKey;
  issuer: string;
  audience: string;
  ttlSeconds: number;
}): TokenService {
  const { key, issuer, audience, ttlSeconds } = options;
  return {
    signAccessToken: ({ userId, sessionId }, lifetime = ttlSeconds) => signed({ sid: sessionId }, TOKEN_TYPE, userId, lifetime),
    signMachineToken: ({ machineId, credentialHash }) =>
      signed({ cred: credentialHash.slice(0, CREDENTIAL_MARK_LENGTH) }, MACHINE_TOKEN_TYPE, machineId, ttlSeconds),
    async verifyMachineToken(token) {
      const payload = await verified(token, MACHINE_TOKEN_TYPE);
      if (typeof payload.cred !== "string" || payload.cred.length !== CREDENTIAL_MARK_LENGTH || typeof payload.sub !== "string" || !isUuid(payload.sub)) {
        throw new InvalidTokenError("invalid");
      }
      return { machineId: payload.sub, credentialMark: payload.cred, expiresAt: new Date(payload.exp! * 1000) };
    },
    async verifyAccessToken(token) {
      const payload = await verified(token, TOKEN_TYPE);
      // Correctly signed does not mean well formed: claims that cannot name a session or a user
      // are refused here, before the database is asked about them.
      if (typeof payload.sid !== "string" || !isUuid(payload.sid) || typeof payload.sub !== "string" || !isUuid(payload.sub)) {
        throw new InvalidTokenError("invalid");
      }
      return { userId: payload.sub, sessionId: payload.sid, expiresAt: new Date(payload.exp! * 1000) };
    },
  };

  /** A token of this type for `subject`, carrying `claims`, good for `lifetime` seconds. */
  async function signed(claims: JWTPayload, typ: string, subject: string, lifetime: number) {
    const expiresAt = new Date(Date.now() + lifetime * 1000);
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, typ })
      .setSubject(subject)
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(key.signKey);
    return { token, expiresAt };
  }

  /** The token's claims when its signature, algorithm, issuer, audience, type and lifetime hold. */
  async function verified(token: string, typ: string): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(token, key.verifyKey, {
        algorithms: [key.alg],
        issuer,
        audience,
        typ,
        requiredClaims: ["sub", "exp", "iat"],
      });
      return payload;
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new InvalidTokenError("expired");
      throw new InvalidTokenError("invalid");
    }
  }
}
