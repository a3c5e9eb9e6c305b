/**
 * `pecker record`: runs a program under the recorder (LD_PRELOAD of
 * libreliab_interpose.so), then cuts the trace to its committed events,
 * appends the exit record and keeps the trace when the program died of a
 * signal (or when asked to).
 *
 * @module
 */
import { basename } from "node:path";
import { finishTrace } from "./trace_file.ts";
import { resolveInterposer } from "./interposer_path.ts";
import { signalNumber } from "./signals.ts";
import { ConfigError } from "../errors.ts";

/** Options of `recordProgram`. */
export interface RecordOptions {
  /** Trace path; default `pecker-<program>-<time>.trace` in the working folder. */
  readonly output?: string;
  /** Keep the trace after a normal exit too. */
  readonly keep?: boolean;
  readonly stdin?: "inherit" | "null" | "piped";
  readonly stdout?: "inherit" | "null" | "piped";
  readonly stderr?: "inherit" | "null" | "piped";
  /** Extra environment for the program. */
  readonly env?: Readonly<Record<string, string>>;
  /** Bytes written to the program's stdin (implies stdin "piped"). */
  readonly input?: Uint8Array;
}

/** What happened to the recorded program. */
export interface RecordResult {
  readonly kind: "crashed" | "exited";
  /** The program's own status: exit code, or 128 + signal. */
  readonly code: number;
  readonly signal: number;
  readonly tracePath: string;
  readonly kept: boolean;
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
}

/**
 * Records one run of `command` (argv, the program first).
 *
 * @example
 * ```ts
 * const result = await recordProgram(["./server", "--port", "8080"], { keep: true });
 * console.log(result.kind, result.tracePath);
 * ```
 */
export async function recordProgram(
  command: readonly string[],
  options: RecordOptions = {},
): Promise<RecordResult> {
  const program = command[0];
  if (program === undefined) throw new TypeError("recordProgram needs a command");
  const tracePath = options.output ??
    `pecker-${basename(program)}-${new Date().toISOString().replaceAll(/[:.]/g, "-")}.trace`;
  const preload = [resolveInterposer(), Deno.env.get("LD_PRELOAD")].filter(Boolean).join(":");
  const stdin = options.input !== undefined ? "piped" : options.stdin ?? "inherit";
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args: command.slice(1),
      env: {
        ...options.env,
        LD_PRELOAD: preload,
        RELIAB_PECKER_MODE: "record",
        RELIAB_PECKER_TRACE: tracePath,
      },
      stdin,
      stdout: options.stdout ?? "inherit",
      stderr: options.stderr ?? "inherit",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
      const why = error instanceof Deno.errors.NotFound ? "no such program" : "permission denied";
      throw new ConfigError(`Cannot record "${program}": ${why}`, {
        code: "program_not_started",
        hint: "give the path of an executable (a name without '/' is looked up in PATH)",
      });
    }
    throw error;
  }
  if (options.input !== undefined) {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(options.input);
      await writer.close();
    } catch {
      // the program stopped reading: its status says what happened
    }
  }
  // output() collects both streams, so it needs both piped.
  const piped = options.stdout === "piped" && options.stderr === "piped";
  const output = piped ? await child.output() : null;
  const status = output ?? await child.status;
  const signal = signalNumber(status.signal);
  const code = signal !== 0 ? 128 + signal : status.code;
  let kept = false;
  try {
    // Cut the zero tail of the last chunk, then append the exit record.
    const finished = await finishTrace(tracePath, code, signal);
    kept = finished !== null && (signal !== 0 || options.keep === true);
    if (finished !== null && !kept) await Deno.remove(tracePath);
  } catch {
    // the program never started the recorder (static binary, exec failure)
  }
  return {
    kind: signal !== 0 ? "crashed" : "exited",
    code,
    signal,
    tracePath,
    kept,
    stdout: options.stdout === "piped" && output ? output.stdout : new Uint8Array(),
    stderr: options.stderr === "piped" && output ? output.stderr : new Uint8Array(),
  };
}
