// A point read (`worker(id)`, `machine(id)`, `task(id)`): the row is loaded once, for both the
// answer and the access check on its workspace, so a warm request costs two statements (the row,
// the caller's membership). A selection of scalars only is read without Prisma's engine.
import { needsOnlyScalars, type RowReader } from "../../infra/rows.js";
import { requireId } from "../../schema/errors.js";
import type { WorkspaceAccess } from "./access.js";

type Model = Parameters<RowReader["byId"]>[0];

export async function readById<Row extends { workspaceId: string }>(
  ctx: { rows: RowReader; access: WorkspaceAccess },
  model: Model,
  rawId: string,
  query: { include?: object; select?: object },
  viaPrisma: (id: string) => Promise<Row | null>,
): Promise<Row> {
  const type = model.toLowerCase();
  const id = requireId(rawId, type);
  const row = needsOnlyScalars(query) ? await ctx.rows.byId<Row>(model, id) : await viaPrisma(id);
  return ctx.access.visible(row, { type, id });
}
