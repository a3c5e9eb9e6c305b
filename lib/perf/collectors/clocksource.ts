/**
 * The kernel clock source: the current one (tsc, kvm-clock, hpet, …) and
 * the ones available. A slow clock source turns every timestamp into an
 * expensive read.
 *
 * @module
 */
import { type Props, readAll } from "./_io.ts";

const DIR = "/sys/devices/system/clocksource/clocksource0";

/**
 * Clock source properties.
 *
 * @example
 * ```ts
 * (await collectClocksource())["clocksource.current"]; // known("kvm-clock", …)
 * ```
 */
export async function collectClocksource(): Promise<Props> {
  return await readAll({
    "clocksource.current": [`${DIR}/current_clocksource`, (t) => t.trim()],
    "clocksource.available": [`${DIR}/available_clocksource`, (t) => t.trim().split(/\s+/).sort()],
  }, { missing: "the kernel exposes no clocksource in sysfs" });
}
