// One check of every argument of every operation, before any resolver runs and before the request
// is even authenticated (so before any SQL): a field added tomorrow is covered without anyone
// remembering. Each argument value, written in the document or passed as a variable, is walked
// along its GraphQL type, iteratively: text the database cannot store, numbers it cannot store,
// JSON nested too deep, lists too long, and Relay paging arguments the server never issued are
// answered with VALIDATION naming the argument path (`input.name`, `input.blocks.3.cfg.a`), as
// the services name fields. Services still check their own rules; this is the floor under them.
import { decodeBase64, decodeCursorChunk } from "@pothos/core";
import {
  getNamedType,
  getOperationAST,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  TypeInfo,
  valueFromASTUntyped,
  visit,
  visitWithTypeInfo,
  type DocumentNode,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLSchema,
  type ValueNode,
} from "graphql";
import type { GraphQLParams, Plugin } from "graphql-yoga";
import { MAX_PAGE_SIZE } from "./builder.js";
import { validationError, type FieldProblem } from "./errors.js";
import { INPUT_LIMITS, isUuid, jsonProblem } from "./validation.js";

/** More problems than this in one request are not worth listing. */
const MAX_REPORTED = 20;

type Path = (string | number)[];

/** Problems of one argument value, walked along its type. */
function valueProblems(root: unknown, rootType: GraphQLInputType, rootPath: Path, report: (path: Path, message: string) => void) {
  const stack: { value: unknown; type: GraphQLInputType; path: Path }[] = [{ value: root, type: rootType, path: rootPath }];
  while (stack.length > 0) {
    const { value, type, path } = stack.pop()!;
    if (value === null || value === undefined) continue;
    const inner = isNonNullType(type) ? type.ofType : type;
    if (isListType(inner)) {
      if (!Array.isArray(value)) {
        stack.push({ value, type: inner.ofType, path });
      } else if (value.length > INPUT_LIMITS.listLength) {
        report(path, `must hold at most ${INPUT_LIMITS.listLength} items (this has ${value.length})`);
      } else {
        value.forEach((item, i) => stack.push({ value: item, type: inner.ofType, path: [...path, i] }));
      }
    } else if (isInputObjectType(inner)) {
      // Anything but an object, and any key the type lacks, is refused by GraphQL's own coercion.
      if (typeof value !== "object" || Array.isArray(value)) continue;
      for (const [key, field] of Object.entries(inner.getFields())) {
        if (key in value) stack.push({ value: (value as Record<string, unknown>)[key], type: field.type, path: [...path, key] });
      }
    } else {
      // A scalar or an enum: text, a number, or (JSON) a whole tree.
      const problem = jsonProblem(value);
      if (problem) report([...path, ...problem.path], problem.message);
    }
  }
}

const isConnection = (field: GraphQLField<unknown, unknown>) => {
  const type = getNamedType(field.type);
  return isObjectType(type) && "pageInfo" in type.getFields() && "edges" in type.getFields();
};

/** A cursor this server issued: Pothos' `GPC:` chunk holding a row's UUID, or the UUIDs of a compound key. */
function isIssuedCursor(cursor: unknown): boolean {
  if (typeof cursor !== "string") return false;
  try {
    const decoded = decodeBase64(cursor);
    if (!decoded.startsWith("GPC:")) return false;
    const key = decodeCursorChunk(decoded.slice(4));
    const parts = Array.isArray(key) ? key : [key];
    return parts.length > 0 && parts.every((part) => typeof part === "string" && isUuid(part));
  } catch {
    return false;
  }
}

/** Relay paging arguments as Spindle's connections take them (all page by UUID keys). */
function pagingProblems(args: Record<string, unknown>, report: (path: Path, message: string) => void) {
  for (const size of ["first", "last"] as const) {
    const value = args[size];
    if (typeof value === "number" && (value < 1 || value > MAX_PAGE_SIZE)) report([size], `must be between 1 and ${MAX_PAGE_SIZE}`);
  }
  for (const cursor of ["after", "before"] as const) {
    if (args[cursor] != null && !isIssuedCursor(args[cursor])) {
      report([cursor], "must be a cursor from this connection (an edge's cursor or pageInfo's start or end cursor)");
    }
  }
  if (args.after != null && args.before != null) report(["before"], "cannot be combined with after");
  if (args.before != null && args.first != null) report(["first"], "cannot be combined with before (page backwards with last)");
  if (args.after != null && args.last != null) report(["last"], "cannot be combined with after (page forwards with first)");
}

/** What is wrong with the arguments of the operation `params` selects, as VALIDATION fields. */
export function inputProblems(schema: GraphQLSchema, document: DocumentNode, params: Partial<GraphQLParams> = {}): FieldProblem[] {
  const operation = getOperationAST(document, params.operationName);
  // No such operation: execution says so.
  if (!operation) return [];
  const sent = params.variables ?? {};
  const variables: Record<string, unknown> = {};
  for (const definition of operation.variableDefinitions ?? []) {
    const name = definition.variable.name.value;
    variables[name] = name in sent ? sent[name] : definition.defaultValue && valueFromASTUntyped(definition.defaultValue);
  }
  const valueOf = (node: ValueNode) => valueFromASTUntyped(node, variables);

  const problems: FieldProblem[] = [];
  const report = (path: Path, message: string) => {
    if (problems.length < MAX_REPORTED) problems.push({ field: path.join("."), message });
  };
  const typeInfo = new TypeInfo(schema);
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      OperationDefinition: (node) => (node === operation ? undefined : false),
      Field(node) {
        const field = typeInfo.getFieldDef();
        if (field && isConnection(field)) {
          pagingProblems(Object.fromEntries((node.arguments ?? []).map((arg) => [arg.name.value, valueOf(arg.value)])), report);
        }
      },
      Argument(node) {
        const argument = typeInfo.getArgument();
        if (argument) valueProblems(valueOf(node.value), argument.type, [node.name.value], report);
      },
    }),
  );
  return problems;
}

/**
 * Runs the check right after GraphQL's own validation (on a valid document), on HTTP, SSE and
 * WebSocket alike. It throws rather than adding to the validation result: that result is cached
 * per document, and these problems belong to this request's variables.
 */
export function useInputGuard(): Plugin {
  return {
    onValidate({ params, context }) {
      return ({ valid }) => {
        if (!valid) return;
        const problems = inputProblems(params.schema, params.documentAST, (context as { params?: GraphQLParams }).params);
        if (problems.length > 0) throw validationError(problems);
      };
    },
  };
}
