/**
 * `reliab perf`: snapshot, show, diff, check. Parsing and printing only; the
 * work is in lib/perf.
 *
 * @module
 */
import {
  atOrAbove,
  diffSnapshots,
  isSeverity,
  readSnapshot,
  renderDiffHtml,
  renderDiffText,
  renderSnapshotText,
  serializeSnapshot,
  SEVERITIES,
  type Severity,
  type Snapshot,
  takeSnapshot,
} from "../lib/perf/mod.ts";
import { assertWritable, writeFileAtomic } from "../lib/atomic_file.ts";
import { UsageError } from "../lib/errors.ts";
import { dispatch, parse, positionals } from "./_args.ts";
import { out, outJson, progress, progressDone, useColor } from "./_render.ts";

const HELP = `reliab perf: reproducible execution

Usage:
  reliab perf snapshot [-o FILE] [--force] [--calibrate] [--no-redact] [--json] [--quiet]
  reliab perf show FILE [--json]
  reliab perf diff BASELINE [CURRENT] [--json] [--html FILE] [--force] [--calibrate]
  reliab perf check BASELINE [--fail-on LEVEL] [--json] [--calibrate]

Commands:
  snapshot   record this host's configuration (CPU, frequency, SMT, NUMA, memory,
             kernel, mitigations, limits, toolchains, ...) as JSON
  show       print a snapshot for people
  diff       differences between a baseline and CURRENT (default: this host now),
             ranked critical > major > minor > info, with why and advice
  check      exit 1 when a difference at or above LEVEL (default major) exists

Run 'reliab perf <command> --help' for its options.`;

const USAGE = {
  snapshot:
    "reliab perf snapshot [-o FILE] [--force] [--calibrate] [--no-redact] [--json] [--quiet]",
  show: "reliab perf show FILE [--json]",
  diff: "reliab perf diff BASELINE [CURRENT] [--json] [--html FILE] [--force] [--calibrate]",
  check: "reliab perf check BASELINE [--fail-on LEVEL] [--json] [--calibrate]",
} as const;

const HELPS: Record<keyof typeof USAGE, string> = {
  snapshot: `Usage: ${USAGE.snapshot}

Records this host's configuration. Without -o the snapshot goes to stdout.
Each value says where it came from; a value that cannot be read is 'unknown'
with the reason (needs root, no driver), never a guess.

Options:
  -o, --output FILE  write the snapshot to FILE (atomically; refuses to replace
                     an existing file without --force)
  --force            replace FILE if it exists
  --calibrate        add short micro-benchmarks (clock, memory latency and
                     bandwidth, syscall cost, timer resolution; under 5 s)
  --no-redact        keep hostname, addresses, serials, user names and home paths
                     (default: replaced by keyed hashes that still compare equal)
  --json             print a one-line JSON summary (path, hash, counts) instead of text
  -q, --quiet        no progress on stderr`,
  show: `Usage: ${USAGE.show}

Prints a snapshot for people, grouped by area. --json prints the snapshot itself.`,
  diff: `Usage: ${USAGE.diff}

Compares BASELINE with CURRENT (a snapshot file; default: this host now).
Differences are ranked critical, major, minor, info; each has a reason, the
kind of workload it affects and advice.

Options:
  --json         print {"differences": [{"path", "baseline", "current", "severity", "why", ...}]}
  --html FILE    also write a self-contained HTML page with both hosts side by side
  --force        replace the HTML file if it exists
  --calibrate    calibrate when snapshotting this host
  --all          also list info-level differences in the text output`,
  check: `Usage: ${USAGE.check}

A CI gate: compares this host now with BASELINE and exits 1 when a difference at
or above LEVEL exists (0 otherwise).

Options:
  --fail-on LEVEL  critical, major (default), minor or info
  --json           print the differences as JSON
  --calibrate      calibrate this host too (compares calibration figures)`,
};

/** Runs `reliab perf ...`. */
export async function perfCommand(args: string[]): Promise<number> {
  return await dispatch("perf", args, HELP, {
    snapshot: snapshotCommand,
    show: showCommand,
    diff: (rest) => diffCommand(rest, false),
    check: (rest) => diffCommand(rest, true),
  });
}

async function snapshotCommand(args: string[]): Promise<number> {
  const { values, positionals: rest } = parse(args, {
    output: { type: "string", short: "o" },
    force: { type: "boolean" },
    calibrate: { type: "boolean" },
    "no-redact": { type: "boolean" },
    json: { type: "boolean" },
    quiet: { type: "boolean", short: "q" },
  }, USAGE.snapshot);
  if (values.help) return help("snapshot");
  positionals(rest, 0, 0, USAGE.snapshot);
  if (values.output) await assertWritable(values.output, { force: values.force === true });
  const quiet = values.quiet === true || !values.output;
  const snapshot = await takeSnapshot({
    calibrate: values.calibrate === true,
    redact: values["no-redact"] !== true,
    onProgress: progress(quiet),
  });
  progressDone(quiet);
  const text = serializeSnapshot(snapshot);
  if (!values.output) {
    out(text);
    return 0;
  }
  await writeFileAtomic(values.output, text, { force: values.force === true });
  const summary = summarize(snapshot, values.output);
  if (values.json) outJson(summary);
  else {
    out(
      `wrote ${values.output}: ${summary.properties} properties (${summary.unknown} unknown), ${snapshot.hash}`,
    );
  }
  return 0;
}

function summarize(snapshot: Snapshot, path: string) {
  const all = Object.values(snapshot.properties);
  return {
    path,
    hash: snapshot.hash,
    properties: all.length,
    unknown: all.filter((p) => p.status === "unknown").length,
    redacted: snapshot.redaction.enabled,
  };
}

async function showCommand(args: string[]): Promise<number> {
  const { values, positionals: rest } = parse(args, { json: { type: "boolean" } }, USAGE.show);
  if (values.help) return help("show");
  const [file] = positionals(rest, 1, 1, USAGE.show);
  const snapshot = await readSnapshot(file!);
  if (values.json) out(serializeSnapshot(snapshot));
  else out(renderSnapshotText(snapshot, { color: useColor() }));
  return 0;
}

async function diffCommand(args: string[], gate: boolean): Promise<number> {
  const usage = gate ? USAGE.check : USAGE.diff;
  const { values, positionals: rest } = parse(args, {
    json: { type: "boolean" },
    html: { type: "string" },
    force: { type: "boolean" },
    calibrate: { type: "boolean" },
    all: { type: "boolean" },
    "fail-on": { type: "string" },
  }, usage);
  if (values.help) return help(gate ? "check" : "diff");
  const [baselinePath, currentPath] = positionals(rest, 1, gate ? 1 : 2, usage);
  if (!gate && values["fail-on"] !== undefined) {
    throw new UsageError("Unknown option --fail-on for diff", {
      code: "usage",
      hint: "use 'reliab perf check BASELINE --fail-on LEVEL'",
    });
  }
  const failOn = values["fail-on"] ?? "major";
  if (!isSeverity(failOn)) {
    throw new UsageError(`Unknown severity "${failOn}"`, {
      code: "usage",
      hint: `use one of ${SEVERITIES.join(", ")}`,
    });
  }
  if (values.html !== undefined) {
    await assertWritable(values.html, { force: values.force === true });
  }
  const baseline = await readSnapshot(baselinePath!);
  const current = currentPath === undefined
    ? await snapshotHere(values.calibrate === true, values.json === true)
    : await readSnapshot(currentPath);
  const differences = diffSnapshots(baseline, current);
  if (values.html !== undefined) {
    await writeFileAtomic(values.html, renderDiffHtml(baseline, current, differences), {
      force: values.force === true,
    });
  }
  const failing = differences.filter((d) => atOrAbove(d.severity, failOn as Severity));
  if (values.json) {
    outJson(gate ? { failOn, failed: failing.length > 0, differences } : { differences });
  } else {
    out(renderDiffText(differences, { color: useColor(), all: values.all === true }));
    if (gate) {
      out(
        failing.length > 0
          ? `check failed: ${failing.length} difference(s) at or above ${failOn}`
          : `check passed: no difference at or above ${failOn}`,
      );
    }
  }
  return gate && failing.length > 0 ? 1 : 0;
}

async function snapshotHere(calibrate: boolean, quiet: boolean): Promise<Snapshot> {
  const snapshot = await takeSnapshot({ calibrate, redact: true, onProgress: progress(quiet) });
  progressDone(quiet);
  return snapshot;
}

function help(command: keyof typeof HELPS): number {
  out(HELPS[command]);
  return 0;
}
