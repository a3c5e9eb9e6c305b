/**
 * Where `libreliab.so` is. From source it is `zig-out/lib/` of the checkout
 * (or `RELIAB_LIB`); in the compiled `reliab` executable the library is
 * embedded, and since `dlopen` needs a real file it is extracted once to a
 * cache folder named by its content hash — so two versions never clash and a
 * half-written copy is never opened (written to a temporary name, then renamed).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { NativeLibraryError } from "./errors.ts";

/** Path of the library inside the source tree / the compiled binary. */
export const EMBEDDED_LIB = new URL("../zig-out/lib/libreliab.so", import.meta.url);

/**
 * Returns a path that `Deno.dlopen` can open.
 *
 * @example
 * ```ts
 * const path = resolveNativeLibrary();
 * ```
 */
export function resolveNativeLibrary(): string {
  const fromEnv = Deno.env.get("RELIAB_LIB");
  if (fromEnv) return fromEnv;
  const source = decodeURIComponent(EMBEDDED_LIB.pathname);
  if (!isCompiled()) return source;
  return extractEmbedded(Deno.readFileSync(source));
}

/** True inside a `deno compile` executable (its modules live in a virtual fs). */
export function isCompiled(): boolean {
  return Deno.build.standalone;
}

/** Cache folder for extracted libraries: $XDG_CACHE_HOME/reliab or ~/.cache/reliab. */
export function cacheDir(): string {
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/reliab`;
  const home = Deno.env.get("HOME");
  if (home) return `${home}/.cache/reliab`;
  return "/tmp/reliab-cache";
}

/**
 * Writes `bytes` to `<cache>/lib-<sha256 prefix>/<name>` (libreliab.so by
 * default) unless an identical copy is there, and returns that path.
 *
 * @example
 * ```ts
 * const path = extractEmbedded(Deno.readFileSync("zig-out/lib/libreliab.so"), "/tmp/c");
 * ```
 */
export function extractEmbedded(
  bytes: Uint8Array,
  dir = cacheDir(),
  name = "libreliab.so",
): string {
  const hash = sha256Hex(bytes).slice(0, 16);
  const folder = `${dir}/lib-${hash}`;
  const path = `${folder}/${name}`;
  try {
    const existing = Deno.readFileSync(path);
    if (sha256Hex(existing).startsWith(hash)) return path;
  } catch {
    // not extracted yet
  }
  try {
    Deno.mkdirSync(folder, { recursive: true, mode: 0o700 });
    const temp = `${path}.${Deno.pid}.tmp`;
    Deno.writeFileSync(temp, bytes, { mode: 0o755 });
    Deno.renameSync(temp, path);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new NativeLibraryError(`Cannot extract the native library to "${folder}": ${detail}`, {
      code: "native_extract_failed",
      hint: "set XDG_CACHE_HOME to a writable folder",
    });
  }
  return path;
}

// Synchronous SHA-256 (WebCrypto is async only; the load path is synchronous).
function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}
