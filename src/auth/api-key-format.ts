// Secrets look like `<prefix><40 base62 chars><6 base62 chars of CRC-32>`: API keys `spk_`, machine
// credentials `spm_`, machine recovery secrets `spr_`, enrollment tokens `spe_`. The checksum lets a
// mistyped or made-up secret be refused before any database lookup (and lets secret scanners spot them).
import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";

export const API_KEY_PREFIX = "spk_";
export const MACHINE_CREDENTIAL_PREFIX = "spm_";
export const MACHINE_RECOVERY_PREFIX = "spr_";
export const ENROLLMENT_TOKEN_PREFIX = "spe_";
const BODY_LENGTH = 40;
const CHECKSUM_LENGTH = 6;
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function base62(value: number, length: number): string {
  let out = "";
  let rest = value;
  for (let i = 0; i < length; i++) {
    out = ALPHABET[rest % 62] + out;
    rest = Math.floor(rest / 62);
  }
  return out;
}

function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 4 * 62: dropping bytes above it keeps every character equally likely.
      if (byte < 248 && out.length < length) out += ALPHABET[byte % 62];
    }
  }
  return out;
}

const checksum = (body: string) => base62(crc32(body), CHECKSUM_LENGTH);

export function generateSecret(prefix: string): string {
  const body = randomBase62(BODY_LENGTH);
  return `${prefix}${body}${checksum(body)}`;
}

export function isWellFormedSecret(prefix: string, secret: string): boolean {
  if (secret.length !== prefix.length + BODY_LENGTH + CHECKSUM_LENGTH || !secret.startsWith(prefix)) return false;
  const rest = secret.slice(prefix.length);
  if (!/^[0-9A-Za-z]+$/.test(rest)) return false;
  return rest.slice(BODY_LENGTH) === checksum(rest.slice(0, BODY_LENGTH));
}

export const generateApiKey = () => generateSecret(API_KEY_PREFIX);
export const isWellFormedApiKey = (key: string) => isWellFormedSecret(API_KEY_PREFIX, key);

/** What lists show so a user can tell secrets apart: never enough to use. */
export const displayPrefix = (secret: string) => secret.slice(0, secret.indexOf("_") + 7);
