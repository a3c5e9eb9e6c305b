/**
 * Offline symbolization: module offsets to function, file and line with
 * llvm-symbolizer (or addr2line when it is missing). Replays run with
 * symbolize=0 so that no symbolizer process inherits the recorder's preload.
 *
 * @module
 */

/** Source location of one address; nulls when unknown. */
export interface SourceLocation {
  readonly function: string | null;
  readonly file: string | null;
  readonly line: number | null;
}

async function which(name: string): Promise<string | null> {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    try {
      const path = `${dir}/${name}`;
      const info = await Deno.stat(path);
      if (info.isFile) return path;
    } catch {
      // not in this folder
    }
  }
  return null;
}

function unknownToNull(value: string | undefined): string | null {
  return value === undefined || value === "" || value === "??" ? null : value;
}

function parseLocation(
  functionLine: string | undefined,
  fileLine: string | undefined,
): SourceLocation {
  const match = /^(.*?):(\d+)(?::\d+)?(?: \(discriminator \d+\))?$/.exec(fileLine ?? "");
  const line = match === null ? null : Number(match[2]);
  return {
    function: unknownToNull(functionLine),
    file: match === null ? null : unknownToNull(match[1]),
    line: line === 0 ? null : line,
  };
}

/**
 * Symbolizes `offsets` (file addresses, as `module+0x…` in sanitizer reports)
 * of the object at `path`, in order. Unknown addresses give nulls.
 *
 * @example
 * ```ts
 * const [where] = await symbolize("./prog.asan", [0x11a9n]);
 * console.log(where?.file, where?.line);
 * ```
 */
export async function symbolize(
  path: string,
  offsets: readonly bigint[],
): Promise<SourceLocation[]> {
  const empty = offsets.map(() => ({ function: null, file: null, line: null }));
  if (offsets.length === 0) return empty;
  const input = offsets.map((offset) => `0x${offset.toString(16)}`).join("\n") + "\n";
  const llvm = await which("llvm-symbolizer");
  const tool = llvm ?? await which("addr2line");
  if (tool === null) return empty;
  const args = llvm !== null ? [`--obj=${path}`] : ["-f", "-e", path];
  let text: string;
  try {
    const child = new Deno.Command(tool, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
      env: { LD_PRELOAD: "" },
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    await writer.close();
    const output = await child.output();
    text = new TextDecoder().decode(output.stdout);
  } catch {
    return empty;
  }
  if (llvm !== null) {
    // Blocks separated by a blank line; the first pair is the innermost frame.
    const blocks = text.split(/\n\n/).filter((block) => block.trim() !== "");
    return offsets.map((_, index) => {
      const lines = (blocks[index] ?? "").split("\n");
      return parseLocation(lines[0], lines[1]);
    });
  }
  const lines = text.split("\n");
  return offsets.map((_, index) => parseLocation(lines[index * 2], lines[index * 2 + 1]));
}
