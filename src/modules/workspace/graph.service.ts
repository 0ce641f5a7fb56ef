// The graph of a workspace: blocks (AiSpinner "nodes") and the edges between them. Every change,
// whole or per block, bumps Workspace.graphVersion with a conditional UPDATE as its first statement:
// that row lock orders concurrent changes, and a change made against a stale version finds no row
// and answers CONFLICT with the current version (HTTP 409 at the edge). Per-block changes check the
// version only when the client sends `expectedVersion`.
//
// A saved graph comes back as it was sent: blocks in the order given, and what a client keeps on a
// block or edge that Spindle has no field for in `extra`. Block types are checked against the
// catalog unless the save asks to keep unknown ones (`allowUnknownTypes`): GraphQL callers keep
// the check, which catches typos; a legacy client with its own node types (AiSpinner) opts out.
import { z } from "zod";
import type { GraphBlock, GraphEdge, Prisma } from "../../generated/prisma/client.js";
import { conflict, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";
import { audit } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { blockTypeOf } from "./block-types.js";
import { id, jsonObject, list, storableNumber, text } from "../../schema/validation.js";
import { asJson, generatedId, jsonBytes, type Tx } from "./common.js";
import type { RequestContext } from "../shared/request.js";

export const GRAPH_LIMITS = {
  blocks: 2000,
  edges: 5000,
  /** cfg of one block, as JSON. */
  cfgBytes: 64 * 1024,
  /** `extra` of one block, as JSON. */
  blockExtraBytes: 64 * 1024,
  /** `extra` of one edge, as JSON. */
  edgeExtraBytes: 16 * 1024,
  /** All blocks' stored cfg, labels and extras, and the edges' extras, together. */
  // Below the 1 MiB request limit, with room for ids and positions: a stored graph can always be re-sent.
  graphBytes: 768 * 1024,
  labelLength: 200,
} as const;

const ELEMENT_ID = /^[A-Za-z0-9_.:-]{1,100}$/;
const ELEMENT_ID_RULE = "must be 1-100 letters, digits, _ . : or -";
/** How many cross-reference problems one answer lists; a broken graph can have thousands. */
const MAX_REPORTED_PROBLEMS = 20;

const elementId = z.string().regex(ELEMENT_ID, ELEMENT_ID_RULE);
const unknownType = (type: string) => `unknown block type "${type}"; see Query.blockTypes`;
/** Any type a client names; `blockType` when it must be one of the catalog's. */
const anyBlockType = text(100).min(1, "must not be empty");
const blockType = z.string().refine((type) => blockTypeOf(type) !== undefined, { error: (issue) => unknownType(String(issue.input)) });
const defaultLabel = (type: string) => blockTypeOf(type)?.label ?? type;
const label = text(GRAPH_LIMITS.labelLength);
const cfg = jsonObject(GRAPH_LIMITS.cfgBytes);
/** Any number the database stores: a graph comes back exactly as it was sent. */
const coordinate = storableNumber;
const expectedVersion = z.int().min(0).nullish();

const blockInput = z.object({
  id: elementId,
  type: anyBlockType,
  label: label.nullish(),
  x: coordinate.nullish(),
  y: coordinate.nullish(),
  cfg: cfg.nullish(),
  extra: jsonObject(GRAPH_LIMITS.blockExtraBytes).nullish(),
});
const edgeInput = z.object({
  id: elementId.nullish(),
  source: z.string(),
  target: z.string(),
  extra: jsonObject(GRAPH_LIMITS.edgeExtraBytes).nullish(),
});

const saveInput = z
  .object({
    workspaceId: id,
    version: z.int().min(0),
    blocks: list(blockInput, GRAPH_LIMITS.blocks, "blocks in a graph"),
    edges: list(edgeInput, GRAPH_LIMITS.edges, "edges in a graph"),
    allowUnknownTypes: z.boolean().nullish(),
  })
  .superRefine((graph, ctx) => {
    let reported = 0;
    const report = (path: (string | number)[], message: string) => {
      if (reported++ < MAX_REPORTED_PROBLEMS) ctx.addIssue({ code: "custom", path, message });
    };
    const blockIds = new Set<string>();
    graph.blocks.forEach((block, i) => {
      if (!graph.allowUnknownTypes && !blockTypeOf(block.type)) report(["blocks", i, "type"], unknownType(block.type));
      if (blockIds.has(block.id)) report(["blocks", i, "id"], `block id "${block.id}" is used twice`);
      blockIds.add(block.id);
    });
    const edgeIds = new Set<string>();
    const pairs = new Set<string>();
    graph.edges.forEach((edge, i) => {
      if (edge.id != null) {
        if (edgeIds.has(edge.id)) report(["edges", i, "id"], `edge id "${edge.id}" is used twice`);
        edgeIds.add(edge.id);
      }
      for (const end of ["source", "target"] as const) {
        if (!blockIds.has(edge[end])) report(["edges", i, end], `no block "${edge[end]}" in the graph`);
      }
      if (edge.source === edge.target) report(["edges", i, "target"], "a block cannot be connected to itself");
      const pair = JSON.stringify([edge.source, edge.target]);
      if (pairs.has(pair)) report(["edges", i], `"${edge.source}" is already connected to "${edge.target}"`);
      pairs.add(pair);
    });
  });

const addBlockInput = z.object({
  workspaceId: id,
  expectedVersion,
  id: elementId.nullish(),
  type: blockType,
  label: label.nullish(),
  x: coordinate.nullish(),
  y: coordinate.nullish(),
  cfg: cfg.nullish(),
});
const updateBlockInput = z
  .object({
    workspaceId: id,
    blockId: id,
    expectedVersion,
    label: label.nullish(),
    x: coordinate.nullish(),
    y: coordinate.nullish(),
    cfg: cfg.nullish(),
  })
  .refine((i) => i.label != null || i.x != null || i.y != null || i.cfg != null, {
    message: "change at least one of label, x, y or cfg",
    path: [],
  });
const renameBlockInput = z.object({ workspaceId: id, blockId: id, expectedVersion, label });
const blockConfigInput = z.object({ workspaceId: id, blockId: id, expectedVersion, cfg });
const removeBlockInput = z.object({ workspaceId: id, blockId: id, expectedVersion });
const connectInput = z.object({ workspaceId: id, expectedVersion, id: elementId.nullish(), source: z.string(), target: z.string() });
const disconnectInput = z
  .object({ workspaceId: id, expectedVersion, edgeId: z.string().nullish(), source: z.string().nullish(), target: z.string().nullish() })
  .refine((i) => (i.edgeId != null) !== (i.source != null && i.target != null) && (i.source == null) === (i.target == null), {
    message: "name the edge by edgeId, or by source and target",
    path: ["edgeId"],
  });

export interface Graph {
  workspaceId: string;
  version: number;
  blocks: GraphBlock[];
  edges: GraphEdge[];
}
export interface BlockChange {
  block: GraphBlock;
  version: number;
}
export interface EdgeChange {
  edge: GraphEdge;
  version: number;
}
export interface GraphRemoval {
  version: number;
  removedBlockIds: string[];
  removedEdgeIds: string[];
}

export const blockOrder = [{ createdAt: "asc" as const }, { id: "asc" as const }];
export const edgeOrder = [{ id: "asc" as const }];

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** JSON Merge Patch (RFC 7386): objects merge, null removes a key, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    // defineProperty, so a "__proto__" key stays data and never changes the prototype.
    else Object.defineProperty(result, key, { value: mergePatch(result[key], value), enumerable: true, writable: true, configurable: true });
  }
  return result;
}

export function createGraphService(deps: DomainDeps) {
  const { prisma, work } = deps;

  const staleVersion = (workspaceId: string, current: number, sent: number, field: string) =>
    conflict(
      `The graph of workspace ${workspaceId} is at version ${current}, not ${sent}: load it again and reapply your change`,
      { currentVersion: current, fields: [{ field, message: `stale: the current version is ${current}` }] },
    );

  /** Bumps the version (if it is still `expected`, when given) and returns the new one. */
  async function bumpVersion(tx: Tx, workspaceId: string, expected: number | null | undefined, field: string): Promise<number> {
    const rows =
      expected == null
        ? await tx.$queryRaw<{ graphVersion: number }[]>`
            UPDATE "Workspace" SET "graphVersion" = "graphVersion" + 1
            WHERE "id" = ${workspaceId}::uuid RETURNING "graphVersion"`
        : await tx.$queryRaw<{ graphVersion: number }[]>`
            UPDATE "Workspace" SET "graphVersion" = "graphVersion" + 1
            WHERE "id" = ${workspaceId}::uuid AND "graphVersion" = ${expected}::int RETURNING "graphVersion"`;
    if (rows[0]) return Number(rows[0].graphVersion);
    const current = await tx.workspace.findUnique({ where: { id: workspaceId }, select: { graphVersion: true } });
    if (!current) throw notFound("workspace", workspaceId);
    throw staleVersion(workspaceId, current.graphVersion, expected!, field);
  }

  /** After a change that can grow the graph: still within the limits, or VALIDATION (rolls back). */
  async function checkLimits(tx: Tx, workspaceId: string, field: string, sizeField = field) {
    // An empty extra ({}) counts nothing, so graphs without extras measure as they always did.
    const [row] = await tx.$queryRaw<{ blocks: number; edges: number; bytes: number }[]>`
      SELECT count(*)::int AS "blocks",
             COALESCE(sum(octet_length("cfg"::text) + octet_length("label") + COALESCE(octet_length(NULLIF("extra"::text, '{}')), 0)), 0)::int
               + (SELECT COALESCE(sum(octet_length(NULLIF("extra"::text, '{}'))), 0)::int FROM "GraphEdge" WHERE "workspaceId" = ${workspaceId}::uuid) AS "bytes",
             (SELECT count(*)::int FROM "GraphEdge" WHERE "workspaceId" = ${workspaceId}::uuid) AS "edges"
      FROM "GraphBlock" WHERE "workspaceId" = ${workspaceId}::uuid`;
    const { blocks, edges, bytes } = { blocks: Number(row?.blocks ?? 0), edges: Number(row?.edges ?? 0), bytes: Number(row?.bytes ?? 0) };
    if (blocks > GRAPH_LIMITS.blocks) {
      throw validationError([{ field, message: `the graph already has ${GRAPH_LIMITS.blocks} blocks, the most it can hold` }]);
    }
    if (edges > GRAPH_LIMITS.edges) {
      throw validationError([{ field, message: `the graph already has ${GRAPH_LIMITS.edges} edges, the most it can hold` }]);
    }
    if (bytes > GRAPH_LIMITS.graphBytes) {
      throw validationError([
        {
          field: sizeField,
          message: `the graph's labels, cfg and extras would take ${Math.ceil(bytes / 1024)} KiB; a graph holds at most ${GRAPH_LIMITS.graphBytes / 1024} KiB`,
        },
      ]);
    }
  }

  async function findBlock(tx: Prisma.TransactionClient, workspaceId: string, blockId: string): Promise<GraphBlock> {
    const block = ELEMENT_ID.test(blockId)
      ? await tx.graphBlock.findUnique({ where: { workspaceId_id: { workspaceId, id: blockId } } })
      : null;
    if (!block) throw notFound("block", blockId);
    return block;
  }

  async function loadGraph(tx: Prisma.TransactionClient, workspaceId: string, version: number): Promise<Graph> {
    const [blocks, edges] = [
      await tx.graphBlock.findMany({ where: { workspaceId }, orderBy: blockOrder }),
      await tx.graphEdge.findMany({ where: { workspaceId }, orderBy: edgeOrder }),
    ];
    return { workspaceId, version, blocks, edges };
  }

  async function writable(ctx: RequestContext, workspaceId: string) {
    await ctx.access.require(requireId(workspaceId, "workspace"), "write");
  }

  /** One block change: bump, change, check, audit, in one transaction. */
  async function changeBlock(
    ctx: RequestContext,
    input: { workspaceId: string; blockId: string; expectedVersion?: number | null },
    action: string,
    change: (block: GraphBlock) => { label?: string; x?: number; y?: number; cfg?: Record<string, unknown> },
  ): Promise<BlockChange> {
    await writable(ctx, input.workspaceId);
    return work.run(async (tx) => {
      const version = await bumpVersion(tx, input.workspaceId, input.expectedVersion, "input.expectedVersion");
      const before = await findBlock(tx, input.workspaceId, input.blockId);
      const { cfg: newCfg, ...rest } = change(before);
      const block = await tx.graphBlock.update({
        where: { workspaceId_id: { workspaceId: input.workspaceId, id: before.id } },
        data: { ...rest, ...(newCfg ? { cfg: asJson(newCfg) } : {}) },
      });
      await checkLimits(tx, input.workspaceId, "input.cfg");
      await audit(tx, ctx, {
        workspaceId: input.workspaceId,
        action,
        targetType: "GraphBlock",
        targetId: block.id,
        data: { version, fields: Object.keys(rest).concat(newCfg ? ["cfg"] : []) },
      });
      return { block, version };
    });
  }

  return {
    async getBlock(ctx: RequestContext, workspaceId: string, blockId: string): Promise<GraphBlock> {
      await ctx.access.require(requireId(workspaceId, "workspace"), "read");
      return findBlock(prisma, workspaceId, blockId);
    },

    /** Replaces the whole graph if `version` is still current. */
    async save(ctx: RequestContext, raw: unknown): Promise<Graph> {
      const input = parseInput(saveInput, raw);
      const workspaceId = input.workspaceId;
      await writable(ctx, workspaceId);
      return work.run(async (tx) => {
        const version = await bumpVersion(tx, workspaceId, input.version, "input.version");
        await tx.graphEdge.deleteMany({ where: { workspaceId } });
        await tx.graphBlock.deleteMany({ where: { workspaceId } });
        if (input.blocks.length) {
          // Blocks are read back in creation order (blockOrder): one millisecond apart, ending now,
          // they keep the order they were sent in, and blocks added later come after them.
          const first = Date.now() - input.blocks.length;
          await tx.graphBlock.createMany({
            data: input.blocks.map((b, i) => ({
              workspaceId,
              id: b.id,
              type: b.type,
              label: b.label ?? defaultLabel(b.type),
              x: b.x ?? 0,
              y: b.y ?? 0,
              cfg: asJson(b.cfg ?? {}),
              extra: asJson(b.extra ?? {}),
              createdAt: new Date(first + i),
            })),
          });
        }
        if (input.edges.length) {
          await tx.graphEdge.createMany({
            data: input.edges.map((e) => ({
              workspaceId,
              id: e.id ?? generatedId("edge"),
              source: e.source,
              target: e.target,
              extra: asJson(e.extra ?? {}),
            })),
          });
        }
        await checkLimits(tx, workspaceId, "input.blocks");
        await audit(tx, ctx, {
          workspaceId,
          action: "graph.save",
          targetType: "Workspace",
          targetId: workspaceId,
          data: { fromVersion: input.version, version, blocks: input.blocks.length, edges: input.edges.length },
        });
        return loadGraph(tx, workspaceId, version);
      });
    },

    async addBlock(ctx: RequestContext, raw: unknown): Promise<BlockChange> {
      const input = parseInput(addBlockInput, raw);
      await writable(ctx, input.workspaceId);
      return work.run(async (tx) => {
        const version = await bumpVersion(tx, input.workspaceId, input.expectedVersion, "input.expectedVersion");
        const id = input.id ?? generatedId("node");
        const taken = await tx.graphBlock.findUnique({ where: { workspaceId_id: { workspaceId: input.workspaceId, id } } });
        if (taken) {
          throw conflict(`The graph already has a block "${id}"`, { fields: [{ field: "input.id", message: "already used by another block" }] });
        }
        const block = await tx.graphBlock.create({
          data: {
            workspaceId: input.workspaceId,
            id,
            type: input.type,
            label: input.label ?? defaultLabel(input.type),
            x: input.x ?? 0,
            y: input.y ?? 0,
            cfg: asJson(input.cfg ?? {}),
          },
        });
        await checkLimits(tx, input.workspaceId, "input", "input.cfg");
        await audit(tx, ctx, {
          workspaceId: input.workspaceId,
          action: "graph.block.add",
          targetType: "GraphBlock",
          targetId: id,
          data: { version, type: input.type },
        });
        return { block, version };
      });
    },

    /** Label, position and cfg (replaced whole); what the input leaves out stays. */
    async updateBlock(ctx: RequestContext, raw: unknown): Promise<BlockChange> {
      const input = parseInput(updateBlockInput, raw);
      return changeBlock(ctx, input, "graph.block.update", () => ({
        ...(input.label != null ? { label: input.label } : {}),
        ...(input.x != null ? { x: input.x } : {}),
        ...(input.y != null ? { y: input.y } : {}),
        ...(input.cfg != null ? { cfg: input.cfg } : {}),
      }));
    },

    async renameBlock(ctx: RequestContext, raw: unknown): Promise<BlockChange> {
      const input = parseInput(renameBlockInput, raw);
      return changeBlock(ctx, input, "graph.block.rename", () => ({ label: input.label }));
    },

    /** Merges `cfg` into the block's cfg as a JSON Merge Patch (null removes a key). */
    async updateBlockConfig(ctx: RequestContext, raw: unknown): Promise<BlockChange> {
      const input = parseInput(blockConfigInput, raw);
      return changeBlock(ctx, input, "graph.block.config", (block) => {
        const merged = mergePatch(block.cfg, input.cfg) as Record<string, unknown>;
        if (jsonBytes(merged) > GRAPH_LIMITS.cfgBytes) {
          throw validationError([{ field: "input.cfg", message: `the merged cfg would be over ${GRAPH_LIMITS.cfgBytes / 1024} KiB as JSON` }]);
        }
        return { cfg: merged };
      });
    },

    /** Removes the block and every edge to or from it. */
    async removeBlock(ctx: RequestContext, raw: unknown): Promise<GraphRemoval> {
      const input = parseInput(removeBlockInput, raw);
      await writable(ctx, input.workspaceId);
      const { workspaceId, blockId } = input;
      return work.run(async (tx) => {
        const version = await bumpVersion(tx, workspaceId, input.expectedVersion, "input.expectedVersion");
        const block = await findBlock(tx, workspaceId, blockId);
        const edges = await tx.graphEdge.findMany({
          where: { workspaceId, OR: [{ source: blockId }, { target: blockId }] },
          select: { id: true },
          orderBy: edgeOrder,
        });
        const removedEdgeIds = edges.map((e) => e.id);
        await tx.graphEdge.deleteMany({ where: { workspaceId, id: { in: removedEdgeIds } } });
        await tx.graphBlock.delete({ where: { workspaceId_id: { workspaceId, id: blockId } } });
        await audit(tx, ctx, {
          workspaceId,
          action: "graph.block.remove",
          targetType: "GraphBlock",
          targetId: blockId,
          data: { version, type: block.type, removedEdgeIds },
        });
        return { version, removedBlockIds: [blockId], removedEdgeIds };
      });
    },

    async connectBlocks(ctx: RequestContext, raw: unknown): Promise<EdgeChange> {
      const input = parseInput(connectInput, raw);
      await writable(ctx, input.workspaceId);
      const { workspaceId, source, target } = input;
      return work.run(async (tx) => {
        const version = await bumpVersion(tx, workspaceId, input.expectedVersion, "input.expectedVersion");
        const ends = await tx.graphBlock.findMany({
          where: { workspaceId, id: { in: [source, target].filter((id) => ELEMENT_ID.test(id)) } },
          select: { id: true },
        });
        const present = new Set(ends.map((b) => b.id));
        const missing = (["source", "target"] as const).filter((end) => !present.has(input[end]));
        if (missing.length) {
          throw validationError(missing.map((end) => ({ field: `input.${end}`, message: `no block "${input[end]}" in the graph` })));
        }
        if (source === target) throw validationError([{ field: "input.target", message: "a block cannot be connected to itself" }]);
        const existing = await tx.graphEdge.findUnique({ where: { workspaceId_source_target: { workspaceId, source, target } } });
        if (existing) {
          throw conflict(`"${source}" is already connected to "${target}" by edge ${existing.id}`, {
            edgeId: existing.id,
            fields: [{ field: "input.target", message: "already connected" }],
          });
        }
        const id = input.id ?? generatedId("edge");
        if (await tx.graphEdge.findUnique({ where: { workspaceId_id: { workspaceId, id } } })) {
          throw conflict(`The graph already has an edge "${id}"`, { fields: [{ field: "input.id", message: "already used by another edge" }] });
        }
        const edge = await tx.graphEdge.create({ data: { workspaceId, id, source, target } });
        await checkLimits(tx, workspaceId, "input");
        await audit(tx, ctx, {
          workspaceId,
          action: "graph.edge.connect",
          targetType: "GraphEdge",
          targetId: id,
          data: { version, source, target },
        });
        return { edge, version };
      });
    },

    /** Removes one edge, named by its id or by its two ends. */
    async disconnectBlocks(ctx: RequestContext, raw: unknown): Promise<GraphRemoval> {
      const input = parseInput(disconnectInput, raw);
      await writable(ctx, input.workspaceId);
      const { workspaceId } = input;
      return work.run(async (tx) => {
        const version = await bumpVersion(tx, workspaceId, input.expectedVersion, "input.expectedVersion");
        const edge = input.edgeId != null
          ? await tx.graphEdge.findUnique({ where: { workspaceId_id: { workspaceId, id: input.edgeId } } })
          : await tx.graphEdge.findUnique({
              where: { workspaceId_source_target: { workspaceId, source: input.source!, target: input.target! } },
            });
        if (!edge) throw notFound("edge", input.edgeId ?? `${input.source} -> ${input.target}`);
        await tx.graphEdge.delete({ where: { workspaceId_id: { workspaceId, id: edge.id } } });
        await audit(tx, ctx, {
          workspaceId,
          action: "graph.edge.disconnect",
          targetType: "GraphEdge",
          targetId: edge.id,
          data: { version, source: edge.source, target: edge.target },
        });
        return { version, removedBlockIds: [], removedEdgeIds: [edge.id] };
      });
    },
  };
}

export type GraphService = ReturnType<typeof createGraphService>;
