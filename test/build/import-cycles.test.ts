// The import graph of src/ has no circle, type-only imports included: a service never imports the
// GraphQL Context (which names the services), modules offer each other capabilities through the
// composition root instead of importing each other both ways. Read with TypeScript's own import
// scanner; generated code is left out.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { filesUnder, SRC } from "../helpers/source-files.js";

/** Each file's relative imports (`import type` and `export ... from` too), as files of src/. */
function importGraph(files: string[]): Map<string, string[]> {
  return new Map(
    files.map((file) => {
      const { importedFiles } = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
      const targets = importedFiles
        .map((imported) => imported.fileName)
        .filter((name) => name.startsWith("."))
        .map((name) => path.resolve(path.dirname(file), name.replace(/\.js$/, ".ts")))
        .filter((target) => existsSync(target) && !target.includes(`${path.sep}generated${path.sep}`));
      return [file, targets];
    }),
  );
}

/** The strongly connected components of more than one file (Tarjan): each one is a circle. */
function circles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (file: string) => {
    index.set(file, next);
    low.set(file, next);
    next++;
    stack.push(file);
    onStack.add(file);
    for (const target of graph.get(file) ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(file, Math.min(low.get(file)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(file, Math.min(low.get(file)!, index.get(target)!));
      }
    }
    if (low.get(file) !== index.get(file)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(path.relative(SRC, member));
    } while (member !== file);
    if (component.length > 1) found.push(component.sort());
  };
  for (const file of graph.keys()) if (!index.has(file)) visit(file);
  return found;
}

describe("src/ import graph", () => {
  it("has no circle, type-only imports included", () => {
    const graph = importGraph(filesUnder(SRC));
    expect(graph.size).toBeGreaterThan(50);
    expect(circles(graph)).toEqual([]);
  });

  it("finds a circle when there is one (the check itself works)", () => {
    const graph = new Map([
      [path.join(SRC, "a.ts"), [path.join(SRC, "b.ts")]],
      [path.join(SRC, "b.ts"), [path.join(SRC, "a.ts")]],
      [path.join(SRC, "c.ts"), [path.join(SRC, "a.ts")]],
    ]);
    expect(circles(graph)).toEqual([["a.ts", "b.ts"]]);
  });
});
