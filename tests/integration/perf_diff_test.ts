/**
 * `reliab perf diff` / `check` / `show` on the real machine (root): each test
 * makes one real change (affinity, limits, environment, THP, ASLR), takes a
 * snapshot through the CLI and checks that the change is reported with a
 * sensible severity. System changes are restored in `finally`. The work
 * directory is kept when a test fails, and its path printed.
 */
import { equal, ok as assert } from "node:assert/strict";
import { atOrAbove, isSeverity, type Severity } from "../../lib/perf/diff.ts";
import { isCleanError } from "../_support/cli.ts";
import { diffJson, type JsonDifference, run, runOk, TEST_ENV } from "./_perf_cli.ts";

const root = Deno.uid() === 0;
const work = await Deno.makeTempDir({ prefix: "reliab_perf_diff_" });
let failed = false;

globalThis.addEventListener("unload", () => {
  if (failed) console.error(`perf_diff_test: kept ${work} for inspection`);
  else Deno.removeSync(work, { recursive: true });
});

function test(name: string, fn: () => Promise<void>) {
  Deno.test({
    name,
    ignore: !root,
    sanitizeResources: true,
    sanitizeOps: true,
    fn: async () => {
      try {
        await fn();
      } catch (error) {
        failed = true;
        throw error;
      }
    },
  });
}

/** Takes a snapshot into `name` under the given options; returns its path. */
async function snapshot(name: string, options: Parameters<typeof run>[1] = {}): Promise<string> {
  await runOk(["perf", "snapshot", "-o", name, "--force", "--quiet"], {
    cwd: work,
    unset: TEST_ENV,
    ...options,
  });
  return name;
}

let baselinePromise: Promise<string> | undefined;
/** One baseline of the unchanged host, shared by the tests. */
function baseline(): Promise<string> {
  baselinePromise ??= snapshot("A.json");
  return baselinePromise;
}

function find(differences: JsonDifference[], path: string): JsonDifference {
  const found = differences.find((d) => d.path === path);
  assert(found, `no difference for ${path}; got ${differences.map((d) => d.path).join(", ")}`);
  assert(isSeverity(found.severity));
  return found;
}

function atLeast(d: JsonDifference, level: Severity) {
  assert(atOrAbove(d.severity as Severity, level), `${d.path} is ${d.severity}: ${d.why}`);
}

test("diff: two snapshots of the unchanged host have no major or critical difference", async () => {
  const a = await baseline();
  const b = await snapshot("same.json");
  const differences = await diffJson(a, b, work);
  const serious = differences.filter((d) => atOrAbove(d.severity as Severity, "major"));
  equal(serious.length, 0, JSON.stringify(serious, null, 2));
});

test("diff: running on fewer CPUs (taskset -c 0) is at least major", async () => {
  const a = await baseline();
  const b = await snapshot("affinity.json", { prefix: ["taskset", "-c", "0"] });
  const d = find(await diffJson(a, b, work), "process.affinity");
  atLeast(d, "major");
  assert(Array.isArray(d.current) && d.current.length === 1 && d.current[0] === 0);
});

test("diff: a lower open-files limit (ulimit -n 512) is reported", async () => {
  const a = await baseline();
  const b = await snapshot("nofile.json", { shell: "ulimit -n 512" });
  const d = find(await diffJson(a, b, work), "limits.nofile.soft");
  atLeast(d, "minor");
  equal(Number(d.current), 512);
});

test("diff: OMP_NUM_THREADS set for the run is at least major", async () => {
  const a = await baseline();
  const b = await snapshot("omp.json", { env: { OMP_NUM_THREADS: "3" } });
  const d = find(await diffJson(a, b, work), "env.OMP_NUM_THREADS");
  atLeast(d, "major");
});

test("diff: a transparent huge pages change is reported", async () => {
  const file = "/sys/kernel/mm/transparent_hugepage/enabled";
  const saved = /\[(\w+)\]/.exec(await Deno.readTextFile(file))?.[1];
  assert(saved, "cannot read the current THP mode");
  const a = await baseline();
  const other = saved === "always" ? "never" : "always";
  try {
    await Deno.writeTextFile(file, other);
    const b = await snapshot("thp.json");
    const d = find(await diffJson(a, b, work), "thp.enabled");
    atLeast(d, "minor");
  } finally {
    await Deno.writeTextFile(file, saved);
  }
  assert((await Deno.readTextFile(file)).includes(`[${saved}]`), "THP restored");
});

test("diff: disabling ASLR (randomize_va_space=0) is major", async () => {
  const file = "/proc/sys/kernel/randomize_va_space";
  const saved = (await Deno.readTextFile(file)).trim();
  const a = await baseline();
  assert(saved !== "0", "ASLR is already off; the baseline cannot show a change");
  try {
    await Deno.writeTextFile(file, "0");
    const b = await snapshot("aslr.json");
    const d = find(await diffJson(a, b, work), "sysctl.kernel.randomize_va_space");
    equal(d.severity, "major", d.why);
  } finally {
    await Deno.writeTextFile(file, saved);
  }
  equal((await Deno.readTextFile(file)).trim(), saved, "ASLR restored");
});

test("check: exits 1 on a major difference, 0 when gated on critical or unchanged", async () => {
  const a = await baseline();
  const omp = { cwd: work, env: { OMP_NUM_THREADS: "3" }, unset: [] };
  const failing = await run(["perf", "check", a], omp);
  equal(failing.code, 1, failing.stdout + failing.stderr);
  assert(failing.stdout.includes("env.OMP_NUM_THREADS"), failing.stdout);
  assert(failing.stdout.includes("check failed"), failing.stdout);
  const critical = await run(["perf", "check", a, "--fail-on", "critical", "--json"], omp);
  equal(critical.code, 0, critical.stdout + critical.stderr);
  const report = JSON.parse(critical.stdout) as { failed: boolean; differences: JsonDifference[] };
  equal(report.failed, false);
  assert(report.differences.some((d) => d.path === "env.OMP_NUM_THREADS"));
  const unchanged = await run(["perf", "check", a], { cwd: work, unset: TEST_ENV });
  equal(unchanged.code, 0, unchanged.stdout + unchanged.stderr);
  assert(unchanged.stdout.includes("check passed"), unchanged.stdout);
});

test("diff/show/check: bad input exits 1 with a one-line error and hint, writes nothing", async () => {
  const a = await baseline();
  const snapshot = JSON.parse(await Deno.readTextFile(`${work}/${a}`)) as Record<string, unknown>;
  const text = JSON.stringify(snapshot, null, 2);
  const inputs: Record<string, string | null> = {
    "missing.json": null,
    "not_json.json": "this is not json\n",
    "truncated.json": text.slice(0, Math.floor(text.length / 2)),
    "not_snapshot.json": JSON.stringify({ hello: "world", properties: 3 }),
    "newer.json": JSON.stringify({ ...snapshot, version: 999 }, null, 2),
    "empty.json": "",
  };
  for (const [name, content] of Object.entries(inputs)) {
    if (content !== null) await Deno.writeTextFile(`${work}/${name}`, content);
  }
  const html = `${work}/bad.html`;
  for (const name of Object.keys(inputs)) {
    const commands = [
      ["perf", "show", name],
      ["perf", "diff", name, a, "--html", html],
      ["perf", "diff", a, name, "--html", html],
      ["perf", "check", name],
    ];
    for (const args of commands) {
      const result = await run(args, { cwd: work, unset: TEST_ENV });
      const what = `reliab ${args.join(" ")}: ${result.stderr}`;
      equal(result.code, 1, what);
      assert(isCleanError(result.stderr), `expected one error line and one hint, ${what}`);
      equal(result.stdout, "", `nothing on stdout, ${what}`);
      let created = true;
      try {
        await Deno.lstat(html);
      } catch {
        created = false;
      }
      assert(!created, `--html target written despite the error, ${what}`);
    }
  }
});

test("show: prints the snapshot grouped by area with its hash", async () => {
  const a = await baseline();
  const shown = await runOk(["perf", "show", a], { cwd: work });
  const hash = (JSON.parse(await Deno.readTextFile(`${work}/${a}`)) as { hash: string }).hash;
  assert(shown.stdout.includes(hash));
  assert(/^cpu$/m.test(shown.stdout), "a cpu group");
  assert(/^\s+vendor\s+\S/m.test(shown.stdout), "cpu vendor listed");
});
