import { deepEqual as assertEquals, match as assertMatch, ok as assert } from "node:assert/strict";
import { parseSnapshot, readSnapshot, serializeSnapshot, withHash } from "./snapshot_file.ts";
import { contentHash } from "./canonical.ts";
import { ConfigError, TraceFormatError } from "../errors.ts";
import { known, type Snapshot, SNAPSHOT_FORMAT, SNAPSHOT_VERSION, unknown } from "./schema.ts";

async function rejects<E extends Error>(
  run: () => Promise<unknown>,
  type: new (...args: never[]) => E,
): Promise<E> {
  try {
    await run();
  } catch (error) {
    assert(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    return error;
  }
  throw new Error(`expected ${type.name}, nothing was thrown`);
}

function throws<E extends Error>(run: () => unknown, type: new (...args: never[]) => E): E {
  try {
    run();
  } catch (error) {
    assert(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    return error;
  }
  throw new Error(`expected ${type.name}, nothing was thrown`);
}

function sample(): Snapshot {
  return withHash({
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    created: "2025-01-01T00:00:00.000Z",
    tool: { name: "reliab", version: "0.1.0" },
    redaction: { enabled: false, key_id: null },
    properties: {
      "thp.enabled": known("madvise", "/sys/kernel/mm/transparent_hugepage/enabled"),
      "cpu.flags": known(["avx2", "sse4_2"], "cpuid:0x1.0"),
      "msr.cpu0.ia32_misc_enable": unknown("/dev/cpu/0/msr", "no such file: no msr driver"),
      "calibration.clock": known({ unit: "ns", median: 20, cv: 0.01, runs: 5 }, "calibrate:clock"),
    },
  });
}

async function withFile(text: string, run: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "reliab_snapfile_" });
  try {
    const path = `${dir}/snap.json`;
    await Deno.writeTextFile(path, text);
    await run(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function expectFormatError(text: string, pattern: RegExp): Promise<void> {
  await withFile(text, async (path) => {
    const error = await rejects(() => readSnapshot(path), TraceFormatError);
    assertMatch(error.message, pattern);
    assert(error.message.includes(`"${path}"`), `message names the file: ${error.message}`);
    assert(error.hint.length > 0);
  });
}

Deno.test("serializeSnapshot and readSnapshot round-trip with a verified hash", async () => {
  const snapshot = sample();
  const text = serializeSnapshot(snapshot);
  assert(text.endsWith("}\n"));
  const paths = Object.keys(JSON.parse(text).properties);
  assertEquals(paths, [...paths].sort());
  await withFile(text, async (path) => {
    const read = await readSnapshot(path);
    assertEquals(read.hash, snapshot.hash);
    assertEquals(read.properties["cpu.flags"], snapshot.properties["cpu.flags"]);
  });
});

Deno.test("the content hash ignores key order and whitespace but not values", () => {
  const snapshot = sample();
  const reordered = JSON.parse(JSON.stringify({ ...snapshot, format: undefined }));
  reordered.format = SNAPSHOT_FORMAT; // now last
  assertEquals(contentHash(reordered), snapshot.hash);
  const edited = { ...snapshot, created: "2025-01-02T00:00:00.000Z" };
  assert(contentHash(edited) !== snapshot.hash);
  assertMatch(snapshot.hash, /^sha256:[0-9a-f]{64}$/);
});

Deno.test("readSnapshot: a missing file is a ConfigError naming it", async () => {
  const path = `/nonexistent-${crypto.randomUUID()}/snap.json`;
  const error = await rejects(() => readSnapshot(path), ConfigError);
  assertEquals(error.message, `Cannot read snapshot "${path}": no such file`);
  assertEquals(error.code, "snapshot_not_found");
});

Deno.test("readSnapshot: a directory is a ConfigError", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const error = await rejects(() => readSnapshot(dir), ConfigError);
    assertMatch(error.message, /it is a directory/);
  } finally {
    await Deno.remove(dir);
  }
});

Deno.test("readSnapshot: text that is not JSON", async () => {
  await expectFormatError("hello, world\n", /file is truncated or not JSON/);
});

Deno.test("readSnapshot: a truncated snapshot", async () => {
  const text = serializeSnapshot(sample());
  await expectFormatError(
    text.slice(0, Math.floor(text.length / 2)),
    /file is truncated or not JSON/,
  );
  await expectFormatError("", /file is truncated or not JSON/);
});

Deno.test("readSnapshot: JSON that is not a snapshot", async () => {
  await expectFormatError(
    '{"name": "package"}',
    /not a reliab perf snapshot: the format field is missing/,
  );
  await expectFormatError('{"format": "pyperf"}', /not a reliab perf snapshot: format is "pyperf"/);
  await expectFormatError("[1, 2]", /not a reliab perf snapshot: the JSON is not an object/);
});

Deno.test("readSnapshot: a newer schema asks to upgrade", async () => {
  const newer = { ...sample(), version: SNAPSHOT_VERSION + 1 };
  await withFile(JSON.stringify(newer), async (path) => {
    const error = await rejects(() => readSnapshot(path), TraceFormatError);
    assertEquals(
      error.message,
      `Cannot read snapshot "${path}": snapshot schema ${
        SNAPSHOT_VERSION + 1
      } is newer than this reliab supports (${SNAPSHOT_VERSION}): upgrade reliab`,
    );
    assertEquals(error.code, "snapshot_too_new");
  });
});

Deno.test("readSnapshot: an edited value breaks the hash", async () => {
  const text = serializeSnapshot(sample()).replace('"madvise"', '"always"');
  assert(text.includes('"always"'));
  await expectFormatError(text, /content hash does not match: the file was edited or damaged/);
});

Deno.test("readSnapshot: properties of the wrong shape", async () => {
  const bad = (property: unknown) =>
    JSON.stringify(withHash({ ...sample(), properties: { "cpu.vendor": property } as never }));
  await expectFormatError(
    bad({ status: "maybe", source: "x" }),
    /property "cpu.vendor" has status "maybe"/,
  );
  await expectFormatError(bad({ status: "ok", source: "x" }), /property "cpu.vendor" has no value/);
  await expectFormatError(bad({ status: "unknown", source: "x" }), /is unknown without a reason/);
  await expectFormatError(bad({ status: "ok", value: 1 }), /property "cpu.vendor" has no source/);
  await expectFormatError(bad("AuthenticAMD"), /property "cpu.vendor" is not an object/);
  const noProps = JSON.stringify({ ...sample(), properties: [] });
  await expectFormatError(noProps, /the properties field is missing or not an object/);
});

Deno.test("parseSnapshot accepts what serializeSnapshot writes and rejects a missing hash", () => {
  const snapshot = sample();
  assertEquals(parseSnapshot(serializeSnapshot(snapshot), "x.json").hash, snapshot.hash);
  const { hash: _h, ...noHash } = snapshot;
  const error = throws(() => parseSnapshot(JSON.stringify(noHash), "x.json"), TraceFormatError);
  assertMatch(error.message, /the hash field is missing/);
});
