/**
 * Sanitizer-style text for a triage: variants, then each finding with its
 * frames, root cause first, ending with a `SUMMARY:` line.
 *
 * @module
 */
import type { Finding, Frame, TriageReport } from "./triage.ts";

function frameLine(frame: Frame, index: number): string {
  const where = frame.file === null
    ? ""
    : ` ${frame.file}${frame.line === null ? "" : `:${frame.line}`}`;
  return `    #${index} ${frame.function ?? "??"}${where}`;
}

function label(finding: Finding): string {
  return finding.role === "root-cause"
    ? "ROOT CAUSE"
    : finding.role === "symptom"
    ? "SYMPTOM"
    : "ALSO";
}

/**
 * Renders a triage report as text.
 *
 * @example
 * ```ts
 * console.log(renderTriageText(report));
 * ```
 */
export function renderTriageText(report: TriageReport): string {
  const lines: string[] = [
    `==reliab-pecker== triage of "${report.trace}" (program "${report.exe}")`,
  ];
  if (report.crash !== null) {
    lines.push(
      `recorded crash: ${report.crash.signal} at ${report.crash.address} (trace event ${report.crash.event})`,
    );
  }
  for (const variant of report.variants) {
    lines.push(`variant ${variant.name}: ${variant.status}: ${variant.detail}`);
  }
  for (const finding of report.findings) {
    const access = finding.access === null
      ? ""
      : ` (${finding.access.type.toUpperCase()}${
        finding.access.size === null ? "" : ` of size ${finding.access.size}`
      })`;
    lines.push("");
    lines.push(
      `${label(finding)}: ${finding.tool}: ${finding.kind}${access} at trace event ${
        finding.event ?? "?"
      }` +
        ` [${finding.severity}] (variant ${finding.variant})`,
    );
    lines.push(`  ${finding.headline}`);
    finding.frames.forEach((frame, index) => lines.push(frameLine(frame, index)));
    if (finding.previous !== null) {
      const other = finding.previous.access;
      lines.push(
        `  previous ${other?.type ?? "access"}${
          other?.size === null || other === null ? "" : ` of size ${other.size}`
        }:`,
      );
      finding.previous.frames.forEach((frame, index) => lines.push(frameLine(frame, index)));
    }
  }
  const root = report.findings[0];
  lines.push("");
  if (root === undefined) {
    lines.push("SUMMARY: reliab-pecker: no findings");
  } else {
    const top = root.frames[0];
    const where = top === undefined
      ? ""
      : ` ${top.file ?? "??"}:${top.line ?? "?"} in ${top.function ?? "??"}`;
    lines.push(`SUMMARY: reliab-pecker: ${root.kind}${where}`);
  }
  return lines.join("\n");
}
