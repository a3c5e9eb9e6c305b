/**
 * SARIF 2.1.0 output of a triage, for code scanning: one rule per bug class
 * with a `security-severity`, one result per finding, the dedup key as
 * partial fingerprint.
 *
 * @module
 */
import type { Finding, TriageReport } from "./triage.ts";

const SECURITY_SEVERITY: Readonly<Record<Finding["severity"], string>> = {
  EXPLOITABLE: "9.0",
  PROBABLY_EXPLOITABLE: "7.0",
  NOT_EXPLOITABLE: "4.0",
};

/**
 * Converts a triage report to a SARIF 2.1.0 log object.
 *
 * @example
 * ```ts
 * const log = toSarif(report);
 * await Deno.writeTextFile("pecker.sarif", JSON.stringify(log));
 * ```
 */
export function toSarif(report: TriageReport): Record<string, unknown> {
  const rules = new Map<string, Record<string, unknown>>();
  for (const finding of report.findings) {
    if (rules.has(finding.kind)) continue;
    rules.set(finding.kind, {
      id: finding.kind,
      shortDescription: { text: `${finding.tool}: ${finding.kind}` },
      properties: {
        "security-severity": SECURITY_SEVERITY[finding.severity],
        tags: ["security", finding.tool],
      },
    });
  }
  const results = report.findings.map((finding) => {
    const top = finding.frames.find((frame) => frame.file !== null);
    const other = finding.previous?.frames.find((frame) => frame.file !== null);
    return {
      ruleId: finding.kind,
      level: finding.severity === "NOT_EXPLOITABLE" ? "warning" : "error",
      message: {
        text: `${finding.headline} (${finding.role}, trace event ${finding.event ?? "?"})`,
      },
      locations: top === undefined ? [] : [{
        physicalLocation: {
          artifactLocation: { uri: top.file },
          region: { startLine: top.line ?? 1 },
        },
      }],
      // The other access of a data race.
      relatedLocations: other === undefined ? [] : [{
        id: 1,
        message: { text: `previous ${finding.previous?.access?.type ?? "access"}` },
        physicalLocation: {
          artifactLocation: { uri: other.file },
          region: { startLine: other.line ?? 1 },
        },
      }],
      partialFingerprints: { "reliabPeckerDedup/v1": finding.dedup },
      properties: {
        tool: finding.tool,
        role: finding.role,
        event: finding.event,
        variant: finding.variant,
      },
    };
  });
  return {
    $schema: "https://json.schemastore.org/sarif-2.1.0.json",
    version: "2.1.0",
    runs: [{
      tool: {
        driver: {
          name: "reliab-pecker",
          informationUri: "https://github.com/reliab",
          rules: [...rules.values()],
        },
      },
      results,
    }],
  };
}
