// Does `register` take as long for an email that has an account as for a new one? An attacker who
// can tell the two apart by timing can enumerate accounts. Alternates the two kinds of request (so
// machine noise hits both alike) and prints each one's median and their ratio.
//
//   npx tsx bench/signup-timing.ts              # embedded
//   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 npx tsx bench/signup-timing.ts
//
// Not a test: it prints figures (copied into BENCHMARKS.md with the command that produced them).
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);

const { RegisterDocument } = await import("../test/generated/graphql.js");
const { createUser, unique } = await import("../test/helpers/factories.js");
const { startTestServer } = await import("../test/helpers/server.js");

const server = await startTestServer({ LOG_LEVEL: "silent", SPINDLE_SIGNUP_MAX_PER_EMAIL: "1000" });
const times = { existing: [] as number[], fresh: [] as number[] };
try {
  const existing = await Promise.all(Array.from({ length: ROUNDS }, () => createUser(server)));
  for (let i = 0; i < ROUNDS; i++) {
    for (const kind of i % 2 ? (["existing", "fresh"] as const) : (["fresh", "existing"] as const)) {
      const email = kind === "existing" ? existing[i]!.email : `${unique("fresh")}@example.test`;
      const started = performance.now();
      const res = await server.execute(RegisterDocument, { input: { email, username: unique("n"), password: "a long password" } });
      times[kind].push(performance.now() - started);
      if (res.errors) throw new Error(JSON.stringify(res.errors));
    }
  }
} finally {
  await server.close();
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const [e, f] = [median(times.existing), median(times.fresh)];
console.log(`register, ${ROUNDS} rounds: existing email median ${e.toFixed(1)} ms, new email median ${f.toFixed(1)} ms, ratio ${(e / f).toFixed(2)}`);
process.exit(0);
