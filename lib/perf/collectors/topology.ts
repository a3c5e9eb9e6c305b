/**
 * CPU counts, SMT and topology from sysfs: online/possible/present CPUs,
 * sockets, dies, cores, threads per core, isolated and nohz_full CPUs.
 *
 * @module
 */
import { known, type Property, unknown } from "../schema.ts";
import {
  parseBool,
  parseCpuList,
  parsedProperty,
  parseScalar,
  type Props,
  readAll,
  readText,
} from "./_io.ts";

const CPU = "/sys/devices/system/cpu";

/** One online CPU's place in the topology. */
export interface CpuPlace {
  readonly cpu: number;
  readonly package: number;
  readonly die: number;
  readonly core: number;
}

/**
 * Counts from the places of the online CPUs.
 *
 * @example
 * ```ts
 * summarizeTopology([{ cpu: 0, package: 0, die: 0, core: 0 }, { cpu: 1, package: 0, die: 0, core: 0 }]);
 * // { sockets: 1, dies: 1, cores: 1, threads_per_core: 2, cores_per_socket: 1 }
 * ```
 */
export function summarizeTopology(places: readonly CpuPlace[]): Record<string, number> {
  const sockets = new Set(places.map((p) => p.package));
  const dies = new Set(places.map((p) => `${p.package}/${p.die}`));
  const cores = new Map<string, number>();
  for (const p of places) {
    const key = `${p.package}/${p.die}/${p.core}`;
    cores.set(key, (cores.get(key) ?? 0) + 1);
  }
  return {
    sockets: sockets.size,
    dies: dies.size,
    cores: cores.size,
    threads_per_core: Math.max(0, ...cores.values()),
    cores_per_socket: sockets.size === 0 ? 0 : Math.round(cores.size / sockets.size),
  };
}

/**
 * Topology, CPU count and SMT properties.
 *
 * @example
 * ```ts
 * const props = await collectTopology();
 * ```
 */
export async function collectTopology(): Promise<Props> {
  const list = (t: string) => parseCpuList(t);
  const props = await readAll({
    "cpu.online": [`${CPU}/online`, list],
    "cpu.offline": [`${CPU}/offline`, list],
    "cpu.possible": [`${CPU}/possible`, list],
    "cpu.present": [`${CPU}/present`, list],
    "cpu.kernel_max": [`${CPU}/kernel_max`],
    "topology.isolated": [`${CPU}/isolated`, list],
    "topology.nohz_full": [`${CPU}/nohz_full`, list],
    "smt.active": [`${CPU}/smt/active`, parseBool],
    "smt.control": [`${CPU}/smt/control`, parseScalar],
  }, { missing: "the kernel does not expose it (older kernel or option not built in)" });
  for (const what of ["online", "possible", "present"] as const) {
    const path = `cpu.${what}`;
    const p = props[path]!;
    props[`cpu.count.${what}`] = p.status === "ok" && Array.isArray(p.value)
      ? known(p.value.length, p.source)
      : p;
  }
  const online = props["cpu.online"]!;
  if (online.status !== "ok" || !Array.isArray(online.value)) {
    for (const k of ["sockets", "dies", "cores", "threads_per_core", "cores_per_socket"]) {
      props[`topology.${k}`] = unknown(`${CPU}/online`, "the list of online CPUs is unknown");
    }
    return props;
  }
  const places = await Promise.all((online.value as number[]).map(async (cpu) => {
    const base = `${CPU}/cpu${cpu}/topology`;
    const [pkg, die, core] = await Promise.all(
      ["physical_package_id", "die_id", "core_id"].map((f) => readText(`${base}/${f}`)),
    );
    const num = (r: typeof pkg) => r!.kind === "ok" ? Number(r!.text.trim()) : 0;
    if (pkg!.kind === "error" || core!.kind === "error") return undefined;
    return { cpu, package: num(pkg), die: num(die), core: num(core) };
  }));
  const source = `${CPU}/cpu*/topology`;
  if (places.some((p) => p === undefined)) {
    for (const k of ["sockets", "dies", "cores", "threads_per_core", "cores_per_socket"]) {
      props[`topology.${k}`] = unknown(source, "a CPU's topology directory could not be read");
    }
  } else {
    for (const [k, v] of Object.entries(summarizeTopology(places as CpuPlace[]))) {
      props[`topology.${k}`] = known(v, source);
    }
  }
  props["topology.cpu0.thread_siblings"] = await siblings();
  return props;
}

async function siblings(): Promise<Property> {
  const path = `${CPU}/cpu0/topology/thread_siblings_list`;
  const r = await readText(path);
  return r.kind === "ok" ? parsedProperty(r.text, path, parseCpuList) : unknown(path, r.reason);
}
