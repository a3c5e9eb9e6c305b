/**
 * CPU time of the processes in network namespaces, from /proc/PID/stat
 * (user + system time of every thread): how the bench charges the agent and
 * the NF for the bytes they moved.
 *
 * Softirq work (the kernel's part of forwarding, XDP in copy mode) is
 * charged to whichever process was running, so the figure is what the
 * processes themselves cost, plus or minus that.
 *
 * @module
 */
import { runCommand } from "./_command.ts";

/** CPU time of one process, in clock ticks. */
export interface ProcTicks {
  readonly utime: number;
  readonly stime: number;
}

/**
 * Reads utime and stime (fields 14 and 15) from a /proc/PID/stat line. The
 * command name (field 2) may hold spaces and parentheses, so fields are
 * counted from the last ")".
 *
 * @example
 * ```ts
 * parseProcStat("42 (a b) S 1 2 3 4 5 6 7 8 9 10 11 12 ...").utime; // 11
 * ```
 */
export function parseProcStat(text: string): ProcTicks {
  const close = text.lastIndexOf(")");
  const fields = close < 0 ? [] : text.slice(close + 1).trim().split(/\s+/);
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isSafeInteger(utime) || !Number.isSafeInteger(stime)) {
    throw new RangeError(`Cannot read CPU times from "${text.slice(0, 60)}"`);
  }
  return { utime, stime };
}

/**
 * Reads the parent process id (field 4) from a /proc/PID/stat line.
 *
 * @example
 * ```ts
 * parseParentPid("42 (a b) S 1 2 3"); // 1
 * ```
 */
export function parseParentPid(text: string): number {
  const close = text.lastIndexOf(")");
  const ppid = Number(close < 0 ? Number.NaN : text.slice(close + 1).trim().split(/\s+/)[1]);
  if (!Number.isSafeInteger(ppid)) throw new RangeError(`Cannot read the parent from "${text}"`);
  return ppid;
}

/**
 * Reads the start time (field 22, clock ticks after boot) from a
 * /proc/PID/stat line: with the pid, it names one process for good, so a
 * reused pid is never taken for the process noted earlier.
 *
 * @example
 * ```ts
 * parseStartTime(await Deno.readTextFile("/proc/self/stat"));
 * ```
 */
export function parseStartTime(text: string): number {
  const close = text.lastIndexOf(")");
  const start = Number(close < 0 ? Number.NaN : text.slice(close + 1).trim().split(/\s+/)[19]);
  if (!Number.isSafeInteger(start)) {
    throw new RangeError(`Cannot read the start time from "${text}"`);
  }
  return start;
}

/** CPU ticks per process id at one moment. */
export type CpuSnapshot = ReadonlyMap<number, number>;

/**
 * Total CPU ticks of each of `pids` now (a process that exited is skipped).
 *
 * @example
 * ```ts
 * const before = await cpuSnapshot(await namespaceProcesses(["rlhb-n1"]));
 * ```
 */
export async function cpuSnapshot(pids: readonly number[]): Promise<CpuSnapshot> {
  const ticks = new Map<number, number>();
  for (const pid of pids) {
    try {
      const t = parseProcStat(await Deno.readTextFile(`/proc/${pid}/stat`));
      ticks.set(pid, t.utime + t.stime);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return ticks;
}

/**
 * CPU ms spent between two snapshots by the processes of `after` (one born
 * in between counts from zero).
 *
 * @example
 * ```ts
 * const ms = cpuDeltaMs(before, after, 100);
 * ```
 */
export function cpuDeltaMs(
  before: CpuSnapshot,
  after: CpuSnapshot,
  ticksPerSecond: number,
): number {
  let ticks = 0;
  for (const [pid, now] of after) ticks += Math.max(0, now - (before.get(pid) ?? 0));
  return (ticks * 1000) / ticksPerSecond;
}

/**
 * The kernel's clock ticks per second (USER_HZ), from `getconf CLK_TCK`.
 *
 * @example
 * ```ts
 * const hz = await clockTicksPerSecond(); // 100
 * ```
 */
export async function clockTicksPerSecond(): Promise<number> {
  const result = await runCommand("getconf", ["CLK_TCK"]);
  const hz = Number(result.stdout.trim());
  // USER_HZ is 100 on every Linux architecture reliab runs on.
  return result.code === 0 && Number.isInteger(hz) && hz > 0 ? hz : 100;
}
