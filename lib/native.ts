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

/** ABI version this module was written against (native/src/common/constants.zig). */
export const ABI_VERSION = 1;

/** Symbol table; mirrors native/src/exports.zig (checked by a unit test). */
export const SYMBOLS = {
  reliab_abi_version: { parameters: [], result: "u32" },
  reliab_abi_layout: { parameters: ["buffer"], result: "i32" },
  reliab_perf_cpuid_query: { parameters: ["u32", "u32", "buffer"], result: "i32" },
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
const LAYOUT = { cpuid_registers: 16 } as const;

function checkLayout(opened: Library, path: string): void {
  const buf = new Uint32Array(2);
  const status = opened.symbols.reliab_abi_layout(buf);
  const fields = Object.entries(LAYOUT);
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
