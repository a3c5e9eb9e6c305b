/**
 * How to run this very reliab again as a child (in another namespace): the
 * demo and the bench start agents, NFs and load clients with the same program
 * the user ran, so a compiled binary never mixes with a source checkout.
 *
 * @module
 */
import { isCompiled } from "../native_path.ts";

/**
 * The argv prefix that runs this reliab: the compiled executable itself, or
 * the checkout's `./reliab` launcher (bash; it picks the pinned toolchains and
 * grants the permissions the CLI needs) when running from source.
 *
 * @example
 * ```ts
 * const argv = [...reliabArgv(), "ha", "nf", "--listen", "10.77.0.1:7000"];
 * ```
 */
export function reliabArgv(): string[] {
  if (isCompiled()) return [Deno.execPath()];
  return [decodeURIComponent(new URL("../../reliab", import.meta.url).pathname)];
}
