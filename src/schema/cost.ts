// What a query may cost, decided before it runs. The cost counts the fields a query can resolve,
// multiplied by how many times each list can repeat them, so that a dashboard page of 100 items
// with a few nested fields passes and a query nesting pages inside pages does not:
//
//   cost(field) = 1 + multiplier(field) * cost(its selection)
//   multiplier: `first`/`last` (or `limit`) as the request gives it (in the document or in its
//   variables); the default page (DEFAULT_PAGE_SIZE) for a connection without one; LIST_SIZE for a plain list (a task's stages, a machine's labels); 1 for
//   `edges`/`nodes` (their connection already counted) and for everything else.
//
// Fragments count where they are spread; introspection costs nothing (it has its own switch).
// graphql-armor keeps the other limits (depth, aliases, directives, tokens). The cost is checked
// once the variables are known, before any resolver runs (useCostLimit): a page size passed as a
// variable counts for what it is.
import {
  getNamedType,
  GraphQLError,
  isListType,
  isNonNullType,
  Kind,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLOutputType,
  type SelectionSetNode,
  type DocumentNode,
  type ExecutionArgs,
  type GraphQLSchema,
  getOperationAST,
  isObjectType,
  isInterfaceType,
  type GraphQLNamedType,
} from "graphql";
import type { Plugin } from "graphql-yoga";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from "./builder.js";

/** The most a query may cost: a page of 100 items, each with ~150 fields and nested items (see README). */
export const MAX_QUERY_COST = 15_000;
/** What a plain list (not a connection) is assumed to hold: they are short by construction. */
const LIST_SIZE = 10;
const SIZE_ARGUMENTS = ["first", "last", "limit"];

function returnsList(type: GraphQLOutputType): boolean {
  return isListType(isNonNullType(type) ? type.ofType : type);
}

type Variables = Record<string, unknown>;

function multiplier(field: GraphQLField<unknown, unknown>, node: FieldNode, parent: GraphQLNamedType, variables: Variables): number {
  const named = getNamedType(field.type);
  if (parent.name.endsWith("Connection") && (node.name.value === "edges" || node.name.value === "nodes")) return 1;
  for (const argument of node.arguments ?? []) {
    if (!SIZE_ARGUMENTS.includes(argument.name.value)) continue;
    const value = argument.value.kind === Kind.VARIABLE ? variables[argument.value.name.value] : argument.value.kind === Kind.INT ? Number(argument.value.value) : undefined;
    // Out-of-range sizes are refused by the page-size check; here they must not make a query cheap.
    if (typeof value === "number" && Number.isFinite(value)) return Math.min(Math.max(value, 0), MAX_PAGE_SIZE * 10);
  }
  if (named.name.endsWith("Connection")) return DEFAULT_PAGE_SIZE;
  return returnsList(field.type) ? LIST_SIZE : 1;
}

function selectionCost(
  selectionSet: SelectionSetNode,
  type: GraphQLNamedType,
  fragments: Record<string, FragmentDefinitionNode>,
  schemaType: (name: string) => GraphQLNamedType | undefined,
  variables: Variables,
  spreading: Set<string> = new Set(),
): number {
  let cost = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith("__")) continue;
      const field = isObjectType(type) || isInterfaceType(type) ? type.getFields()[selection.name.value] : undefined;
      // Unknown fields are reported by the standard rules.
      if (!field) continue;
      const inner = selection.selectionSet
        ? selectionCost(selection.selectionSet, getNamedType(field.type), fragments, schemaType, variables, spreading)
        : 0;
      cost += 1 + multiplier(field, selection, type, variables) * inner;
    } else {
      const fragment = selection.kind === Kind.FRAGMENT_SPREAD ? fragments[selection.name.value] : selection;
      const name = selection.kind === Kind.FRAGMENT_SPREAD ? selection.name.value : undefined;
      // A cycle is reported by NoFragmentCycles; an unknown fragment by KnownFragmentNames.
      if (!fragment || (name && spreading.has(name))) continue;
      const condition = fragment.typeCondition ? schemaType(fragment.typeCondition.name.value) : type;
      if (!condition) continue;
      if (name) spreading.add(name);
      cost += selectionCost(fragment.selectionSet, condition, fragments, schemaType, variables, spreading);
      if (name) spreading.delete(name);
    }
  }
  return cost;
}

/** The cost of the operation a request runs, with its variables. */
export function operationCost(schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined, variables: Variables = {}): number {
  const operation = getOperationAST(document, operationName);
  const root = operation && schema.getRootType(operation.operation);
  if (!operation || !root) return 0;
  const fragments: Record<string, FragmentDefinitionNode> = {};
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments[definition.name.value] = definition;
  }
  return selectionCost(operation.selectionSet, root, fragments, (name) => schema.getType(name) ?? undefined, variables);
}

function tooCostly(cost: number, maxCost: number) {
  return new GraphQLError(`The query costs ${cost}, over the limit of ${maxCost}: ask for smaller pages (first/last) or fewer nested lists`, {
    extensions: { code: "GRAPHQL_VALIDATION_FAILED", http: { status: 400 }, cost, maxCost },
  });
}

/** Refuses an operation whose cost is over `maxCost` (400, before any resolver runs), over every transport. */
export function useCostLimit(maxCost = MAX_QUERY_COST): Plugin {
  const check = (args: ExecutionArgs) => {
    const cost = operationCost(args.schema, args.document, args.operationName, args.variableValues ?? {});
    return cost > maxCost ? tooCostly(cost, maxCost) : null;
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const error = check(args);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const error = check(args);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
  };
}
