// Imports every domain's schema file, then builds the schema.
import { lexicographicSortSchema, printSchema } from "graphql";
import { builder } from "./builder.js";
import "../modules/account/account.schema.js";
import "../modules/api-key/api-key.schema.js";

export const schema = builder.toSchema();

/** What `schema.graphql` holds: sorted, so that it changes only when the schema does. */
export const printedSchema = () => `${printSchema(lexicographicSortSchema(schema))}\n`;
