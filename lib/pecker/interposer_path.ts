/**
 * Where `libreliab_interpose.so` (the pecker recorder, loaded with LD_PRELOAD)
 * is: `RELIAB_INTERPOSE`; from source, beside libreliab.so (zig-out/lib/);
 * in the compiled `reliab` executable it is embedded like libreliab.so, and
 * since LD_PRELOAD needs a real file it is extracted to the cache folder
 * named by its content hash (lib/native_path.ts).
 *
 * @module
 */
import { dirname } from "node:path";
import { NativeLibraryError } from "../errors.ts";
import { cacheDir, extractEmbedded, isCompiled, resolveNativeLibrary } from "../native_path.ts";

/** File name of the recorder library. */
export const INTERPOSER_NAME = "libreliab_interpose.so";
/** Path of the recorder inside the source tree / the compiled binary. */
export const EMBEDDED_INTERPOSER = new URL(`../../zig-out/lib/${INTERPOSER_NAME}`, import.meta.url);

/**
 * Returns the path of the interposer library, checking that it exists.
 *
 * @example
 * ```ts
 * const preload = resolveInterposer();
 * ```
 */
export function resolveInterposer(): string {
  const fromEnv = Deno.env.get("RELIAB_INTERPOSE");
  const path = fromEnv ??
    (isCompiled() ? extractInterposer() : `${dirname(resolveNativeLibrary())}/${INTERPOSER_NAME}`);
  try {
    if (Deno.statSync(path).isFile) return checkPreloadable(path);
  } catch {
    // reported below
  }
  throw new NativeLibraryError(`Cannot find the pecker recorder "${path}": no such file`, {
    code: "interposer_missing",
    hint: "build it with 'zig build' (or set RELIAB_INTERPOSE)",
  });
}

/**
 * Extracts the embedded recorder into `dir` (the cache folder by default)
 * and returns its path; a copy with the same content is reused.
 *
 * @example
 * ```ts
 * const path = extractInterposer("/tmp/cache");
 * ```
 */
export function extractInterposer(dir = cacheDir()): string {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(decodeURIComponent(EMBEDDED_INTERPOSER.pathname));
  } catch {
    throw new NativeLibraryError("Cannot find the pecker recorder in this reliab executable", {
      code: "interposer_missing",
      hint: "rebuild reliab with 'deno task compile' (it embeds zig-out/lib/" +
        `${INTERPOSER_NAME})`,
    });
  }
  return extractEmbedded(bytes, dir, INTERPOSER_NAME);
}

/** LD_PRELOAD splits on colons and spaces: such a path cannot be preloaded. */
function checkPreloadable(path: string): string {
  if (!/[: ]/.test(path)) return path;
  throw new NativeLibraryError(
    `Cannot preload the pecker recorder "${path}": its path has a colon or space`,
    {
      code: "interposer_path",
      hint: "set XDG_CACHE_HOME (or RELIAB_INTERPOSE) to a path without colons or spaces",
    },
  );
}
