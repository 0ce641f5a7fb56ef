// What a query may cost, decided before it runs. The cost counts the fields a query can resolve,
// multiplied by how many times each list can repeat them, so that a dashboard page of 100 items
// with a few nested fields passes and a query nesting pages inside pages does not:
//
//   cost(field) = 1 + multiplier(field) * cost(its selection)
//   multiplier: `first`/`last` (or `limit`) when written in the query; the most a page may hold
//   (MAX_PAGE_SIZE) when it is a variable; the default page (DEFAULT_PAGE_SIZE) for a connection
//   without one; LIST_SIZE for a plain list (a task's stages, a machine's labels); 1 for
//   `edges`/`nodes` (their connection already counted) and for everything else.
//
// Fragments count where they are spread; introspection costs nothing (it has its own switch).
// graphql-armor keeps the other limits (depth, aliases, directives, tokens).
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
  type ValidationRule,
  isObjectType,
  isInterfaceType,
  type GraphQLNamedType,
} from "graphql";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from "./builder.js";

/** The most a query may cost: a page of 100 items, each with ~150 fields and nested items (see README). */
export const MAX_QUERY_COST = 15_000;
/** What a plain list (not a connection) is assumed to hold: they are short by construction. */
const LIST_SIZE = 10;
const SIZE_ARGUMENTS = ["first", "last", "limit"];

function returnsList(type: GraphQLOutputType): boolean {
  return isListType(isNonNullType(type) ? type.ofType : type);
}

function multiplier(field: GraphQLField<unknown, unknown>, node: FieldNode, parent: GraphQLNamedType): number {
  const named = getNamedType(field.type);
  if (parent.name.endsWith("Connection") && (node.name.value === "edges" || node.name.value === "nodes")) return 1;
  for (const argument of node.arguments ?? []) {
    if (!SIZE_ARGUMENTS.includes(argument.name.value)) continue;
    if (argument.value.kind === Kind.INT) return Math.max(0, Number(argument.value.value));
    if (argument.value.kind === Kind.VARIABLE) return MAX_PAGE_SIZE;
  }
  if (named.name.endsWith("Connection")) return DEFAULT_PAGE_SIZE;
  return returnsList(field.type) ? LIST_SIZE : 1;
}

export function queryCost(
  selectionSet: SelectionSetNode,
  type: GraphQLNamedType,
  fragments: Record<string, FragmentDefinitionNode>,
  schemaType: (name: string) => GraphQLNamedType | undefined,
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
        ? queryCost(selection.selectionSet, getNamedType(field.type), fragments, schemaType, spreading)
        : 0;
      cost += 1 + multiplier(field, selection, type) * inner;
    } else {
      const fragment = selection.kind === Kind.FRAGMENT_SPREAD ? fragments[selection.name.value] : selection;
      const name = selection.kind === Kind.FRAGMENT_SPREAD ? selection.name.value : undefined;
      // A cycle is reported by NoFragmentCycles; an unknown fragment by KnownFragmentNames.
      if (!fragment || (name && spreading.has(name))) continue;
      const condition = fragment.typeCondition ? schemaType(fragment.typeCondition.name.value) : type;
      if (!condition) continue;
      if (name) spreading.add(name);
      cost += queryCost(fragment.selectionSet, condition, fragments, schemaType, spreading);
      if (name) spreading.delete(name);
    }
  }
  return cost;
}

/** Refuses an operation whose cost is over `maxCost`, as a validation error (400, nothing runs). */
export function costLimitRule(maxCost = MAX_QUERY_COST): ValidationRule {
  return (context) => {
    const schema = context.getSchema();
    const fragments: Record<string, FragmentDefinitionNode> = {};
    for (const definition of context.getDocument().definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments[definition.name.value] = definition;
    }
    return {
      OperationDefinition(operation) {
        const root = schema.getRootType(operation.operation);
        if (!root) return;
        const cost = queryCost(operation.selectionSet, root, fragments, (name) => schema.getType(name) ?? undefined);
        if (cost > maxCost) {
          context.reportError(
            new GraphQLError(
              `The query costs ${cost}, over the limit of ${maxCost}: ask for smaller pages (first/last) or fewer nested lists`,
              { nodes: [operation], extensions: { cost, maxCost } },
            ),
          );
        }
      },
    };
  };
}
