/**
 * sysctls that move benchmark results: ASLR, perf events, NUMA balancing,
 * watchdogs, scheduler, VM and a few network and file limits; every
 * `kernel.sched_*` the kernel has; and the scheduler tunables that moved to
 * debugfs (/sys/kernel/debug/sched) in 5.13.
 *
 * @module
 */
import { listDir, parseSysctl, type Props, readAll } from "./_io.ts";

/** sysctls recorded on every host (missing ones are unknown with the reason). */
export const SYSCTLS = [
  "kernel.randomize_va_space",
  "kernel.perf_event_paranoid",
  "kernel.perf_event_max_sample_rate",
  "kernel.perf_cpu_time_max_percent",
  "kernel.perf_event_mlock_kb",
  "kernel.kptr_restrict",
  "kernel.numa_balancing",
  "kernel.nmi_watchdog",
  "kernel.watchdog",
  "kernel.soft_watchdog",
  "kernel.watchdog_thresh",
  "kernel.timer_migration",
  "kernel.pid_max",
  "kernel.threads-max",
  "kernel.yama.ptrace_scope",
  "kernel.unprivileged_bpf_disabled",
  "kernel.io_uring_disabled",
  "kernel.split_lock_mitigate",
  "kernel.hung_task_timeout_secs",
  "vm.swappiness",
  "vm.overcommit_memory",
  "vm.overcommit_ratio",
  "vm.zone_reclaim_mode",
  "vm.nr_hugepages",
  "vm.nr_overcommit_hugepages",
  "vm.dirty_ratio",
  "vm.dirty_background_ratio",
  "vm.dirty_expire_centisecs",
  "vm.dirty_writeback_centisecs",
  "vm.min_free_kbytes",
  "vm.max_map_count",
  "vm.stat_interval",
  "vm.vfs_cache_pressure",
  "vm.compaction_proactiveness",
  "vm.watermark_scale_factor",
  "vm.page-cluster",
  "vm.numa_stat",
  "fs.file-max",
  "fs.nr_open",
  "fs.aio-max-nr",
  "net.core.somaxconn",
  "net.core.rmem_max",
  "net.core.wmem_max",
  "net.core.busy_poll",
  "net.core.busy_read",
  "net.core.netdev_max_backlog",
  "net.core.default_qdisc",
  "net.ipv4.tcp_congestion_control",
  "net.ipv4.tcp_rmem",
  "net.ipv4.tcp_wmem",
] as const;

/** Scheduler tunables in debugfs (5.13+). */
const DEBUG_SCHED = [
  "base_slice_ns",
  "migration_cost_ns",
  "nr_migrate",
  "latency_ns",
  "min_granularity_ns",
  "wakeup_granularity_ns",
  "tunable_scaling",
] as const;

/**
 * The /proc/sys file of a sysctl name.
 *
 * @example
 * ```ts
 * sysctlFile("vm.swappiness"); // "/proc/sys/vm/swappiness"
 * ```
 */
export function sysctlFile(name: string): string {
  return `/proc/sys/${name.replaceAll(".", "/")}`;
}

/**
 * sysctl properties (`sysctl.<name>`) and debugfs scheduler tunables (`sched.<name>`).
 *
 * @example
 * ```ts
 * (await collectSysctl())["sysctl.kernel.randomize_va_space"]; // known(2, …)
 * ```
 */
export async function collectSysctl(): Promise<Props> {
  const kernelDir = await listDir("/proc/sys/kernel");
  const sched = kernelDir.kind === "ok"
    ? kernelDir.names.filter((n) => n.startsWith("sched_")).map((n) => `kernel.${n}`)
    : [];
  const names = [...new Set([...SYSCTLS, ...sched])];
  const [sysctls, debug] = await Promise.all([
    readAll(
      Object.fromEntries(names.map((n) => [`sysctl.${n}`, [sysctlFile(n), parseSysctl]])),
      {
        missing: "this kernel has no such sysctl (feature not built in, or another kernel version)",
      },
    ),
    readAll(
      Object.fromEntries(
        DEBUG_SCHED.map((n) => [`sched.${n}`, [`/sys/kernel/debug/sched/${n}`, parseSysctl]]),
      ),
      { missing: "debugfs is not mounted at /sys/kernel/debug, or this kernel lacks the tunable" },
    ),
  ]);
  return { ...sysctls, ...debug };
}
