import { GraphQLError, GraphQLScalarType, Kind } from "graphql";

const parse = (value: unknown): Date => {
  if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value)) {
    const date = new Date(value);
    if (!Number.isNaN(date.getTime())) return date;
  }
  throw new GraphQLError("DateTime must be an ISO 8601 date and time with a zone, like 2026-01-31T12:00:00Z", {
    extensions: { code: "VALIDATION" },
  });
};

export const DateTimeScalar = new GraphQLScalarType<Date, string>({
  name: "DateTime",
  description: "An instant, as an ISO 8601 string in UTC (2026-01-31T12:00:00.000Z).",
  serialize: (value) => {
    const date = value instanceof Date ? value : new Date(value as string);
    if (Number.isNaN(date.getTime())) throw new GraphQLError("DateTime cannot represent an invalid date");
    return date.toISOString();
  },
  parseValue: parse,
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw new GraphQLError("DateTime must be a string", { extensions: { code: "VALIDATION" } });
    return parse(ast.value);
  },
});
