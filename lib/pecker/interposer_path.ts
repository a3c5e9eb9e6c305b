/**
 * Where `libreliab_interpose.so` (the pecker recorder, loaded with LD_PRELOAD)
 * is: `RELIAB_INTERPOSE`, or beside libreliab.so (zig-out/lib/ from source).
 *
 * @module
 */
import { dirname } from "node:path";
import { NativeLibraryError } from "../errors.ts";
import { resolveNativeLibrary } from "../native_path.ts";

/**
 * Returns the path of the interposer library, checking that it exists.
 *
 * @example
 * ```ts
 * const preload = resolveInterposer();
 * ```
 */
export function resolveInterposer(): string {
  const path = Deno.env.get("RELIAB_INTERPOSE") ??
    `${dirname(resolveNativeLibrary())}/libreliab_interpose.so`;
  try {
    if (Deno.statSync(path).isFile) return path;
  } catch {
    // reported below
  }
  throw new NativeLibraryError(`Cannot find the pecker recorder "${path}": no such file`, {
    code: "interposer_missing",
    hint: "build it with 'zig build' (or set RELIAB_INTERPOSE)",
  });
}
