// scrypt from node:crypto: memory-hard, no native addon to install.
import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from "node:crypto";

const scrypt = (password: string, salt: Buffer, keylen: number, options: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) =>
    scryptCallback(password, salt, keylen, options, (error, key) => (error ? reject(error) : resolve(key))),
  );

// N=2^15, r=8 uses 32 MiB per hash (OWASP's minimum for scrypt is N=2^17 with r=8 p=1 or an
// equivalent cost; 2^15 with p=3 is listed among those equivalents).
export interface ScryptCost {
  N: number;
  r: number;
  p: number;
}
const params: ScryptCost = { N: 2 ** 15, r: 8, p: 3 };
const KEY_LENGTH = 32;

/**
 * The stored hash records its cost, and verification uses the recorded one. `cost` is for test
 * fixtures only, which make hundreds of accounts: every hash the server makes uses the default.
 */
export async function hashPassword(password: string, cost: ScryptCost = params): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, KEY_LENGTH, { ...cost, maxmem: 128 * cost.N * cost.r * 2 });
  return ["scrypt", cost.N, cost.r, cost.p, salt.toString("base64url"), key.toString("base64url")].join("$");
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split("$");
  if (scheme !== "scrypt" || !salt || !hash) return false;
  const expected = Buffer.from(hash, "base64url");
  const cost = { N: Number(n), r: Number(r), p: Number(p) };
  const key = await scrypt(password, Buffer.from(salt, "base64url"), expected.length, {
    ...cost,
    maxmem: 128 * cost.N * cost.r * 2,
  });
  return timingSafeEqual(key, expected);
}

/** A hash of nothing, verified when the user does not exist so that both answers take as long. */
let decoy: Promise<string> | undefined;
export function decoyPasswordHash(): Promise<string> {
  decoy ??= hashPassword(randomBytes(16).toString("hex"));
  return decoy;
}
