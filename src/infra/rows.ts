// Point reads without Prisma's query engine, for the hottest path: a row by id with every scalar
// column, typed as Prisma would return it (Date, bigint, parsed JSON, arrays, enum strings), in one
// prepared statement. Prisma's query compiler costs ~0.6 ms of CPU per query on this machine against
// ~0.13 ms for a prepared statement (bench/request-path.ts, BENCHMARKS.md). Used only when the
// client's selection needs no relation; anything else goes through Prisma.
import { getDatamodel } from "../generated/pothos-types.js";
import type { Database } from "./db.js";

/** The models point reads use (their primary key is a uuid `id`). */
type ModelName = "Worker" | "Machine" | "Task" | "Deployment" | "Service" | "Flow" | "Project";

interface ModelReader {
  text: string;
  bigints: string[];
}

function readerFor(model: ModelName): ModelReader {
  const { fields } = getDatamodel().datamodel.models[model]!;
  const columns: string[] = [];
  const bigints: string[] = [];
  for (const field of fields) {
    if (field.kind === "object") continue;
    const column = `"${field.name}"`;
    if (field.type === "DateTime") {
      // Stored as UTC wall time (timestamp without time zone): read as the instant it is.
      columns.push(`${column} AT TIME ZONE 'UTC' AS ${column}`);
    } else if (field.kind === "enum" && field.isList) {
      // Arrays of enum types come back as '{A,B}' text; as text[] the drivers parse them.
      columns.push(`${column}::text[] AS ${column}`);
    } else {
      if (field.type === "BigInt") bigints.push(field.name);
      columns.push(column);
    }
  }
  return { text: `SELECT ${columns.join(", ")} FROM "${model}" WHERE "id" = $1::uuid`, bigints };
}

export interface RowReader {
  /** The row with this id, or null; `id` must be a UUID. */
  byId<Row>(model: ModelName, id: string): Promise<Row | null>;
}

export function createRowReader(db: Pick<Database, "sql">): RowReader {
  const readers = new Map<ModelName, ModelReader>();
  return {
    async byId<Row>(model: ModelName, id: string) {
      let reader = readers.get(model);
      if (!reader) readers.set(model, (reader = readerFor(model)));
      const [row] = await db.sql<Record<string, unknown>>(reader.text, [id]);
      if (!row) return null;
      for (const name of reader.bigints) if (row[name] != null) row[name] = BigInt(row[name] as string | number);
      return row as Row;
    },
  };
}

/** True when a Prisma plugin `query` asks for no relation: the scalar row is the whole answer. */
export function needsOnlyScalars(query: { include?: object; select?: object }): boolean {
  return !query.select && (!query.include || Object.keys(query.include).length === 0);
}
