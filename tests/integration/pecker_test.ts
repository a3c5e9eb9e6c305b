/**
 * End to end: each corpus program is built plain, recorded (its failure
 * depends on recorded input, randomness, a file or the environment), then the
 * input is taken away and the trace is triaged against sanitizer builds. The
 * expected source line is the one marked `// BUG`.
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { peckerCommand } from "../../cli/pecker.ts";
import {
  parseTrace,
  recordProgram,
  replayTrace,
  type TriageReport,
  triageTrace,
} from "../../lib/pecker/mod.ts";

const CORPUS = new URL("../pecker_corpus/", import.meta.url).pathname;
const HAVE_CLANG =
  new Deno.Command("sh", { args: ["-c", "command -v clang"] }).outputSync().success;

function bugLine(name: string): number {
  const lines = Deno.readTextFileSync(`${CORPUS}${name}.c`).split("\n");
  const index = lines.findIndex((line) => line.includes("// BUG"));
  assert(index >= 0, `no // BUG marker in ${name}.c`);
  return index + 1;
}

async function compile(name: string, out: string, flags: string[] = []): Promise<void> {
  const result = await new Deno.Command("cc", {
    args: ["-g", "-O0", "-DNDEBUG", ...flags, "-o", out, `${CORPUS}${name}.c`],
    stderr: "piped",
  }).output();
  assert(result.success, new TextDecoder().decode(result.stderr));
}

interface Case {
  readonly name: string;
  readonly input?: string;
  readonly env?: Record<string, string>;
  readonly args?: (folder: string) => Promise<string[]>;
  readonly crashes: boolean;
  readonly tool: string;
  readonly kind: string;
  /** Re-record until stdout satisfies this (randomness). */
  readonly until?: (stdout: string) => boolean;
  readonly afterRecord?: (folder: string) => Promise<void>;
  readonly needsClang?: boolean;
}

const CASES: readonly Case[] = [
  {
    name: "stdin_overflow",
    input: "0200" + "A".repeat(200),
    crashes: true,
    tool: "asan",
    kind: "heap-buffer-overflow",
  },
  {
    name: "random_index",
    crashes: false,
    tool: "asan",
    kind: "heap-buffer-overflow",
    until: (stdout) => Number(/(\d+)\s*$/.exec(stdout)?.[1] ?? 0) >= 16,
  },
  {
    name: "deleted_file",
    args: async (folder) => {
      await Deno.writeTextFile(`${folder}/input.txt`, `200\n${"0".repeat(300)}\n`);
      return [`${folder}/input.txt`];
    },
    afterRecord: async (folder) => await Deno.remove(`${folder}/input.txt`),
    crashes: true,
    tool: "asan",
    kind: "stack-buffer-overflow",
  },
  {
    name: "env_use_after_free",
    env: { PECKER_CORPUS_MODE: "fast" },
    crashes: true,
    tool: "asan",
    kind: "heap-use-after-free",
  },
  {
    name: "integer_overflow",
    input: "3000000\n",
    crashes: false,
    tool: "ubsan",
    kind: "signed-integer-overflow",
  },
  {
    name: "assert_input",
    input: "150\n",
    crashes: false,
    tool: "assert",
    kind: "assertion-failure",
  },
  {
    name: "uninitialized",
    input: "ab",
    crashes: false,
    tool: "msan",
    kind: "use-of-uninitialized-value",
    needsClang: true,
  },
];

async function recordCase(testCase: Case, folder: string, exe: string) {
  const args = testCase.args === undefined ? [] : await testCase.args(folder);
  for (let attempt = 0; attempt < 60; attempt++) {
    const result = await recordProgram([exe, ...args], {
      output: `${folder}/${testCase.name}.trace`,
      keep: !testCase.crashes,
      ...(testCase.input === undefined
        ? { stdin: "null" as const }
        : { input: new TextEncoder().encode(testCase.input) }),
      ...(testCase.env === undefined ? {} : { env: testCase.env }),
      stdout: "piped",
      stderr: "piped",
    });
    // The overflow may scribble on stdout's buffer: keep printable bytes only.
    const stdout = new TextDecoder().decode(
      result.stdout.filter((byte) => byte >= 0x20 || byte === 0x0a),
    );
    if (testCase.until === undefined || testCase.until(stdout)) return result;
  }
  throw new Error(`${testCase.name}: the random condition never held in 60 runs`);
}

for (const testCase of CASES) {
  Deno.test({
    name: `pecker triage finds ${testCase.kind} in ${testCase.name} at its BUG line`,
    ignore: testCase.needsClang === true && !HAVE_CLANG,
    fn: async () => {
      const folder = await Deno.makeTempDir({ prefix: "reliab-pecker-test-" });
      let passed = false;
      try {
        const exe = `${folder}/${testCase.name}`;
        await compile(testCase.name, exe);
        const recorded = await recordCase(testCase, folder, exe);
        assertEquals(recorded.kind, testCase.crashes ? "crashed" : "exited");
        assert(recorded.kept, "trace should be kept");
        if (testCase.crashes) assert(recorded.code > 128, `status ${recorded.code}`);
        assertEquals((await Deno.stat(recorded.tracePath)).mode! & 0o777, 0o600);
        await testCase.afterRecord?.(folder);

        const report: TriageReport = await triageTrace(recorded.tracePath, {
          build: `{cc} {cflags} -o {out} ${CORPUS}${testCase.name}.c`,
        });
        const root = report.findings[0];
        assert(root !== undefined, JSON.stringify(report.variants));
        assertEquals(root.role, "root-cause");
        assertEquals([root.tool, root.kind], [testCase.tool, testCase.kind]);
        assertEquals(root.frames[0]?.line, bugLine(testCase.name));
        assert(root.frames[0]?.file?.endsWith(`${testCase.name}.c`));
        assert(root.dedup.startsWith(`${testCase.kind}:`));
        if (testCase.crashes) {
          assert(report.crash !== null);
          assertEquals(report.findings.at(-1)?.role, "symptom");
          assert(
            root.event !== null && root.event < report.crash.event,
            "root cause precedes the crash",
          );
        }
        passed = true;
      } finally {
        // Keep the evidence of a failure.
        if (passed) await Deno.remove(folder, { recursive: true });
        else console.error(`kept ${folder}`);
      }
    },
  });
}

Deno.test("pecker replay reproduces with the plain build and reports divergence of another", async () => {
  const folder = await Deno.makeTempDir({ prefix: "reliab-pecker-test-" });
  try {
    const exe = `${folder}/stdin_overflow`;
    await compile("stdin_overflow", exe);
    const recorded = await recordProgram([exe], {
      output: `${folder}/t.trace`,
      input: new TextEncoder().encode("0200" + "A".repeat(200)),
      stdout: "piped",
      stderr: "piped",
    });
    assertEquals(recorded.code, 128 + 11);
    const same = await replayTrace(recorded.tracePath);
    assertEquals(same.kind, "reproduced");

    const other = `${folder}/stdin_overflow_diverge`;
    await compile("stdin_overflow", other, ["-DPECKER_DIVERGE"]);
    const diverged = await replayTrace(recorded.tracePath, { exe: other });
    assert(diverged.kind === "diverged");
    // Events 0-3 are metadata; the first call was the 4-byte read of stdin.
    assertEquals(diverged.divergence, {
      thread: 0,
      event: 4,
      expected: "read(fd 0)",
      actual: "time",
      reason: "call",
    });
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("pecker record removes the trace of a clean run and redacts secrets of a kept one", async () => {
  const folder = await Deno.makeTempDir({ prefix: "reliab-pecker-test-" });
  try {
    const exe = `${folder}/integer_overflow`;
    await compile("integer_overflow", exe);
    const input = new TextEncoder().encode("7\n");
    const clean = await recordProgram([exe], {
      output: `${folder}/a.trace`,
      input,
      stdout: "piped",
      stderr: "piped",
    });
    assertEquals([clean.kind, clean.code, clean.kept], ["exited", 0, false]);
    await Deno.stat(clean.tracePath).then(() => assert(false, "trace should be gone"), () => {});

    const kept = await recordProgram([exe], {
      output: `${folder}/b.trace`,
      keep: true,
      input,
      env: { SERVICE_API_TOKEN: "hunter2-very-secret" },
      stdout: "piped",
      stderr: "piped",
    });
    const bytes = await Deno.readFile(kept.tracePath);
    assert(!new TextDecoder().decode(bytes).includes("hunter2-very-secret"));
    const trace = parseTrace(bytes);
    assert(trace.environ.includes("SERVICE_API_TOKEN=<redacted>"));
    assertEquals(trace.exit, { code: 0, signal: 0 });
    assertEquals(trace.events.filter((e) => e.kind === "fgets").length, 1);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("pecker CLI: a foreign trace is a TraceFormatError naming the file", async () => {
  const folder = await Deno.makeTempDir({ prefix: "reliab-pecker-test-" });
  try {
    await Deno.writeTextFile(`${folder}/x.trace`, "not a trace at all, sorry\n");
    let message = "";
    try {
      await peckerCommand(["replay", `${folder}/x.trace`]);
    } catch (error) {
      message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    }
    assertEquals(
      message,
      `TraceFormatError: Cannot read trace "${folder}/x.trace": not a pecker trace (bad magic)`,
    );
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});
