/**
 * `reliab ha` benchmark: the direct path against HA with one replica on the
 * lab (latency p50/p99, throughput, CPU per MB) and the client-observed
 * stall over repeated failovers, each figure next to its target. The same
 * code as `reliab ha bench` (lib/ha/bench.ts); here so benchmarks live
 * outside the test command. Needs root.
 *
 *   ./reliab task bench:ha [--failovers N] [--json]
 */
import { parseArgs } from "node:util";
import { runBench } from "../lib/ha/bench.ts";
import { renderBenchText } from "../lib/ha/bench_report.ts";

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { failovers: { type: "string" }, json: { type: "boolean" } },
  });
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    const report = await runBench({
      failovers: Number(values.failovers ?? "5"),
      signal: controller.signal,
      onProgress: (message) => console.error(`bench:ha: ${message}`),
    });
    console.log(values.json ? JSON.stringify(report, null, 2) : renderBenchText(report));
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}

if (import.meta.main) await main();
