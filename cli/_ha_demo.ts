/**
 * `reliab ha demo`, `reliab ha bench` and `reliab ha latency`: parsing and
 * printing only; the work is in lib/ha. Kept apart from cli/ha.ts so the
 * agent's commands and these can change independently.
 *
 * @module
 */
import { runDemo } from "../lib/ha/demo.ts";
import { renderDemoText } from "../lib/ha/demo_report.ts";
import { runBench } from "../lib/ha/bench.ts";
import { renderBenchText } from "../lib/ha/bench_report.ts";
import { runLatency } from "../lib/ha/latency_client.ts";
import { KILL_MODES, type KillMode } from "../lib/ha/lab_cluster.ts";
import { UsageError } from "../lib/errors.ts";
import { endpoint, parse, positionals } from "./_args.ts";
import { err, out, outJson } from "./_render.ts";

/** Usage lines of the commands in this file (cli/ha.ts shows them in its help). */
export const DEMO_USAGE = {
  demo:
    "reliab ha demo [--json] [--connections N] [--bytes N] [--nodes N] [--kill sigkill|link|fail|migrate] [--name LAB] [--netem SPEC]",
  bench: "reliab ha bench [--json] [--failovers N] [--migrations N] [--netem SPEC]",
  latency: "reliab ha latency --connect ADDR:PORT [--requests N] [--bytes N] [--json]",
} as const;

/** Runs `reliab ha demo ...`: exit 0 when every connection survived intact, else 1. */
export async function demoCommand(args: string[]): Promise<number> {
  const usageLine = DEMO_USAGE.demo;
  const { values, positionals: extra } = parse(args, {
    json: { type: "boolean" },
    connections: { type: "string" },
    bytes: { type: "string" },
    nodes: { type: "string" },
    kill: { type: "string" },
    name: { type: "string" },
    netem: { type: "string" },
  }, usageLine);
  if (values.help) return usage(usageLine);
  positionals(extra, 0, 0, usageLine);
  const kill = values.kill ?? "sigkill";
  if (!(KILL_MODES as readonly string[]).includes(kill)) {
    throw new UsageError(`Unknown kill mode "${kill}"`, {
      code: "usage",
      hint: `use ${KILL_MODES.join(", ")}`,
    });
  }
  const report = await withInterrupt((signal) =>
    checked(usageLine, () =>
      runDemo({
        ...optional("connections", "--connections", values.connections, usageLine),
        ...optional("bytesPerConnection", "--bytes", values.bytes, usageLine),
        ...optional("nodes", "--nodes", values.nodes, usageLine),
        ...(values.name === undefined ? {} : { name: values.name }),
        ...(values.netem === undefined ? {} : { netem: values.netem }),
        kill: kill as KillMode,
        signal,
        onProgress: (message) => err(`reliab: ${message}`),
      }))
  );
  if (values.json) outJson(report);
  else out(renderDemoText(report));
  return report.ok ? 0 : 1;
}

/** Runs `reliab ha bench ...`. */
export async function benchCommand(args: string[]): Promise<number> {
  const usageLine = DEMO_USAGE.bench;
  const { values, positionals: extra } = parse(args, {
    json: { type: "boolean" },
    failovers: { type: "string" },
    migrations: { type: "string" },
    netem: { type: "string" },
  }, usageLine);
  if (values.help) return usage(usageLine);
  positionals(extra, 0, 0, usageLine);
  const report = await withInterrupt((signal) =>
    checked(usageLine, () =>
      runBench({
        ...optional("failovers", "--failovers", values.failovers, usageLine),
        ...optional("migrations", "--migrations", values.migrations, usageLine),
        ...(values.netem === undefined ? {} : { netem: values.netem }),
        signal,
        onProgress: (message) => err(`reliab: ${message}`),
      }))
  );
  if (values.json) outJson(report);
  else out(renderBenchText(report));
  return 0;
}

/** Runs `reliab ha latency ...` (a test tool: run it in the client namespace). */
export async function latencyCommand(args: string[]): Promise<number> {
  const usageLine = DEMO_USAGE.latency;
  const { values, positionals: extra } = parse(args, {
    connect: { type: "string" },
    requests: { type: "string" },
    bytes: { type: "string" },
    json: { type: "boolean" },
  }, usageLine);
  if (values.help) return usage(usageLine);
  positionals(extra, 0, 0, usageLine);
  const { hostname, port } = endpoint(values.connect, "--connect", usageLine);
  const report = await checked(usageLine, () =>
    runLatency({
      hostname,
      port,
      ...optional("requests", "--requests", values.requests, usageLine),
      ...optional("messageBytes", "--bytes", values.bytes, usageLine),
    }));
  if (values.json) outJson(report);
  else {
    out(
      `${report.requests} round trips of ${report.messageBytes} B: p50 ${
        report.p50Us.toFixed(1)
      } µs, p99 ${report.p99Us.toFixed(1)} µs, max ${
        report.maxUs.toFixed(1)
      } µs; ${report.mismatches} mismatches`,
    );
  }
  return report.mismatches === 0 ? 0 : 1;
}

/** Runs `work` with an AbortSignal that Ctrl-C or SIGTERM aborts, so lib code can clean up. */
async function withInterrupt<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = () => {
    err("reliab: interrupted: stopping and removing everything");
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    return await work(controller.signal);
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

/** lib throws RangeError for out-of-range options: to the user, a usage error. */
async function checked<T>(usageLine: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new UsageError(error.message, { code: "usage", hint: `usage: ${usageLine}` });
  }
}

/** `{ [key]: N }` for a given whole-number option, `{}` when it is absent. */
function optional<K extends string>(
  key: K,
  option: string,
  text: string | undefined,
  usageLine: string,
): { [P in K]?: number } {
  if (text === undefined) return {};
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`Invalid ${option} "${text}": not a whole number`, {
      code: "usage",
      hint: `usage: ${usageLine}`,
    });
  }
  return { [key]: Number(text) } as { [P in K]?: number };
}

function usage(text: string): number {
  out(`Usage: ${text}`);
  return 0;
}
