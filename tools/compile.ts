/**
 * `deno task compile`: builds the single `reliab` executable with
 * `deno compile`, the native library embedded (lib/native_path.ts extracts it
 * at run time, since dlopen needs a real file).
 *
 * `deno compile` needs Deno's `denort` runtime. The registries reachable here
 * do not carry it, so this script never lets deno download it silently: it
 * uses DENORT_BIN, or a denort already in Deno's cache, or (with --download)
 * lets deno fetch it where the network allows. The result is smoke-tested
 * (`reliab --version`); a failed build leaves no half-made executable.
 *
 *   deno task compile [--output dist/reliab] [--target TRIPLE] [--download]
 */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Native library path, relative to the root, embedded with --include. */
export const NATIVE_LIB = "zig-out/lib/libreliab.so";
/** The pecker recorder (LD_PRELOAD), embedded and extracted the same way. */
export const INTERPOSER_LIB = "zig-out/lib/libreliab_interpose.so";
/** Every file `deno compile` embeds. */
export const EMBEDDED_FILES = [NATIVE_LIB, INTERPOSER_LIB] as const;

/** Permissions the compiled binary runs with (the same as ./reliab). */
export const PERMISSIONS = [
  // Deno refuses reads under /proc/self and /sys without --allow-all (see ./reliab).
  "--allow-all",
] as const;

/** Arguments of `deno compile` for an output path and target. */
export function compileArgs(output: string, target?: string): string[] {
  return [
    "compile",
    "--quiet",
    "--no-prompt",
    ...PERMISSIONS,
    ...EMBEDDED_FILES.flatMap((file) => ["--include", file]),
    ...(target ? ["--target", target] : []),
    "--output",
    output,
    "cli/main.ts",
  ];
}

/** Where deno caches a downloaded denort for this version. */
export function cachedDenort(denoDir: string, version: string, target: string): string {
  return join(denoDir, "dl", "release", `v${version}`, `denort-${target}.zip`);
}

function fail(message: string, hint: string): never {
  console.error(`reliab compile: error: ${message}`);
  console.error(`reliab compile: hint: ${hint}`);
  Deno.exit(1);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // nothing was written
  }
}

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: root,
    env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, text };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      output: { type: "string", default: "dist/reliab" },
      target: { type: "string" },
      download: { type: "boolean" },
    },
  });
  const output = values.output!;
  const target = values.target ?? `${Deno.build.arch}-unknown-linux-gnu`;
  const denortBin = Deno.env.get("DENORT_BIN");
  const denoDir = Deno.env.get("DENO_DIR") ?? join(root, ".toolchain", "deno-dir");
  if (denortBin !== undefined && !exists(denortBin)) {
    fail(`DENORT_BIN "${denortBin}" does not exist`, "point DENORT_BIN at a denort binary");
  }
  const cached = exists(cachedDenort(denoDir, Deno.version.deno, target));
  if (denortBin === undefined && !cached && !values.download) {
    fail(
      `deno compile needs the denort runtime for Deno ${Deno.version.deno}, and none is available`,
      `set DENORT_BIN to denort from denort-${target}.zip of the Deno ${Deno.version.deno} release, ` +
        "or pass --download where the network allows",
    );
  }
  console.error("reliab compile: building the native core (zig build)");
  const build = await run("zig", ["build"]);
  if (!build.ok) fail(`zig build failed:\n${build.text}`, "fix the native build first");
  for (const file of EMBEDDED_FILES) {
    if (!exists(join(root, file))) fail(`${file} was not built`, "run 'zig build'");
  }

  // Build into a temporary name and rename after the smoke test: a failed
  // build never leaves a half-made `reliab` behind.
  const absolute = output.startsWith("/") ? output : join(root, output);
  Deno.mkdirSync(dirname(absolute), { recursive: true });
  const temp = `${absolute}.tmp-${Deno.pid}`;
  console.error(`reliab compile: deno ${compileArgs(output, target).join(" ")}`);
  const compiled = await run(Deno.execPath(), compileArgs(temp, target));
  if (!compiled.ok) {
    removeQuietly(temp);
    console.error(compiled.text.trim());
    fail("deno compile failed", "see its output above");
  }
  const smoke = await run(temp, ["--version"], {
    XDG_CACHE_HOME: join(root, ".toolchain", "cache"),
  });
  if (!smoke.ok || !smoke.text.startsWith("reliab ")) {
    removeQuietly(temp);
    fail(
      "the compiled executable did not start reliab (is DENORT_BIN really denort?)",
      `use denort from denort-${target}.zip, not the deno binary`,
    );
  }
  Deno.renameSync(temp, absolute);
  console.log(`reliab compile: wrote ${output} (${smoke.text.trim()})`);
}

if (import.meta.main) await main();
