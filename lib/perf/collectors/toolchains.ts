/**
 * Compiler, runtime and libc versions. Each tool runs once (`--version`),
 * all in parallel, each killed after a short timeout, so a missing or hung
 * tool costs at most that long and shows as unknown with the reason.
 *
 * @module
 */
import { known, type Property, unknown } from "../schema.ts";
import { messageOf, type Props } from "./_io.ts";

/** A tool is killed after this long and recorded as timed out. */
export const TOOL_TIMEOUT_MS = 500;

/** Tools probed: property name, command and arguments. */
export const TOOLS: readonly (readonly [name: string, command: string, args: readonly string[]])[] =
  [
    ["cc", "cc", ["--version"]],
    ["gcc", "gcc", ["--version"]],
    ["gxx", "g++", ["--version"]],
    ["clang", "clang", ["--version"]],
    ["rustc", "rustc", ["--version"]],
    ["go", "go", ["version"]],
    ["python3", "python3", ["--version"]],
    ["node", "node", ["--version"]],
    ["deno", "deno", ["--version"]],
    ["zig", "zig", ["version"]],
    ["gfortran", "gfortran", ["--version"]],
    ["nvcc", "nvcc", ["--version"]],
    ["libc", "ldd", ["--version"]],
  ];

/**
 * The version in a tool's output: the first dotted number, prefixed with
 * the compiler family for `cc` (which may be gcc or clang).
 *
 * @example
 * ```ts
 * parseToolVersion("gcc", "gcc (Debian 12.2.0-14) 12.2.0\n"); // "12.2.0"
 * parseToolVersion("libc", "ldd (Debian GLIBC 2.36-9+deb12u4) 2.36\n"); // "glibc 2.36"
 * ```
 */
export function parseToolVersion(name: string, output: string): string | undefined {
  const text = output.trim();
  const firstLine = text.split("\n")[0] ?? "";
  if (name === "libc") {
    if (/musl/i.test(text)) {
      const v = /Version\s+(\d+(?:\.\d+)+)/i.exec(text)?.[1];
      return v === undefined ? undefined : `musl ${v}`;
    }
    const v = /(\d+\.\d+(?:\.\d+)?)\s*$/.exec(firstLine)?.[1];
    return v === undefined ? undefined : `glibc ${v}`;
  }
  if (name === "nvcc") {
    const v = /release (\d+\.\d+)/.exec(text)?.[1];
    return v;
  }
  // gcc's first line ends with the version; others have it after the name.
  const line = name === "gcc" || name === "gxx" || name === "cc"
    ? firstLine.replace(/\([^)]*\)/g, "")
    : firstLine;
  const version = /(\d+\.\d+(?:\.\d+)?(?:[-+.][\w.]+)?)/.exec(line)?.[1];
  if (version === undefined) return undefined;
  if (name === "cc") {
    const family = /clang/i.test(text)
      ? "clang"
      : /gcc|g\+\+|GNU|Free Software Foundation/i.test(text)
      ? "gcc"
      : "unknown";
    return `${family} ${version}`;
  }
  return version;
}

async function probe(name: string, command: string, args: readonly string[]): Promise<Property> {
  const source = `exec:${command} ${args.join(" ")}`;
  const signal = AbortSignal.timeout(TOOL_TIMEOUT_MS);
  try {
    const output = await new Deno.Command(command, {
      args: [...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal,
      env: { LC_ALL: "C" },
    }).output();
    const text = new TextDecoder().decode(output.stdout) + "\n" +
      new TextDecoder().decode(output.stderr);
    // musl's ldd prints its version and exits 1; other tools must succeed.
    if (!output.success && !(name === "libc" && /musl/i.test(text))) {
      if (signal.aborted) return unknown(source, `timed out after ${TOOL_TIMEOUT_MS} ms`);
      return unknown(
        source,
        `exited with ${output.code}: ${text.trim().split("\n")[0]?.slice(0, 120) ?? ""}`,
      );
    }
    const version = parseToolVersion(name, text);
    return version === undefined
      ? unknown(source, `no version in its output ${JSON.stringify(text.trim().slice(0, 80))}`)
      : known(version, source);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return unknown(source, `not installed (no "${command}" on PATH)`);
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      return unknown(
        source,
        `cannot run "${command}": permission denied (or --allow-run not granted)`,
      );
    }
    if (signal.aborted) return unknown(source, `timed out after ${TOOL_TIMEOUT_MS} ms`);
    return unknown(source, messageOf(error));
  }
}

/**
 * Toolchain properties (`toolchain.<name>`), plus the Deno runtime running reliab.
 *
 * @example
 * ```ts
 * (await collectToolchains())["toolchain.gcc"]; // known("12.2.0", "exec:gcc --version")
 * ```
 */
export async function collectToolchains(): Promise<Props> {
  const results = await Promise.all(
    TOOLS.map(([name, command, args]) => probe(name, command, args)),
  );
  const props: Props = {};
  TOOLS.forEach(([name], i) => props[`toolchain.${name}`] = results[i]!);
  props["toolchain.reliab_runtime"] = known(
    `deno ${Deno.version.deno} v8 ${Deno.version.v8}`,
    "Deno.version",
  );
  return props;
}
