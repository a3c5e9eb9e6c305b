/**
 * Argument parsing shared by every command, on node:util's parseArgs. Any
 * parse problem becomes a UsageError (exit 2) with the command's usage line.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../lib/errors.ts";
import { out } from "./_render.ts";

/** Option table of one command. */
export type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parses `args` against `options`; `--help` is always accepted. */
export function parse<T extends Options>(
  args: string[],
  options: T,
  usage: string,
  allowPositionals = true,
) {
  try {
    return parseArgs({
      args,
      options: { help: { type: "boolean", short: "h" }, ...options },
      allowPositionals,
      strict: true,
    });
  } catch (error) {
    const detail = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new UsageError(detail ?? "bad arguments", { code: "usage", hint: `usage: ${usage}` });
  }
}

/** Throws a UsageError unless exactly `min..max` positionals were given. */
export function positionals(list: string[], min: number, max: number, usage: string): string[] {
  if (list.length < min || list.length > max) {
    const what = list.length < min ? "missing argument" : `unexpected argument "${list[max]}"`;
    throw new UsageError(`Wrong arguments: ${what}`, { code: "usage", hint: `usage: ${usage}` });
  }
  return list;
}

/**
 * An `ADDR:PORT` option (IPv4), or a UsageError naming the option.
 *
 * @example
 * ```ts
 * endpoint("10.77.0.1:7000", "--connect", "reliab ha load --connect ADDR:PORT"); // { hostname: "10.77.0.1", port: 7000 }
 * ```
 */
export function endpoint(
  text: string | undefined,
  option: string,
  usage: string,
): { hostname: string; port: number } {
  const match = text === undefined ? null : /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text);
  if (match === null || Number(match[2]) > 65535) {
    throw new UsageError(
      text === undefined ? `Missing ${option}` : `Invalid ${option} "${text}": expected ADDR:PORT`,
      { code: "usage", hint: `usage: ${usage}` },
    );
  }
  return { hostname: match[1]!, port: Number(match[2]) };
}

/** A subcommand: its arguments in, exit code out. */
export type Command = (args: string[]) => Promise<number>;

/**
 * Runs `reliab TOOL COMMAND ...`: help with no command (exit 2) or --help
 * (exit 0), a usage error for an unknown command, else the command.
 */
export async function dispatch(
  tool: string,
  args: string[],
  help: string,
  commands: Record<string, Command>,
): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined || command === "-h" || command === "--help") {
    out(help);
    return command === undefined ? 2 : 0;
  }
  const run = Object.hasOwn(commands, command) ? commands[command] : undefined;
  if (run === undefined) {
    throw new UsageError(`Unknown ${tool} command "${command}"`, {
      code: "usage",
      hint: `run 'reliab ${tool} --help' for the list of commands`,
    });
  }
  return await run(rest);
}
