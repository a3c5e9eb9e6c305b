/**
 * NUMA nodes from sysfs: which nodes exist, their CPUs, memory and
 * distances, and whether memory tiering (demotion) is on.
 *
 * @module
 */
import { known, unknown } from "../schema.ts";
import { parseBool, parseCpuList, parsedProperty, type Props, readAll, readText } from "./_io.ts";

const NODE = "/sys/devices/system/node";

/**
 * MemTotal and MemFree (kB) from a node's meminfo
 * (`Node 0 MemTotal:  8000000 kB`).
 *
 * @example
 * ```ts
 * parseNodeMeminfo("Node 0 MemTotal: 100 kB\nNode 0 MemFree: 50 kB\n"); // { MemTotal: 100, MemFree: 50 }
 * ```
 */
export function parseNodeMeminfo(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const match of text.matchAll(/^Node\s+\d+\s+(\w+):\s+(\d+)/gm)) {
    out[match[1]!] = Number(match[2]);
  }
  return out;
}

/**
 * NUMA properties: `numa.nodes` (array) and per node `numa.node<N>.*`.
 *
 * @example
 * ```ts
 * const props = await collectNuma();
 * ```
 */
export async function collectNuma(): Promise<Props> {
  const online = await readText(`${NODE}/online`, {
    missing: "the kernel was built without NUMA support",
  });
  const props: Props = await readAll({
    "numa.demotion_enabled": ["/sys/kernel/mm/numa/demotion_enabled", parseBool],
  }, { missing: "the kernel has no memory tiering support" });
  if (online.kind === "error") {
    props["numa.nodes"] = unknown(`${NODE}/online`, online.reason);
    return props;
  }
  const nodes = parsedProperty(online.text, `${NODE}/online`, parseCpuList);
  props["numa.nodes"] = nodes;
  if (nodes.status !== "ok" || !Array.isArray(nodes.value)) return props;
  await Promise.all((nodes.value as number[]).map(async (n) => {
    const dir = `${NODE}/node${n}`;
    const [cpus, meminfo, distance] = await Promise.all([
      readText(`${dir}/cpulist`),
      readText(`${dir}/meminfo`),
      readText(`${dir}/distance`),
    ]);
    props[`numa.node${n}.cpus`] = cpus.kind === "ok"
      ? parsedProperty(cpus.text, `${dir}/cpulist`, parseCpuList)
      : unknown(`${dir}/cpulist`, cpus.reason);
    if (meminfo.kind === "ok") {
      const m = parseNodeMeminfo(meminfo.text);
      for (
        const [field, path] of [["MemTotal", "mem_total_kb"], ["MemFree", "mem_free_kb"]] as const
      ) {
        props[`numa.node${n}.${path}`] = m[field] === undefined
          ? unknown(`${dir}/meminfo`, `no ${field} line`)
          : known(m[field]!, `${dir}/meminfo`);
      }
    } else {
      props[`numa.node${n}.mem_total_kb`] = unknown(`${dir}/meminfo`, meminfo.reason);
    }
    props[`numa.node${n}.distance`] = distance.kind === "ok"
      ? known(distance.text.trim().split(/\s+/).map(Number), `${dir}/distance`)
      : unknown(`${dir}/distance`, distance.reason);
  }));
  return props;
}
