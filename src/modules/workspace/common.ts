// Pieces the workspace, project and graph services share.
import { randomBytes } from "node:crypto";
import { Prisma, type WorkspaceRole } from "../../generated/prisma/client.js";
import { notFound } from "../../schema/errors.js";
import type { WorkTx } from "../shared/unit-of-work.js";

export type Tx = WorkTx;

export const roleRank: Record<WorkspaceRole, number> = { VIEWER: 0, MEMBER: 1, ADMIN: 2, OWNER: 3 };

export const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value) ?? "", "utf8");

export const asJson = (value: Record<string, unknown>) => value as Prisma.InputJsonObject;

/**
 * Serializes changes to a workspace's membership: the "last owner" rule counts owners, and two
 * owners demoting each other at once must not both see the other still there.
 */
export async function lockWorkspace(tx: Tx, workspaceId: string): Promise<boolean> {
  const rows = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "Workspace" WHERE "id" = ${workspaceId}::uuid FOR UPDATE`;
  return rows.length > 0;
}

export { isUniqueViolation } from "../../infra/db.js";

/** Client-style ids for blocks and edges the server names (`node_k3j2...`, `edge_9f1c...`). */
export const generatedId = (prefix: "node" | "edge") => `${prefix}_${randomBytes(6).toString("hex")}`;

/** The row a prismaField resolver reloads after a change, or NOT_FOUND if it went meanwhile. */
export async function found<T>(row: Promise<T | null>, what: string, id: string): Promise<T> {
  const value = await row;
  if (!value) throw notFound(what, id);
  return value;
}
