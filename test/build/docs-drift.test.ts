// The README and docs/ describe the code, and drift from it unnoticed. These checks catch what can
// be caught by reading files (no server, well under a second): a named file that no longer exists,
// a pointer outside the repository (its readers have only the repository), and the README's lists
// that restate the code or the tests: the statement-count tests, the mutations that write no audit
// entry, the inventory's row counts and the workspace event types. When one fails, make the
// document true again (or the code, if the document was right).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { filesUnder, ROOT } from "../helpers/source-files.js";

const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");

/** The documents checked: the top-level ones and everything in docs/. */
const DOCUMENTS = [
  "README.md",
  "BENCHMARKS.md",
  ...readdirSync(path.join(ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`),
];

/** The repository's top folders a document names files in (`src/config.ts`, `test/rest/`, ...). */
const REPO_PATH = /(?<![\w./-])(?:src|test|docs|bench|prisma|scripts|bin|\.ci)\/[\w./<>*{}-]*/g;
/** A path written as a pattern (`src/modules/<x>/`, `test/operations/*.graphql`) names no one file. */
const isPattern = (named: string) => /[<>*{}]/.test(named);

/** Relative markdown link targets (`[text](docs/domain.md)`), without their `#fragment`. */
function relativeLinks(text: string): string[] {
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!.split("#")[0]!)
    .filter((target) => target !== "" && !/^[a-z][a-z+.-]*:/i.test(target));
}

/** Paths into the repository's top folders named anywhere in the text, trailing full stops left off. */
function repositoryPaths(text: string): string[] {
  return [...new Set([...text.matchAll(REPO_PATH)].map((m) => m[0].replace(/\.+$/, "")))].filter((named) => !isPattern(named));
}

/** Every `../` path in the text (links, code spans, prose), as it is written. */
const upwardPaths = (text: string) => [...text.matchAll(/(?<![\w.])(?:\.\.\/)+[\w./-]*/g)].map((m) => m[0]);

const insideRepository = (absolute: string) => absolute === ROOT || absolute.startsWith(ROOT + path.sep);

/** Pointers that leave the repository: `../` paths that resolve above it, and the checkout's parent folder by its absolute path. */
function outsidePointers(document: string, text: string): string[] {
  const base = path.join(ROOT, path.dirname(document));
  const upward = upwardPaths(text).filter((named) => !insideRepository(path.resolve(base, named)));
  const parent = path.dirname(ROOT);
  const absolute = parent === path.sep ? [] : text.includes(parent + path.sep) ? [`${parent}${path.sep}...`] : [];
  return [...upward, ...absolute];
}

/** The text of `file` from `start` to the first `end` after it (both must be there). */
function section(file: string, start: string, end: string): string {
  const text = read(file);
  const from = text.indexOf(start);
  expect(from, `${file} has "${start}"`).toBeGreaterThanOrEqual(0);
  const to = text.indexOf(end, from + start.length);
  expect(to, `${file} has "${end}" after "${start}"`).toBeGreaterThan(from);
  return text.slice(from, to);
}

/** Test files under `dir`, as paths from the repository root with forward slashes. */
const testFiles = (dir: string): string[] =>
  filesUnder(path.join(ROOT, dir), ".test.ts").map((file) => path.relative(ROOT, file).split(path.sep).join("/"));

const THIS_FILE = path.relative(ROOT, import.meta.filename).split(path.sep).join("/");

/**
 * Test files that compare a query's SQL statements at two page sizes: they read the statement
 * counter and call something with 10 and with 100 (`count(10)`, `run(100)`).
 */
function statementCountTests(): string[] {
  return testFiles("test")
    .filter((file) => file !== THIS_FILE)
    .filter((file) => {
      const text = read(file);
      return text.includes("statements.count") && /\w\(10\)/.test(text) && /\w\(100\)/.test(text);
    })
    .sort();
}

const NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];

/** The fields of `type Mutation` in schema.graphql. */
function mutationNames(): Set<string> {
  const schema = read("schema.graphql");
  const body = schema.slice(schema.indexOf("type Mutation {"), schema.indexOf("\n}", schema.indexOf("type Mutation {")));
  return new Set([...body.matchAll(/^ {2}([a-zA-Z]+)[(:]/gm)].map((m) => m[1]!));
}

describe("docs name only what exists", () => {
  it("finds the paths and links it checks (the extraction itself works)", () => {
    const readme = read("README.md");
    expect(repositoryPaths(readme)).toEqual(expect.arrayContaining(["src/config.ts", "test/authz/matrix.test.ts", "docs/legacy-endpoints.tsv"]));
    expect(relativeLinks(readme)).toContain("docs/domain.md");
    expect(repositoryPaths("see `src/a.ts`, /api/docs and src/modules/<x>/.")).toEqual(["src/a.ts"]);
    expect(outsidePointers("README.md", "in `../shared/seeds/`")).toEqual(["../shared/seeds/"]);
    expect(outsidePointers("docs/domain.md", "[s](../schema.graphql)")).toEqual([]);
    expect(outsidePointers("docs/domain.md", `at ${path.dirname(ROOT)}${path.sep}shared/x.txt`)).toHaveLength(1);
  });

  for (const document of DOCUMENTS) {
    it(`${document}: every relative link and every src/, test/, docs/, bench/ ... path exists`, () => {
      const text = read(document);
      const base = path.join(ROOT, path.dirname(document));
      const missingLinks = relativeLinks(text).filter((target) => !existsSync(path.resolve(base, target)));
      const missingPaths = repositoryPaths(text).filter((named) => !existsSync(path.join(ROOT, named)));
      expect({ missingLinks, missingPaths }).toEqual({ missingLinks: [], missingPaths: [] });
    });

    it(`${document}: points nowhere outside the repository`, () => {
      expect(outsidePointers(document, read(document))).toEqual([]);
    });
  }
});

describe("the README's lists match the code and the tests", () => {
  const readme = read("README.md");

  it("lists exactly the test files that compare statement counts at 10 and 100, and counts its modules right", () => {
    const table = section("README.md", "- Statement counts (no N+1)", "have none");
    const listed = [...new Set([...table.matchAll(/`(test\/[\w./-]+\.test\.ts)`/g)].map((m) => m[1]!))].sort();
    const found = statementCountTests();
    expect({
      inTheReadmeOnly: listed.filter((file) => !found.includes(file)),
      inTheTestsOnly: found.filter((file) => !listed.includes(file)),
    }).toEqual({ inTheReadmeOnly: [], inTheTestsOnly: [] });
    expect(listed.length).toBeGreaterThan(0);

    const rows = table.split("\n").filter((line) => /^\s*\| [a-z-]+ \|/.test(line) && !line.includes("| module |"));
    const said = /(\w+) modules have such/i.exec(table)?.[1]?.toLowerCase();
    expect(said, 'the README says "N modules have such a test"').toBeDefined();
    expect(NUMBER_WORDS.indexOf(said!)).toBe(rows.length);
  });

  it("names only real mutations as writing no audit entry, and the account, API key and log modules still write none", () => {
    const list = section("README.md", "These write no entry:", "\n## ");
    const named = [...list.matchAll(/`([a-z][a-zA-Z]+)`/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(10);
    const mutations = mutationNames();
    expect(named.filter((name) => !mutations.has(name))).toEqual([]);
    // If one of these starts auditing, the README's list above is wrong: move the mutations out of it.
    for (const file of ["src/modules/account/account.service.ts", "src/modules/api-key/api-key.service.ts", "src/modules/log/ingest.ts"]) {
      expect(read(file), file).not.toMatch(/\baudit\(/);
    }
  });

  it("counts the inventory's rows as docs/legacy-endpoints.tsv has them", () => {
    const rows = read("docs/legacy-endpoints.tsv").split("\n").slice(1).filter((line) => line.trim() !== "");
    const count = (scope: string) => rows.filter((line) => line.split("\t")[5] === scope).length;
    expect(/(\d+) `core` rows, (\d+) `extended`/.exec(readme)?.slice(1).map(Number)).toEqual([count("core"), count("extended")]);
    expect(/(\d+) core rows/.exec(read("docs/domain.md"))?.[1]).toBe(String(count("core")));
  });

  it("lists the workspace event types the code defines", () => {
    const array = section("src/modules/shared/live.ts", "export const WORKSPACE_EVENT_TYPES = [", "]");
    const defined = [...array.matchAll(/"([\w.]+)"/g)].map((m) => m[1]!);
    const prose = section("README.md", "The workspace's typed events (", ")");
    const documented = [...prose.matchAll(/`([\w.]+)`/g)].map((m) => m[1]!);
    expect(documented).toEqual(defined);
  });
});
