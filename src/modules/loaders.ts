// Per-request batch loaders for the relations the Prisma plugin cannot batch, made by the context
// factory (app.ts): one set per request, so nothing is cached across requests or viewers.
import DataLoader from "dataloader";
import type { GraphBlock, PrismaClient } from "../generated/prisma/client.js";

/** The key of a graph block: its workspace and the client's block id (`node_abc123`). */
export const graphBlockKey = (workspaceId: string, blockId: string) => `${workspaceId} ${blockId}`;

export function createRequestLoaders(prisma: PrismaClient) {
  return {
    /** Worker.blockId is the client's block id, not a foreign key: the blocks of many workers in one query. */
    graphBlock: new DataLoader(async (keys: readonly string[]) => {
      const pairs = keys.map((key) => key.split(" ") as [string, string]);
      const blocks = await prisma.graphBlock.findMany({
        where: { workspaceId: { in: [...new Set(pairs.map(([w]) => w))] }, id: { in: [...new Set(pairs.map(([, b]) => b))] } },
      });
      const byKey = new Map(blocks.map((b) => [graphBlockKey(b.workspaceId, b.id), b]));
      return keys.map((key): GraphBlock | null => byKey.get(key) ?? null);
    }),
  };
}

export type RequestLoaders = ReturnType<typeof createRequestLoaders>;
