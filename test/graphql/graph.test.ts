import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AddBlockDocument,
  BlockDocument,
  BlockTypesDocument,
  ConnectBlocksDocument,
  CreateWorkspaceDocument,
  DisconnectBlocksDocument,
  RemoveBlockDocument,
  RenameBlockDocument,
  SaveGraphDocument,
  SaveGraphWithExtrasDocument,
  UpdateBlockConfigDocument,
  UpdateBlockDocument,
  WorkspaceGraphDocument,
  type GraphBlockInput,
  type GraphEdgeInput,
  type SaveGraphInput,
} from "../generated/graphql.js";
import { signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type GraphQLResponse, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const as = (user: { accessToken: string }) => ({ token: user.accessToken });

/** A workspace owned by a new user, with a viewer. */
async function setup() {
  const [owner, viewer] = await Promise.all([signedInUser(server), signedInUser(server)]);
  const workspace = ok(await server.execute(CreateWorkspaceDocument, { input: { name: unique("ws") } }, as(owner!))).createWorkspace;
  await server.db.prisma.workspaceMember.create({ data: { workspaceId: workspace.id, userId: viewer!.id, role: "VIEWER" } });
  return { workspaceId: workspace.id, owner: owner!, viewer: viewer! };
}

let sharedSetup: ReturnType<typeof setup> | undefined;
const shared = () => (sharedSetup ??= setup());

const readGraph = async (user: SignedIn, id: string) => ok(await server.execute(WorkspaceGraphDocument, { id }, as(user))).workspace.graph;
const save = (user: SignedIn, input: SaveGraphInput) => server.execute(SaveGraphDocument, { input }, as(user));

const worker: GraphBlockInput = { id: "node_abc123", type: "code.worker", label: "My Worker", x: 100, y: 200, cfg: { tick_interval: 10 } };
const exchange: GraphBlockInput = { id: "bybit_1", type: "trading.exchange", cfg: { exchange: "bybit", api_key_id: 1 } };
const monitor: GraphBlockInput = { id: "monitor_1", type: "monitor" };
const sample = {
  blocks: [worker, exchange, monitor],
  edges: [
    { id: "edge_1", source: "node_abc123", target: "bybit_1" },
    { source: "node_abc123", target: "monitor_1" },
  ] as GraphEdgeInput[],
};

async function conflictOf(response: GraphQLResponse<unknown>) {
  const error = errorOf(response);
  expect(error).toMatchObject({ code: "CONFLICT", status: 409 });
  return error;
}

describe(`saving the whole graph (${backend})`, () => {
  it("replaces the graph, bumps the version, fills defaults, and records the save", async () => {
    const { workspaceId, owner, viewer } = await setup();
    expect(await readGraph(viewer, workspaceId)).toEqual({ version: 0, blocks: [], edges: [] });

    const saved = ok(await save(owner, { workspaceId, version: 0, ...sample })).saveGraph;
    expect(saved.version).toBe(1);
    expect(saved.blocks).toEqual(
      expect.arrayContaining([
        { id: "node_abc123", type: "code.worker", label: "My Worker", x: 100, y: 200, cfg: { tick_interval: 10 } },
        { id: "bybit_1", type: "trading.exchange", label: "Exchange", x: 0, y: 0, cfg: { exchange: "bybit", api_key_id: 1 } },
        { id: "monitor_1", type: "monitor", label: "Monitor", x: 0, y: 0, cfg: {} },
      ]),
    );
    expect(saved.blocks).toHaveLength(3);
    expect(saved.edges).toHaveLength(2);
    expect(saved.edges.find((e) => e.target === "monitor_1")!.id).toMatch(/^edge_[0-9a-f]{12}$/);
    expect(await readGraph(viewer, workspaceId)).toEqual(saved);

    const next = ok(await save(owner, { workspaceId, version: 1, blocks: [monitor], edges: [] })).saveGraph;
    expect(next).toEqual({ version: 2, blocks: [{ id: "monitor_1", type: "monitor", label: "Monitor", x: 0, y: 0, cfg: {} }], edges: [] });

    const entries = await server.db.prisma.auditEntry.findMany({ where: { workspaceId, action: "graph.save" }, orderBy: { at: "asc" } });
    expect(entries.map((e) => [e.actorId, e.data])).toEqual([
      [owner.id, { fromVersion: 0, version: 1, blocks: 3, edges: 2 }],
      [owner.id, { fromVersion: 1, version: 2, blocks: 1, edges: 0 }],
    ]);
  });

  it("a stale version is a CONFLICT that says the current version, and changes nothing", async () => {
    const { workspaceId, owner } = await setup();
    ok(await save(owner, { workspaceId, version: 0, ...sample }));
    const stale = await conflictOf(await save(owner, { workspaceId, version: 0, blocks: [], edges: [] }));
    expect(stale.extensions.currentVersion).toBe(1);
    expect(stale.message).toContain("version 1");
    expect(fieldsOf(stale)).toEqual(["input.version"]);
    const ahead = await conflictOf(await save(owner, { workspaceId, version: 7, blocks: [], edges: [] }));
    expect(ahead.extensions.currentVersion).toBe(1);
    const graph = await readGraph(owner, workspaceId);
    expect(graph.version).toBe(1);
    expect(graph.blocks).toHaveLength(3);
  });

  it("two concurrent saves from one version: exactly one wins; the other gets CONFLICT and the graph is the winner's", async () => {
    const { workspaceId, owner } = await setup();
    ok(await save(owner, { workspaceId, version: 0, ...sample }));
    const mine = { blocks: [{ id: "a", type: "monitor", label: "mine" }], edges: [] };
    const theirs = {
      blocks: [
        { id: "b", type: "notifier", label: "theirs", cfg: { channel: "email", target: "x@y.z" } },
        { id: "c", type: "monitor" },
      ],
      edges: [{ id: "e", source: "b", target: "c" }],
    };
    for (let round = 0; round < 5; round++) {
      const { version } = await readGraph(owner, workspaceId);
      const [a, b] = await Promise.all([
        save(owner, { workspaceId, version, ...mine }),
        save(owner, { workspaceId, version, ...theirs }),
      ]);
      const winners = [a, b].filter((r) => !r.errors?.length);
      expect(winners).toHaveLength(1);
      const loser = await conflictOf([a, b].find((r) => r.errors?.length)!);
      expect(loser.extensions.currentVersion).toBe(version + 1);
      const winner = winners[0]!.data!.saveGraph;
      expect(winner.version).toBe(version + 1);
      expect(await readGraph(owner, workspaceId)).toEqual(winner);
      expect(winner.blocks.map((x) => x.label)).toEqual(winners[0] === a ? ["mine"] : ["theirs", "Monitor"]);
    }
  });

  it.each([
    ["a block id with a space", { blocks: [{ id: "bad id", type: "monitor" }], edges: [] }, ["input.blocks.0.id"]],
    ["an over-long block id", { blocks: [{ id: "n".repeat(101), type: "monitor" }], edges: [] }, ["input.blocks.0.id"]],
    ["a block id used twice", { blocks: [monitor, { ...monitor, label: "again" }], edges: [] }, ["input.blocks.1.id"]],
    ["an unknown block type", { blocks: [{ id: "x", type: "quantum.computer" }], edges: [] }, ["input.blocks.0.type"]],
    ["a cfg that is an array", { blocks: [{ id: "x", type: "monitor", cfg: [1] }], edges: [] }, ["input.blocks.0.cfg"]],
    ["a block extra that is not an object", { blocks: [{ id: "x", type: "monitor", extra: "note" }], edges: [] }, ["input.blocks.0.extra"]],
    [
      "an edge extra that is not an object",
      { blocks: [monitor, exchange], edges: [{ source: "monitor_1", target: "bybit_1", extra: [1] }] },
      ["input.edges.0.extra"],
    ],
    ["a cfg over 64 KiB", { blocks: [monitor, { id: "x", type: "monitor", cfg: { big: "x".repeat(66_000) } }], edges: [] }, ["input.blocks.1.cfg"]],
    ["an over-long label", { blocks: [{ id: "x", type: "monitor", label: "l".repeat(201) }], edges: [] }, ["input.blocks.0.label"]],
    ["an edge to a missing block", { blocks: [monitor], edges: [{ source: "monitor_1", target: "ghost" }] }, ["input.edges.0.target"]],
    ["an edge from a block to itself", { blocks: [monitor], edges: [{ source: "monitor_1", target: "monitor_1" }] }, ["input.edges.0.target"]],
    [
      "two edges between the same blocks",
      { blocks: [monitor, exchange], edges: [{ source: "monitor_1", target: "bybit_1" }, { source: "monitor_1", target: "bybit_1" }] },
      ["input.edges.1"],
    ],
    [
      "an edge id used twice",
      { blocks: [monitor, exchange], edges: [{ id: "e", source: "monitor_1", target: "bybit_1" }, { id: "e", source: "bybit_1", target: "monitor_1" }] },
      ["input.edges.1.id"],
    ],
    ["a bad edge id", { blocks: [monitor, exchange], edges: [{ id: "e/1", source: "monitor_1", target: "bybit_1" }] }, ["input.edges.0.id"]],
    [
      "more than 2000 blocks",
      { blocks: Array.from({ length: 2001 }, (_, i) => ({ id: `n${i}`, type: "monitor", label: "" })), edges: [] },
      ["input.blocks"],
    ],
  ] as [string, Pick<SaveGraphInput, "blocks" | "edges">, string[]][])("refuses %s, naming the field, and changes nothing", async (_what, graph, fields) => {
    const { workspaceId, owner } = await shared();
    const before = await readGraph(owner, workspaceId);
    const error = errorOf(await save(owner, { workspaceId, version: before.version, ...graph }));
    expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
    expect(fieldsOf(error)).toEqual(fields);
    expect(await readGraph(owner, workspaceId)).toEqual(before);
  });

  it("keeps blocks in the order sent and each block's and edge's extra as sent; unknown types only when asked to", async () => {
    const { workspaceId, owner, viewer } = await setup();
    const blocks: GraphBlockInput[] = [
      { id: "z_last_by_name", type: "monitor", extra: { color: "#ff0", notes: { pinned: true }, tags: ["a"] } },
      { id: "a_first_by_name", type: "trading.bybit", label: "Bybit" },
      { id: "m_middle", type: "code.worker" },
    ];
    const edges: GraphEdgeInput[] = [{ id: "e1", source: "z_last_by_name", target: "a_first_by_name", extra: { sourceHandle: "out", animated: true } }];

    const refused = errorOf(await save(owner, { workspaceId, version: 0, blocks, edges }));
    expect(fieldsOf(refused)).toEqual(["input.blocks.1.type"]);
    expect(refused.message).toContain('unknown block type "trading.bybit"');

    const saved = ok(await server.execute(SaveGraphWithExtrasDocument, { input: { workspaceId, version: 0, blocks, edges, allowUnknownTypes: true } }, as(owner))).saveGraph;
    expect(saved).toEqual({
      version: 1,
      blocks: [
        { id: "z_last_by_name", type: "monitor", label: "Monitor", extra: { color: "#ff0", notes: { pinned: true }, tags: ["a"] } },
        { id: "a_first_by_name", type: "trading.bybit", label: "Bybit", extra: {} },
        { id: "m_middle", type: "code.worker", label: "Code worker", extra: {} },
      ],
      edges: [{ id: "e1", source: "z_last_by_name", target: "a_first_by_name", extra: { sourceHandle: "out", animated: true } }],
    });
    expect((await readGraph(viewer, workspaceId)).blocks.map((b) => b.id)).toEqual(["z_last_by_name", "a_first_by_name", "m_middle"]);

    // A block added afterwards comes after the saved ones; one of an unknown type gets its type as label.
    ok(await server.execute(AddBlockDocument, { input: { workspaceId, id: "added", type: "monitor" } }, as(owner)));
    expect((await readGraph(viewer, workspaceId)).blocks.map((b) => b.id)).toEqual(["z_last_by_name", "a_first_by_name", "m_middle", "added"]);
    const unknownLabel = ok(
      await server.execute(SaveGraphWithExtrasDocument, { input: { workspaceId, version: 2, blocks: [{ id: "u", type: "my.own" }], edges: [], allowUnknownTypes: true } }, as(owner)),
    ).saveGraph;
    expect(unknownLabel.blocks).toEqual([{ id: "u", type: "my.own", label: "my.own", extra: {} }]);
  });

  it("counts extras toward the graph's size", async () => {
    const { workspaceId, owner } = await setup();
    const blocks = Array.from({ length: 13 }, (_, i) => ({ id: `n${i}`, type: "monitor", extra: { big: "x".repeat(63_000) } }));
    const error = errorOf(await save(owner, { workspaceId, version: 0, blocks, edges: [] }));
    expect(fieldsOf(error)).toEqual(["input.blocks"]);
    expect(error.message).toMatch(/at most 768 KiB/);
  });

  it("refuses more than 5000 edges and a negative version", async () => {
    const { workspaceId, owner } = await shared();
    const blocks = Array.from({ length: 80 }, (_, i) => ({ id: `n${i}`, type: "monitor", label: "" }));
    const edges = blocks.flatMap((a, i) => blocks.filter((_, j) => j !== i).map((b) => ({ source: a.id, target: b.id }))).slice(0, 5001);
    const tooMany = errorOf(await save(owner, { workspaceId, version: 0, blocks, edges }));
    expect(fieldsOf(tooMany)).toEqual(["input.edges"]);
    const negative = errorOf(await save(owner, { workspaceId, version: -1, blocks: [], edges: [] }));
    expect(fieldsOf(negative)).toEqual(["input.version"]);
  });

  it("viewers cannot save; strangers and unknown workspaces get NOT_FOUND", async () => {
    const { workspaceId, viewer } = await shared();
    const denied = errorOf(await save(viewer, { workspaceId, version: 0, blocks: [], edges: [] }));
    expect(denied).toMatchObject({ code: "FORBIDDEN", extensions: { requiredScope: "workspace:member" } });
    const stranger = await signedInUser(server);
    for (const id of [workspaceId, randomUUID(), "nope"]) {
      expect(errorOf(await save(stranger, { workspaceId: id, version: 0, blocks: [], edges: [] })).code).toBe("NOT_FOUND");
    }
  });
});

describe(`changing one block at a time (${backend})`, () => {
  it("add, update, rename, merge config, connect, disconnect, remove: each bumps the version by one and is recorded", async () => {
    const { workspaceId, owner, viewer } = await setup();
    const ws = { workspaceId };
    const added = ok(await server.execute(AddBlockDocument, { input: { ...ws, type: "code.worker", x: 5 } }, as(owner))).addBlock;
    expect(added.version).toBe(1);
    expect(added.block).toMatchObject({ type: "code.worker", label: "Code worker", x: 5, y: 0, cfg: {} });
    expect(added.block.id).toMatch(/^node_[0-9a-f]{12}$/);
    const w = added.block.id;
    const named = ok(
      await server.execute(AddBlockDocument, { input: { ...ws, id: "bybit_1", type: "trading.exchange", label: "Bybit", expectedVersion: 1 } }, as(owner)),
    ).addBlock;
    expect(named).toMatchObject({ version: 2, block: { id: "bybit_1", label: "Bybit" } });

    const updated = ok(
      await server.execute(UpdateBlockDocument, { input: { ...ws, blockId: w, x: 10, y: 20, cfg: { tick_interval: 5, code: { lang: "py" } } } }, as(owner)),
    ).updateBlock;
    expect(updated).toEqual({ version: 3, block: { id: w, type: "code.worker", label: "Code worker", x: 10, y: 20, cfg: { tick_interval: 5, code: { lang: "py" } } } });

    const renamed = ok(await server.execute(RenameBlockDocument, { input: { ...ws, blockId: w, label: "Trader" } }, as(owner))).renameBlock;
    expect(renamed).toMatchObject({ version: 4, block: { label: "Trader", x: 10 } });

    const merged = ok(
      await server.execute(
        UpdateBlockConfigDocument,
        { input: { ...ws, blockId: w, cfg: { tick_interval: null, max_errors: 3, code: { entry: "tick" } } } },
        as(owner),
      ),
    ).updateBlockConfig;
    expect(merged).toMatchObject({ version: 5, block: { cfg: { max_errors: 3, code: { lang: "py", entry: "tick" } } } });
    expect(ok(await server.execute(BlockDocument, { workspaceId, blockId: w }, as(viewer))).block.cfg).toEqual({
      max_errors: 3,
      code: { lang: "py", entry: "tick" },
    });

    const edge = ok(await server.execute(ConnectBlocksDocument, { input: { ...ws, source: w, target: "bybit_1" } }, as(owner))).connectBlocks;
    expect(edge).toMatchObject({ version: 6, edge: { source: w, target: "bybit_1" } });
    expect(edge.edge.id).toMatch(/^edge_[0-9a-f]{12}$/);
    const back = ok(await server.execute(ConnectBlocksDocument, { input: { ...ws, id: "back", source: "bybit_1", target: w } }, as(owner))).connectBlocks;
    expect(back.edge.id).toBe("back");

    const cut = ok(await server.execute(DisconnectBlocksDocument, { input: { ...ws, source: w, target: "bybit_1" } }, as(owner))).disconnectBlocks;
    expect(cut).toEqual({ version: 8, removedBlockIds: [], removedEdgeIds: [edge.edge.id] });

    const removed = ok(await server.execute(RemoveBlockDocument, { input: { ...ws, blockId: "bybit_1" } }, as(owner))).removeBlock;
    expect(removed).toEqual({ version: 9, removedBlockIds: ["bybit_1"], removedEdgeIds: ["back"] });

    const graph = await readGraph(viewer, workspaceId);
    expect(graph.version).toBe(9);
    expect(graph.blocks.map((b) => b.id)).toEqual([w]);
    expect(graph.edges).toEqual([]);

    const entries = await server.db.prisma.auditEntry.findMany({
      where: { workspaceId, action: { startsWith: "graph." } },
      orderBy: { at: "asc" },
    });
    expect(entries.map((e) => [e.action, e.targetType, e.targetId, (e.data as { version: number }).version])).toEqual([
      ["graph.block.add", "GraphBlock", w, 1],
      ["graph.block.add", "GraphBlock", "bybit_1", 2],
      ["graph.block.update", "GraphBlock", w, 3],
      ["graph.block.rename", "GraphBlock", w, 4],
      ["graph.block.config", "GraphBlock", w, 5],
      ["graph.edge.connect", "GraphEdge", edge.edge.id, 6],
      ["graph.edge.connect", "GraphEdge", "back", 7],
      ["graph.edge.disconnect", "GraphEdge", edge.edge.id, 8],
      ["graph.block.remove", "GraphBlock", "bybit_1", 9],
    ]);
    expect(entries.every((e) => e.actorId === owner.id && e.actorType === "USER")).toBe(true);
  });

  it("a stale expectedVersion is the same CONFLICT with the current version, for every operation", async () => {
    const { workspaceId, owner } = await setup();
    ok(await save(owner, { workspaceId, version: 0, blocks: [monitor, exchange], edges: [{ id: "e1", source: "monitor_1", target: "bybit_1" }] }));
    const ws = { workspaceId, expectedVersion: 0 };
    const responses = [
      await server.execute(AddBlockDocument, { input: { ...ws, type: "monitor" } }, as(owner)),
      await server.execute(UpdateBlockDocument, { input: { ...ws, blockId: "monitor_1", x: 1 } }, as(owner)),
      await server.execute(RenameBlockDocument, { input: { ...ws, blockId: "monitor_1", label: "x" } }, as(owner)),
      await server.execute(UpdateBlockConfigDocument, { input: { ...ws, blockId: "monitor_1", cfg: { a: 1 } } }, as(owner)),
      await server.execute(RemoveBlockDocument, { input: { ...ws, blockId: "monitor_1" } }, as(owner)),
      await server.execute(ConnectBlocksDocument, { input: { ...ws, source: "bybit_1", target: "monitor_1" } }, as(owner)),
      await server.execute(DisconnectBlocksDocument, { input: { ...ws, edgeId: "e1" } }, as(owner)),
    ];
    for (const response of responses) {
      const error = await conflictOf(response);
      expect(error.extensions.currentVersion).toBe(1);
      expect(fieldsOf(error)).toEqual(["input.expectedVersion"]);
    }
    expect((await readGraph(owner, workspaceId)).version).toBe(1);
  });

  it("refuses what does not fit: missing blocks and edges, taken ids, self-loops, duplicate edges, bad types and input", async () => {
    const { workspaceId, owner } = await setup();
    ok(await save(owner, { workspaceId, version: 0, blocks: [monitor, exchange], edges: [{ id: "e1", source: "monitor_1", target: "bybit_1" }] }));
    const ws = { workspaceId };
    const expectError = async (response: GraphQLResponse<unknown>, code: string, fields?: string[]) => {
      const error = errorOf(response);
      expect(error.code).toBe(code);
      if (fields) expect(fieldsOf(error)).toEqual(fields);
      return error;
    };
    await expectError(await server.execute(AddBlockDocument, { input: { ...ws, id: "monitor_1", type: "monitor" } }, as(owner)), "CONFLICT", ["input.id"]);
    await expectError(await server.execute(AddBlockDocument, { input: { ...ws, id: "a b", type: "monitor" } }, as(owner)), "VALIDATION", ["input.id"]);
    await expectError(await server.execute(AddBlockDocument, { input: { ...ws, type: "nope" } }, as(owner)), "VALIDATION", ["input.type"]);
    await expectError(await server.execute(AddBlockDocument, { input: { ...ws, type: "monitor", cfg: "x" } }, as(owner)), "VALIDATION", ["input.cfg"]);
    await expectError(await server.execute(UpdateBlockDocument, { input: { ...ws, blockId: "ghost", x: 1 } }, as(owner)), "NOT_FOUND");
    await expectError(await server.execute(UpdateBlockDocument, { input: { ...ws, blockId: "monitor_1" } }, as(owner)), "VALIDATION", ["input"]);
    await expectError(await server.execute(RenameBlockDocument, { input: { ...ws, blockId: "../x", label: "x" } }, as(owner)), "NOT_FOUND");
    await expectError(await server.execute(UpdateBlockConfigDocument, { input: { ...ws, blockId: "monitor_1", cfg: [1] } }, as(owner)), "VALIDATION", [
      "input.cfg",
    ]);
    await expectError(await server.execute(RemoveBlockDocument, { input: { ...ws, blockId: "ghost" } }, as(owner)), "NOT_FOUND");
    await expectError(await server.execute(ConnectBlocksDocument, { input: { ...ws, source: "ghost", target: "phantom" } }, as(owner)), "VALIDATION", [
      "input.source",
      "input.target",
    ]);
    await expectError(await server.execute(ConnectBlocksDocument, { input: { ...ws, source: "monitor_1", target: "monitor_1" } }, as(owner)), "VALIDATION", [
      "input.target",
    ]);
    const twice = await expectError(
      await server.execute(ConnectBlocksDocument, { input: { ...ws, source: "monitor_1", target: "bybit_1" } }, as(owner)),
      "CONFLICT",
      ["input.target"],
    );
    expect(twice.extensions.edgeId).toBe("e1");
    await expectError(await server.execute(ConnectBlocksDocument, { input: { ...ws, id: "e1", source: "bybit_1", target: "monitor_1" } }, as(owner)), "CONFLICT", [
      "input.id",
    ]);
    await expectError(await server.execute(DisconnectBlocksDocument, { input: { ...ws, edgeId: "ghost" } }, as(owner)), "NOT_FOUND");
    await expectError(await server.execute(DisconnectBlocksDocument, { input: { ...ws, source: "bybit_1" } }, as(owner)), "VALIDATION", ["input.edgeId"]);
    await expectError(await server.execute(DisconnectBlocksDocument, { input: { ...ws } }, as(owner)), "VALIDATION", ["input.edgeId"]);
    await expectError(await server.execute(BlockDocument, { workspaceId, blockId: "ghost" }, as(owner)), "NOT_FOUND");
    // Nothing above changed the graph.
    expect((await readGraph(owner, workspaceId)).version).toBe(1);
  });

  it("merged cfg over 64 KiB, and a graph over its size or block limit, are refused and roll back", async () => {
    const { workspaceId, owner } = await setup();
    ok(await save(owner, { workspaceId, version: 0, blocks: [monitor], edges: [] }));
    const half = "x".repeat(40_000);
    ok(await server.execute(UpdateBlockConfigDocument, { input: { workspaceId, blockId: "monitor_1", cfg: { a: half } } }, as(owner)));
    const tooBig = errorOf(await server.execute(UpdateBlockConfigDocument, { input: { workspaceId, blockId: "monitor_1", cfg: { b: half } } }, as(owner)));
    expect(tooBig.code).toBe("VALIDATION");
    expect(fieldsOf(tooBig)).toEqual(["input.cfg"]);

    // 11 blocks of 63 KiB and the 40 kB one: about 732 KiB of the 768, so 60 kB more is too much, 30 kB is not.
    const fill = "y".repeat(63 * 1024);
    await server.db.prisma.graphBlock.createMany({
      data: Array.from({ length: 11 }, (_, i) => ({ workspaceId, id: `big${i}`, type: "monitor", label: "", cfg: { fill } })),
    });
    const { version } = await readGraph(owner, workspaceId);
    const over = errorOf(await server.execute(AddBlockDocument, { input: { workspaceId, type: "monitor", cfg: { c: "z".repeat(60_000) } } }, as(owner)));
    expect(over.code).toBe("VALIDATION");
    expect(fieldsOf(over)).toEqual(["input.cfg"]);
    expect(over.message).toMatch(/at most 768 KiB/);
    expect((await readGraph(owner, workspaceId)).version).toBe(version);
    expect(await server.db.prisma.graphBlock.count({ where: { workspaceId } })).toBe(12);
    ok(await server.execute(AddBlockDocument, { input: { workspaceId, type: "monitor", cfg: { c: "z".repeat(30_000) } } }, as(owner)));

    await server.db.prisma.graphBlock.deleteMany({ where: { workspaceId } });
    await server.db.prisma.graphBlock.createMany({
      data: Array.from({ length: 2000 }, (_, i) => ({ workspaceId, id: `n${i}`, type: "monitor", label: "" })),
    });
    const full = errorOf(await server.execute(AddBlockDocument, { input: { workspaceId, type: "monitor" } }, as(owner)));
    expect(full.code).toBe("VALIDATION");
    expect(full.message).toMatch(/2000 blocks/);
    expect(await server.db.prisma.graphBlock.count({ where: { workspaceId } })).toBe(2000);
  });

  it("viewers read blocks but cannot change them; strangers get NOT_FOUND", async () => {
    const { workspaceId, owner, viewer } = await setup();
    ok(await save(owner, { workspaceId, version: 0, blocks: [worker], edges: [] }));
    expect(ok(await server.execute(BlockDocument, { workspaceId, blockId: "node_abc123" }, as(viewer))).block).toEqual({
      id: "node_abc123",
      type: "code.worker",
      label: "My Worker",
      x: 100,
      y: 200,
      cfg: { tick_interval: 10 },
    });
    const denied = errorOf(await server.execute(UpdateBlockConfigDocument, { input: { workspaceId, blockId: "node_abc123", cfg: { a: 1 } } }, as(viewer)));
    expect(denied.code).toBe("FORBIDDEN");
    const stranger = await signedInUser(server);
    expect(errorOf(await server.execute(BlockDocument, { workspaceId, blockId: "node_abc123" }, as(stranger))).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(AddBlockDocument, { input: { workspaceId, type: "monitor" } }, as(stranger))).code).toBe("NOT_FOUND");
  });
});

describe(`block types (${backend})`, () => {
  it("are open to anyone, filter by category and search, and every one can be saved in a graph", async () => {
    const all = ok(await server.execute(BlockTypesDocument, {})).blockTypes;
    expect(all.map((b) => b.type)).toEqual(expect.arrayContaining(["code.worker", "http.trigger", "schedule.trigger", "trading.exchange", "monitor", "notifier"]));
    for (const type of all) {
      expect(type.label).toBeTruthy();
      expect(type.description).toBeTruthy();
      expect(type.cfgSchema).toMatchObject({ type: "object" });
    }
    expect(all.find((b) => b.type === "code.worker")).toMatchObject({ category: "COMPUTE", runsWorker: true });

    const triggers = ok(await server.execute(BlockTypesDocument, { category: "TRIGGER" })).blockTypes;
    expect(triggers.map((b) => b.type).sort()).toEqual(["http.trigger", "manual.trigger", "schedule.trigger"]);
    expect(ok(await server.execute(BlockTypesDocument, { search: "EXCHANGE" })).blockTypes.map((b) => b.type)).toContain("trading.exchange");

    const { workspaceId, owner } = await setup();
    const blocks = all.map((b, i) => ({ id: `b${i}`, type: b.type }));
    expect(ok(await save(owner, { workspaceId, version: 0, blocks, edges: [] })).saveGraph.blocks).toHaveLength(all.length);
  });
});
