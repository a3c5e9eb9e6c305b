/**
 * Child processes inside network namespaces (`ip netns exec NS ...`), read
 * line by line as they run: the demo, the bench and the failover tests start
 * agents, NFs and load clients this way and wait for their ready lines.
 *
 * @module
 */
import { ReliabError } from "../errors.ts";
import { runCommand } from "./_command.ts";
import { parseParentPid, parseStartTime } from "./proc_cpu.ts";

/** Which output of a child. */
export type OutputStream = "stdout" | "stderr";

/** Options of `NetnsProcess.waitForLine`. */
export interface WaitOptions {
  readonly timeoutMs: number;
  /** The failed action, first words of the error ("Cannot start the agent on node 1"). */
  readonly action: string;
  readonly hint: string;
  readonly signal?: AbortSignal | undefined;
}

/** Lines kept per stream; older ones are dropped (waiters see every line as it comes). */
const LINES_KEPT_MAX = 10_000;
/** How long output may stay open after the child exited (a grandchild holding the pipe). */
const DRAIN_AFTER_EXIT_MS = 2_000;
const NOISE = /^reliab: building the native core/;
/** `ha load --progress-ms` lines: not errors. */
const PROGRESS = /^progress connected=/;
const KILL_ROUNDS_MAX = 50;

interface Waiter {
  readonly stream: OutputStream;
  readonly match: (line: string) => boolean;
  readonly resolve: (line: string) => void;
  /** The child exited before the line came. */
  readonly reject: (error: unknown) => void;
  /** The matcher threw `error`. */
  readonly fail: (error: unknown) => void;
}

/**
 * One child process started in a network namespace.
 *
 * @example
 * ```ts
 * const nf = new NetnsProcess("rlhd-n1", ["./reliab", "ha", "nf", "--listen", "10.77.0.11:7000"]);
 * await nf.waitForLine("stdout", (l) => l.startsWith("listening"), {
 *   timeoutMs: 10_000, action: "Cannot start the NF", hint: "see its output",
 * });
 * await nf.terminate();
 * ```
 */
export class NetnsProcess {
  readonly netns: string;
  readonly argv: readonly string[];
  readonly pid: number;
  /** Resolves when the child exited and its output was read. */
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  readonly #lines: Record<OutputStream, string[]> = { stdout: [], stderr: [] };
  readonly #readers: ReadableStreamDefaultReader<string>[] = [];
  readonly #waiters = new Set<Waiter>();
  #exit: Deno.CommandStatus | undefined;

  constructor(netns: string, argv: readonly string[]) {
    this.netns = netns;
    this.argv = argv;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command("ip", {
        args: ["netns", "exec", netns, ...argv],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      throw new ReliabError(`Cannot run "ip": not installed`, {
        code: "tool_missing",
        hint: "install it: apt-get install iproute2",
      });
    }
    this.#child = child;
    this.pid = child.pid;
    const drained = Promise.all([this.#pump("stdout"), this.#pump("stderr")]);
    this.status = (async () => {
      const status = await child.status;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, DRAIN_AFTER_EXIT_MS);
      });
      await Promise.race([drained, late]);
      clearTimeout(timer);
      for (const reader of this.#readers) reader.cancel().catch(() => {});
      this.#exit = status;
      for (const waiter of this.#waiters) waiter.reject(undefined);
      this.#waiters.clear();
      return status;
    })();
  }

  async #pump(stream: OutputStream): Promise<void> {
    const reader = this.#child[stream].pipeThrough(new TextDecoderStream()).getReader();
    this.#readers.push(reader);
    let partial = "";
    try {
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        const parts = (partial + r.value).split("\n");
        partial = parts.pop() ?? "";
        for (const line of parts) this.#add(stream, line);
      }
    } catch {
      // Cancelled after exit: what was read is kept.
    }
    if (partial !== "") this.#add(stream, partial);
  }

  #add(stream: OutputStream, line: string): void {
    const lines = this.#lines[stream];
    lines.push(line);
    if (lines.length > LINES_KEPT_MAX) lines.shift();
    for (const waiter of this.#waiters) {
      if (waiter.stream !== stream) continue;
      let matched: boolean;
      try {
        matched = waiter.match(line);
      } catch (error) {
        // A matcher that cannot parse what it waits for fails the wait, not the reading.
        this.#waiters.delete(waiter);
        waiter.fail(error);
        continue;
      }
      if (!matched) continue;
      this.#waiters.delete(waiter);
      waiter.resolve(line);
    }
  }

  /** Whether the child is still running. */
  get running(): boolean {
    return this.#exit === undefined;
  }

  /** Lines read so far from `stream`. */
  lines(stream: OutputStream): readonly string[] {
    return this.#lines[stream];
  }

  /**
   * The child's error for messages: a reliab child's "reliab: error:" line,
   * or the message line of its internal error (not a stack line), else its
   * last meaningful stderr line; "" when there is none.
   */
  lastError(): string {
    const lines = this.#lines.stderr.map((l) => l.trim())
      .filter((l) => l !== "" && !NOISE.test(l) && !PROGRESS.test(l));
    const error = lines.findLast((l) => l.startsWith("reliab: error: "));
    if (error !== undefined) return error.slice("reliab: error: ".length);
    const internal = lines.findLastIndex((l) => l.startsWith("reliab: internal error"));
    if (internal >= 0 && lines[internal + 1] !== undefined) {
      return `internal error: ${lines[internal + 1]}`;
    }
    return lines.at(-1) ?? "";
  }

  /**
   * Waits for a line of `stream` that `match` accepts (lines already read
   * count too). Throws a ReliabError if the child exits first, the time runs
   * out or `signal` aborts.
   */
  waitForLine(
    stream: OutputStream,
    match: (line: string) => boolean,
    options: WaitOptions,
  ): Promise<string> {
    let seen: string | undefined;
    try {
      seen = this.#lines[stream].find(match);
    } catch (error) {
      return Promise.reject(error);
    }
    if (seen !== undefined) return Promise.resolve(seen);
    const { promise, resolve, reject } = Promise.withResolvers<string>();
    const fail = (detail: string, code: string) =>
      new ReliabError(`${options.action}: ${detail}`, { code, hint: options.hint });
    const onAbort = () => reject(interrupted(options.action));
    const timer = setTimeout(
      () => reject(fail(`no ready line after ${options.timeoutMs} ms`, "timeout")),
      options.timeoutMs,
    );
    const waiter: Waiter = {
      stream,
      match,
      resolve,
      fail: reject,
      reject: () => {
        const why = this.lastError();
        const code = this.#exit?.code ?? -1;
        reject(fail(`it exited with code ${code}${why === "" ? "" : `: ${why}`}`, "child_exited"));
      },
    };
    if (this.#exit !== undefined) waiter.reject(undefined);
    else this.#waiters.add(waiter);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    return promise.finally(() => {
      clearTimeout(timer);
      this.#waiters.delete(waiter);
      options.signal?.removeEventListener("abort", onAbort);
    });
  }

  /** Sends `signal` if the child still runs; returns whether it was sent. */
  kill(signal: Deno.Signal): boolean {
    if (this.#exit !== undefined) return false;
    try {
      this.#child.kill(signal);
      return true;
    } catch {
      return false; // exited in between
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit status. */
  async terminate(graceMs = 10_000): Promise<Deno.CommandStatus> {
    if (!this.kill("SIGTERM")) return await this.status;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), graceMs);
    });
    const first = await Promise.race([this.status, late]);
    clearTimeout(timer);
    if (first === "late") this.kill("SIGKILL");
    return await this.status;
  }

  /** Waits for the exit and returns the whole output. */
  async output(): Promise<{ status: Deno.CommandStatus; stdout: string; stderr: string }> {
    const status = await this.status;
    return {
      status,
      stdout: this.#lines.stdout.join("\n"),
      stderr: this.#lines.stderr.join("\n"),
    };
  }
}

/**
 * The error of an operation cut short by Ctrl-C or SIGTERM.
 *
 * @example
 * ```ts
 * if (signal.aborted) throw interrupted("Cannot finish the demo");
 * ```
 */
export function interrupted(action: string): ReliabError {
  return new ReliabError(`${action}: interrupted`, {
    code: "interrupted",
    hint: "everything it started was stopped and removed",
  });
}

/**
 * Ids of every process in network namespace `netns` ([] when it does not exist).
 *
 * @example
 * ```ts
 * const pids = await netnsPids("rlhd-n1");
 * ```
 */
export async function netnsPids(netns: string): Promise<number[]> {
  const result = await runCommand("ip", ["netns", "pids", netns]);
  if (result.code !== 0) return [];
  return result.stdout.split("\n").filter((l) => /^\d+$/.test(l.trim())).map((l) => Number(l));
}

/**
 * Ids of every descendant of `roots` (children, their children, ...), from
 * the parent ids in /proc.
 *
 * @example
 * ```ts
 * const tree = await descendants([agentPid]);
 * ```
 */
export async function descendants(roots: readonly number[]): Promise<number[]> {
  const children = new Map<number, number[]>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let parent: number;
    try {
      parent = parseParentPid(await Deno.readTextFile(`/proc/${entry.name}/stat`));
    } catch {
      continue; // exited while listed
    }
    const list = children.get(parent) ?? [];
    list.push(Number(entry.name));
    children.set(parent, list);
  }
  const found = new Set<number>();
  const queue = [...roots];
  while (queue.length > 0) {
    for (const child of children.get(queue.pop()!) ?? []) {
      if (found.has(child)) continue;
      found.add(child);
      queue.push(child);
    }
  }
  return [...found];
}

/**
 * Every process in the network namespaces `namespaces` and every descendant
 * of those: an agent's NF runs in a namespace of its own that another mount
 * namespace may not be able to enter by name, but it is the agent's child.
 *
 * @example
 * ```ts
 * const pids = await namespaceProcesses(["rlhb-n1", "rlhb-n1-nf"]);
 * ```
 */
export async function namespaceProcesses(namespaces: readonly string[]): Promise<number[]> {
  const inside = (await Promise.all(namespaces.map(netnsPids))).flat();
  return [...new Set([...inside, ...await descendants(inside)])];
}

/**
 * SIGKILLs every process in the network namespaces `namespaces` and every
 * descendant of those (an NF the agent started in a namespace this mount
 * namespace cannot enter is still its child), again until none is left;
 * returns the ids killed. The set is taken before any kill, so an orphan is
 * never missed because its parent died first.
 *
 * @example
 * ```ts
 * await killNetns("rlhd-n1", "rlhd-n1-nf");
 * ```
 */
export async function killNetns(...namespaces: string[]): Promise<number[]> {
  const killed: number[] = [];
  for (let round = 0; round < KILL_ROUNDS_MAX; round++) {
    const pids = await namespaceProcesses(namespaces);
    if (pids.length === 0) return killed;
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
        if (!killed.includes(pid)) killed.push(pid);
      } catch {
        // Exited in between.
      }
    }
    await sleep(20);
  }
  throw new ReliabError(
    `Cannot empty namespace "${namespaces.join('", "')}": processes keep appearing`,
    { code: "netns_busy", hint: `list them with 'ip netns pids ${namespaces[0]}'` },
  );
}

/**
 * Resolves after `ms`; with a signal, rejects with `interrupted(action)` when it aborts.
 *
 * @example
 * ```ts
 * await sleep(100);
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal, action = "Cannot wait"): Promise<void> {
  if (signal?.aborted) return Promise.reject(interrupted(action));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(interrupted(action));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Processes noted at one moment: pid -> start time. */
export type ProcessSnapshot = ReadonlyMap<number, number>;

/**
 * Notes every process of `namespaces` (with descendants) and its start time.
 *
 * @example
 * ```ts
 * const before = await snapshotProcesses(["rlhd-n1", "rlhd-n1-nf"]);
 * ```
 */
export async function snapshotProcesses(namespaces: readonly string[]): Promise<ProcessSnapshot> {
  const noted = new Map<number, number>();
  for (const pid of await namespaceProcesses(namespaces)) {
    const start = await startTime(pid);
    if (start !== undefined) noted.set(pid, start);
  }
  return noted;
}

/**
 * SIGKILLs every process of `snapshot` that still runs (same pid, same
 * start time); returns the ids killed.
 *
 * @example
 * ```ts
 * await killSnapshot(before);
 * ```
 */
export async function killSnapshot(snapshot: ProcessSnapshot): Promise<number[]> {
  const killed: number[] = [];
  for (const [pid, start] of snapshot) {
    if (await startTime(pid) !== start) continue;
    try {
      Deno.kill(pid, "SIGKILL");
      killed.push(pid);
    } catch {
      // Exited in between.
    }
  }
  return killed;
}

async function startTime(pid: number): Promise<number | undefined> {
  try {
    return parseStartTime(await Deno.readTextFile(`/proc/${pid}/stat`));
  } catch {
    return undefined;
  }
}
