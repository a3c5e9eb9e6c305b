/**
 * Timing helpers shared by the bench scripts: wall time of one command run
 * and the median of repeated runs.
 */

/** Options of `timeCommand`. */
export interface TimeOptions {
  readonly env?: Record<string, string>;
  /** Capture stdout (otherwise discarded). */
  readonly stdout?: boolean;
}

/** Runs `cmd` once; returns its wall time in ms and its stdout. Throws when it fails. */
export async function timeCommand(
  cmd: readonly string[],
  options: TimeOptions = {},
): Promise<{ ms: number; stdout: string }> {
  const start = performance.now();
  const out = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    env: options.env ?? {},
    stdout: options.stdout ? "piped" : "null",
    stderr: "null",
  }).output();
  const ms = performance.now() - start;
  if (!out.success) throw new Error(`${cmd.join(" ")} exited ${out.code}`);
  return { ms, stdout: options.stdout ? new TextDecoder().decode(out.stdout) : "" };
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
