/**
 * CPU frequency scaling (cpufreq), boost and cpuidle from sysfs. Many VMs
 * have no cpufreq driver at all: then every frequency property is unknown
 * with that reason, never "performance" or "off" by guess.
 *
 * @module
 */
import { known, unknown } from "../schema.ts";
import {
  listDir,
  parseBool,
  parseScalar,
  type Props,
  readAll,
  readText,
  unknownAll,
} from "./_io.ts";

const CPU = "/sys/devices/system/cpu";
const NO_CPUFREQ = "the kernel has no cpufreq driver for this CPU (usual in VMs)";

const POLICY_FILES = {
  driver: "scaling_driver",
  governor: "scaling_governor",
  min_khz: "scaling_min_freq",
  max_khz: "scaling_max_freq",
  hw_min_khz: "cpuinfo_min_freq",
  hw_max_khz: "cpuinfo_max_freq",
  available_governors: "scaling_available_governors",
  energy_performance_preference: "energy_performance_preference",
  cur_khz: "scaling_cur_freq",
} as const;

/**
 * Frequency properties: policy0 in full, and whether all policies agree.
 *
 * @example
 * ```ts
 * const props = await collectFrequency();
 * ```
 */
export async function collectFrequency(): Promise<Props> {
  const dir = `${CPU}/cpufreq`;
  const listing = await listDir(dir, { missing: NO_CPUFREQ });
  const policies = listing.kind === "ok" ? listing.names.filter((n) => /^policy\d+$/.test(n)) : [];
  const [boost, idle, pstate] = await Promise.all([
    collectBoost(),
    collectCpuidle(),
    collectPstate(),
  ]);
  if (policies.length === 0) {
    const reason = listing.kind === "error"
      ? listing.reason
      : `no policy directories: ${NO_CPUFREQ}`;
    return {
      ...unknownAll(Object.keys(POLICY_FILES).map((k) => `frequency.${k}`), dir, reason),
      "frequency.policies": known(0, dir),
      ...boost,
      ...idle,
      ...pstate,
    };
  }
  const first = `${dir}/${policies[0]}`;
  const entries = Object.fromEntries(
    Object.entries(POLICY_FILES).map(([k, f]) => {
      const parse = k === "available_governors"
        ? (t: string) => t.trim().split(/\s+/).sort()
        : parseScalar;
      return [`frequency.${k}`, [`${first}/${f}`, parse] as const];
    }),
  );
  const props = await readAll(entries, { missing: "the cpufreq driver does not offer it" });
  props["frequency.policies"] = known(policies.length, dir);
  // One governor list across policies: a single CPU left on powersave skews multithreaded runs.
  const governors = await Promise.all(
    policies.map((p) => readText(`${dir}/${p}/scaling_governor`)),
  );
  const distinct = [...new Set(governors.flatMap((g) => g.kind === "ok" ? [g.text.trim()] : []))]
    .sort();
  props["frequency.governors_all"] = known(distinct, `${dir}/policy*/scaling_governor`);
  return { ...props, ...boost, ...idle, ...pstate };
}

async function collectBoost(): Promise<Props> {
  const generic = `${CPU}/cpufreq/boost`;
  const intel = `${CPU}/intel_pstate/no_turbo`;
  const [g, i] = await Promise.all([readText(generic), readText(intel)]);
  if (g.kind === "ok") {
    const v = parseBool(g.text);
    return {
      "boost.enabled": v === undefined
        ? unknown(generic, `unexpected "${g.text.trim()}"`)
        : known(v, generic),
    };
  }
  if (i.kind === "ok") {
    const v = parseBool(i.text);
    return {
      "boost.enabled": v === undefined
        ? unknown(intel, `unexpected "${i.text.trim()}"`)
        : known(!v, intel),
    };
  }
  return {
    "boost.enabled": unknown(
      generic,
      "no such file: neither cpufreq/boost nor intel_pstate/no_turbo exists (no cpufreq driver with boost control)",
    ),
  };
}

async function collectPstate(): Promise<Props> {
  return await readAll({
    "frequency.intel_pstate.status": [`${CPU}/intel_pstate/status`],
    "frequency.amd_pstate.status": [`${CPU}/amd_pstate/status`],
  }, { missing: "the driver is not in use" });
}

async function collectCpuidle(): Promise<Props> {
  const dir = `${CPU}/cpuidle`;
  const props = await readAll({
    "cpuidle.driver": [`${dir}/current_driver`],
    "cpuidle.governor": [`${dir}/current_governor_ro`],
    "cpuidle.available_governors": [
      `${dir}/available_governors`,
      (t) => t.trim().split(/\s+/).sort(),
    ],
  }, { missing: "the kernel has no cpuidle support" });
  const states = await listDir(`${CPU}/cpu0/cpuidle`, {
    missing: 'no idle states for cpu0 (cpuidle driver "none")',
  });
  if (states.kind === "error") {
    props["cpuidle.states"] = unknown(`${CPU}/cpu0/cpuidle`, states.reason);
    return props;
  }
  const rows = await Promise.all(states.names.map(async (s) => {
    const [name, disable] = await Promise.all([
      readText(`${CPU}/cpu0/cpuidle/${s}/name`),
      readText(`${CPU}/cpu0/cpuidle/${s}/disable`),
    ]);
    return {
      name: name.kind === "ok" ? name.text.trim() : s,
      disabled: disable.kind === "ok" ? parseBool(disable.text) ?? null : null,
    };
  }));
  props["cpuidle.states"] = known(rows.map((r) => r.name), `${CPU}/cpu0/cpuidle/state*/name`);
  props["cpuidle.states_disabled"] = known(
    rows.filter((r) => r.disabled === true).map((r) => r.name),
    `${CPU}/cpu0/cpuidle/state*/disable`,
  );
  return props;
}
