/**
 * The comparison rule table of `reliab perf diff`: for each property path
 * pattern, how two values are compared (exact, tolerance, set, version,
 * ignore), how much a change matters, which workloads it affects and what to
 * do about it.
 *
 * Patterns are globs over dotted paths: `*` matches within one segment, `**`
 * matches across segments, `{a,b}` matches either (`frequency.**governor` matches both
 * `frequency.governor` and `frequency.cpu0.governor`). The first matching rule
 * wins, so specific rules come before general ones; `DEFAULT_RULE` catches
 * the rest. Globs rather than exact paths because collectors gain and rename
 * properties over time, and a slightly different name should still get a
 * sensible rule instead of the default.
 *
 * @module
 */
import type { Json, Snapshot } from "./schema.ts";

/** Severities, most severe first. */
export const SEVERITIES = ["critical", "major", "minor", "info"] as const;

/** How much a difference matters. */
export type Severity = typeof SEVERITIES[number];

/** How a rule compares two values. */
export type RuleKind = "exact" | "tolerance" | "set" | "version" | "ignore";

/** What a severity function sees about one change. */
export interface Change {
  /** Baseline value after the rule's `normalize` (null when unset and `absentIsValue`). */
  readonly baseline: Json;
  /** Current value after `normalize`. */
  readonly current: Json;
  /** Both snapshots, for rules that depend on other properties (NUMA nodes). */
  readonly snapshots: { readonly baseline: Snapshot; readonly current: Snapshot };
  /** Tolerance rules: |change| divided by the tolerance (above 1 means outside). */
  readonly excess?: number;
  /** Set rules: elements only in the current value. */
  readonly added?: readonly Json[];
  /** Set rules: elements only in the baseline value. */
  readonly removed?: readonly Json[];
}

/** A fixed severity, or one computed from the change (direction matters). */
export type SeverityOf = Severity | ((change: Change) => Severity);

interface RuleCommon {
  /** Glob over the dotted path. */
  readonly pattern: string;
  /** The kind of workload a change affects ("CPU-bound", "multithreaded", "all", …). */
  readonly affects: string;
  /** One line: why a change of this property matters. */
  readonly why: string;
  /** One line: what to do. */
  readonly advice: string;
  /** An absent property means "not set" (environment variables), not "not recorded". */
  readonly absentIsValue?: boolean;
  /** Maps a raw value to the one compared (e.g. `always [madvise] never` → `madvise`). */
  readonly normalize?: (value: Json) => Json;
}

/** Values must be equal. */
export interface ExactRule extends RuleCommon {
  readonly kind: "exact";
  readonly severity: SeverityOf;
}

/**
 * Numbers (or calibration measurements) may differ by up to `relative`
 * (a fraction of the baseline) or `absolute`, whichever is looser. For
 * measurements the relative tolerance widens by `cvFactor` times the sum of
 * both coefficients of variation, so noise measured in the runs themselves
 * does not flag.
 */
export interface ToleranceRule extends RuleCommon {
  readonly kind: "tolerance";
  readonly relative?: number;
  readonly absolute?: number;
  readonly cvFactor?: number;
  readonly severity: SeverityOf;
}

/** Arrays compared as sets; strings are split on whitespace first when `split`. */
export interface SetRule extends RuleCommon {
  readonly kind: "set";
  readonly split?: boolean;
  /** Severity when elements disappeared. */
  readonly removed: SeverityOf;
  /** Severity when elements appeared. */
  readonly added: SeverityOf;
}

/**
 * Versions compared in version order. A change at or above `significant`
 * (the major number, or major.minor) gets `severity`; smaller changes and
 * different builds of one version get `otherwise`.
 */
export interface VersionRule extends RuleCommon {
  readonly kind: "version";
  readonly significant: "major" | "minor";
  readonly severity: Severity;
  readonly otherwise: Severity;
}

/** Volatile or identifying values: a change is info at most. */
export interface IgnoreRule extends RuleCommon {
  readonly kind: "ignore";
}

/** One row of the rule table. */
export type Rule = ExactRule | ToleranceRule | SetRule | VersionRule | IgnoreRule;

// ---------------------------------------------------------------------------
// Value helpers used by the table.

/**
 * A number from a value: numbers, numeric strings, and "max"/"unlimited"
 * (infinite). Anything else is undefined.
 *
 * @example
 * ```ts
 * numberOf("unlimited"); // Infinity
 * numberOf("1024"); // 1024
 * ```
 */
export function numberOf(value: Json): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value !== "string") return undefined;
  const text = value.trim().toLowerCase();
  if (text === "max" || text === "unlimited" || text === "infinity") return Infinity;
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  return undefined;
}

/**
 * The selected entry of a sysfs choice list (`always [madvise] never` →
 * `madvise`); other values unchanged. Collectors may store either form.
 *
 * @example
 * ```ts
 * selected("always [madvise] never"); // "madvise"
 * ```
 */
export function selected(value: Json): Json {
  if (typeof value !== "string") return value;
  const match = /\[([^\]]+)\]/.exec(value);
  return match ? match[1]! : value.trim();
}

/** CPUs granted by a cgroup v2 `cpu.max` ("max 100000", "50000 100000") or a plain number. */
function cpusOf(value: Json): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value !== "string") return undefined;
  const [quota, period] = value.trim().split(/\s+/);
  if (quota === "max") return Infinity;
  const q = Number(quota);
  const p = period === undefined ? NaN : Number(period);
  return Number.isFinite(q) && Number.isFinite(p) && p > 0 ? q / p : numberOf(value);
}

/** Severity by direction: `lower` when the current value is smaller, else `higher`. */
function byDirection(lower: Severity, higher: Severity, of = numberOf) {
  return (change: Change): Severity => {
    const b = of(change.baseline);
    const c = of(change.current);
    if (b === undefined || c === undefined) return lower; // unset or unparsable: assume the worse
    return c < b ? lower : higher;
  };
}

const SIMD_FLAG =
  /^(avx|sse|ssse|fma|f16c|aes|vaes|sha|amx|bmi|adx|pclmul|vpclmul|gfni|popcnt|movbe|lzcnt|abm)/;

/** Lost SIMD or crypto flags change which code paths compute libraries take. */
function flagsRemoved(change: Change): Severity {
  const lost = (change.removed ?? []).some((f) => typeof f === "string" && SIMD_FLAG.test(f));
  return lost ? "critical" : "major";
}

/** Governors that clock up eagerly versus everything else. */
function governorChange(change: Change): Severity {
  const fixed = ["performance", "userspace"];
  const b = String(change.baseline);
  const c = String(change.current);
  return fixed.includes(b) || fixed.includes(c) ? "major" : "minor";
}

/** `always` THP changes page sizes for every process; madvise vs never only for opt-in ones. */
function thpChange(change: Change): Severity {
  return change.baseline === "always" || change.current === "always" ? "major" : "minor";
}

/** Slow clock sources make every timestamp a syscall or an MMIO read. */
function clocksourceChange(change: Change): Severity {
  const slow = ["hpet", "acpi_pm", "jiffies", "pit"];
  return slow.includes(String(change.baseline)) || slow.includes(String(change.current))
    ? "major"
    : "minor";
}

/** NUMA balancing only matters with more than one node. */
function numaBalancingChange(change: Change): Severity {
  const nodes = (s: Snapshot) => {
    const p = s.properties["numa.nodes"];
    if (p?.status !== "ok") return 1;
    return Array.isArray(p.value) ? p.value.length : numberOf(p.value as Json) ?? 1;
  };
  const { baseline, current } = change.snapshots;
  return nodes(baseline) > 1 || nodes(current) > 1 ? "major" : "minor";
}

/** Kernel command-line options that change performance (others are boot plumbing). */
const CMDLINE_PERF =
  /^(isolcpus|nohz|nohz_full|rcu_nocbs|mitigations|nosmt|nospectre|spectre|pti|nopti|retbleed|mds|tsx|l1tf|idle|intel_idle|processor\.max_cstate|intel_pstate|amd_pstate|transparent_hugepage|hugepages|hugepagesz|default_hugepagesz|numa_balancing|preempt|threadirqs|irqaffinity|clocksource|tsc|iommu|intel_iommu|amd_iommu|skew_tick|nowatchdog|nmi_watchdog|psi|audit|init_on_alloc|init_on_free|cpufreq|maxcpus|nr_cpus|mem)(=|$)/;

function cmdlineChange(change: Change): Severity {
  const all = [...(change.added ?? []), ...(change.removed ?? [])];
  return all.some((t) => typeof t === "string" && CMDLINE_PERF.test(t)) ? "major" : "minor";
}

// ---------------------------------------------------------------------------
// The table. Order matters: first match wins.

const VOLATILE = "changes from run to run on one host; shown, never gated on";
const VOLATILE_ADVICE = "nothing to do";

function ignore(pattern: string, why = VOLATILE, affects = "none"): IgnoreRule {
  return { pattern, kind: "ignore", affects, why, advice: VOLATILE_ADVICE };
}

const SAME_CPU_ADVICE =
  "compare results only on the same CPU model, or record a new baseline on this CPU";

/** The rule table, most specific first. */
export const RULES: readonly Rule[] = [
  // Identity and volatile values first, so nothing below gates on them.
  ignore("host.**", "identifies the machine, not its performance"),
  ignore("pressure.**"),
  ignore("**load*"),
  ignore("**uptime*"),
  ignore("**boot_id"),
  ignore("**.created"),
  ignore("**timestamp*"),
  ignore("**interrupts*"),
  ignore("**context_switches*"),
  ignore("cpu.**mhz*"),
  ignore("cpu.**bogomips*"),
  ignore("frequency.**cur*"),
  ignore("memory.**free*"),
  ignore("memory.**available*"),
  ignore("memory.**cached*"),
  ignore("memory.**buffers*"),
  ignore("memory.**dirty*"),
  ignore("memory.**used*"),
  ignore("hugepages.**free*"),
  ignore("hugepages.**rsvd*"),
  ignore("hugepages.**surp*"),
  ignore("ksm.**pages*"),
  ignore("numa.**free*"),
  ignore("process.pid"),
  ignore("process.ppid"),
  ignore("process.cgroup.**path*", "the cgroup name differs per session; its limits are compared"),
  ignore("process.cgroup.**current*"),
  ignore("process.cgroup.**usage*"),
  ignore("process.cgroup.**stat*"),
  ignore("process.cgroup.**peak*"),
  ignore("process.cgroup.**events*"),
  {
    pattern: "process.steal*",
    kind: "tolerance",
    absolute: 10,
    severity: "minor",
    affects: "CPU-bound",
    why: "the hypervisor ran other guests on this VM's CPUs (stolen time)",
    advice: "use dedicated vCPUs or a quieter host; steal varies, so re-check before a run",
  },

  // Calibration: noisy by nature, compared with a tolerance widened by cv.
  {
    pattern: "calibration.**",
    kind: "tolerance",
    relative: 0.15,
    cvFactor: 3,
    severity: (c) => (c.excess ?? 0) > 2 ? "major" : "minor",
    affects: "all",
    why: "a measured speed of this host differs beyond its run-to-run noise",
    advice: "find the configuration difference behind it, or re-run with --calibrate to confirm",
  },

  // CPU identity.
  ...["cpu.vendor*", "cpu.model_name*", "cpu.family*", "cpu.model"].map((pattern): Rule => ({
    pattern,
    kind: "exact",
    severity: "critical",
    affects: "all",
    why: "a different CPU has different cores, caches and instruction timings",
    advice: SAME_CPU_ADVICE,
  })),
  {
    pattern: "cpu.stepping*",
    kind: "exact",
    severity: "major",
    affects: "all",
    why: "a different stepping can change errata, mitigations and timings",
    advice: SAME_CPU_ADVICE,
  },
  {
    pattern: "cpu.**microcode*",
    kind: "exact",
    severity: "major",
    affects: "syscall-heavy",
    why: "microcode updates change mitigations and some instruction costs",
    advice: "update the BIOS or the microcode package to the baseline's revision",
  },
  {
    pattern: "cpu.**flags*",
    kind: "set",
    removed: flagsRemoved,
    added: "minor",
    affects: "CPU-bound",
    why: "libraries pick code paths (SIMD, crypto) by CPU flags",
    advice: "run on a CPU with the same features, or pin the code path (e.g. a fixed -march)",
  },
  {
    pattern: "cpu.count.online*",
    kind: "exact",
    severity: byDirection("critical", "major"),
    affects: "multithreaded",
    why: "the number of online CPUs sets how many threads run in parallel",
    advice:
      "bring the same CPUs online (/sys/devices/system/cpu/cpuN/online) or size threads to match",
  },
  {
    pattern: "**tsc*{khz,hz,freq}*",
    kind: "tolerance",
    relative: 0.01,
    severity: "minor",
    affects: "latency-sensitive",
    why: "the TSC frequency is calibrated at boot and converts cycles to time",
    advice: "nothing to do unless timings are reported in cycles",
  },
  {
    pattern: "**tsc*",
    kind: "exact",
    severity: "major",
    affects: "latency-sensitive",
    why: "without an invariant, reliable TSC, timestamps fall back to slower clocks",
    advice: "run on a host whose TSC is invariant and used as the clock source",
  },
  {
    pattern: "cpu.**",
    kind: "exact",
    severity: "major",
    affects: "all",
    why: "a CPU property differs",
    advice: SAME_CPU_ADVICE,
  },

  // Frequency and boost.
  {
    pattern: "frequency.**governor*",
    kind: "exact",
    severity: governorChange,
    affects: "CPU-bound",
    why: "the governor decides how fast cores clock up under load",
    advice: "set the governor with 'cpupower frequency-set -g performance'",
  },
  {
    pattern: "frequency.**driver*",
    kind: "exact",
    severity: "major",
    affects: "CPU-bound",
    why: "the frequency driver decides which clock speeds and policies are available",
    advice:
      "boot with the baseline's driver (e.g. amd_pstate= / intel_pstate= on the kernel command line)",
  },
  {
    pattern: "frequency.**khz*",
    kind: "tolerance",
    relative: 0.05,
    severity: "major",
    affects: "CPU-bound",
    why: "the frequency range bounds single-thread speed",
    advice: "set the limits with 'cpupower frequency-set -d MIN -u MAX'",
  },
  {
    pattern: "frequency.**",
    kind: "exact",
    severity: "minor",
    affects: "CPU-bound",
    why: "a frequency-scaling setting differs",
    advice: "align it with the baseline under /sys/devices/system/cpu/cpufreq",
  },
  {
    pattern: "boost.**",
    kind: "exact",
    severity: "major",
    affects: "CPU-bound",
    why: "turbo/boost raises clocks above base, depending on load and temperature",
    advice: "set /sys/devices/system/cpu/cpufreq/boost like the baseline",
  },
  {
    pattern: "smt.**",
    kind: "exact",
    severity: "major",
    affects: "multithreaded",
    why: "SMT siblings share a core's execution units and caches",
    advice: "set /sys/devices/system/cpu/smt/control like the baseline (on/off)",
  },
  {
    pattern: "**isolated*",
    kind: "exact",
    severity: "major",
    affects: "latency-sensitive",
    why: "isolated CPUs are kept free of other tasks",
    advice: "boot with the baseline's isolcpus= setting",
  },
  {
    pattern: "**nohz*",
    kind: "exact",
    severity: "major",
    affects: "latency-sensitive",
    why: "nohz_full CPUs skip the scheduler tick",
    advice: "boot with the baseline's nohz_full= setting",
  },
  {
    pattern: "topology.**",
    kind: "exact",
    severity: "major",
    affects: "multithreaded",
    why: "core, socket and thread layout decide how threads share hardware",
    advice: "run on the same topology, or pin threads to comparable CPUs",
  },
  {
    pattern: "cache.**",
    kind: "exact",
    severity: "major",
    affects: "memory-bound",
    why: "cache sizes and sharing decide which working sets fit",
    advice: SAME_CPU_ADVICE,
  },
  {
    pattern: "numa.**",
    kind: "exact",
    severity: "major",
    affects: "memory-bound",
    why: "NUMA layout decides memory latency and bandwidth per thread",
    advice: "run on the same NUMA layout, or bind with 'numactl --cpunodebind --membind'",
  },

  // Memory.
  {
    pattern: "memory.**total*",
    kind: "tolerance",
    relative: 0.02,
    severity: byDirection("major", "minor"),
    affects: "memory-bound",
    why: "less memory means more page-cache eviction and possible swapping",
    advice: "run on a host with at least the baseline's memory",
  },
  {
    pattern: "memory.**swap*",
    kind: "tolerance",
    relative: 0.02,
    severity: "minor",
    affects: "memory-bound",
    why: "swap space decides whether memory pressure swaps or kills",
    advice: "configure swap like the baseline",
  },
  ignore("memory.**"),
  {
    pattern: "hugepages.**",
    kind: "exact",
    severity: "minor",
    affects: "memory-bound",
    why: "reserved huge pages are available to programs that ask for them",
    advice: "reserve the same huge pages (/proc/sys/vm/nr_hugepages)",
  },
  {
    pattern: "thp.enabled*",
    kind: "exact",
    normalize: selected,
    severity: thpChange,
    affects: "memory-bound",
    why: "transparent huge pages change TLB misses and page-fault cost",
    advice: "echo the baseline value to /sys/kernel/mm/transparent_hugepage/enabled",
  },
  {
    pattern: "thp.**",
    kind: "exact",
    normalize: selected,
    severity: "minor",
    affects: "memory-bound",
    why: "THP defragmentation and khugepaged settings change allocation latency",
    advice: "set it like the baseline under /sys/kernel/mm/transparent_hugepage",
  },
  {
    pattern: "ksm.**",
    kind: "exact",
    severity: "minor",
    affects: "memory-bound",
    why: "KSM merges pages in the background, costing CPU and copy-on-write faults",
    advice: "set /sys/kernel/mm/ksm/run like the baseline",
  },

  // Kernel.
  {
    pattern: "kernel.release*",
    kind: "version",
    significant: "minor",
    severity: "major",
    otherwise: "minor",
    affects: "all",
    why: "kernels change the scheduler, memory management and syscall costs",
    advice: "boot the baseline's kernel to reproduce exactly",
  },
  {
    pattern: "kernel.cmdline*",
    kind: "set",
    split: true,
    removed: cmdlineChange,
    added: cmdlineChange,
    affects: "all",
    why: "boot options set isolation, mitigations, idle states and huge pages",
    advice: "boot with the baseline's options (GRUB_CMDLINE_LINUX)",
  },
  {
    pattern: "kernel.**",
    kind: "exact",
    severity: "minor",
    affects: "all",
    why: "the kernel build or configuration differs",
    advice: "boot the baseline's kernel to reproduce exactly",
  },
  {
    pattern: "mitigations.**",
    kind: "exact",
    severity: "major",
    affects: "syscall-heavy",
    why: "CPU vulnerability mitigations add cost to syscalls, context switches and branches",
    advice: "boot with the baseline's mitigations= setting and microcode",
  },

  // sysctl.
  {
    pattern: "sysctl.kernel.randomize_va_space",
    kind: "exact",
    severity: "major",
    affects: "all",
    why: "address-space randomisation changes code and data layout, and so alignment effects",
    advice: "echo the baseline value to /proc/sys/kernel/randomize_va_space",
  },
  {
    pattern: "sysctl.kernel.numa_balancing",
    kind: "exact",
    severity: numaBalancingChange,
    affects: "memory-bound",
    why: "automatic NUMA balancing migrates pages and tasks at run time",
    advice: "echo the baseline value to /proc/sys/kernel/numa_balancing",
  },
  {
    pattern: "sysctl.kernel.perf_event_paranoid",
    kind: "exact",
    severity: "minor",
    affects: "profiling",
    why: "it decides which perf events an unprivileged profiler may open",
    advice: "echo the baseline value to /proc/sys/kernel/perf_event_paranoid",
  },
  {
    pattern: "sysctl.**",
    kind: "exact",
    severity: "minor",
    affects: "all",
    why: "a kernel tunable differs",
    advice: "set it like the baseline with 'sysctl -w'",
  },
  {
    pattern: "clocksource.**current*",
    kind: "exact",
    severity: clocksourceChange,
    affects: "latency-sensitive",
    why: "the clock source sets the cost and precision of every timestamp",
    advice:
      "echo the baseline's clock source to /sys/devices/system/clocksource/clocksource0/current_clocksource",
  },
  {
    pattern: "clocksource.**",
    kind: "exact",
    severity: "info",
    affects: "latency-sensitive",
    why: "the set of available clock sources differs",
    advice: "nothing to do unless the current clock source differs",
  },
  {
    pattern: "virtualization.**hypervisor*",
    kind: "exact",
    severity: "major",
    affects: "all",
    why: "virtualisation adds exits, shared caches and stolen time",
    advice: "compare bare metal with bare metal and VMs with the same hypervisor",
  },
  {
    pattern: "virtualization.**",
    kind: "exact",
    severity: "minor",
    affects: "all",
    why: "the virtualisation or container environment differs",
    advice: "run in the same kind of environment as the baseline",
  },

  // What this process effectively gets.
  {
    pattern: "process.affinity*",
    kind: "set",
    removed: "critical",
    added: "major",
    affects: "multithreaded",
    why: "the CPUs this process may run on bound its parallelism",
    advice: "run with the baseline's CPU set (taskset -c LIST, or the container's cpuset)",
  },
  {
    pattern: "process.cgroup.**cpuset*",
    kind: "set",
    removed: "critical",
    added: "major",
    affects: "multithreaded",
    why: "the cgroup's cpuset bounds the CPUs this process may use",
    advice: "give the cgroup the baseline's cpuset (docker --cpuset-cpus)",
  },
  {
    pattern: "process.cgroup.**cpu_max*",
    kind: "exact",
    severity: byDirection("critical", "major", cpusOf),
    affects: "CPU-bound",
    why: "a CPU quota throttles the process once it uses its share of each period",
    advice: "give the cgroup the baseline's quota (docker --cpus, systemd CPUQuota=)",
  },
  {
    pattern: "process.cgroup.**memory_max*",
    kind: "exact",
    severity: byDirection("major", "minor"),
    affects: "memory-bound",
    why: "a memory limit causes reclaim, swapping or OOM kills before the host runs out",
    advice: "give the cgroup the baseline's limit (docker --memory, systemd MemoryMax=)",
  },
  {
    pattern: "process.cgroup.**",
    kind: "exact",
    severity: "minor",
    affects: "all",
    why: "a cgroup setting of this process differs",
    advice: "run in a cgroup configured like the baseline",
  },
  ...["process.**nice*", "process.**sched*", "process.**policy*", "process.**priority*"].map(
    (pattern): Rule => ({
      pattern,
      kind: "exact",
      severity: "major",
      affects: "latency-sensitive",
      why: "the process's scheduling settings decide who runs first and for how long",
      advice: "run with the baseline's nice value and scheduling policy (chrt, nice)",
    }),
  ),
  {
    pattern: "process.**",
    kind: "exact",
    severity: "minor",
    affects: "all",
    why: "a setting of the process that ran the snapshot differs",
    advice: "run the benchmark the same way as the baseline (user, cgroup, scheduling)",
  },
  {
    pattern: "limits.*.soft",
    kind: "exact",
    severity: byDirection("minor", "info"),
    affects: "I/O",
    why: "a lower resource limit can make a run fail or take another code path",
    advice: "raise it with 'ulimit' (or LimitNOFILE=/LimitSTACK= in systemd) to the baseline value",
  },
  {
    pattern: "limits.**",
    kind: "exact",
    severity: byDirection("minor", "info"),
    affects: "all",
    why: "a hard limit caps how far a run may raise its soft limit",
    advice: "raise the hard limit in /etc/security/limits.conf to the baseline value",
  },

  // Toolchains.
  {
    pattern: "toolchain.**libc*",
    kind: "version",
    significant: "minor",
    severity: "major",
    otherwise: "minor",
    affects: "all",
    why: "libc versions change memcpy, malloc and math routines",
    advice: "build and run against the baseline's libc (a container image pins it)",
  },
  {
    pattern: "toolchain.**",
    kind: "version",
    significant: "major",
    severity: "major",
    otherwise: "minor",
    affects: "CPU-bound",
    why: "compilers change optimisation and code generation between versions",
    advice: "build with the baseline's compiler version",
  },

  // Environment variables: absent means "not set".
  {
    pattern: "env.LD_PRELOAD",
    kind: "exact",
    absentIsValue: true,
    severity: "critical",
    affects: "all",
    why: "a preloaded library can replace malloc, memcpy or whole libraries",
    advice: "unset LD_PRELOAD or set it like the baseline",
  },
  ...[
    "env.LD_*",
    "env.OMP_*",
    "env.GOMP_*",
    "env.KMP_*",
    "env.MKL_*",
    "env.OPENBLAS_*",
    "env.*_NUM_THREADS",
    "env.MALLOC_*",
    "env.GLIBC_TUNABLES",
  ].map((pattern): Rule => ({
    pattern,
    kind: "exact",
    absentIsValue: true,
    severity: "major",
    affects: pattern.includes("MALLOC") || pattern.includes("GLIBC") || pattern.startsWith("env.LD")
      ? "memory-bound"
      : "multithreaded",
    why: "this variable changes thread counts, libraries or allocator behaviour",
    advice: "export the baseline's value (or unset it) before the run",
  })),
  {
    pattern: "env.**",
    kind: "exact",
    absentIsValue: true,
    severity: "minor",
    affects: "all",
    why: "an environment variable that can change behaviour differs",
    advice: "export the baseline's value (or unset it) before the run",
  },

  // Storage and the rest.
  {
    pattern: "storage.**scheduler*",
    kind: "exact",
    normalize: selected,
    severity: "minor",
    affects: "I/O",
    why: "the block I/O scheduler reorders and merges requests",
    advice: "echo the baseline's scheduler to /sys/block/DEV/queue/scheduler",
  },
  {
    pattern: "storage.**",
    kind: "exact",
    severity: "minor",
    affects: "I/O",
    why: "a block-device setting differs",
    advice: "set it like the baseline under /sys/block/DEV/queue",
  },
  {
    pattern: "cpuidle.**",
    kind: "exact",
    severity: "minor",
    affects: "latency-sensitive",
    why: "idle states decide how long cores take to wake up",
    advice: "set the idle driver and states like the baseline (cpupower idle-set)",
  },
];

/** Applies to paths no rule matches. */
export const DEFAULT_RULE: ExactRule = {
  pattern: "**",
  kind: "exact",
  severity: "minor",
  affects: "some workloads",
  why: "this property has no specific rule; a change may matter",
  advice: "check whether the change is intended",
};

const compiled = new Map<string, RegExp>();

/**
 * Whether a glob matches a dotted path: `*` within one segment, `**` across
 * segments, `{a,b}` either alternative.
 *
 * @example
 * ```ts
 * globMatches("limits.*.soft", "limits.nofile.soft"); // true
 * globMatches("frequency.**governor", "frequency.cpu0.governor"); // true
 * ```
 */
export function globMatches(pattern: string, path: string): boolean {
  let regex = compiled.get(pattern);
  if (regex === undefined) {
    const escape = (text: string) => text.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
    const body = pattern.split(/(\*\*|\*|\{[^}]*\})/).map((part) =>
      part === "**"
        ? ".*"
        : part === "*"
        ? "[^.]*"
        : part.startsWith("{")
        ? `(?:${part.slice(1, -1).split(",").map(escape).join("|")})`
        : escape(part)
    ).join("");
    regex = new RegExp(`^${body}$`);
    compiled.set(pattern, regex);
  }
  return regex.test(path);
}

/**
 * The rule for a property path: the first match in `rules`, else `DEFAULT_RULE`.
 *
 * @example
 * ```ts
 * ruleFor("frequency.governor").kind; // "exact"
 * ruleFor("cpu.flags").kind; // "set"
 * ```
 */
export function ruleFor(path: string, rules: readonly Rule[] = RULES): Rule {
  return rules.find((rule) => globMatches(rule.pattern, path)) ?? DEFAULT_RULE;
}
