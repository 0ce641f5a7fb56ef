// Typed documents for the tests, the REST layer and the machine agent, generated from schema.graphql.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "schema.graphql",
  generates: {
    "test/generated/graphql.ts": {
      documents: ["test/operations/**/*.graphql"],
      plugins: ["typescript", "typescript-operations", "typed-document-node"],
      config: { scalars: { DateTime: "string" }, enumsAsTypes: true, useTypeImports: true, avoidOptionals: false },
    },
    // The legacy REST layer's operations: each route runs these through yoga in-process.
    "src/generated/rest-graphql.ts": {
      documents: ["src/rest/operations/*.graphql"],
      plugins: ["typescript", "typescript-operations", "typed-document-node"],
      config: { scalars: { DateTime: "string" }, enumsAsTypes: true, useTypeImports: true, avoidOptionals: false },
    },
    // Spunto, api-web and api-v1 each have their own file, so each dialect's operations are named freely.
    "src/generated/rest-spunto-graphql.ts": {
      documents: ["src/rest/operations/spunto/*.graphql"],
      plugins: ["typescript", "typescript-operations", "typed-document-node"],
      config: { scalars: { DateTime: "string" }, enumsAsTypes: true, useTypeImports: true, avoidOptionals: false },
    },
    "src/generated/rest-api-web-graphql.ts": {
      documents: ["src/rest/operations/api-web/*.graphql"],
      plugins: ["typescript", "typescript-operations", "typed-document-node"],
      config: { scalars: { DateTime: "string" }, enumsAsTypes: true, useTypeImports: true, avoidOptionals: false },
    },
    "src/generated/rest-api-v1-graphql.ts": {
      documents: ["src/rest/operations/api-v1/*.graphql"],
      plugins: ["typescript", "typescript-operations", "typed-document-node"],
      config: { scalars: { DateTime: "string" }, enumsAsTypes: true, useTypeImports: true, avoidOptionals: false },
    },
    // The machine agent's operations (spindle agent).
    "src/generated/agent-graphql.ts": {
      documents: ["src/agent/operations/**/*.graphql"],
      plugins: ["typescript", "typescript-operations", "typed-document-node"],
      config: { scalars: { DateTime: "string" }, enumsAsTypes: true, useTypeImports: true, avoidOptionals: false },
    },
  },
  silent: true,
};

export default config;
