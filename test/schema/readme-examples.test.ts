// The README's GraphQL examples are part of the documentation users copy: each must still be a
// valid operation against the schema.
import { readFileSync } from "node:fs";
import { parse, validate } from "graphql";
import { describe, expect, it } from "vitest";
import { schema } from "../../src/schema/index.js";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const examples = [...readme.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe("README examples", () => {
  it("has GraphQL examples", () => {
    expect(examples.length).toBeGreaterThanOrEqual(5);
  });
  for (const [i, example] of examples.entries()) {
    it(`example ${i + 1} is valid against the schema: ${example.split("\n")[0]}`, () => {
      const errors = validate(schema, parse(example)).map((e) => e.message);
      expect(errors).toEqual([]);
    });
  }
});
