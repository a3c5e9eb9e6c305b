/**
 * Pressure stall information (/proc/pressure/*): how much time tasks waited
 * for CPU, memory, I/O and IRQ recently. Volatile — shown, never gated on —
 * but a loaded host explains odd results.
 *
 * @module
 */
import { known, unknown } from "../schema.ts";
import { type Props, readText } from "./_io.ts";

const RESOURCES = ["cpu", "memory", "io", "irq"] as const;

/**
 * Parses a PSI file into `{some: {avg10, avg60, avg300, total}, full: …}`.
 *
 * @example
 * ```ts
 * parsePressure("some avg10=1.50 avg60=0.00 avg300=0.00 total=123\n").some!.avg10; // 1.5
 * ```
 */
export function parsePressure(text: string): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const line of text.split("\n")) {
    const [kind, ...pairs] = line.trim().split(/\s+/);
    if (kind !== "some" && kind !== "full") continue;
    const values: Record<string, number> = {};
    for (const pair of pairs) {
      const [k, v] = pair.split("=");
      if (k !== undefined && v !== undefined && Number.isFinite(Number(v))) values[k] = Number(v);
    }
    out[kind] = values;
  }
  return out;
}

/**
 * Pressure properties (`pressure.<resource>.<some|full>.<avg10|avg60|avg300>`).
 *
 * @example
 * ```ts
 * (await collectPressure())["pressure.cpu.some.avg10"]; // known(0, "/proc/pressure/cpu")
 * ```
 */
export async function collectPressure(): Promise<Props> {
  const props: Props = {};
  await Promise.all(RESOURCES.map(async (resource) => {
    const source = `/proc/pressure/${resource}`;
    const r = await readText(source, {
      missing: resource === "irq"
        ? "IRQ pressure needs CONFIG_IRQ_TIME_ACCOUNTING and kernel 6.1+"
        : "the kernel has no PSI (CONFIG_PSI) or it is off (psi=0 on the command line)",
    });
    if (r.kind === "error") {
      props[`pressure.${resource}`] = unknown(source, r.reason);
      return;
    }
    for (const [kind, values] of Object.entries(parsePressure(r.text))) {
      for (const avg of ["avg10", "avg60", "avg300"]) {
        if (values[avg] !== undefined) {
          props[`pressure.${resource}.${kind}.${avg}`] = known(values[avg]!, source);
        }
      }
    }
  }));
  return props;
}
