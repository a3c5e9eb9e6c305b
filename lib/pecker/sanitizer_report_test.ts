import { deepEqual as assertEquals } from "node:assert/strict";
import { parseSanitizerOutput, severityOf, ubsanKind } from "./sanitizer_report.ts";

// Real reports captured from replays of tests/pecker_corpus (clang 14, symbolize=0).
const fixture = (name: string) =>
  Deno.readTextFileSync(new URL(`../../tests/fixtures/pecker/${name}.txt`, import.meta.url));

Deno.test("ASan heap-buffer-overflow gives kind, write access, frames and replay position", () => {
  const [finding, ...rest] = parseSanitizerOutput(fixture("asan_heap_buffer_overflow"));
  assertEquals(rest.length, 0);
  assertEquals(finding?.tool, "asan");
  assertEquals(finding?.kind, "heap-buffer-overflow");
  assertEquals(finding?.access, { type: "write", size: 4 });
  assertEquals(finding?.event, 5);
  // Only the first stack (the access), not the allocation stack.
  assertEquals(finding?.frames.length, 4);
  assertEquals(finding?.frames[0]?.module, "/tmp/pk/random_index.asan");
  assertEquals(finding?.frames[0]?.offset, 0xdf11an);
  assertEquals(severityOf(finding!.kind, finding!.access), "EXPLOITABLE");
});

Deno.test("ASan heap-use-after-free is exploitable", () => {
  const [finding] = parseSanitizerOutput(fixture("asan_heap_use_after_free"));
  assertEquals(finding?.kind, "heap-use-after-free");
  assertEquals(finding?.access, { type: "write", size: 1 });
  assertEquals(severityOf(finding!.kind, finding!.access), "EXPLOITABLE");
});

Deno.test("UBSan runtime error keeps the source location of the check", () => {
  const [finding] = parseSanitizerOutput(fixture("ubsan_signed_integer_overflow"));
  assertEquals(finding?.tool, "ubsan");
  assertEquals(finding?.kind, "signed-integer-overflow");
  assertEquals(finding?.frames[0]?.file, "/work/main/tests/pecker_corpus/integer_overflow.c");
  assertEquals(finding?.frames[0]?.line, 10);
  assertEquals(finding?.event, 4);
  assertEquals(severityOf(finding!.kind, finding!.access), "NOT_EXPLOITABLE");
});

Deno.test("UBSan SEGV reads the access type from the signal line", () => {
  const [finding] = parseSanitizerOutput(fixture("ubsan_segv"));
  assertEquals(finding?.tool, "ubsan");
  assertEquals(finding?.kind, "SEGV");
  assertEquals(finding?.access, { type: "read", size: null });
});

Deno.test("MSan use-of-uninitialized-value", () => {
  const [finding] = parseSanitizerOutput(fixture("msan_use_of_uninitialized_value"));
  assertEquals(finding?.tool, "msan");
  assertEquals(finding?.kind, "use-of-uninitialized-value");
  assertEquals(finding?.frames.length, 4);
});

Deno.test("TSan data race with module-relative frames", () => {
  const [finding] = parseSanitizerOutput(fixture("tsan_data_race"));
  assertEquals(finding?.tool, "tsan");
  assertEquals(finding?.kind, "data race");
  assertEquals(finding?.access, { type: "write", size: 4 });
  assertEquals(finding?.frames[0]?.module, "race.tsan");
  assertEquals(finding?.frames[0]?.offset, 0xd01a1n);
  assertEquals(finding?.event, null);
});

Deno.test("glibc assertion failure names file, line and function", () => {
  const [finding] = parseSanitizerOutput(fixture("assert_failure"));
  assertEquals(finding?.tool, "assert");
  assertEquals(finding?.kind, "assertion-failure");
  assertEquals(finding?.frames[0], {
    index: 0,
    module: null,
    offset: null,
    function: "main",
    file: "/work/main/tests/pecker_corpus/assert_input.c",
    line: 11,
  });
});

Deno.test("plain program output has no findings", () => {
  assertEquals(parseSanitizerOutput("hello\nworld: 3: not a report\n"), []);
  assertEquals(ubsanKind("index 20 out of bounds for type 'int [10]'"), "index-out-of-bounds");
});

Deno.test("TSan data race from a replay keeps both accesses and the replay position", () => {
  // Captured from a TSan replay of tests/pecker_corpus/lock_order_use_after_free.c.
  const [finding, ...rest] = parseSanitizerOutput(fixture("tsan_data_race_replay"));
  assertEquals(rest.length, 0);
  assertEquals([finding?.tool, finding?.kind], ["tsan", "data race"]);
  assertEquals(finding?.access, { type: "write", size: 8 });
  assertEquals(finding?.frames.map((frame) => frame.offset), [0xd0350n, 0x51328n]);
  assertEquals(finding?.previous?.access, { type: "read", size: 8 });
  assertEquals(finding?.previous?.frames.map((frame) => frame.offset), [0xd02can, 0x51328n]);
  assertEquals(finding?.previous?.frames[0]?.module, "lo.tsan");
  assertEquals(finding?.event, 6);
  // Thread-creation stacks are not accesses.
  assertEquals(parseSanitizerOutput(fixture("asan_heap_use_after_free"))[0]?.previous, null);
});
