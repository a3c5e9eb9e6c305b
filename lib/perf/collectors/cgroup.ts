/**
 * The cgroup limits that apply to this process, for cgroup v2, v1 and the
 * hybrid layout. A limit set on any ancestor applies too, so each limit is
 * the tightest one from the process's cgroup up to the hierarchy root.
 *
 * @module
 */
import { type Json, known, type Property, unknown } from "../schema.ts";
import { parseCpuList, type Props, readText } from "./_io.ts";

/** One line of /proc/self/cgroup. */
export interface CgroupEntry {
  readonly hierarchy: number;
  readonly controllers: readonly string[];
  readonly path: string;
}

/**
 * Parses /proc/self/cgroup.
 *
 * @example
 * ```ts
 * parseProcCgroup("0::/user.slice\n4:memory:/a\n");
 * // [{ hierarchy: 0, controllers: [], path: "/user.slice" }, { hierarchy: 4, controllers: ["memory"], path: "/a" }]
 * ```
 */
export function parseProcCgroup(text: string): CgroupEntry[] {
  const out: CgroupEntry[] = [];
  for (const line of text.split("\n")) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!match) continue;
    out.push({
      hierarchy: Number(match[1]),
      controllers: match[2] === "" ? [] : match[2]!.split(","),
      path: match[3]!,
    });
  }
  return out;
}

/** A cgroup mount from /proc/self/mountinfo. */
export interface CgroupMount {
  readonly root: string;
  readonly mountPoint: string;
  readonly version: 1 | 2;
  readonly options: readonly string[];
}

/**
 * The cgroup mounts of /proc/self/mountinfo.
 *
 * @example
 * ```ts
 * parseCgroupMounts("30 25 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw\n")[0]!.version; // 2
 * ```
 */
export function parseCgroupMounts(text: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of text.split("\n")) {
    const [left, right] = line.split(" - ");
    if (left === undefined || right === undefined) continue;
    const fields = left.split(" ");
    const [fstype, , superOptions] = right.split(" ");
    if (fstype !== "cgroup" && fstype !== "cgroup2") continue;
    out.push({
      root: unescapeMount(fields[3] ?? "/"),
      mountPoint: unescapeMount(fields[4] ?? ""),
      version: fstype === "cgroup2" ? 2 : 1,
      options: (superOptions ?? "").split(","),
    });
  }
  return out;
}

function unescapeMount(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Where a controller's files for this process live. */
export interface ControllerDir {
  readonly version: 1 | 2;
  /** The process's cgroup directory. */
  readonly dir: string;
  /** The mount point: ancestors are walked up to here. */
  readonly top: string;
  /** The cgroup path as /proc/self/cgroup shows it. */
  readonly path: string;
}

/**
 * The directory of a controller for this process: the v1 hierarchy that
 * has it, else the v2 one.
 *
 * @example
 * ```ts
 * controllerDir("cpu", entries, mounts); // { version: 2, dir: "/sys/fs/cgroup/user.slice", … }
 * ```
 */
export function controllerDir(
  controller: string,
  entries: readonly CgroupEntry[],
  mounts: readonly CgroupMount[],
): ControllerDir | undefined {
  const v1 = entries.find((e) => e.controllers.includes(controller));
  if (v1 !== undefined) {
    const mount = mounts.find((m) => m.version === 1 && m.options.includes(controller));
    if (mount !== undefined) return place(1, v1.path, mount);
  }
  const v2 = entries.find((e) => e.hierarchy === 0 && e.controllers.length === 0);
  const mount = mounts.find((m) => m.version === 2);
  if (v2 === undefined || mount === undefined) return undefined;
  return place(2, v2.path, mount);
}

function place(version: 1 | 2, path: string, mount: CgroupMount): ControllerDir {
  // In a cgroup namespace or a bind-mounted subtree the mount root is a prefix of the path.
  const relative = mount.root !== "/" && path.startsWith(mount.root)
    ? path.slice(mount.root.length)
    : path;
  const dir = `${mount.mountPoint}${relative === "/" ? "" : relative}`;
  return { version, dir, top: mount.mountPoint, path };
}

/** Directories from `dir` up to `top`, innermost first. */
export function ancestors(dir: string, top: string): string[] {
  const out = [dir];
  let current = dir;
  while (current.length > top.length && current.startsWith(top)) {
    current = current.slice(0, current.lastIndexOf("/"));
    if (current.length < top.length) break;
    out.push(current);
  }
  return out;
}

/**
 * A v1 CFS quota and period as cgroup v2 `cpu.max` text.
 *
 * @example
 * ```ts
 * cfsToCpuMax("-1", "100000"); // "max 100000"
 * cfsToCpuMax("50000", "100000"); // "50000 100000"
 * ```
 */
export function cfsToCpuMax(quota: string, period: string): string {
  const q = quota.trim();
  return `${q === "-1" ? "max" : q} ${period.trim()}`;
}

/**
 * CPUs granted by `cpu.max` text (`Infinity` for "max").
 *
 * @example
 * ```ts
 * cpuMaxCpus("150000 100000"); // 1.5
 * ```
 */
export function cpuMaxCpus(text: string): number | undefined {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === "max") return Infinity;
  const q = Number(quota);
  const p = Number(period);
  return Number.isFinite(q) && Number.isFinite(p) && p > 0 ? q / p : undefined;
}

/** v1 memory limits at or above this mean "no limit" (PAGE_COUNTER_MAX rounded to pages). */
const V1_UNLIMITED = 2 ** 62;

/**
 * A memory limit as a number of bytes or "max".
 *
 * @example
 * ```ts
 * parseMemoryLimit("9223372036854771712"); // "max"
 * ```
 */
export function parseMemoryLimit(text: string): number | "max" | undefined {
  const t = text.trim();
  if (t === "max") return "max";
  if (!/^\d+$/.test(t)) return undefined;
  const n = Number(t);
  return n >= V1_UNLIMITED ? "max" : n;
}

/** The tightest value over the ancestors, with the file it came from. */
async function tightest(
  dirs: readonly string[],
  file: string,
  parse: (text: string) => Json | undefined,
  size: (value: Json) => number,
): Promise<Property> {
  const reads = await Promise.all(
    dirs.map(async (d) => ({ path: `${d}/${file}`, r: await readText(`${d}/${file}`) })),
  );
  let best: { value: Json; path: string } | undefined;
  for (const { path, r } of reads) {
    if (r.kind !== "ok") continue;
    const value = parse(r.text);
    if (value === undefined) continue;
    if (best === undefined || size(value) < size(best.value)) best = { value, path };
  }
  const first = reads[0]!;
  if (best === undefined) {
    return unknown(
      first.path,
      first.r.kind === "error"
        ? `${first.r.reason} (controller not enabled for this cgroup?)`
        : "unexpected content",
    );
  }
  return known(best.value, best.path);
}

const memorySize = (v: Json) => (v === "max" ? Infinity : Number(v));

/**
 * cgroup properties (`process.cgroup.*`) from the texts of /proc/self/cgroup
 * and /proc/self/mountinfo.
 *
 * @example
 * ```ts
 * const props = await cgroupProperties(procCgroupText, mountinfoText);
 * ```
 */
export async function cgroupProperties(procCgroup: string, mountinfo: string): Promise<Props> {
  const entries = parseProcCgroup(procCgroup);
  const mounts = parseCgroupMounts(mountinfo);
  const hasV1 = entries.some((e) => e.controllers.length > 0) &&
    mounts.some((m) => m.version === 1);
  const hasV2 = mounts.some((m) => m.version === 2);
  const props: Props = {
    "process.cgroup.version": known(
      hasV1 && hasV2 ? "hybrid" : hasV1 ? "v1" : hasV2 ? "v2" : "none",
      "/proc/self/mountinfo",
    ),
  };
  const none = (path: string, controller: string) =>
    props[path] = unknown(
      "/proc/self/cgroup",
      `no cgroup hierarchy has the ${controller} controller`,
    );

  const cpu = controllerDir("cpu", entries, mounts);
  if (cpu === undefined) none("process.cgroup.cpu_max", "cpu");
  else {
    props["process.cgroup.path"] = known(cpu.path, "/proc/self/cgroup");
    const dirs = ancestors(cpu.dir, cpu.top);
    if (cpu.version === 2) {
      props["process.cgroup.cpu_max"] = await tightest(
        dirs,
        "cpu.max",
        (t) => t.trim(),
        (v) => cpuMaxCpus(String(v)) ?? Infinity,
      );
      props["process.cgroup.cpu_weight"] = await tightest([cpu.dir], "cpu.weight", numeric, Number);
    } else {
      const pairs = await Promise.all(dirs.map(async (d) => {
        const [q, p] = await Promise.all([
          readText(`${d}/cpu.cfs_quota_us`),
          readText(`${d}/cpu.cfs_period_us`),
        ]);
        return q.kind === "ok" && p.kind === "ok"
          ? { d, max: cfsToCpuMax(q.text, p.text) }
          : undefined;
      }));
      const found = pairs.filter((x) => x !== undefined);
      found.sort((a, b) => (cpuMaxCpus(a.max) ?? Infinity) - (cpuMaxCpus(b.max) ?? Infinity));
      props["process.cgroup.cpu_max"] = found[0] === undefined
        ? unknown(
          `${cpu.dir}/cpu.cfs_quota_us`,
          "no CFS bandwidth files (CONFIG_CFS_BANDWIDTH off?)",
        )
        : known(found[0].max, `${found[0].d}/cpu.cfs_quota_us`);
      props["process.cgroup.cpu_shares"] = await tightest([cpu.dir], "cpu.shares", numeric, Number);
    }
  }

  const cpuset = controllerDir("cpuset", entries, mounts);
  if (cpuset === undefined) none("process.cgroup.cpuset_cpus_effective", "cpuset");
  else {
    const [cpus, mems] = cpuset.version === 2
      ? ["cpuset.cpus.effective", "cpuset.mems.effective"]
      : ["cpuset.effective_cpus", "cpuset.effective_mems"];
    props["process.cgroup.cpuset_cpus_effective"] = await tightest(
      [cpuset.dir],
      cpus,
      parseCpuList,
      () => 0,
    );
    props["process.cgroup.cpuset_mems_effective"] = await tightest(
      [cpuset.dir],
      mems,
      parseCpuList,
      () => 0,
    );
  }

  const memory = controllerDir("memory", entries, mounts);
  if (memory === undefined) none("process.cgroup.memory_max", "memory");
  else {
    const dirs = ancestors(memory.dir, memory.top);
    const v2 = memory.version === 2;
    props["process.cgroup.memory_max"] = await tightest(
      dirs,
      v2 ? "memory.max" : "memory.limit_in_bytes",
      parseMemoryLimit,
      memorySize,
    );
    props["process.cgroup.memory_swap_max"] = await tightest(
      dirs,
      v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes",
      parseMemoryLimit,
      memorySize,
    );
    if (v2) {
      props["process.cgroup.memory_high"] = await tightest(
        dirs,
        "memory.high",
        parseMemoryLimit,
        memorySize,
      );
    }
    props["process.cgroup.memory_current_bytes"] = await tightest(
      [memory.dir],
      v2 ? "memory.current" : "memory.usage_in_bytes",
      numeric,
      Number,
    );
  }

  const pids = controllerDir("pids", entries, mounts);
  if (pids !== undefined) {
    props["process.cgroup.pids_max"] = await tightest(
      ancestors(pids.dir, pids.top),
      "pids.max",
      parseMemoryLimit,
      memorySize,
    );
  }
  return props;
}

function numeric(text: string): number | undefined {
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : undefined;
}
