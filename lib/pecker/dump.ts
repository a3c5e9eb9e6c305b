/**
 * `pecker dump PID`: the trace of a running recorded process, now, without
 * stopping it. The recorder appends every event to its trace file's shared
 * mapping as it happens, so "now" is the file's committed events: the
 * process is found by the trace path in its initial environment
 * (/proc/PID/environ), the copy is validated like any trace and cut at the
 * first uncommitted event, and written atomically with mode 0600, since
 * traces hold program input.
 *
 * @module
 */
import { isAbsolute, join } from "node:path";
import { writeFileAtomic } from "../atomic_file.ts";
import { ConfigError } from "../errors.ts";
import { parseTrace, type Trace } from "./trace_file.ts";

/** Options of `dumpTrace`. */
export interface DumpOptions {
  /** Replace an existing output file. */
  readonly force?: boolean;
}

/**
 * Copies the live trace of recorded process `pid` to `output`.
 *
 * @example
 * ```ts
 * const trace = await dumpTrace(4242, "now.trace");
 * console.log(trace.events.length);
 * ```
 */
export async function dumpTrace(
  pid: number,
  output: string,
  options: DumpOptions = {},
): Promise<Trace> {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new RangeError(`Invalid pid "${pid}"`);
  const source = await tracePathOf(pid);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(source);
  } catch (error) {
    throw new ConfigError(
      `Cannot read the trace of process ${pid} at "${source}": ${
        error instanceof Error ? error.message : String(error)
      }`,
      { code: "trace_unreadable", hint: "the trace was moved or removed while recording" },
    );
  }
  const trace = parseTrace(bytes, source);
  // Only the committed events: the recorder's file ends in a zero tail.
  await writeFileAtomic(output, bytes.subarray(0, trace.length), {
    mode: 0o600,
    ...(options.force ? { force: true } : {}),
  });
  return trace;
}

/** Finds the trace file of a recorded process from its environment and cwd. */
export async function tracePathOf(pid: number): Promise<string> {
  let environ: string;
  try {
    environ = await Deno.readTextFile(`/proc/${pid}/environ`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ConfigError(`Cannot dump process ${pid}: no such process`, {
        code: "no_such_process",
        hint: "check the pid with 'ps'",
      });
    }
    throw new ConfigError(`Cannot dump process ${pid}: its environment is not readable`, {
      code: "process_unreadable",
      hint: "run as the same user as the process, or as root",
    });
  }
  const env = new Map(
    environ.split("\0").filter(Boolean).map((kv) => {
      const at = kv.indexOf("=");
      return [kv.slice(0, at), kv.slice(at + 1)] as const;
    }),
  );
  const path = env.get("RELIAB_PECKER_TRACE");
  if (env.get("RELIAB_PECKER_MODE") !== "record" || !path) {
    throw new ConfigError(`Cannot dump process ${pid}: it is not recorded by reliab pecker`, {
      code: "not_recorded",
      hint: "start it with 'reliab pecker record -- CMD'",
    });
  }
  if (isAbsolute(path)) return path;
  return join(await Deno.readLink(`/proc/${pid}/cwd`), path);
}
