/**
 * `reliab pecker`: record, replay, triage. Parsing and printing only; the
 * work is in lib/pecker.
 *
 * @module
 */
import {
  dumpTrace,
  recordProgram,
  renderTriageText,
  replayTrace,
  toSarif,
  triageTrace,
} from "../lib/pecker/mod.ts";
import { writeFileAtomic } from "../lib/atomic_file.ts";
import { UsageError } from "../lib/errors.ts";
import { dispatch, parse, positionals } from "./_args.ts";
import { err, out, outJson, progress, progressDone } from "./_render.ts";

const USAGE = {
  record: "reliab pecker record [-o FILE] [--keep] -- CMD [ARGS...]",
  dump: "reliab pecker dump PID [-o FILE] [--force] [--json]",
  replay: "reliab pecker replay FILE [--exe PATH]",
  triage:
    "reliab pecker triage FILE [--build TEMPLATE] [--variant NAME=PATH ...] [--json] [--sarif OUT]",
} as const;

const HELP = `reliab pecker: record a program, triage its crashes under sanitizers

Usage:
  ${USAGE.record}
  ${USAGE.dump}
  ${USAGE.replay}
  ${USAGE.triage}

Commands:
  record   run CMD under the recorder; keep the trace when it dies of a signal
           (or always with --keep); exit with CMD's status (128+signal if killed)
  dump     write the trace of a running recorded process now, without stopping it
  replay   replay a trace with the recorded binary (or --exe); says 'reproduced'
           or where the run diverged from the trace
  triage   replay a trace against sanitizer and assertion builds and report
           findings: --build is a shell command with {cc}, {cflags} and {out}
           (e.g. '{cc} {cflags} -o {out} prog.c'); --variant NAME=PATH gives
           prebuilt binaries instead`;

/** Runs `reliab pecker ...` and returns the exit code. */
export async function peckerCommand(args: string[]): Promise<number> {
  return await dispatch("pecker", args, HELP, { record, dump, replay, triage });
}

async function record(args: string[]): Promise<number> {
  const split = args.indexOf("--");
  const own = split === -1 ? args : args.slice(0, split);
  const { values, positionals: rest } = parse(own, {
    output: { type: "string", short: "o" },
    keep: { type: "boolean" },
  }, USAGE.record);
  if (values.help) {
    out(`Usage: ${USAGE.record}`);
    return 0;
  }
  const command = split === -1 ? rest : [...rest, ...args.slice(split + 1)];
  if (command.length === 0) {
    throw new UsageError("Cannot record: no command given", {
      code: "usage",
      hint: `usage: ${USAGE.record}`,
    });
  }
  const result = await recordProgram(command, {
    ...(values.output === undefined ? {} : { output: values.output }),
    keep: values.keep === true,
  });
  if (result.kept) {
    err(`reliab: trace kept in "${result.tracePath}" (${result.kind}, status ${result.code})`);
  }
  return result.code;
}

async function dump(args: string[]): Promise<number> {
  const { values, positionals: rest } = parse(args, {
    output: { type: "string", short: "o" },
    force: { type: "boolean" },
    json: { type: "boolean" },
  }, USAGE.dump);
  if (values.help) {
    out(
      `Usage: ${USAGE.dump}\n\nWrites the trace of a running recorded process now, without stopping it.`,
    );
    return 0;
  }
  const [pidText] = positionals(rest, 1, 1, USAGE.dump);
  const pid = Number(pidText);
  if (!/^[1-9][0-9]*$/.test(pidText!) || !Number.isSafeInteger(pid)) {
    throw new UsageError(`Invalid pid "${pidText}"`, {
      code: "usage",
      hint: `usage: ${USAGE.dump}`,
    });
  }
  const output = values.output ?? `pecker-${pid}-dump.trace`;
  const trace = await dumpTrace(pid, output, values.force === true ? { force: true } : {});
  if (values.json) outJson({ pid, path: output, events: trace.events.length, torn: trace.torn });
  else out(`wrote ${output}: ${trace.events.length} events of process ${pid}`);
  return 0;
}

async function replay(args: string[]): Promise<number> {
  const { values, positionals: rest } = parse(args, { exe: { type: "string" } }, USAGE.replay);
  if (values.help) {
    out(`Usage: ${USAGE.replay}`);
    return 0;
  }
  const [file] = positionals(rest, 1, 1, USAGE.replay);
  const result = await replayTrace(file!, values.exe === undefined ? {} : { exe: values.exe });
  switch (result.kind) {
    case "reproduced":
      out(`reproduced: ${result.outcome}`);
      return 0;
    case "diverged": {
      const d = result.divergence;
      out(
        `diverged at thread ${d.thread} event ${d.event}: expected ${d.expected}, got ${d.actual}`,
      );
      return 1;
    }
    case "not-reproduced":
      out(`not reproduced: ${result.detail}`);
      return 1;
  }
}

async function triage(args: string[]): Promise<number> {
  const { values, positionals: rest } = parse(args, {
    build: { type: "string" },
    variant: { type: "string", multiple: true },
    json: { type: "boolean" },
    sarif: { type: "string" },
    quiet: { type: "boolean", short: "q" },
  }, USAGE.triage);
  if (values.help) {
    out(`Usage: ${USAGE.triage}`);
    return 0;
  }
  const [file] = positionals(rest, 1, 1, USAGE.triage);
  const variants: Record<string, string> = {};
  for (const entry of values.variant ?? []) {
    const equals = entry.indexOf("=");
    if (equals <= 0) {
      throw new UsageError(`Cannot use variant "${entry}": expected NAME=PATH`, {
        code: "usage",
        hint: `usage: ${USAGE.triage}`,
      });
    }
    variants[entry.slice(0, equals)] = entry.slice(equals + 1);
  }
  if (values.build === undefined && Object.keys(variants).length === 0) {
    throw new UsageError("Cannot triage without builds: give --build or --variant", {
      code: "usage",
      hint: "e.g. --build '{cc} {cflags} -o {out} prog.c'",
    });
  }
  const quiet = values.quiet === true || values.json === true;
  const report = await triageTrace(file!, {
    ...(values.build === undefined ? {} : { build: values.build }),
    variants,
    progress: progress(quiet),
  });
  progressDone(quiet);
  if (values.sarif !== undefined) {
    await writeFileAtomic(values.sarif, JSON.stringify(toSarif(report), null, 2) + "\n", {
      force: true,
    });
  }
  if (values.json) outJson(report);
  else out(renderTriageText(report));
  return 0;
}
