/**
 * `pecker replay`: runs a build of the recorded program with the recorder in
 * replay mode, which feeds it the recorded inputs, and says whether the
 * recorded outcome came back or where the run left the trace.
 *
 * @module
 */
import { describeCall, EVENT_KINDS, readTrace, type Trace } from "./trace_file.ts";
import { resolveInterposer } from "./interposer_path.ts";
import { signalName, signalNumber } from "./signals.ts";

/** Where a replay left its trace. */
export interface Divergence {
  readonly thread: number;
  readonly event: number;
  /** Expected call, e.g. `read(fd 0)`, or `end of trace`. */
  readonly expected: string;
  readonly actual: string;
  readonly reason: string;
}

/** Raw outcome of one replay process. */
export interface ReplayRun {
  readonly code: number;
  readonly signal: number;
  readonly stderr: string;
  readonly divergence: Divergence | null;
  readonly timedOut: boolean;
  readonly seconds: number;
}

/** Options of a replay. */
export interface ReplayOptions {
  /** Binary to run instead of the recorded one. */
  readonly exe?: string;
  /** Extra environment (sanitizer options). */
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
}

/** Result of `replayTrace`: expected outcomes are results, not errors. */
export type ReplayResult =
  | { readonly kind: "reproduced"; readonly outcome: string; readonly run: ReplayRun }
  | { readonly kind: "diverged"; readonly divergence: Divergence; readonly run: ReplayRun }
  | { readonly kind: "not-reproduced"; readonly detail: string; readonly run: ReplayRun };

/** Sanitizer options for replays: no online symbolizer, stop at the first report. */
export const SANITIZER_ENV: Readonly<Record<string, string>> = {
  ASAN_OPTIONS: "symbolize=0:detect_leaks=0:halt_on_error=1",
  UBSAN_OPTIONS: "symbolize=0:print_stacktrace=1:halt_on_error=1",
  MSAN_OPTIONS: "symbolize=0:halt_on_error=1",
  TSAN_OPTIONS: "symbolize=0:halt_on_error=1",
};

const DIVERGENCE_EXIT_CODE = 86;

function kindName(number: string | undefined): string {
  return EVENT_KINDS[Number(number)] ?? `kind ${number}`;
}

/** Parses the interposer's divergence report line. */
export function parseDivergence(text: string): Divergence | null {
  const fields = new Map<string, string>();
  for (const match of text.matchAll(/(\w+)=(\S+)/g)) fields.set(match[1]!, match[2]!);
  if (!text.startsWith("diverged") || !fields.has("event")) return null;
  const expectedKind = fields.get("expected_kind");
  const expected = expectedKind === "0"
    ? "end of trace"
    : describeCall(kindName(expectedKind), BigInt(fields.get("expected_arg") ?? "0"));
  return {
    thread: Number(fields.get("thread")),
    event: Number(fields.get("event")),
    expected,
    actual: describeCall(
      kindName(fields.get("actual_kind")),
      BigInt(fields.get("actual_arg") ?? "0"),
    ),
    reason: fields.get("reason") ?? "call",
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs one replay of `trace` (read from `tracePath`) and returns its raw outcome.
 *
 * @example
 * ```ts
 * const run = await runReplay(trace, "crash.trace", { exe: "./prog.asan" });
 * ```
 */
export async function runReplay(
  trace: Trace,
  tracePath: string,
  options: ReplayOptions = {},
): Promise<ReplayRun> {
  const exe = options.exe ?? trace.exe;
  const reportPath = await Deno.makeTempFile({ prefix: "reliab-pecker-", suffix: ".report" });
  const started = performance.now();
  try {
    const cwd = trace.cwd !== "" && await exists(trace.cwd) ? trace.cwd : Deno.cwd();
    const child = new Deno.Command(exe, {
      args: trace.argv.slice(1),
      cwd,
      env: {
        ...SANITIZER_ENV,
        ...options.env,
        LD_PRELOAD: resolveInterposer(),
        RELIAB_PECKER_MODE: "replay",
        RELIAB_PECKER_TRACE: await Deno.realPath(tracePath),
        RELIAB_PECKER_REPORT: reportPath,
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, options.timeoutMs ?? 60_000);
    const output = await child.output();
    clearTimeout(timer);
    const signal = signalNumber(output.signal);
    const report = await Deno.readTextFile(reportPath).catch(() => "");
    const divergence = output.code === DIVERGENCE_EXIT_CODE || report !== ""
      ? parseDivergence(report.trim())
      : null;
    return {
      code: signal !== 0 ? 128 + signal : output.code,
      signal,
      stderr: new TextDecoder().decode(output.stderr),
      divergence,
      timedOut,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await Deno.remove(reportPath).catch(() => {});
  }
}

/**
 * Replays a trace and compares the outcome with the recorded one.
 *
 * @example
 * ```ts
 * const result = await replayTrace("crash.trace");
 * if (result.kind === "diverged") console.log(result.divergence.event);
 * ```
 */
export async function replayTrace(
  tracePath: string,
  options: ReplayOptions = {},
): Promise<ReplayResult> {
  const trace = await readTrace(tracePath);
  const run = await runReplay(trace, tracePath, options);
  if (run.divergence !== null) return { kind: "diverged", divergence: run.divergence, run };
  if (run.timedOut) return { kind: "not-reproduced", detail: "the replay timed out", run };
  const recorded = recordedOutcome(trace);
  const replayed = run.signal !== 0
    ? `killed by ${signalName(run.signal)}`
    : `exit code ${run.code}`;
  if (recorded === replayed) return { kind: "reproduced", outcome: recorded, run };
  return { kind: "not-reproduced", detail: `recorded ${recorded}, replay ${replayed}`, run };
}

/** The recorded outcome in words: `killed by SIGSEGV`, `exit code 0`. */
export function recordedOutcome(trace: Trace): string {
  if (trace.crash !== null) return `killed by ${signalName(trace.crash.signal)}`;
  if (trace.exit !== null) {
    return trace.exit.signal !== 0
      ? `killed by ${signalName(trace.exit.signal)}`
      : `exit code ${trace.exit.code}`;
  }
  return "unknown (the recording died)";
}
