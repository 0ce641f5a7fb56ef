import { Secret, TOTP } from "otpauth";

const PERIOD = 30;

function totpFor(secret: string, label: string) {
  return new TOTP({ issuer: "Spindle", label, algorithm: "SHA1", digits: 6, period: PERIOD, secret: Secret.fromBase32(secret) });
}

export function newTotpSecret(label: string): { secret: string; uri: string } {
  const secret = new Secret({ size: 20 }).base32;
  return { secret, uri: totpFor(secret, label).toString() };
}

/**
 * Checks a code against the secret, one period of clock drift either way. Returns the time step
 * it matched, so callers can refuse a step already used (a replayed code), or null.
 */
export function matchTotp(secret: string, code: string, now = Date.now()): number | null {
  if (!/^\d{6}$/.test(code)) return null;
  const delta = totpFor(secret, "check").validate({ token: code, timestamp: now, window: 1 });
  if (delta === null) return null;
  return Math.floor(now / 1000 / PERIOD) + delta;
}

/** For tests and tools: the code a device would show now. */
export function currentTotp(secret: string, now = Date.now()): string {
  return totpFor(secret, "generate").generate({ timestamp: now });
}
