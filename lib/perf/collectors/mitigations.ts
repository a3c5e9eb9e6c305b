/**
 * CPU vulnerability mitigations from
 * /sys/devices/system/cpu/vulnerabilities/*: one property per file, the
 * kernel's one-line status ("Mitigation: …", "Not affected", "Vulnerable").
 *
 * @module
 */
import { unknown } from "../schema.ts";
import { listDir, type Props, readAll } from "./_io.ts";

const DIR = "/sys/devices/system/cpu/vulnerabilities";

/**
 * Mitigation properties (`mitigations.<file>`).
 *
 * @example
 * ```ts
 * const props = await collectMitigations();
 * ```
 */
export async function collectMitigations(): Promise<Props> {
  const listing = await listDir(DIR, {
    missing: "the kernel predates the vulnerabilities directory (before 4.15)",
  });
  if (listing.kind === "error") return { "mitigations.spectre_v2": unknown(DIR, listing.reason) };
  return await readAll(
    Object.fromEntries(
      listing.names.map((n) => [`mitigations.${n}`, [`${DIR}/${n}`, (t: string) => t.trim()]]),
    ),
  );
}
