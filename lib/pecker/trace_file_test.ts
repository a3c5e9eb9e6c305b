import { deepEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { describeCall, encodeExitEvent, parseTrace } from "./trace_file.ts";
import { TraceFormatError } from "../errors.ts";
import { parseDivergence } from "./replay.ts";

function event(
  kind: number,
  arg: bigint,
  result: bigint,
  payload: Uint8Array,
  thread = 0,
): Uint8Array {
  const bytes = new Uint8Array(32 + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, kind, true);
  view.setUint32(4, thread, true);
  view.setBigUint64(8, arg, true);
  view.setBigInt64(16, result, true);
  view.setUint32(28, payload.length, true);
  bytes.set(payload, 32);
  return bytes;
}

function header(version = 1): Uint8Array {
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
  event(16, 0n, 3n, text("abc")),
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
  assertEquals(trace.crash?.signal, 11);
  assertEquals(trace.crash?.frames, [0x5555_0000_1234n, 0x5555_0000_5678n]);
  assertEquals(trace.crash?.event, 4);
  assertEquals(trace.exit, { code: 139, signal: 11 });
  assertEquals(trace.torn, false);
});

Deno.test("a trace cut inside an event keeps the events before it", () => {
  const trace = parseTrace(sample.subarray(0, sample.length - 40));
  assertEquals(trace.torn, true);
  assertEquals(trace.exit, null);
  assertEquals(trace.crash, null);
  assertEquals(trace.events.length, 4);
});

Deno.test("foreign, empty, truncated, future and corrupt files are TraceFormatErrors", () => {
  assertThrows(() => parseTrace(new Uint8Array()), TraceFormatError);
  assertThrows(() => parseTrace(text("RLBTR")), /truncated header/);
  assertThrows(() => parseTrace(text("#!/bin/sh\necho not a trace\n")), /not a pecker trace/);
  assertThrows(
    () => parseTrace(concat(header(2), event(1, 0n, 0n, text("x")))),
    /unsupported version "2"/,
  );
  assertThrows(
    () => parseTrace(concat(header(), event(999, 0n, 0n, text("")))),
    /unknown kind "999"/,
  );
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
