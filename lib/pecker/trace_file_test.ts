import { deepEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { describeCall, encodeExitEvent, finishTrace, parseTrace } from "./trace_file.ts";
import { TraceFormatError } from "../errors.ts";
import { parseDivergence } from "./replay.ts";

/** Encodes one v2 event the way the recorder does (zero fields left out). */
function event(
  kind: number,
  arg: bigint,
  result: bigint,
  payload: Uint8Array,
  thread = 0,
  errno = 0,
): Uint8Array {
  const fields = [arg, result, BigInt(errno)];
  const flags = fields.reduce((bits, value, at) => value !== 0n ? bits | (1 << at) : bits, 0);
  const present = fields.filter((value) => value !== 0n);
  const bytes = new Uint8Array(8 + 8 * present.length + ((payload.length + 7) & ~7));
  const view = new DataView(bytes.buffer);
  view.setUint8(0, kind);
  view.setUint8(1, flags);
  view.setUint16(2, thread, true);
  view.setUint32(4, payload.length, true);
  present.forEach((value, at) => view.setBigInt64(8 + 8 * at, value, true));
  bytes.set(payload, 8 + 8 * present.length);
  return bytes;
}

function header(version = 2): Uint8Array {
  const bytes = new Uint8Array(16);
  bytes.set(new TextEncoder().encode("RLBTRACE"));
  new DataView(bytes.buffer).setUint32(8, version, true);
  new DataView(bytes.buffer).setUint32(12, 16, true);
  return bytes;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const text = (value: string) => new TextEncoder().encode(value);
const crashFrames = new Uint8Array(16);
new DataView(crashFrames.buffer).setBigUint64(0, 0x5555_0000_1234n, true);
new DataView(crashFrames.buffer).setBigUint64(8, 0x5555_0000_5678n, true);
const sample = concat(
  header(),
  event(1, 42n, 0x5555_0000_0000n, text("/bin/prog")),
  event(2, 0n, 0n, text("/bin/prog\0-v\0")),
  event(4, 0n, 0n, text("/tmp")),
  event(16, 0n, 3n, text("abc"), 0, 4),
  event(5, 11n, 0n, crashFrames),
  encodeExitEvent(139, 11),
);

Deno.test("a complete trace decodes process, argv, crash and exit", () => {
  const trace = parseTrace(sample);
  assertEquals(trace.pid, 42);
  assertEquals(trace.exe, "/bin/prog");
  assertEquals(trace.exeBase, 0x5555_0000_0000n);
  assertEquals(trace.argv, ["/bin/prog", "-v"]);
  assertEquals(trace.cwd, "/tmp");
  assertEquals(trace.events[3]?.kind, "read");
  assertEquals(new TextDecoder().decode(trace.events[3]?.payload), "abc");
  assertEquals([trace.events[3]?.arg, trace.events[3]?.result, trace.events[3]?.errno], [
    0n,
    3n,
    4,
  ]);
  assertEquals(trace.crash?.signal, 11);
  assertEquals(trace.crash?.frames, [0x5555_0000_1234n, 0x5555_0000_5678n]);
  assertEquals(trace.crash?.event, 4);
  assertEquals(trace.exit, { code: 139, signal: 11 });
  assertEquals(trace.torn, false);
  assertEquals(trace.length, sample.length);
});

Deno.test("the zero tail of the last chunk ends the trace and is not torn", () => {
  const withTail = concat(sample, new Uint8Array(4096));
  const trace = parseTrace(withTail);
  assertEquals(trace.events.length, 6);
  assertEquals(trace.torn, false);
  assertEquals(trace.length, sample.length);
});

Deno.test("an uncommitted event ends the trace; what follows it makes it torn", () => {
  const reserved = event(16, 0n, 3n, text("xyz"));
  reserved.fill(0, 0, 8); // body written, commit word never stored
  const bytes = concat(sample.subarray(0, sample.length - 24), reserved, new Uint8Array(64));
  const trace = parseTrace(bytes);
  assertEquals(trace.torn, true);
  assertEquals(trace.crash?.signal, 11);
  assertEquals(trace.exit, null);
  assertEquals(trace.events.length, 5);
  // An event cut by the end of the file (a copied or truncated trace).
  const cut = parseTrace(sample.subarray(0, sample.length - 4));
  assertEquals(cut.torn, true);
  assertEquals(cut.events.length, 5);
});

Deno.test("finishTrace cuts the zero tail and appends the exit event", async () => {
  const path = await Deno.makeTempFile({ suffix: ".trace" });
  try {
    const body = sample.subarray(0, sample.length - 24);
    // A payload larger than the reader's block, to cross block boundaries.
    const big = event(16, 0n, 1n, new Uint8Array((1 << 20) + 100).fill(1));
    await Deno.writeFile(path, concat(body, big, new Uint8Array(70_000)));
    const length = await finishTrace(path, 139, 11);
    const bytes = await Deno.readFile(path);
    assertEquals(length, bytes.length);
    assertEquals(bytes.length, body.length + big.length + 24);
    const trace = parseTrace(bytes);
    assertEquals(trace.exit, { code: 139, signal: 11 });
    assertEquals(trace.events.length, 7);
    await Deno.writeTextFile(path, "not a trace");
    assertEquals(await finishTrace(path, 0, 0), null);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("foreign, empty, truncated, future and corrupt files are TraceFormatErrors", () => {
  assertThrows(() => parseTrace(new Uint8Array()), TraceFormatError);
  assertThrows(() => parseTrace(text("RLBTR")), /truncated header/);
  assertThrows(() => parseTrace(text("#!/bin/sh\necho not a trace\n")), /not a pecker trace/);
  assertThrows(
    () => parseTrace(concat(header(1), event(1, 0n, 0n, text("x")))),
    /unsupported version "1"/,
  );
  assertThrows(
    () => parseTrace(concat(header(), event(99, 0n, 0n, text("")))),
    /unknown kind "99"/,
  );
  const badFlags = event(16, 0n, 0n, text(""));
  badFlags[1] = 0x40;
  assertThrows(() => parseTrace(concat(header(), badFlags)), /unknown flags "64"/);
  assertThrows(
    () => parseTrace(concat(header(), event(16, 0n, 0n, text("")))),
    /no process record/,
  );
});

Deno.test("divergence reports read as calls", () => {
  const divergence = parseDivergence(
    "diverged thread=0 event=4 expected_kind=16 expected_arg=0 actual_kind=20 actual_arg=0 reason=call",
  );
  assertEquals(divergence, {
    thread: 0,
    event: 4,
    expected: "read(fd 0)",
    actual: "time",
    reason: "call",
  });
  assertEquals(parseDivergence("garbage"), null);
  assertEquals(describeCall("mutex_lock", 3n), "mutex_lock(epoch 3)");
});
