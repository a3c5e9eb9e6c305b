/**
 * Helpers for integration tests that drive `reliab perf` through the launcher,
 * exactly as a user would: exit codes, stdout and stderr are what is checked.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** The launcher at the repository root. */
export const RELIAB = fileURLToPath(new URL("../../reliab", import.meta.url));

/** The outcome of one command. */
export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of `run`. */
export interface RunOptions {
  readonly cwd?: string;
  /** Extra environment variables for the child. */
  readonly env?: Record<string, string>;
  /** Variables to remove from the child's environment. */
  readonly unset?: readonly string[];
  /** Command words before the launcher (`["taskset", "-c", "0"]`). */
  readonly prefix?: readonly string[];
  /** A bash snippet run before `exec reliab …` (e.g. `ulimit -n 512`). */
  readonly shell?: string;
}

/**
 * Runs `reliab ARGS…` and collects its output.
 *
 * @example
 * ```ts
 * const { code, stdout } = await run(["perf", "diff", "a.json", "b.json", "--json"]);
 * ```
 */
export async function run(args: readonly string[], options: RunOptions = {}): Promise<Run> {
  let argv = [RELIAB, ...args];
  if (options.shell !== undefined) {
    argv = ["bash", "-c", `${options.shell}; exec "$@"`, "bash", ...argv];
  }
  argv = [...(options.prefix ?? []), ...argv];
  // Unset first, so a variable can be both cleared from the parent and set anew.
  const env: Record<string, string> = Deno.env.toObject();
  for (const name of options.unset ?? []) delete env[name];
  Object.assign(env, options.env ?? {});
  const output = await new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    cwd: options.cwd ?? Deno.cwd(),
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Runs a command and fails with its output unless it exits 0. */
export async function runOk(args: readonly string[], options: RunOptions = {}): Promise<Run> {
  const result = await run(args, options);
  if (result.code !== 0) {
    throw new Error(
      `reliab ${
        args.join(" ")
      } exited ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
    );
  }
  return result;
}

/** One difference as printed by `--json`. */
export interface JsonDifference {
  readonly path: string;
  readonly severity: string;
  readonly why: string;
  readonly baseline?: unknown;
  readonly current?: unknown;
  readonly rule: string;
}

/** `reliab perf diff A B --json` → its differences. */
export async function diffJson(
  baseline: string,
  current: string,
  cwd: string,
): Promise<JsonDifference[]> {
  const { stdout } = await runOk(["perf", "diff", baseline, current, "--json"], { cwd });
  return (JSON.parse(stdout) as { differences: JsonDifference[] }).differences;
}

/** Env vars the snapshot records and these tests change: removed so the baseline is clean. */
export const TEST_ENV = ["OMP_NUM_THREADS"] as const;
