import { createHash, randomBytes, randomInt } from "node:crypto";

/** For high-entropy secrets (tokens, keys): a fast hash is enough, a KDF adds nothing. */
export const sha256 = (value: string) => createHash("sha256").update(value).digest("hex");

export const randomToken = (bytes = 32) => randomBytes(bytes).toString("base64url");

export const sixDigitCode = () => String(randomInt(0, 1_000_000)).padStart(6, "0");
