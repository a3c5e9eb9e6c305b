/**
 * Snapshot cost and coverage: `reliab perf snapshot` against `lscpu --json`
 * and `inxi -Fxz` (what people reach for today), measured in the same run so
 * the ratios hold on any machine. Counts how many properties each reports.
 *
 *   ./reliab task bench:perf [--runs N] [--json]
 *
 * Wall time per tool is the median of N runs (default 7) after one warm-up.
 * The reliab figure includes Deno's start-up, as users pay it.
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { median, timeCommand } from "./_timing.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

interface Tool {
  readonly name: string;
  readonly cmd: string[];
  /** Counts the properties in the tool's stdout. */
  readonly count: (stdout: string) => number;
}

/** Leaf values of a JSON document (what a property is, for JSON tools). */
export function countLeaves(value: unknown): number {
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + countLeaves(v), 0);
  if (value !== null && typeof value === "object") {
    return Object.values(value).reduce((n: number, v) => n + countLeaves(v), 0);
  }
  return value === null || value === "" ? 0 : 1;
}

/** `key: value` pairs of inxi's text output (keys are words ending in a colon). */
export function countInxi(stdout: string): number {
  return [...stdout.matchAll(/(?:^|\s)[A-Za-z][\w-]*(?: [\w-]+)?:(?=\s+\S)/gm)].length;
}

const TOOLS: Tool[] = [
  {
    name: "reliab perf snapshot",
    cmd: [`${root}/reliab`, "perf", "snapshot"],
    count: (s) => Object.keys(JSON.parse(s).properties).length,
  },
  {
    name: "lscpu --json",
    cmd: ["lscpu", "--json"],
    count: (s) => JSON.parse(s).lscpu.filter((e: { data: string | null }) => e.data).length,
  },
  { name: "inxi -Fxz", cmd: ["inxi", "-Fxz", "--no-host", "-c", "0"], count: countInxi },
];

type Row =
  | {
    tool: string;
    median_ms: number;
    properties: number;
    time_vs_reliab?: number;
    properties_vs_reliab?: number;
  }
  | { tool: string; error: string };

function timeOnce(cmd: string[]): Promise<{ ms: number; stdout: string }> {
  return timeCommand(cmd, { stdout: true });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { runs: { type: "string", default: "7" }, json: { type: "boolean" } },
  });
  const runs = Number(values.runs);
  const rows: Row[] = [];
  for (const tool of TOOLS) {
    try {
      await timeOnce(tool.cmd); // warm-up: page cache, Deno's module cache
      const samples: number[] = [];
      let stdout = "";
      for (let i = 0; i < runs; i++) {
        const r = await timeOnce(tool.cmd);
        samples.push(r.ms);
        stdout = r.stdout;
      }
      rows.push({ tool: tool.name, median_ms: median(samples), properties: tool.count(stdout) });
    } catch (error) {
      rows.push({ tool: tool.name, error: error instanceof Error ? error.message : String(error) });
    }
  }
  const base = rows[0];
  const result = rows.map((r): Row =>
    "median_ms" in r && base && "median_ms" in base
      ? {
        ...r,
        time_vs_reliab: Number((r.median_ms / base.median_ms).toFixed(2)),
        properties_vs_reliab: Number((r.properties / base.properties).toFixed(2)),
      }
      : r
  );
  if (values.json) {
    console.log(JSON.stringify({ runs, results: result }, null, 2));
    return;
  }
  console.log(`runs per tool: ${runs} (median wall time)`);
  for (const r of result) {
    if ("error" in r) console.log(`${r.tool.padEnd(22)} failed: ${r.error}`);
    else {
      console.log(
        `${r.tool.padEnd(22)} ${r.median_ms.toFixed(0).padStart(6)} ms  ${
          String(r.properties).padStart(5)
        } properties  time x${r.time_vs_reliab}  properties x${r.properties_vs_reliab}`,
      );
    }
  }
}

if (import.meta.main) await main();
