/**
 * reliab's entry point: argv -> command; errors -> message, hint, exit code.
 * No logic lives here.
 *
 * Exit codes: 0 ok, 1 a failure the user can act on (ReliabError, or a
 * command's own "found a problem" result such as `perf check`), 2 usage
 * error, 70 a bug in reliab (stack printed).
 *
 * @module
 */
import { ReliabError, UsageError } from "../lib/errors.ts";
import { err, out } from "./_render.ts";
import { perfCommand } from "./perf.ts";
import { peckerCommand } from "./pecker.ts";
import { haCommand } from "./ha.ts";
import { VERSION } from "../lib/version.ts";

const HELP = `reliab ${VERSION}: reliable networked systems and software execution

Usage: reliab <tool> <command> [options]

Tools:
  perf      snapshot this host's configuration, diff it against a baseline
  ha        high availability for TCP network functions
  pecker    record a program, triage its crashes under sanitizers

Run 'reliab <tool> --help' for the commands of a tool.

Options:
  -h, --help      show this help
  -V, --version   print the version

Exit codes: 0 ok, 1 failure (message and hint printed), 2 usage error, 70 internal bug.`;

/** Runs the CLI and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [tool, ...rest] = args;
  switch (tool) {
    case undefined:
    case "-h":
    case "--help":
    case "help":
      out(HELP);
      return tool === undefined ? 2 : 0;
    case "-V":
    case "--version":
      out(`reliab ${VERSION}`);
      return 0;
    case "perf":
      return await perfCommand(rest);
    case "pecker":
      return await peckerCommand(rest);
    case "ha":
      return await haCommand(rest);
    default:
      throw new UsageError(`Unknown tool "${tool}"`, {
        code: "usage",
        hint: "run 'reliab --help' for the list of tools",
      });
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

/** Maps an error to its message and exit code. */
export function report(error: unknown): number {
  if (error instanceof ReliabError) {
    // One line each, whatever a wrapped detail (a JSON parser's excerpt) holds.
    err(`reliab: error: ${oneLine(error.message)}`);
    if (error.hint) err(`reliab: hint: ${oneLine(error.hint)}`);
    return error instanceof UsageError ? 2 : 1;
  }
  if (error instanceof Deno.errors.BrokenPipe) return 0;
  err(`reliab: internal error (a bug in reliab; please report it with this output):`);
  err(error instanceof Error ? (error.stack ?? error.message) : String(error));
  return 70;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    code = report(error);
  }
  Deno.exit(code);
}
