// The unit of work against the real database: concurrent units keep their notes apart (Prisma's
// concurrent transaction clients share their properties, so a batch set on the client would leak
// into another transaction), a unit's events are written with it, one that rolls back announces
// nothing and leaves nothing written, and one that made no audit decision does not commit.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MachineViewer } from "../../src/auth/viewer.js";
import { audit, unaudited } from "../../src/modules/shared/audit.js";
import { noteEvent, noteStatus, type LiveBatch } from "../../src/modules/shared/live.js";
import { createUnitOfWork } from "../../src/modules/shared/unit-of-work.js";
import { unique } from "../helpers/factories.js";
import { backend, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

/** A unit of work whose committed batches are kept, for the test to read (the server's own announces on pub/sub). */
function recordingUnitOfWork() {
  const announced: LiveBatch[] = [];
  return { work: createUnitOfWork({ prisma: server.db.prisma, live: { announce: (batch) => announced.push(batch) } }), announced };
}

const workspaces = (n: number) =>
  Promise.all(Array.from({ length: n }, async () => (await server.db.prisma.workspace.create({ data: { name: unique("ws") } })).id));

describe(`the unit of work (${backend})`, () => {
  it("keeps the notes of concurrent units apart, and writes each unit's events with it", async () => {
    const ids = await workspaces(5);
    const { work, announced } = recordingUnitOfWork();
    await Promise.all(
      ids.map((workspaceId, i) =>
        work.run(async (tx) => {
          // Interleave: every unit is open while the others note theirs.
          await new Promise((resolve) => setTimeout(resolve, 20 * (5 - i)));
          noteStatus(tx, "MACHINE", workspaceId, workspaceId);
          noteEvent(tx, { workspaceId, type: "notification", subjectType: "WORKSPACE", subjectId: workspaceId, data: { i } });
          await tx.$queryRaw`SELECT 1`;
          unaudited(tx, "server");
        }),
      ),
    );
    expect(announced).toHaveLength(5);
    for (const batch of announced) {
      expect(batch.status.size).toBe(1);
      const [workspaceId] = [...batch.status.keys()];
      expect([...batch.events.keys()]).toEqual([workspaceId]);
    }
    expect(new Set(announced.flatMap((batch) => [...batch.status.keys()]))).toEqual(new Set(ids));
    const events = await server.db.prisma.workspaceEvent.findMany({ where: { workspaceId: { in: ids } } });
    expect(events.map((e) => [e.workspaceId, Number(e.cursor)]).sort()).toEqual(ids.map((id) => [id, 1]).sort());
  });

  it("announces nothing and writes nothing when the unit rolls back", async () => {
    const [workspaceId] = await workspaces(1);
    const { work, announced } = recordingUnitOfWork();
    await expect(
      work.run(async (tx) => {
        noteEvent(tx, { workspaceId: workspaceId!, type: "notification", subjectType: "WORKSPACE", subjectId: workspaceId });
        await tx.workspace.update({ where: { id: workspaceId }, data: { name: "renamed" } });
        throw new Error("refused");
      }),
    ).rejects.toThrow("refused");
    expect(announced).toEqual([]);
    expect(await server.db.prisma.workspaceEvent.count({ where: { workspaceId } })).toBe(0);
    expect((await server.db.prisma.workspace.findUniqueOrThrow({ where: { id: workspaceId } })).name).not.toBe("renamed");
  });

  it("creates once per idempotency key, and refuses the key with other input", async () => {
    const workspaceId = (await workspaces(1))[0]!;
    const { work } = recordingUnitOfWork();
    const viewer: MachineViewer = { kind: "machine", machineId: crypto.randomUUID(), workspaceId, approved: true, scopes: new Set(), credentialHash: "x" };
    const create = (name: string) =>
      work.create({ viewer, operation: "testCreate", key: "k1", input: { name } }, async (tx) => {
        const project = await tx.project.create({ data: { workspaceId, name, key: "K1" } });
        await audit(tx, { viewer }, { workspaceId, action: "project.create", targetType: "Project", targetId: project.id });
        return project;
      });
    const [first, second] = await Promise.all([create("one"), create("one")]);
    expect([first.replayed, second.replayed].sort()).toEqual([false, true]);
    expect(second.id).toBe(first.id);
    expect(await server.db.prisma.project.count({ where: { workspaceId } })).toBe(1);
    await expect(create("two")).rejects.toMatchObject({ extensions: { code: "CONFLICT" } });
    // One entry: the replay answered the first create's result and wrote none.
    expect(await server.db.prisma.auditEntry.count({ where: { workspaceId, action: "project.create" } })).toBe(1);
  });

  it("does not commit a unit that neither wrote an audit entry nor said why it writes none", async () => {
    const [workspaceId] = await workspaces(1);
    const { work, announced } = recordingUnitOfWork();
    await expect(
      work.run(async (tx) => {
        noteStatus(tx, "MACHINE", workspaceId, workspaceId!);
        await tx.workspace.update({ where: { id: workspaceId }, data: { name: "renamed" } });
      }),
    ).rejects.toThrow(/without an audit decision/);
    expect(announced).toEqual([]);
    expect((await server.db.prisma.workspace.findUniqueOrThrow({ where: { id: workspaceId } })).name).not.toBe("renamed");
  });

  it("commits a unit that wrote its audit entry, or said why it writes none", async () => {
    const [workspaceId] = await workspaces(1);
    const { work } = recordingUnitOfWork();
    const viewer: MachineViewer = { kind: "machine", machineId: crypto.randomUUID(), workspaceId: workspaceId!, approved: true, scopes: new Set(), credentialHash: "x" };
    await work.run(async (tx) => {
      await tx.workspace.update({ where: { id: workspaceId }, data: { name: "audited" } });
      await audit(tx, { viewer }, { workspaceId: workspaceId!, action: "workspace.update", targetType: "Workspace", targetId: workspaceId });
    });
    await work.run(async (tx) => {
      unaudited(tx, "unchanged");
      await tx.$queryRaw`SELECT 1`;
    });
    expect(await server.db.prisma.auditEntry.count({ where: { workspaceId, action: "workspace.update" } })).toBe(1);
  });
});
