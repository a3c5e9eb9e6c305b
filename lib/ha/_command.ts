/**
 * Runs the host tools `ha` needs (`ip`, `bridge`, `sysctl`) and turns a
 * missing tool into a ReliabError with the package to install.
 *
 * @module
 */
import { ReliabError } from "../errors.ts";

/** Output of one finished command. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const PACKAGES: Record<string, string> = {
  ip: "iproute2",
  bridge: "iproute2",
  ss: "iproute2",
  tc: "iproute2",
  sysctl: "procps",
  ethtool: "ethtool",
  nsenter: "util-linux",
};

/**
 * Runs `program args...` to completion; a missing program is a ReliabError.
 *
 * @example
 * ```ts
 * const r = await runCommand("ip", ["netns", "list"]);
 * ```
 */
export async function runCommand(program: string, args: readonly string[]): Promise<CommandResult> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(program, {
      args: [...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ReliabError(`Cannot run "${program}": not installed`, {
        code: "tool_missing",
        hint: `install it: apt-get install ${PACKAGES[program] ?? program}`,
      });
    }
    throw error;
  }
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/**
 * Runs `program args...` and throws a ReliabError naming the command when it fails.
 *
 * @example
 * ```ts
 * await mustRun("ip", ["netns", "add", "rlha-c"], "Cannot create the lab");
 * ```
 */
export async function mustRun(
  program: string,
  args: readonly string[],
  action: string,
): Promise<string> {
  const result = await runCommand(program, args);
  if (result.code !== 0) {
    const detail = result.stderr.trim().split("\n")[0] ?? `exit ${result.code}`;
    throw new ReliabError(`${action}: "${program} ${args.join(" ")}" failed: ${detail}`, {
      code: "command_failed",
      hint: "run 'reliab ha lab down' to clear a half-made lab, then retry",
    });
  }
  return result.stdout;
}
