// Typed documents for the tests (and later the REST layer), generated from schema.graphql.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "schema.graphql",
  documents: ["test/operations/**/*.graphql"],
  generates: {
    "test/generated/graphql.ts": {
      plugins: ["typescript", "typescript-operations", "typed-document-node"],
      config: { scalars: { DateTime: "string" }, enumsAsTypes: true, useTypeImports: true, avoidOptionals: false },
    },
  },
  silent: true,
};

export default config;
