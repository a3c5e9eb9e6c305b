/**
 * What this process effectively gets, rather than what the host has: CPU
 * affinity, cgroup CPU quota, cpuset and memory limits, scheduling policy
 * and nice value, capabilities, timer slack, and CPU time stolen by the
 * hypervisor (since boot and over a short window).
 *
 * @module
 */
import { type Json, known, type Property, unknown } from "../schema.ts";
import { parseCpuList, parsedProperty, type Props, readText } from "./_io.ts";
import { cgroupProperties, cpuMaxCpus } from "./cgroup.ts";
import { nativeAffinity } from "./_native.ts";

/**
 * /proc/<pid>/status as a key → value map.
 *
 * @example
 * ```ts
 * parseStatus("Cpus_allowed_list:\t0-1\n").get("Cpus_allowed_list"); // "0-1"
 * ```
 */
export function parseStatus(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) out.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return out;
}

const POLICIES = [
  "SCHED_OTHER",
  "SCHED_FIFO",
  "SCHED_RR",
  "SCHED_BATCH",
  "SCHED_ISO",
  "SCHED_IDLE",
  "SCHED_DEADLINE",
  "SCHED_EXT",
];

/**
 * Fields of /proc/<pid>/stat: parent, nice, real-time priority and policy.
 * The command name may contain spaces and parentheses, so fields are
 * counted after the last ")".
 *
 * @example
 * ```ts
 * parseStat("42 (a) b) S 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0")
 * // { ppid: 1, nice: 0, rt_priority: 0, policy: "SCHED_OTHER" }
 * ```
 */
export function parseStat(
  text: string,
): { ppid: number; nice: number; rt_priority: number; policy: string } | undefined {
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  // Fields after the command start at field 3 (state).
  const rest = text.slice(close + 2).trim().split(/\s+/);
  const field = (n: number) => Number(rest[n - 3]);
  const policy = field(41);
  if (![field(4), field(19), field(40), policy].every(Number.isFinite)) return undefined;
  return {
    ppid: field(4),
    nice: field(19),
    rt_priority: field(40),
    policy: POLICIES[policy] ?? `policy ${policy}`,
  };
}

/** CPU time counters of the aggregate `cpu` line of /proc/stat (USER_HZ ticks). */
export interface CpuTimes {
  readonly total: number;
  readonly steal: number;
}

/**
 * The aggregate line of /proc/stat.
 *
 * @example
 * ```ts
 * parseProcStat("cpu  100 0 50 800 0 0 0 50 0 0\n"); // { total: 1000, steal: 50 }
 * ```
 */
export function parseProcStat(text: string): CpuTimes | undefined {
  const line = /^cpu\s+(.*)$/m.exec(text)?.[1];
  if (line === undefined) return undefined;
  const n = line.trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal; guest time is already in user.
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, steal: n[7] ?? 0 };
}

/**
 * Steal as a percentage of CPU time between two samples.
 *
 * @example
 * ```ts
 * stealPercent({ total: 0, steal: 0 }, { total: 200, steal: 10 }); // 5
 * ```
 */
export function stealPercent(before: CpuTimes, after: CpuTimes): number | undefined {
  const total = after.total - before.total;
  if (total <= 0) return undefined;
  return Math.round(((after.steal - before.steal) / total) * 10000) / 100;
}

const CAPABILITIES: Record<number, string> = {
  12: "cap_net_admin",
  14: "cap_ipc_lock",
  17: "cap_sys_rawio",
  19: "cap_sys_ptrace",
  21: "cap_sys_admin",
  23: "cap_sys_nice",
  24: "cap_sys_resource",
  38: "cap_perfmon",
  39: "cap_bpf",
};

/**
 * The capabilities that matter for measuring (perf, locking memory,
 * real-time priority) from a CapEff mask.
 *
 * @example
 * ```ts
 * capabilityNames("0000004000200000"); // ["cap_perfmon", "cap_sys_admin"]
 * ```
 */
export function capabilityNames(hex: string): string[] {
  const mask = BigInt(`0x${hex.trim()}`);
  return Object.entries(CAPABILITIES)
    .filter(([bit]) => ((mask >> BigInt(bit)) & 1n) === 1n)
    .map(([, name]) => name)
    .sort();
}

/** Steal is sampled over this window while the other collectors run. */
const STEAL_WINDOW_MS = 100;

async function stealProps(): Promise<Props> {
  const source = "/proc/stat";
  const first = await readText(source);
  if (first.kind === "error") return { "process.steal_percent": unknown(source, first.reason) };
  const before = parseProcStat(first.text);
  await new Promise((resolve) => setTimeout(resolve, STEAL_WINDOW_MS));
  const second = await readText(source);
  const after = second.kind === "ok" ? parseProcStat(second.text) : undefined;
  const props: Props = {};
  const sinceBoot = before === undefined ? undefined : stealPercent({ total: 0, steal: 0 }, before);
  props["process.steal_percent_since_boot"] = sinceBoot === undefined
    ? unknown(source, "no aggregate cpu line in /proc/stat")
    : known(sinceBoot, `${source} (since boot)`);
  const recent = before === undefined || after === undefined
    ? undefined
    : stealPercent(before, after);
  props["process.steal_percent"] = recent === undefined
    ? unknown(source, "no CPU time passed between two samples")
    : known(recent, `${source} (over ${STEAL_WINDOW_MS} ms)`);
  return props;
}

async function userName(uid: number | null): Promise<Property> {
  if (uid === null) return unknown("syscall:getuid", "not available on this platform");
  const r = await readText("/etc/passwd");
  if (r.kind === "error") return unknown("/etc/passwd", r.reason);
  const line = r.text.split("\n").find((l) => l.split(":")[2] === String(uid));
  return line === undefined
    ? unknown("/etc/passwd", `no passwd entry for uid ${uid} (directory service user?)`)
    : known(line.split(":")[0]!, "/etc/passwd");
}

function statusProps(status: Map<string, string>, source: string): Props {
  const props: Props = {};
  const get = (key: string, path: string, parse: (v: string) => Json | undefined) => {
    const v = status.get(key);
    props[path] = v === undefined
      ? unknown(source, `no ${key} line`)
      : parsedProperty(v, source, parse);
  };
  get("Mems_allowed_list", "process.mems_allowed", parseCpuList);
  get(
    "Seccomp",
    "process.seccomp",
    (v) => ({ "0": "disabled", "1": "strict", "2": "filter" } as Record<string, string>)[v],
  );
  get("NoNewPrivs", "process.no_new_privs", (v) => v === "1");
  get(
    "CapEff",
    "process.capabilities",
    (v) => /^[0-9a-f]+$/i.test(v) ? capabilityNames(v) : undefined,
  );
  get("Speculation_Store_Bypass", "process.speculation_store_bypass", (v) => v);
  return props;
}

/**
 * Process properties (`process.*`), including the cgroup limits.
 *
 * @example
 * ```ts
 * (await collectProcess())["process.affinity"]; // known([0, 1], "syscall:sched_getaffinity")
 * ```
 */
export async function collectProcess(): Promise<Props> {
  const [status, stat, procCgroup, mountinfo, slack, oom, steal, user] = await Promise.all([
    readText("/proc/self/status"),
    readText("/proc/self/stat"),
    readText("/proc/self/cgroup", { missing: "the kernel has no cgroup support" }),
    readText("/proc/self/mountinfo"),
    readText("/proc/self/timerslack_ns"),
    readText("/proc/self/oom_score_adj"),
    stealProps(),
    userName(Deno.uid()),
  ]);
  const props: Props = { ...steal };
  props["process.pid"] = known(Deno.pid, "syscall:getpid");
  props["process.uid"] = Deno.uid() === null
    ? unknown("syscall:getuid", "not available")
    : known(Deno.uid()!, "syscall:getuid");
  props["process.user"] = user;
  props["process.cwd"] = known(Deno.cwd(), "syscall:getcwd");
  props["process.timerslack_ns"] = slack.kind === "ok"
    ? parsedProperty(slack.text, "/proc/self/timerslack_ns", (t) => Number(t.trim()))
    : unknown("/proc/self/timerslack_ns", slack.reason);
  props["process.oom_score_adj"] = oom.kind === "ok"
    ? known(Number(oom.text.trim()), "/proc/self/oom_score_adj")
    : unknown("/proc/self/oom_score_adj", oom.reason);

  const parsedStatus = status.kind === "ok" ? parseStatus(status.text) : undefined;
  if (parsedStatus !== undefined) {
    Object.assign(props, statusProps(parsedStatus, "/proc/self/status"));
  } else {props["process.capabilities"] = unknown(
      "/proc/self/status",
      (status as { reason: string }).reason,
    );}

  const parsedStat = stat.kind === "ok" ? parseStat(stat.text) : undefined;
  for (const key of ["ppid", "nice", "rt_priority"] as const) {
    props[`process.${key}`] = parsedStat === undefined
      ? unknown("/proc/self/stat", stat.kind === "error" ? stat.reason : "unexpected format")
      : known(parsedStat[key], "/proc/self/stat");
  }
  props["process.sched_policy"] = parsedStat === undefined
    ? unknown("/proc/self/stat", "unreadable")
    : known(parsedStat.policy, "/proc/self/stat");

  const affinity = nativeAffinity();
  if (affinity.kind === "ok") {
    props["process.affinity"] = known(affinity.value, "syscall:sched_getaffinity");
  } else {
    // The kernel shows the same mask in status; the reason says why the syscall path failed.
    const list = parsedStatus?.get("Cpus_allowed_list");
    const cpus = list === undefined ? undefined : parseCpuList(list);
    props["process.affinity"] = cpus === undefined
      ? unknown("syscall:sched_getaffinity", affinity.reason)
      : known(cpus, "/proc/self/status:Cpus_allowed_list");
  }

  if (procCgroup.kind === "ok" && mountinfo.kind === "ok") {
    Object.assign(props, await cgroupProperties(procCgroup.text, mountinfo.text));
  } else {
    props["process.cgroup.cpu_max"] = unknown(
      "/proc/self/cgroup",
      procCgroup.kind === "error" ? procCgroup.reason : (mountinfo as { reason: string }).reason,
    );
  }
  props["process.effective_cpus"] = effectiveCpus(props);
  return props;
}

/**
 * The CPUs this process can use at once: the smallest of its affinity, its
 * cpuset and its CPU quota.
 *
 * @example
 * ```ts
 * effectiveCpus({ "process.affinity": known([0, 1, 2, 3], "x"), "process.cgroup.cpu_max": known("150000 100000", "y") });
 * // known(1.5, "min(affinity, cpuset, cpu.max)")
 * ```
 */
export function effectiveCpus(props: Props): Property {
  const affinity = props["process.affinity"];
  if (affinity?.status !== "ok" || !Array.isArray(affinity.value)) {
    return unknown("process.affinity", "the affinity of this process is unknown");
  }
  let cpus = affinity.value.length;
  const cpuset = props["process.cgroup.cpuset_cpus_effective"];
  if (cpuset?.status === "ok" && Array.isArray(cpuset.value) && cpuset.value.length > 0) {
    cpus = Math.min(cpus, cpuset.value.length);
  }
  const max = props["process.cgroup.cpu_max"];
  if (max?.status === "ok" && typeof max.value === "string") {
    cpus = Math.min(cpus, cpuMaxCpus(max.value) ?? Infinity);
  }
  return known(cpus, "min(affinity, cpuset, cpu.max)");
}
