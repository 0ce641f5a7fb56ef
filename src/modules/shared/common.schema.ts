// Schema pieces every domain module shares.
import { builder } from "../../schema/builder.js";

export const ActorTypeEnum = builder.enumType("ActorType", {
  values: ["USER", "API_KEY", "MACHINE", "SYSTEM"] as const,
});

/** Description of the `idempotencyKey` field every creating mutation's input has. */
export const IDEMPOTENCY_KEY_DESCRIPTION =
  "Optional, 1-200 characters. A retry with the same key (same caller and operation) returns the first result instead of creating another; the same key with different input is a CONFLICT.";
