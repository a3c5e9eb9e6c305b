/**
 * Writes output files atomically: a temporary file in the same folder, then
 * rename. A reader never sees half a file, and a failure leaves the old file
 * (or nothing) in place. An existing file is only replaced with `force`.
 *
 * @module
 */
import { dirname } from "node:path";
import { ConfigError } from "./errors.ts";

/** Options of `writeFileAtomic`. */
export interface AtomicWriteOptions {
  /** Replace an existing file. */
  readonly force?: boolean;
  /** File mode of the new file (default 0o644). */
  readonly mode?: number;
}

/**
 * Checks up front that `path` can be written, so a command fails before
 * doing long work rather than after: the folder must exist, and an existing
 * file needs `force`.
 *
 * @example
 * ```ts
 * await assertWritable("snapshot.json", { force: false });
 * ```
 */
export async function assertWritable(
  path: string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const folder = dirname(path);
  let isDirectory = false;
  try {
    isDirectory = (await Deno.stat(folder)).isDirectory;
  } catch {
    // reported below
  }
  if (!isDirectory) {
    throw new ConfigError(`Cannot write "${path}": folder "${folder}" does not exist`, {
      code: "output_folder_missing",
      hint: "create the folder first, or choose another path",
    });
  }
  if (!options.force && await exists(path)) throw refuseOverwrite(path);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function refuseOverwrite(path: string): ConfigError {
  return new ConfigError(`Refusing to overwrite "${path}": the file exists`, {
    code: "output_exists",
    hint: "pass --force to replace it, or choose another path",
  });
}

/**
 * Writes `data` to `path` atomically.
 *
 * @example
 * ```ts
 * await writeFileAtomic("snapshot.json", "{}\n", { force: true });
 * ```
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  await assertWritable(path, options);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const temp = `${dirname(path)}/.${path.split("/").pop()}.${Deno.pid}.${Date.now()}.tmp`;
  try {
    await Deno.writeFile(temp, bytes, { mode: options.mode ?? 0o644, createNew: true });
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    if (error instanceof ConfigError) throw error;
    const detail = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`Cannot write "${path}": ${detail}`, {
      code: "output_write_failed",
      hint: "check that the folder exists and is writable",
    });
  }
}
