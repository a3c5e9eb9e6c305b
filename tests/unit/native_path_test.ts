// The compiled binary extracts the embedded library into a cache folder keyed
// by its content hash, because dlopen needs a real file.
import assert from "node:assert/strict";
import { extractEmbedded } from "../../lib/native_path.ts";

Deno.test("extraction is keyed by content, idempotent and never half-written", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const a = new TextEncoder().encode("library A");
    const b = new TextEncoder().encode("library B");
    const pathA = extractEmbedded(a, dir);
    assert.match(pathA, /\/lib-[0-9a-f]{16}\/libreliab\.so$/);
    assert.deepEqual(Deno.readFileSync(pathA), a);
    const mtime = Deno.statSync(pathA).mtime;
    assert.equal(extractEmbedded(a, dir), pathA, "same content, same path");
    assert.deepEqual(Deno.statSync(pathA).mtime, mtime, "not rewritten");
    const pathB = extractEmbedded(b, dir);
    assert.notEqual(pathB, pathA, "other content, other folder");
    // A damaged copy (e.g. truncated by a crash) is replaced, not opened.
    Deno.writeTextFileSync(pathA, "lib");
    assert.equal(extractEmbedded(a, dir), pathA);
    assert.deepEqual(Deno.readFileSync(pathA), a);
    const leftovers = [...Deno.readDirSync(pathA.replace(/\/libreliab\.so$/, ""))].map((e) =>
      e.name
    );
    assert.deepEqual(leftovers, ["libreliab.so"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("the real library runs from an extracted copy", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const source = new URL("../../zig-out/lib/libreliab.so", import.meta.url);
    const path = extractEmbedded(Deno.readFileSync(source), dir);
    const lib = Deno.dlopen(path, { reliab_abi_version: { parameters: [], result: "u32" } });
    try {
      assert.ok(lib.symbols.reliab_abi_version() >= 1);
    } finally {
      lib.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
