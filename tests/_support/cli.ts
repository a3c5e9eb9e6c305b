/**
 * Runs the CLI the way users do (through ./reliab) and captures its output.
 * Shared by the integration tests.
 */
export const ROOT = new URL("../../", import.meta.url).pathname;
export const LAUNCHER = `${ROOT}reliab`;

/** Result of one CLI run. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of `runCli`. */
export interface CliOptions {
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  /** Prefix command, e.g. ["taskset", "-c", "0"]. */
  readonly wrap?: string[];
}

/** Runs `./reliab ...args`. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const argv = [...(options.wrap ?? []), LAUNCHER, ...args];
  const out = await new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    cwd: options.cwd ?? ROOT,
    env: options.env ?? {},
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Asserts the shape of a user-facing error: one error line, one hint line, no stack. */
export function isCleanError(stderr: string): boolean {
  const lines = stderr.trim().split("\n").filter((l) => !l.startsWith("reliab: building"));
  return lines.length === 2 && lines[0]!.startsWith("reliab: error: ") &&
    lines[1]!.startsWith("reliab: hint: ") && !/\bat .*:\d+:\d+/.test(stderr);
}
