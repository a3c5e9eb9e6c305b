/**
 * Recording overhead of `reliab pecker`: each workload unrecorded, under the
 * recorder (the interposer alone, and through `reliab pecker record`, which
 * adds Deno's start-up), and under what users reach for today (`strace -f -o`,
 * `ltrace -f -o`; rr needs hardware counters this VM lacks). All in one run,
 * reported as ratios to the unrecorded time. Also trace bytes per event.
 *
 *   ./reliab task bench:pecker [--runs N] [--modes plain,interposer,...] [--json]
 *
 * Each cell is the median wall time of N runs (and the fastest run: this
 * VM is shared, and the minimum is the least disturbed). Trace bytes per
 * event count the committed events (a trace recorded without `reliab pecker
 * record` still has the zero tail of its last chunk).
 *
 * Workloads (bench/pecker/*.c, built with cc -O2): syscall-heavy (small reads
 * and clock calls), CPU-bound (xorshift loop), lock-heavy (two threads on one
 * mutex).
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { median, timeCommand } from "./_timing.ts";
import { readTrace } from "../lib/pecker/mod.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const interposer = `${root}zig-out/lib/libreliab_interpose.so`;

const WORKLOADS = [
  { name: "syscall-heavy", source: "syscall_heavy.c", arg: "100000" },
  { name: "cpu-bound", source: "cpu_bound.c", arg: "300000000" },
  { name: "lock-heavy", source: "lock_heavy.c", arg: "50000" },
] as const;

type Mode = "plain" | "interposer" | "reliab record" | "strace -f" | "ltrace -f";
const MODES: Mode[] = ["plain", "interposer", "reliab record", "strace -f", "ltrace -f"];

function command(
  mode: Mode,
  exe: string,
  arg: string,
  dir: string,
): [string, string[], Record<string, string>] {
  const trace = `${dir}/bench.trace`;
  switch (mode) {
    case "plain":
      return [exe, [arg], {}];
    case "interposer":
      return [exe, [arg], {
        LD_PRELOAD: interposer,
        RELIAB_PECKER_MODE: "record",
        RELIAB_PECKER_TRACE: trace,
      }];
    case "reliab record":
      return [`${root}reliab`, ["pecker", "record", "--keep", "-o", trace, "--", exe, arg], {}];
    case "strace -f":
      return ["strace", ["-f", "-o", `${dir}/strace.out`, exe, arg], {}];
    case "ltrace -f":
      return ["ltrace", ["-f", "-o", `${dir}/ltrace.out`, exe, arg], {}];
  }
}

async function timeOnce(cmd: string, args: string[], env: Record<string, string>) {
  return (await timeCommand([cmd, ...args], { env })).ms;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      runs: { type: "string", default: "5" },
      modes: { type: "string", default: MODES.join(",") },
      json: { type: "boolean" },
    },
  });
  const runs = Number(values.runs);
  const modes = values.modes!.split(",").filter((mode): mode is Mode =>
    (MODES as string[]).includes(mode)
  );
  if (!modes.includes("plain")) modes.unshift("plain");
  const dir = await Deno.makeTempDir({ prefix: "reliab-bench-" });
  const results = [];
  try {
    for (const w of WORKLOADS) {
      const exe = `${dir}/${w.source.replace(".c", "")}`;
      const cc = await new Deno.Command("cc", {
        args: ["-O2", "-o", exe, `${root}bench/pecker/${w.source}`, "-lpthread"],
      }).output();
      if (!cc.success) throw new Error(`cc failed for ${w.source}`);
      const row: Record<string, unknown> = { workload: w.name };
      let plain = 0;
      let plainFastest = 0;
      for (const mode of modes) {
        const [cmd, args, env] = command(mode, exe, w.arg, dir);
        try {
          // A fresh trace file for every run, as users get (overwriting the
          // last run's trace would time the kernel dropping its pages).
          const fresh = () => Deno.remove(`${dir}/bench.trace`).catch(() => {});
          await timeOnce(cmd, args, env);
          const samples = [];
          for (let i = 0; i < runs; i++) {
            await fresh();
            samples.push(await timeOnce(cmd, args, env));
          }
          const ms = median(samples);
          const fastest = Math.min(...samples);
          if (mode === "plain") plain = ms;
          if (mode === "plain") plainFastest = fastest;
          row[mode] = {
            ms: Number(ms.toFixed(1)),
            ratio: Number((ms / plain).toFixed(2)),
            min_ms: Number(fastest.toFixed(1)),
            min_ratio: Number((fastest / plainFastest).toFixed(2)),
          };
        } catch (error) {
          row[mode] = { error: error instanceof Error ? error.message : String(error) };
        }
      }
      try {
        const [cmd, args, env] = command("interposer", exe, w.arg, dir);
        await Deno.remove(`${dir}/bench.trace`).catch(() => {});
        await timeOnce(cmd, args, env);
        const trace = await readTrace(`${dir}/bench.trace`);
        const bytes = trace.length - 16;
        row.trace = {
          bytes,
          events: trace.events.length,
          bytes_per_event: Number((bytes / Math.max(1, trace.events.length)).toFixed(1)),
        };
      } catch (error) {
        row.trace = { error: error instanceof Error ? error.message : String(error) };
      }
      results.push(row);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  if (values.json) {
    console.log(JSON.stringify({ runs, results }, null, 2));
    return;
  }
  console.log(`runs per mode: ${runs} (median wall time, ratio to plain; fastest run, ratio)`);
  for (const row of results) {
    const cells = modes.map((m) => {
      const c = row[m] as {
        ms?: number;
        ratio?: number;
        min_ms?: number;
        min_ratio?: number;
        error?: string;
      };
      return c.error
        ? `${m}: failed`
        : `${m}: ${c.ms} ms x${c.ratio} (min ${c.min_ms} ms x${c.min_ratio})`;
    });
    console.log(`${String(row.workload).padEnd(14)} ${cells.join(" | ")}`);
    console.log(`${"".padEnd(14)} trace: ${JSON.stringify(row.trace)}`);
  }
}

if (import.meta.main) await main();
