// Imports every domain's schema file, then builds the schema.
import { GraphQLSchema, lexicographicSortSchema, printSchema } from "graphql";
import { builder, type SchemaOptions } from "./builder.js";
import "../modules/account/account.schema.js";
import "../modules/api-key/api-key.schema.js";
import "../modules/shared/common.schema.js";
import "../modules/workspace/workspace.schema.js";
import "../modules/machine/machine.schema.js";
import "../modules/worker/worker.schema.js";
import "../modules/task/task.schema.js";
import "../modules/agent/agent.schema.js";
import "../modules/flow/flow.schema.js";
import "../modules/deployment/deployment.schema.js";
import "../modules/log/log.schema.js";
import "../modules/audit/audit.schema.js";
import "../modules/event/event.schema.js";
import "../modules/machine/assignments.schema.js";

export const schema = builder.toSchema();

/** The schema a server runs: the same types and resolvers, with the options its config chose. */
export const schemaFor = (options: SchemaOptions) =>
  new GraphQLSchema({ ...schema.toConfig(), extensions: { ...schema.extensions, ...options } });

/** What `schema.graphql` holds: sorted, so that it changes only when the schema does. */
export const printedSchema = () => `${printSchema(lexicographicSortSchema(schema))}\n`;
