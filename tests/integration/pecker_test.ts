/**
 * End to end: each corpus program is built plain, recorded (its failure
 * depends on recorded input, randomness, a file or the environment), then the
 * input is taken away and the trace is triaged against sanitizer builds. The
 * expected source line is the one marked `// BUG`.
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { peckerCommand } from "../../cli/pecker.ts";
import { resolveInterposer } from "../../lib/pecker/interposer_path.ts";
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
  /** Re-record until the run crashes (thread order). */
  readonly untilCrash?: boolean;
  readonly afterRecord?: (folder: string) => Promise<void>;
  readonly needsClang?: boolean;
  /** Event kinds the recorded trace must hold. */
  readonly traceHas?: readonly string[];
}

/**
 * A loopback TCP peer for the network case: answers each connection's
 * request with a 4-byte big-endian length and that many bytes.
 */
class Peer {
  readonly #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly #served: Promise<void>;

  constructor(length: number) {
    this.#served = (async () => {
      for await (const connection of this.#listener) {
        try {
          await connection.read(new Uint8Array(64));
          const header = new Uint8Array(4);
          new DataView(header.buffer).setUint32(0, length);
          await connection.write(header);
          await connection.write(new Uint8Array(length).fill(0x42));
        } catch {
          // the program went away first
        } finally {
          connection.close();
        }
      }
    })();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  async close(): Promise<void> {
    this.#listener.close();
    await this.#served.catch(() => {});
  }
}

let peer: Peer | null = null;

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
  {
    name: "tcp_length_overflow",
    args: () => {
      peer = new Peer(200);
      return Promise.resolve([String(peer.port)]);
    },
    // Triage runs with the peer gone: everything it sent is in the trace.
    afterRecord: async () => await peer?.close(),
    crashes: true,
    tool: "asan",
    kind: "heap-buffer-overflow",
    traceHas: ["socket", "connect", "select", "send", "poll", "recv", "epoll_wait", "read"],
  },
  {
    name: "lock_order_use_after_free",
    crashes: true,
    untilCrash: true,
    tool: "asan",
    kind: "heap-use-after-free",
  },
  {
    name: "cond_batch_overflow",
    crashes: true,
    untilCrash: true,
    tool: "asan",
    kind: "heap-buffer-overflow",
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
    if (testCase.untilCrash === true && result.kind !== "crashed") continue;
    if (testCase.until === undefined || testCase.until(stdout)) return result;
  }
  throw new Error(`${testCase.name}: the nondeterministic condition never held in 60 runs`);
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
        if (testCase.traceHas !== undefined) {
          const kinds = new Set(
            parseTrace(await Deno.readFile(recorded.tracePath)).events.map((e) => e.kind),
          );
          for (const kind of testCase.traceHas) assert(kinds.has(kind), `no ${kind} event`);
        }

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
          // The plain build replays to the same crash, with the inputs gone.
          const replayed = await replayTrace(recorded.tracePath);
          assertEquals(replayed.kind, "reproduced", JSON.stringify(replayed));
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

// A program that records events as fast as it can until it is killed.
const SPIN_READER = `#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
int main(void) {
  int fd = open("/dev/zero", O_RDONLY);
  char buf[16];
  struct timespec ts;
  for (long i = 0;; i++) {
    if (read(fd, buf, sizeof buf) != sizeof buf) return 1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (i == 5000) { printf("ready\\n"); fflush(stdout); }
  }
}
`;

Deno.test("pecker trace survives SIGKILL up to the last committed event", async () => {
  const folder = await Deno.makeTempDir({ prefix: "reliab-pecker-test-" });
  try {
    await Deno.writeTextFile(`${folder}/spin.c`, SPIN_READER);
    const built = await new Deno.Command("cc", {
      args: ["-O1", "-o", `${folder}/spin`, `${folder}/spin.c`],
    }).output();
    assert(built.success);
    // Run under the recorder directly: nothing finishes the trace afterwards.
    const child = new Deno.Command(`${folder}/spin`, {
      env: {
        LD_PRELOAD: resolveInterposer(),
        RELIAB_PECKER_MODE: "record",
        RELIAB_PECKER_TRACE: `${folder}/killed.trace`,
      },
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = child.stdout.getReader();
    await reader.read();
    await new Promise((resolve) => setTimeout(resolve, 50));
    child.kill("SIGKILL");
    reader.releaseLock();
    const status = await child.status;
    assertEquals(status.signal, "SIGKILL");

    const bytes = await Deno.readFile(`${folder}/killed.trace`);
    const trace = parseTrace(bytes);
    // The file still has the recorder's zero tail: nobody cut it.
    assert(bytes.length > trace.length, `${bytes.length} > ${trace.length}`);
    assert(bytes.subarray(trace.length).every((byte) => byte === 0) || trace.torn);
    assertEquals(trace.exit, null);
    const calls = trace.events.filter((e) => e.kind === "read" || e.kind === "clock_gettime");
    assert(calls.length > 10_000, `only ${calls.length} events`);
    // Every committed event is whole, and they alternate as the program made them.
    calls.forEach((event, at) => {
      assertEquals(event.kind, at % 2 === 0 ? "read" : "clock_gettime");
      assertEquals(event.payload.length, 16);
    });
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

/** Records `name` (built plain) until `wanted` says the run is the one. */
async function recordUntil(
  name: string,
  folder: string,
  args: string[],
  wanted: (result: Awaited<ReturnType<typeof recordProgram>>) => boolean,
) {
  const exe = `${folder}/${name}`;
  await compile(name, exe);
  for (let attempt = 0; attempt < 60; attempt++) {
    const result = await recordProgram([exe, ...args], {
      output: `${folder}/${name}.trace`,
      keep: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
    if (wanted(result)) return result;
  }
  throw new Error(`${name}: the wanted thread order never happened in 60 runs`);
}

Deno.test("pecker replay holds threads to the recorded lock order, against the build's timing", async () => {
  const folder = await Deno.makeTempDir({ prefix: "reliab-pecker-test-" });
  try {
    // Finisher first: the worker uses the freed task and crashes. A build
    // whose finisher sleeps before locking would let the worker win, unless
    // replay holds the worker back until the recorded epoch.
    const crashed = await recordUntil(
      "lock_order_use_after_free",
      folder,
      [],
      (r) => r.kind === "crashed",
    );
    assertEquals(crashed.code, 128 + 11);
    const trace = parseTrace(await Deno.readFile(crashed.tracePath));
    const locks = trace.events.filter((e) => e.kind === "mutex_lock");
    assertEquals(locks.map((e) => e.arg), [1n, 2n]);
    const slowFinisher = `${folder}/slow_finisher`;
    await compile("lock_order_use_after_free", slowFinisher, ["-DPECKER_SLOW_FINISHER"]);
    const replayed = await replayTrace(crashed.tracePath, { exe: slowFinisher });
    assertEquals(replayed.kind, "reproduced", JSON.stringify(replayed));
    assert(replayed.kind === "reproduced" && replayed.outcome === "killed by SIGSEGV");

    // Worker first (no spin): a clean run stays clean with a slow worker.
    await Deno.remove(crashed.tracePath);
    const clean = await recordUntil(
      "lock_order_use_after_free",
      folder,
      ["0"],
      (r) => r.kind === "exited",
    );
    const slowWorker = `${folder}/slow_worker`;
    await compile("lock_order_use_after_free", slowWorker, ["-DPECKER_SLOW_WORKER"]);
    const calm = await replayTrace(clean.tracePath, { exe: slowWorker });
    assertEquals(calm.kind, "reproduced", JSON.stringify(calm));
    assert(calm.kind === "reproduced" && calm.outcome === "exit code 0");
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test({
  name: "pecker triage: TSan on the recorded lock order reports the data race with both accesses",
  ignore: !HAVE_CLANG,
  fn: async () => {
    const folder = await Deno.makeTempDir({ prefix: "reliab-pecker-test-" });
    try {
      // The clean order: no use after free, so TSan's first report is the race.
      const clean = await recordUntil(
        "lock_order_use_after_free",
        folder,
        ["0"],
        (r) => r.kind === "exited",
      );
      const source = `${CORPUS}lock_order_use_after_free.c`;
      const tsan = `${folder}/tsan`;
      const built = await new Deno.Command("clang", {
        args: ["-g", "-O1", "-fsanitize=thread", "-o", tsan, source],
      }).output();
      assert(built.success);
      const report = await triageTrace(clean.tracePath, { variants: { tsan } });
      const race = report.findings.find((f) => f.kind === "data race");
      assert(race !== undefined, JSON.stringify(report, null, 1));
      assertEquals(race.tool, "tsan");
      const lines = Deno.readTextFileSync(source).split("\n");
      const raceLines = lines.flatMap((line, at) => line.includes("// RACE") ? [at + 1] : []);
      assertEquals(raceLines.length, 2);
      // Both accesses, each at a line marked RACE, in the two functions.
      const accesses = [race.frames[0], race.previous?.frames[0]];
      assertEquals(
        accesses.map((frame) => frame?.line).sort(),
        [...raceLines].sort(),
      );
      assertEquals(accesses.map((frame) => frame?.function).sort(), ["finisher", "worker"]);
      // Which access came first is not ordered (that is the race); the
      // finisher's counter update is the write, the worker's print the read.
      const pairs = [
        [race.frames[0]?.function, race.access?.type],
        [race.previous?.frames[0]?.function, race.previous?.access?.type],
      ].sort();
      assertEquals(pairs, [["finisher", "write"], ["worker", "read"]]);
    } finally {
      await Deno.remove(folder, { recursive: true });
    }
  },
});
