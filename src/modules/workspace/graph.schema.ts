// The workspace graph in GraphQL: Workspace.graph, the per-block operations (AiSpinner's node config
// endpoints and MCP tools), and the block-type catalog.
import { builder } from "../../schema/builder.js";
import { workspaceMembers } from "../shared/object-auth.js";
import { blockTypes, findBlockTypes, type BlockCategory, type BlockTypeInfo } from "./block-types.js";
import { blockOrder, edgeOrder, GRAPH_LIMITS, type BlockChange, type EdgeChange, type Graph, type GraphRemoval } from "./graph.service.js";

const EXTRA = "What the client keeps here that Spindle has no field for (a JSON object, {} when none), as it was saved";

export const GraphBlockType = builder.prismaObject("GraphBlock", {
  authScopes: workspaceMembers,
  description: "A block of the workspace graph (an AiSpinner node).",
  fields: (t) => ({
    id: t.exposeString("id", { description: "The client's id, e.g. node_abc123" }),
    type: t.exposeString("type", { description: "A type from blockTypes, e.g. code.worker (or a client's own, saved with allowUnknownTypes)" }),
    label: t.exposeString("label"),
    x: t.exposeFloat("x"),
    y: t.exposeFloat("y"),
    cfg: t.expose("cfg", { type: "JSON", description: "The block's settings (a JSON object)" }),
    extra: t.expose("extra", { type: "JSON", description: EXTRA }),
  }),
});

export const GraphEdgeType = builder.prismaObject("GraphEdge", {
  authScopes: workspaceMembers,
  fields: (t) => ({
    id: t.exposeString("id"),
    source: t.exposeString("source", { description: "Id of the block the edge leaves" }),
    target: t.exposeString("target", { description: "Id of the block the edge enters" }),
    extra: t.expose("extra", { type: "JSON", description: EXTRA }),
  }),
});

export const GraphType = builder.objectRef<Graph>("Graph").implement({
  description: "Blocks and edges at one version. Send the version back when saving: a stale one is a CONFLICT.",
  fields: (t) => ({
    version: t.exposeInt("version"),
    blocks: t.field({ type: [GraphBlockType], resolve: (graph) => graph.blocks }),
    edges: t.field({ type: [GraphEdgeType], resolve: (graph) => graph.edges }),
  }),
});

builder.prismaObjectFields("Workspace", (t) => ({
  graph: t.field({
    type: GraphType,
    select: { id: true, graphVersion: true, blocks: { orderBy: blockOrder }, edges: { orderBy: edgeOrder } },
    resolve: (workspace) => ({
      workspaceId: workspace.id,
      version: workspace.graphVersion,
      blocks: workspace.blocks,
      edges: workspace.edges,
    }),
  }),
}));

const categories: Record<BlockCategory, string> = {
  compute: "COMPUTE",
  trigger: "TRIGGER",
  integration: "INTEGRATION",
  observe: "OBSERVE",
  ai: "AI",
};

const BlockCategoryEnum = builder.enumType("BlockCategory", {
  values: Object.fromEntries(Object.entries(categories).map(([value, name]) => [name, { value: value as BlockCategory }])) as Record<
    string,
    { value: BlockCategory }
  >,
});

const BlockTypeType = builder.objectRef<BlockTypeInfo>("BlockType").implement({
  description: "A kind of graph block the platform runs.",
  fields: (t) => ({
    type: t.exposeString("type"),
    label: t.exposeString("label"),
    category: t.field({ type: BlockCategoryEnum, resolve: (b) => b.category }),
    description: t.exposeString("description"),
    runsWorker: t.exposeBoolean("runsWorker", { description: "Blocks of this type are run by a worker deployed for them" }),
    cfgSchema: t.expose("cfgSchema", { type: "JSON", description: "JSON Schema of the block's cfg (a hint for editors; not enforced)" }),
  }),
});

const BlockPayload = builder.objectRef<BlockChange>("GraphBlockPayload").implement({
  fields: (t) => ({
    block: t.field({ type: GraphBlockType, resolve: (p) => p.block }),
    version: t.exposeInt("version", { description: "The graph's version after the change" }),
  }),
});

const EdgePayload = builder.objectRef<EdgeChange>("GraphEdgePayload").implement({
  fields: (t) => ({
    edge: t.field({ type: GraphEdgeType, resolve: (p) => p.edge }),
    version: t.exposeInt("version", { description: "The graph's version after the change" }),
  }),
});

const RemovalPayload = builder.objectRef<GraphRemoval>("GraphRemovalPayload").implement({
  fields: (t) => ({
    version: t.exposeInt("version", { description: "The graph's version after the change" }),
    removedBlockIds: t.exposeStringList("removedBlockIds"),
    removedEdgeIds: t.exposeStringList("removedEdgeIds"),
  }),
});

const EXPECTED_VERSION =
  "When given, the change applies only if the graph is still at this version (else CONFLICT with extensions.currentVersion).";
const LIMITS = `Limits: ${GRAPH_LIMITS.blocks} blocks, ${GRAPH_LIMITS.edges} edges, ${GRAPH_LIMITS.cfgBytes / 1024} KiB of cfg per block, ${GRAPH_LIMITS.graphBytes / 1024} KiB of labels, cfg and extras in all.`;
const ELEMENT_ID = "1-100 letters, digits, _ . : or -";

const GraphBlockInput = builder.inputType("GraphBlockInput", {
  fields: (t) => ({
    id: t.string({ required: true, description: `${ELEMENT_ID}; unique in the graph` }),
    type: t.string({ required: true, description: "A type from blockTypes" }),
    label: t.string({ description: "Up to 200 characters (default: the type's label)" }),
    x: t.float(),
    y: t.float(),
    cfg: t.field({ type: "JSON", description: "A JSON object (default {})" }),
    extra: t.field({ type: "JSON", description: `A JSON object of the client's own keys, at most ${GRAPH_LIMITS.blockExtraBytes / 1024} KiB (default {})` }),
  }),
});

const GraphEdgeInput = builder.inputType("GraphEdgeInput", {
  fields: (t) => ({
    id: t.string({ description: `${ELEMENT_ID} (default: a generated edge_<random>)` }),
    source: t.string({ required: true }),
    target: t.string({ required: true }),
    extra: t.field({ type: "JSON", description: `A JSON object of the client's own keys, at most ${GRAPH_LIMITS.edgeExtraBytes / 1024} KiB (default {})` }),
  }),
});

const SaveGraphInput = builder.inputType("SaveGraphInput", {
  description: `Replaces the whole graph. ${LIMITS}`,
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    version: t.int({ required: true, description: "The version the change was made on; a stale one is a CONFLICT" }),
    blocks: t.field({ type: [GraphBlockInput], required: true, description: "In the order the graph should keep them" }),
    edges: t.field({ type: [GraphEdgeInput], required: true }),
    allowUnknownTypes: t.boolean({
      description: "Keep block types outside blockTypes (a legacy client's own node types) instead of refusing them (default false)",
    }),
  }),
});

const AddBlockInput = builder.inputType("AddBlockInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    expectedVersion: t.int({ description: EXPECTED_VERSION }),
    id: t.string({ description: `${ELEMENT_ID} (default: a generated node_<random>)` }),
    type: t.string({ required: true, description: "A type from blockTypes" }),
    label: t.string({ description: "Up to 200 characters (default: the type's label)" }),
    x: t.float(),
    y: t.float(),
    cfg: t.field({ type: "JSON", description: "A JSON object (default {})" }),
  }),
});

const UpdateBlockInput = builder.inputType("UpdateBlockInput", {
  description: "Changes what is given; cfg replaces the whole cfg (updateBlockConfig merges).",
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    blockId: t.string({ required: true }),
    expectedVersion: t.int({ description: EXPECTED_VERSION }),
    label: t.string(),
    x: t.float(),
    y: t.float(),
    cfg: t.field({ type: "JSON" }),
  }),
});

const RenameBlockInput = builder.inputType("RenameBlockInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    blockId: t.string({ required: true }),
    expectedVersion: t.int({ description: EXPECTED_VERSION }),
    label: t.string({ required: true }),
  }),
});

const UpdateBlockConfigInput = builder.inputType("UpdateBlockConfigInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    blockId: t.string({ required: true }),
    expectedVersion: t.int({ description: EXPECTED_VERSION }),
    cfg: t.field({
      type: "JSON",
      required: true,
      description: "A JSON Merge Patch (RFC 7386) of the block's cfg: keys set to null are removed, objects merge",
    }),
  }),
});

const RemoveBlockInput = builder.inputType("RemoveBlockInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    blockId: t.string({ required: true }),
    expectedVersion: t.int({ description: EXPECTED_VERSION }),
  }),
});

const ConnectBlocksInput = builder.inputType("ConnectBlocksInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    expectedVersion: t.int({ description: EXPECTED_VERSION }),
    id: t.string({ description: `The edge's id, ${ELEMENT_ID} (default: a generated edge_<random>)` }),
    source: t.string({ required: true }),
    target: t.string({ required: true }),
  }),
});

const DisconnectBlocksInput = builder.inputType("DisconnectBlocksInput", {
  description: "Name the edge by edgeId, or by source and target.",
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    expectedVersion: t.int({ description: EXPECTED_VERSION }),
    edgeId: t.string(),
    source: t.string(),
    target: t.string(),
  }),
});

builder.queryFields((t) => ({
  block: t.field({
    type: GraphBlockType,
    description: "One block of a workspace's graph (AiSpinner's node config).",
    authScopes: { read: true },
    args: { workspaceId: t.arg.id({ required: true }), blockId: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => ctx.services.workspaces.graph.getBlock(ctx, String(args.workspaceId), args.blockId),
  }),
  blockTypes: t.field({
    type: [BlockTypeType],
    description: `The catalog of block types (${blockTypes.length}); open to anyone.`,
    authScopes: { public: true },
    args: {
      search: t.arg.string({ description: "Part of the type, label or description" }),
      category: t.arg({ type: BlockCategoryEnum }),
    },
    resolve: (_root, args) => findBlockTypes({ search: args.search, category: args.category }),
  }),
}));

builder.mutationFields((t) => ({
  saveGraph: t.field({
    type: GraphType,
    description: `Replaces the whole graph if input.version is still current (else CONFLICT with extensions.currentVersion). ${LIMITS}`,
    authScopes: { write: true },
    args: { input: t.arg({ type: SaveGraphInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.workspaces.graph.save(ctx, input),
  }),
  addBlock: t.field({
    type: BlockPayload,
    authScopes: { write: true },
    args: { input: t.arg({ type: AddBlockInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.workspaces.graph.addBlock(ctx, input),
  }),
  updateBlock: t.field({
    type: BlockPayload,
    description: "Label, position and cfg (replaced whole) of a block.",
    authScopes: { write: true },
    args: { input: t.arg({ type: UpdateBlockInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.workspaces.graph.updateBlock(ctx, input),
  }),
  renameBlock: t.field({
    type: BlockPayload,
    authScopes: { write: true },
    args: { input: t.arg({ type: RenameBlockInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.workspaces.graph.renameBlock(ctx, input),
  }),
  updateBlockConfig: t.field({
    type: BlockPayload,
    description: "Merges a patch into a block's cfg (AiSpinner's node config update).",
    authScopes: { write: true },
    args: { input: t.arg({ type: UpdateBlockConfigInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.workspaces.graph.updateBlockConfig(ctx, input),
  }),
  removeBlock: t.field({
    type: RemovalPayload,
    description: "Removes a block and every edge to or from it.",
    authScopes: { write: true },
    args: { input: t.arg({ type: RemoveBlockInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.workspaces.graph.removeBlock(ctx, input),
  }),
  connectBlocks: t.field({
    type: EdgePayload,
    authScopes: { write: true },
    args: { input: t.arg({ type: ConnectBlocksInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.workspaces.graph.connectBlocks(ctx, input),
  }),
  disconnectBlocks: t.field({
    type: RemovalPayload,
    authScopes: { write: true },
    args: { input: t.arg({ type: DisconnectBlocksInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.workspaces.graph.disconnectBlocks(ctx, input),
  }),
}));
