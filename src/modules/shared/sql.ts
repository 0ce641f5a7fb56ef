// SQL pieces the modules share.
import { Prisma } from "../../generated/prisma/client.js";

/**
 * A set of enum values as SQL literals, for `"status" IN (...)` in raw statements: literals (not
 * parameters) let the planner see them, as in the partial indexes on these statuses. Only for the
 * modules' own constant sets, never for input.
 */
export const literalList = (values: readonly string[]): string => values.map((value) => `'${value}'`).join(", ");

/** `literalList` as a piece of a Prisma tagged statement. */
export const sqlLiterals = (values: readonly string[]): Prisma.Sql => Prisma.raw(literalList(values));
