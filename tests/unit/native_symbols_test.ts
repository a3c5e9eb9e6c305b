// The symbol table in lib/native.ts must mirror the exports of the Zig core:
// a symbol added on one side only would fail at dlopen time for users.
import assert from "node:assert/strict";
import { ABI_VERSION, closeNative, cpuid, native, STATUS, SYMBOLS } from "../../lib/native.ts";

const root = new URL("../../native/src/", import.meta.url);

function zigExports(): Set<string> {
  const text = Deno.readTextFileSync(new URL("exports.zig", root));
  return new Set([...text.matchAll(/^export fn (\w+)\(/gm)].map((m) => m[1]!));
}

Deno.test("native.ts declares exactly the symbols exports.zig exports", () => {
  assert.deepEqual(new Set(Object.keys(SYMBOLS)), zigExports());
});

Deno.test("every symbol follows reliab_<area>_<noun>_<verb> or reliab_abi_*", () => {
  for (const name of Object.keys(SYMBOLS)) {
    assert.match(name, /^reliab_(abi_\w+|(perf|ha|pecker)_[a-z0-9]+_[a-z0-9_]+)$/, name);
  }
});

Deno.test("status codes match status.zig", () => {
  const text = Deno.readTextFileSync(new URL("common/status.zig", root));
  const zig = Object.fromEntries(
    [...text.matchAll(/^\s+(\w+) = (-?\d+),$/gm)].map((m) => [m[1]!, Number(m[2])]),
  );
  assert.deepEqual(zig, { ...STATUS });
});

Deno.test("the library loads, passes the ABI check and answers CPUID", () => {
  assert.equal(native().reliab_abi_version(), ABI_VERSION);
  const leaf0 = cpuid(0);
  assert.ok(leaf0.eax >= 1, "max standard leaf is at least 1");
  closeNative();
});

Deno.test("ABI version in constants.zig equals ABI_VERSION", () => {
  const text = Deno.readTextFileSync(new URL("common/constants.zig", root));
  assert.equal(Number(/abi_version: u32 = (\d+);/.exec(text)?.[1]), ABI_VERSION);
});
