/**
 * The FFI boundary: the only module that calls `Deno.dlopen` or reads raw
 * pointers. It declares the symbol table once, opens `libreliab.so` lazily,
 * checks the ABI version and struct layout before any other call, and turns
 * native status codes into typed errors. Raw codes never leave this file.
 *
 * @module
 */
import { NativeLibraryError, ReliabError } from "./errors.ts";
import { resolveNativeLibrary } from "./native_path.ts";
import { type HaAgentStatus, parseAgentStatus } from "./ha/agent/status.ts";

/** ABI version this module was written against (native/src/common/constants.zig). */
export const ABI_VERSION = 1;

/** Symbol table; mirrors native/src/exports.zig (checked by a unit test). */
export const SYMBOLS = {
  reliab_abi_version: { parameters: [], result: "u32" },
  reliab_abi_layout: { parameters: ["buffer"], result: "i32" },
  reliab_perf_cpuid_query: { parameters: ["u32", "u32", "buffer"], result: "i32" },
  reliab_perf_counter_probe: { parameters: ["u32", "buffer", "buffer", "u32"], result: "i32" },
  reliab_perf_msr_read: { parameters: ["u32", "u32", "buffer", "buffer", "u32"], result: "i32" },
  reliab_perf_affinity_get: { parameters: ["i32", "buffer", "u32", "buffer"], result: "i32" },
  // Nonblocking: one repetition takes 1–50 ms, too long for the event loop.
  reliab_perf_calibrate_run: {
    parameters: ["u32", "buffer", "buffer", "buffer", "u32"],
    result: "i32",
    nonblocking: true,
  },
  reliab_ha_xdpcounter_create: {
    parameters: ["u32", "u32", "buffer", "buffer", "u32"],
    result: "i32",
  },
  reliab_ha_xdpcounter_read: { parameters: ["u32", "buffer"], result: "i32" },
  reliab_ha_xdpcounter_destroy: { parameters: ["u32"], result: "i32" },
  // Nonblocking: start maps two UMEMs and loads two programs; stop joins a thread.
  reliab_ha_forwarder_start: {
    parameters: ["buffer", "buffer", "buffer", "u32"],
    result: "i32",
    nonblocking: true,
  },
  reliab_ha_forwarder_stats: { parameters: ["u32", "buffer"], result: "i32" },
  reliab_ha_forwarder_stop: { parameters: ["u32"], result: "i32", nonblocking: true },
  reliab_ha_agent_start: {
    parameters: ["buffer", "u32", "buffer", "buffer", "u32"],
    result: "i32",
  },
  reliab_ha_agent_status: { parameters: ["u32", "buffer", "u32", "buffer"], result: "i32" },
  reliab_ha_agent_fail: { parameters: ["u32"], result: "i32" },
  reliab_ha_agent_migrate: { parameters: ["u32", "u32"], result: "i32" },
  reliab_ha_agent_migrate_conn: { parameters: ["u32", "u32", "u32", "u32"], result: "i32" },
  reliab_ha_agent_stop: { parameters: ["u32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

type Library = Deno.DynamicLibrary<typeof SYMBOLS>;

/** Status codes of native/src/common/status.zig. Never renumbered. */
export const STATUS = {
  ok: 0,
  invalid_argument: -1,
  buffer_too_small: -2,
  not_supported: -3,
  permission_denied: -4,
  not_found: -5,
  io_error: -6,
  out_of_memory: -7,
  busy: -8,
  timeout: -9,
  internal: -10,
} as const;

/** Name of a native status. */
export type StatusName = keyof typeof STATUS;

/** A native call that returned a failure status, with its stable name. */
export class NativeStatusError extends ReliabError {
  readonly status: StatusName;
  constructor(status: StatusName, action: string, detail: string) {
    super(`${action}: ${detail || status.replaceAll("_", " ")}`, {
      code: `native_${status}`,
      hint: HINTS[status],
    });
    this.status = status;
  }
}

const HINTS: Record<StatusName, string> = {
  ok: "",
  invalid_argument: "this is a bug in reliab: please report it",
  buffer_too_small: "this is a bug in reliab: please report it",
  not_supported: "this machine or kernel does not offer it",
  permission_denied: "run as root or grant the missing capability",
  not_found: "the device or file does not exist on this machine",
  io_error: "check the kernel log (dmesg) for details",
  out_of_memory: "free memory or lower the requested size",
  busy: "retry when the resource is free",
  timeout: "retry; the operation took too long",
  internal: "this is a bug in reliab: please report it",
};

const NAMES = new Map<number, StatusName>(
  Object.entries(STATUS).map(([name, code]) => [code, name as StatusName]),
);

/** Maps a raw status code to its name; unknown codes map to `internal`. */
export function statusName(code: number): StatusName {
  return NAMES.get(code) ?? "internal";
}

let library: Library | undefined;

/**
 * Opens the native library once and checks its ABI.
 *
 * @example
 * ```ts
 * const lib = native();
 * ```
 */
export function native(): Library["symbols"] {
  if (library !== undefined) return library.symbols;
  const path = resolveNativeLibrary();
  let opened: Library;
  try {
    opened = Deno.dlopen(path, SYMBOLS);
  } catch (error) {
    const detail = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new NativeLibraryError(`Cannot load native library "${path}": ${detail}`, {
      code: "native_load_failed",
      hint: "rebuild it with './reliab task build'",
    });
  }
  const version = opened.symbols.reliab_abi_version();
  if (version !== ABI_VERSION) {
    opened.close();
    throw new NativeLibraryError(
      `Native library "${path}" has ABI version ${version}, expected ${ABI_VERSION}`,
      { code: "native_abi_mismatch", hint: "rebuild it with './reliab task build'" },
    );
  }
  checkLayout(opened, path);
  library = opened;
  return opened.symbols;
}

/** Struct sizes the TS decoders below assume, in the order of `Layout` in exports.zig. */
const LAYOUT = {
  cpuid_registers: 16,
  perf_calibrate_options: 32,
  ha_forwarder_config: 64,
  ha_forwarder_stats: 128,
} as const;

function checkLayout(opened: Library, path: string): void {
  const fields = Object.entries(LAYOUT);
  // Sized from LAYOUT: the native side writes its whole Layout struct.
  const buf = new Uint32Array(fields.length + 1);
  const status = opened.symbols.reliab_abi_layout(buf);
  const mismatch = status !== 0 || buf[0] !== (fields.length + 1) * 4 ||
    fields.some(([, size], i) => buf[i + 1] !== size);
  if (mismatch) {
    opened.close();
    throw new NativeLibraryError(`Native library "${path}" has a different struct layout`, {
      code: "native_abi_mismatch",
      hint: "rebuild it with './reliab task build'",
    });
  }
}

/** Throws a `NativeStatusError` for a failure status. */
export function check(code: number, action: string, detail = ""): void {
  if (code === 0) return;
  throw new NativeStatusError(statusName(code), action, detail);
}

/** Closes the library (tests use it to prove nothing is left open). */
export function closeNative(): void {
  library?.close();
  library = undefined;
}

/** The four registers CPUID returns. */
export interface CpuidRegisters {
  readonly eax: number;
  readonly ebx: number;
  readonly ecx: number;
  readonly edx: number;
}

/**
 * Executes CPUID for one leaf and subleaf.
 *
 * @example
 * ```ts
 * const { eax } = cpuid(0, 0); // highest standard leaf
 * ```
 */
export function cpuid(leaf: number, subleaf = 0): CpuidRegisters {
  const out = new Uint32Array(4);
  check(native().reliab_perf_cpuid_query(leaf >>> 0, subleaf >>> 0, out), `CPUID leaf ${leaf}`);
  return { eax: out[0]!, ebx: out[1]!, ecx: out[2]!, edx: out[3]! };
}

/** Bytes of a native error-text buffer (common/constants.zig error_text_max). */
const ERROR_TEXT_BYTES = 256;

/** The NUL-terminated text a native call wrote into `buf`. */
function errorText(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
}

/**
 * What a probe of an optional hardware or kernel feature found: a value, or
 * why there is none here ("unavailable" is an expected outcome, not an error).
 */
export type ProbeResult =
  | { readonly kind: "ok"; readonly value: bigint }
  | { readonly kind: "unavailable"; readonly status: StatusName; readonly reason: string };

/** Statuses that mean "this machine does not offer it" rather than a bug. */
const UNAVAILABLE: ReadonlySet<StatusName> = new Set<StatusName>([
  "not_supported",
  "not_found",
  "permission_denied",
  "busy",
  "io_error",
  "out_of_memory",
]);

function probeResult(code: number, value: bigint, errBuf: Uint8Array, action: string): ProbeResult {
  if (code === 0) return { kind: "ok", value };
  const status = statusName(code);
  const reason = errorText(errBuf);
  if (!UNAVAILABLE.has(status)) check(code, action, reason);
  return { kind: "unavailable", status, reason: reason || status.replaceAll("_", " ") };
}

/** Perf counters `perfCounterProbe` knows, as perf(1) names them; the index is the native kind. */
export const PERF_COUNTER_KINDS = [
  "task-clock",
  "page-faults",
  "context-switches",
  "cpu-migrations",
  "cycles",
  "instructions",
  "cache-misses",
  "branch-misses",
] as const;

/** A perf counter name. */
export type PerfCounterKind = typeof PERF_COUNTER_KINDS[number];

/**
 * Opens one perf counter on the calling thread, runs a small fixed workload
 * (well under 1 ms, so synchronous), and returns the count, or why the
 * counter is unavailable (no PMU on this VM, perf_event_paranoid, …).
 *
 * @example
 * ```ts
 * perfCounterProbe("task-clock"); // { kind: "ok", value: 412345n }
 * perfCounterProbe("cycles");
 * // { kind: "unavailable", status: "not_supported",
 * //   reason: 'not supported here: PMU not available for "cycles" (ENOENT); …' }
 * ```
 */
export function perfCounterProbe(kind: PerfCounterKind): ProbeResult {
  const index = PERF_COUNTER_KINDS.indexOf(kind);
  if (index < 0) throw new TypeError(`Unknown perf counter "${kind}"`);
  const out = new BigUint64Array(1);
  const errBuf = new Uint8Array(ERROR_TEXT_BYTES);
  const code = native().reliab_perf_counter_probe(index, out, errBuf, errBuf.length);
  return probeResult(code, out[0]!, errBuf, `Cannot probe perf counter "${kind}"`);
}

/**
 * Reads one model-specific register of one CPU through /dev/cpu/N/msr, or
 * says why it cannot (no msr driver, not root, register not implemented).
 *
 * @example
 * ```ts
 * msrRead(0, 0x10);
 * // { kind: "unavailable", status: "not_found",
 * //   reason: "/dev/cpu/0/msr does not exist: the kernel has no msr driver (modprobe msr)" }
 * ```
 */
export function msrRead(cpu: number, register: number): ProbeResult {
  if (!Number.isInteger(cpu) || cpu < 0 || cpu >= MAX_CPUS) {
    throw new RangeError(`Invalid CPU number "${cpu}"`);
  }
  if (!Number.isInteger(register) || register < 0 || register > 0xffffffff) {
    throw new RangeError(`Invalid MSR number "${register}"`);
  }
  const out = new BigUint64Array(1);
  const errBuf = new Uint8Array(ERROR_TEXT_BYTES);
  const code = native().reliab_perf_msr_read(cpu, register, out, errBuf, errBuf.length);
  return probeResult(code, out[0]!, errBuf, `Cannot read MSR 0x${register.toString(16)}`);
}

/** CPUs a mask can describe (common/constants.zig cpus_max). */
const MAX_CPUS = 8192;

/**
 * The CPUs `pid` may run on (`sched_getaffinity`), ascending. Without `pid`,
 * the calling thread's (for Deno's main thread, the process's).
 *
 * @example
 * ```ts
 * schedAffinity(); // [0, 1]
 * ```
 */
export function schedAffinity(pid = 0): number[] {
  if (!Number.isInteger(pid) || pid < 0 || pid > 0x7fffffff) {
    throw new RangeError(`Invalid process id "${pid}"`);
  }
  const mask = new Uint8Array(MAX_CPUS / 8);
  const written = new Uint32Array(1);
  check(
    native().reliab_perf_affinity_get(pid, mask, mask.length, written),
    `Cannot read the CPU affinity of process ${pid}`,
  );
  const cpus: number[] = [];
  for (let byte = 0; byte < written[0]!; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      if ((mask[byte]! >> bit) & 1) cpus.push(byte * 8 + bit);
    }
  }
  return cpus;
}

/** Calibration micro-benchmarks; the index is the native kind (perf/calibrate.zig). */
export const CALIBRATION_KINDS = [
  "clock",
  "memory_latency",
  "memory_bandwidth",
  "syscall",
  "timer_resolution",
] as const;

/** A calibration micro-benchmark. */
export type CalibrationKind = typeof CALIBRATION_KINDS[number];

/** Sizes of one calibration repetition; omitted fields take the native defaults. */
export interface CalibrationOptions {
  /** Adds (clock), loads (memory_latency), passes (memory_bandwidth), calls (syscall), reads (timer_resolution). */
  readonly iterations?: number;
  /** Buffer bytes of the memory kinds (64 KiB .. 1 GiB; default 64 MiB). */
  readonly bytes?: number;
  /** Seed of the memory_latency pointer-chase permutation. */
  readonly seed?: number;
}

/**
 * Runs one repetition of one calibration micro-benchmark on a worker thread
 * and returns its number: GHz (clock), ns per load (memory_latency), GB/s
 * (memory_bandwidth), ns per call (syscall) or ns (timer_resolution).
 *
 * @example
 * ```ts
 * await calibrateRun("syscall"); // 87.4
 * await calibrateRun("memory_latency", { bytes: 256 * 2 ** 20 }); // 112.9
 * ```
 */
export async function calibrateRun(
  kind: CalibrationKind,
  options: CalibrationOptions = {},
): Promise<number> {
  const index = CALIBRATION_KINDS.indexOf(kind);
  if (index < 0) throw new TypeError(`Unknown calibration "${kind}"`);
  const raw = new DataView(new ArrayBuffer(LAYOUT.perf_calibrate_options));
  raw.setUint32(0, LAYOUT.perf_calibrate_options, true);
  raw.setBigUint64(8, optionInteger("iterations", options.iterations), true);
  raw.setBigUint64(16, optionInteger("bytes", options.bytes), true);
  raw.setBigUint64(24, optionInteger("seed", options.seed), true);
  const out = new Float64Array(1);
  const errBuf = new Uint8Array(ERROR_TEXT_BYTES);
  // The buffers stay referenced here until the promise settles.
  const code = await native().reliab_perf_calibrate_run(
    index,
    new Uint8Array(raw.buffer),
    out,
    errBuf,
    errBuf.length,
  );
  check(code, `Cannot run calibration "${kind}"`, errorText(errBuf));
  return out[0]!;
}

function optionInteger(name: string, value: number | undefined): bigint {
  if (value === undefined) return 0n;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`Invalid calibration ${name} "${value}"`);
  }
  return BigInt(value);
}

/** Where an XDP program runs: in the stack for any device, or in the driver. */
export type XdpMode = "generic" | "native";

/**
 * An XDP frame counter attached to an interface of the calling thread's
 * network namespace, loaded from raw BPF instructions. It detaches when
 * closed, and the kernel detaches it if the process dies (a BPF link).
 *
 * @example
 * ```ts
 * using counter = XdpCounter.attach(2, "generic");
 * // ... traffic ...
 * console.log(counter.packets());
 * ```
 */
export class XdpCounter {
  /** Slot in the native counter table; undefined once closed. */
  #slot: number | undefined;

  private constructor(slot: number) {
    this.#slot = slot;
  }

  /** Loads the counter and attaches it to interface `ifindex`. */
  static attach(ifindex: number, mode: XdpMode): XdpCounter {
    if (!Number.isInteger(ifindex) || ifindex <= 0 || ifindex > 0xffffffff) {
      throw new RangeError(`Invalid interface index "${ifindex}"`);
    }
    const out = new Uint32Array(1);
    const errText = new Uint8Array(256);
    const code = native().reliab_ha_xdpcounter_create(
      ifindex,
      mode === "native" ? 1 : 0,
      out,
      errText,
      errText.length,
    );
    const detail = new TextDecoder().decode(errText.subarray(0, Math.max(0, errText.indexOf(0))));
    check(code, `Cannot attach XDP program to interface ${ifindex} (${mode})`, detail);
    return new XdpCounter(out[0]!);
  }

  /** Frames seen since attach. */
  packets(): bigint {
    if (this.#slot === undefined) throw new RangeError("XDP counter is closed");
    const out = new BigUint64Array(1);
    check(native().reliab_ha_xdpcounter_read(this.#slot, out), "Cannot read XDP counter");
    return out[0]!;
  }

  /** Detaches and frees; safe to call twice. */
  close(): void {
    if (this.#slot === undefined) return;
    native().reliab_ha_xdpcounter_destroy(this.#slot);
    this.#slot = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

// ---------------------------------------------------------------- ha forwarder

/** Ethernet addresses written into every frame sent out of one side ("aa:bb:cc:dd:ee:ff"). */
export interface EthernetRewrite {
  readonly dst: string;
  readonly src: string;
}

/** Options of `HaForwarder.start`. */
export interface HaForwarderOptions {
  /** Client-side interface: its IPv4 TCP frames to the VIP (and ARP for it) go out of B. */
  readonly aIfindex: number;
  /** VIP-side interface: its IPv4 TCP frames from the VIP go out of A. */
  readonly bIfindex: number;
  /** The VIP, dotted IPv4. */
  readonly vip: string;
  /** Where the XDP programs run (default "native"). */
  readonly mode?: XdpMode;
  /** Addresses of frames sent out of B (toward the VIP's host). */
  readonly toB: EthernetRewrite;
  /** Addresses of frames sent out of A (toward the client). */
  readonly toA: EthernetRewrite;
  /** UMEM frame bytes (native default 2048). */
  readonly frameSize?: 2048 | 4096;
  /** UMEM frames per socket, half RX, half TX (native default 16384: 32 MiB). */
  readonly frameCount?: number;
  /** Entries of the rx and completion rings, a power of two >= frameCount / 2 (native default 8192). */
  readonly ringSize?: number;
  /** Queue both sockets bind to (default 0). */
  readonly queue?: number;
}

/** Counters of a running forwarder (ha/forwarder.zig Stats). */
export interface HaForwarderStats {
  readonly aToBFrames: bigint;
  readonly aToBBytes: bigint;
  readonly bToAFrames: bigint;
  readonly bToABytes: bigint;
  /** Frames dropped because the other side had no free TX frame. */
  readonly txFullDrops: bigint;
  /** Frames shorter than an Ethernet header. */
  readonly runtDrops: bigint;
  /** Frames the kernel dropped before socket A / B got them (XDP_STATISTICS). */
  readonly aKernelDrops: bigint;
  readonly bKernelDrops: bigint;
  readonly polls: bigint;
  /** sendto calls that kicked copy-mode TX. */
  readonly kicks: bigint;
  /** errno that ended the forwarding loop on its own; 0 while it runs. */
  readonly loopErrno: number;
  /** Parts of the kernel drops: rx ring full (the loop fell behind), fill ring empty. */
  readonly aRxRingFull: bigint;
  readonly aFillRingEmpty: bigint;
  readonly bRxRingFull: bigint;
  readonly bFillRingEmpty: bigint;
  /** RX frames that found the fill ring looking full (0 expected: see native/src/ha/xsk.zig). */
  readonly deferredRecycles: bigint;
}

/**
 * A native AF_XDP forwarder between two interfaces of this process's network
 * namespace: a bump in the wire that moves a VIP's TCP frames (and ARP for
 * it) from A to B and the VIP's answers from B to A, rewriting only the
 * Ethernet addresses; all other frames pass to the kernel. It runs on its
 * own native thread until closed; if the process dies, the kernel detaches
 * its XDP programs (BPF links).
 *
 * @example
 * ```ts
 * await using fwd = await HaForwarder.start({
 *   aIfindex: 2, bIfindex: 3, vip: "10.88.0.1",
 *   toB: { dst: "02:88:00:00:00:01", src: "02:88:00:00:0b:00" },
 *   toA: { dst: "02:88:00:00:00:02", src: "02:88:00:00:0a:00" },
 * });
 * console.log(fwd.stats().aToBFrames);
 * ```
 */
export class HaForwarder {
  /** Slot in the native forwarder table; undefined once closed. */
  #slot: number | undefined;
  #closing: Promise<void> | undefined;

  private constructor(slot: number) {
    this.#slot = slot;
  }

  /** Opens both sockets, attaches both programs and starts forwarding. */
  static async start(options: HaForwarderOptions): Promise<HaForwarder> {
    const mode = options.mode ?? "native";
    const raw = new DataView(new ArrayBuffer(LAYOUT.ha_forwarder_config));
    raw.setUint32(0, LAYOUT.ha_forwarder_config, true);
    raw.setUint32(4, ifindexOption("aIfindex", options.aIfindex), true);
    raw.setUint32(8, ifindexOption("bIfindex", options.bIfindex), true);
    raw.setUint32(12, mode === "native" ? 1 : 0, true);
    const bytes = new Uint8Array(raw.buffer);
    bytes.set(ipv4Bytes(options.vip), 16);
    raw.setUint32(20, sizeOption("queue", options.queue, 0, 255), true);
    raw.setUint32(24, sizeOption("frameSize", options.frameSize, 2048, 4096), true);
    raw.setUint32(28, sizeOption("frameCount", options.frameCount, 2, 1 << 16), true);
    raw.setUint32(32, sizeOption("ringSize", options.ringSize, 1, 1 << 14), true);
    bytes.set(macBytes(options.toB.dst), 40);
    bytes.set(macBytes(options.toB.src), 46);
    bytes.set(macBytes(options.toA.dst), 52);
    bytes.set(macBytes(options.toA.src), 58);
    const out = new Uint32Array(1);
    const errBuf = new Uint8Array(ERROR_TEXT_BYTES);
    // The buffers stay referenced here until the promise settles.
    const code = await native().reliab_ha_forwarder_start(bytes, out, errBuf, errBuf.length);
    check(
      code,
      `Cannot start the AF_XDP forwarder between interfaces ${options.aIfindex} and ${options.bIfindex} (${mode})`,
      errorText(errBuf),
    );
    return new HaForwarder(out[0]!);
  }

  /** The forwarder's counters now. */
  stats(): HaForwarderStats {
    if (this.#slot === undefined) throw new RangeError("AF_XDP forwarder is closed");
    const buf = new BigUint64Array(LAYOUT.ha_forwarder_stats / 8);
    check(
      native().reliab_ha_forwarder_stats(this.#slot, buf),
      "Cannot read the forwarder's counters",
    );
    const at = (i: number) => buf[i]!;
    return {
      aToBFrames: at(0),
      aToBBytes: at(1),
      bToAFrames: at(2),
      bToABytes: at(3),
      txFullDrops: at(4),
      runtDrops: at(5),
      aKernelDrops: at(6),
      bKernelDrops: at(7),
      polls: at(8),
      kicks: at(9),
      loopErrno: Number(at(10)),
      aRxRingFull: at(11),
      aFillRingEmpty: at(12),
      bRxRingFull: at(13),
      bFillRingEmpty: at(14),
      deferredRecycles: at(15),
    };
  }

  /** Stops forwarding, detaches both programs, closes both sockets; safe to call twice. */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    const slot = this.#slot;
    this.#slot = undefined;
    this.#closing = slot === undefined ? Promise.resolve() : native()
      .reliab_ha_forwarder_stop(slot)
      .then((code) => check(code, "Cannot stop the AF_XDP forwarder"));
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function ifindexOption(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0 || value > 0xffffffff) {
    throw new RangeError(`Invalid ${name} "${value}"`);
  }
  return value;
}

/** 0 (native default) when omitted. */
function sizeOption(name: string, value: number | undefined, min: number, max: number): number {
  if (value === undefined) return 0;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Invalid forwarder ${name} "${value}": use ${min} to ${max}`);
  }
  return value;
}

function ipv4Bytes(text: string): Uint8Array {
  const parts = text.split(".");
  const bytes = parts.map((p) => /^\d{1,3}$/.test(p) ? Number(p) : NaN);
  if (bytes.length !== 4 || bytes.some((b) => !(b >= 0 && b <= 255))) {
    throw new RangeError(`Invalid IPv4 address "${text}"`);
  }
  return new Uint8Array(bytes);
}

function macBytes(text: string): Uint8Array {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text)) {
    throw new RangeError(`Invalid MAC address "${text}"`);
  }
  return new Uint8Array(text.split(":").map((h) => parseInt(h, 16)));
}

// ---------------------------------------------------------------- ha agent

export type { HaAgentStatus, HaPeerStatus, HaRole, HaTakeover } from "./ha/agent/status.ts";

/**
 * Configuration of the native agent, as the JSON object
 * native/src/ha/agent/config.zig parses (its `Raw` struct: snake_case keys).
 * Omitted optional fields take the native defaults.
 */
export interface HaAgentConfig {
  /** Node id, 1..15, unique in the cluster. */
  readonly id: number;
  readonly vip: string;
  /** MAC the VIP answers with on every node (aa:bb:cc:dd:ee:ff). */
  readonly virtual_mac: string;
  /** This node's own IPv4 address on the outer interface. */
  readonly node_addr: string;
  readonly outer_ifindex: number;
  /** Index of the agent's end of the veth pair to the NF namespace. */
  readonly inner_ifindex: number;
  /** MAC of the agent's veth end (source of frames into the NF). */
  readonly inner_mac: string;
  /** MAC of the NF's veth end (destination of frames into the NF). */
  readonly nf_mac: string;
  /** The other nodes' addresses (at most 15). */
  readonly peers: readonly string[];
  readonly primary: boolean;
  /** UDP port of the replication channel (native default 7447). */
  readonly control_port?: number;
  /** Heartbeat interval, 100..1000000 µs (native default 1000). */
  readonly heartbeat_us?: number;
  /** Heartbeats missed before a replica takes over, 2..1000 (native default 10). */
  readonly miss_threshold?: number;
  readonly xdp_mode?: XdpMode;
}

/** First size tried for the status JSON; doubled on buffer_too_small. */
const AGENT_STATUS_BYTES = 64 * 1024;
/** Largest status buffer: far above any real status (15 peers, a few counters). */
const AGENT_STATUS_BYTES_MAX = 16 * 1024 * 1024;

/**
 * The native `ha` agent of this node: XDP programs, AF_XDP sockets and packet
 * threads between the node's interface and the NF's veth. It keeps running
 * until `stop()`; if the process dies, the kernel detaches its programs.
 *
 * @example
 * ```ts
 * using agent = HaAgent.start(config);
 * console.log(agent.status().role);
 * agent.fail(); // the `ha fail` test hook
 * ```
 */
export class HaAgent {
  /** Slot in the native agent table; undefined once stopped. */
  #slot: number | undefined;

  private constructor(slot: number) {
    this.#slot = slot;
  }

  /** Starts an agent; throws a NativeStatusError (e.g. `not_supported`) with the native reason. */
  static start(config: HaAgentConfig): HaAgent {
    if (!Number.isInteger(config.id) || config.id < 1 || config.id > 15) {
      throw new RangeError(`Invalid agent id "${config.id}": use 1 to 15`);
    }
    for (const ifindex of [config.outer_ifindex, config.inner_ifindex]) {
      if (!Number.isInteger(ifindex) || ifindex <= 0 || ifindex > 0xffffffff) {
        throw new RangeError(`Invalid interface index "${ifindex}"`);
      }
    }
    if (config.peers.length > 15) {
      throw new RangeError(`Too many peers "${config.peers.length}": at most 15`);
    }
    const json = new TextEncoder().encode(JSON.stringify(config));
    const out = new Uint32Array(1);
    const errBuf = new Uint8Array(ERROR_TEXT_BYTES);
    const code = native().reliab_ha_agent_start(json, json.length, out, errBuf, errBuf.length);
    check(code, `Cannot start the ha agent of node ${config.id}`, errorText(errBuf));
    return new HaAgent(out[0]!);
  }

  /** The agent's status, parsed and checked. */
  status(): HaAgentStatus {
    const slot = this.#live();
    const written = new Uint32Array(1);
    for (let bytes = AGENT_STATUS_BYTES; bytes <= AGENT_STATUS_BYTES_MAX; bytes *= 2) {
      const buf = new Uint8Array(bytes);
      const code = native().reliab_ha_agent_status(slot, buf, buf.length, written);
      if (code === STATUS.buffer_too_small) continue;
      check(code, "Cannot read the ha agent's status");
      const text = new TextDecoder().decode(buf.subarray(0, written[0]!));
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        value = undefined;
      }
      return parseAgentStatus(value);
    }
    throw new NativeStatusError(
      "buffer_too_small",
      "Cannot read the ha agent's status",
      `status is larger than ${AGENT_STATUS_BYTES_MAX} bytes`,
    );
  }

  /** Makes the agent fail now: a primary fails itself, a replica asks the primary to. */
  fail(): void {
    check(native().reliab_ha_agent_fail(this.#live()), "Cannot fail the ha agent");
  }

  /** Hands the connection from `clientIp`:`clientPort` alone to node `to` (this node must serve it). */
  migrateConn(to: number, clientIp: number, clientPort: number): void {
    check(
      native().reliab_ha_agent_migrate_conn(this.#live(), to, clientIp >>> 0, clientPort),
      `Cannot migrate the connection to node "${to}"`,
    );
  }

  /** Hands every connection over to node `to`: a primary does, a replica asks its primary to. */
  migrate(to: number): void {
    check(native().reliab_ha_agent_migrate(this.#live(), to), `Cannot migrate to node "${to}"`);
  }

  /** Stops the agent and detaches everything it attached; safe to call twice. */
  stop(): void {
    if (this.#slot === undefined) return;
    const slot = this.#slot;
    this.#slot = undefined;
    check(native().reliab_ha_agent_stop(slot), "Cannot stop the ha agent");
  }

  [Symbol.dispose](): void {
    this.stop();
  }

  #live(): number {
    if (this.#slot === undefined) throw new RangeError("ha agent is stopped");
    return this.#slot;
  }
}
