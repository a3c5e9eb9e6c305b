/**
 * Output helpers shared by every command: JSON for machines, text for people,
 * progress on stderr for work that takes more than a second.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Writes text to stdout as it is. */
export function out(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text.endsWith("\n") ? text : `${text}\n`));
}

/** Writes a value as pretty JSON to stdout. */
export function outJson(value: unknown): void {
  out(JSON.stringify(value, (_k, v) => typeof v === "bigint" ? v.toString() : v, 2));
}

/** Writes one line to stderr. */
export function err(text: string): void {
  Deno.stderr.writeSync(encoder.encode(`${text}\n`));
}

/**
 * Progress reporter: on a terminal one line rewritten in place, otherwise one
 * line per step (so logs show where a slow run was). Silent with `quiet`.
 */
export function progress(quiet: boolean): (message: string) => void {
  if (quiet) return () => {};
  const tty = Deno.stderr.isTerminal();
  return (message: string) => {
    if (tty) Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${message}`));
    else err(`reliab: ${message}`);
  };
}

/** Ends a progress line on a terminal. */
export function progressDone(quiet: boolean): void {
  if (!quiet && Deno.stderr.isTerminal()) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
}

/** Whether stdout wants colour. */
export function useColor(): boolean {
  return Deno.stdout.isTerminal() && Deno.env.get("NO_COLOR") === undefined;
}
