// A real snapshot of this machine: what the collectors find here, that
// unknown values carry reasons, that the hash verifies, and that redaction
// leaves no host name or home path behind. Timing is printed, not asserted.
import { deepEqual, equal, match, ok as assert } from "node:assert/strict";
import { takeSnapshot } from "../../lib/perf/snapshot.ts";
import { parseSnapshot, serializeSnapshot } from "../../lib/perf/snapshot_file.ts";
import type { Property, Snapshot } from "../../lib/perf/schema.ts";
import { closeNative } from "../../lib/native.ts";

const HOME = Deno.env.get("HOME") ?? "/nonexistent-home";

/**
 * Variables that plant the home path and host name into recorded values
 * (allow-listed names), so redaction has something to remove.
 */
const PLANTED: Record<string, string> = {
  LD_LIBRARY_PATH: `${HOME}/lib:/usr/local/lib`,
  CFLAGS: `-O2 -DBUILD_HOST=${Deno.hostname()}`,
};

/**
 * Runs with a fixed redaction key (so no key file is written into $HOME)
 * and the planted variables, restoring the environment afterwards.
 */
async function snapshotWithKey(redact: boolean): Promise<{ snapshot: Snapshot; ms: number }> {
  const names = ["RELIAB_REDACT_KEY", ...Object.keys(PLANTED)];
  const previous = new Map(names.map((n) => [n, Deno.env.get(n)]));
  Deno.env.set("RELIAB_REDACT_KEY", "perf-snapshot-test-key");
  for (const [n, v] of Object.entries(PLANTED)) Deno.env.set(n, v);
  try {
    const start = performance.now();
    const phases: string[] = [];
    const snapshot = await takeSnapshot({ redact, onProgress: (m) => phases.push(m) });
    const ms = performance.now() - start;
    assert(phases.length >= 3, `progress reported per phase: ${phases.join(", ")}`);
    return { snapshot, ms };
  } finally {
    for (const [n, v] of previous) {
      if (v === undefined) Deno.env.delete(n);
      else Deno.env.set(n, v);
    }
    closeNative();
  }
}

function ok(snapshot: Snapshot, path: string): Property & { status: "ok" } {
  const p = snapshot.properties[path];
  assert(p !== undefined, `${path} is recorded`);
  assert(p.status === "ok", `${path} is known: ${JSON.stringify(p)}`);
  return p as Property & { status: "ok" };
}

Deno.test("a snapshot of this host records its properties with sources and reasons", async () => {
  const { snapshot, ms } = await snapshotWithKey(true);
  const paths = Object.keys(snapshot.properties);
  console.log(`snapshot: ${paths.length} properties in ${ms.toFixed(0)} ms`);
  assert(paths.length > 150, `only ${paths.length} properties`);

  match(String(ok(snapshot, "cpu.vendor").value), /^(GenuineIntel|AuthenticAMD|\w+)$/);
  const flags = ok(snapshot, "cpu.flags").value;
  assert(Array.isArray(flags) && flags.includes("sse2"), "cpu.flags lists sse2");
  deepEqual(flags, [...(flags as string[])].sort());
  match(String(ok(snapshot, "kernel.release").value), /^\d+\.\d+/);
  const affinity = ok(snapshot, "process.affinity").value;
  assert(Array.isArray(affinity) && affinity.length >= 1 && affinity.every(Number.isInteger));
  equal(typeof ok(snapshot, "limits.nofile.soft").value, "number");
  match(String(ok(snapshot, "thp.enabled").value), /^(always|madvise|never)$/);
  equal(typeof ok(snapshot, "sysctl.kernel.randomize_va_space").value, "number");
  match(String(ok(snapshot, "virtualization.hypervisor").value), /kvm/i);
  equal(typeof ok(snapshot, "smt.active").value, "boolean");

  // This kernel has no msr driver: unknown with a reason, never "off".
  const msrs = paths.filter((p) => p.startsWith("msr."));
  assert(msrs.length > 0, "msr properties are recorded");
  for (const path of msrs) {
    const p = snapshot.properties[path]!;
    assert(p.status === "unknown" && p.reason.length > 5, `${path}: ${JSON.stringify(p)}`);
  }
  for (const [path, p] of Object.entries(snapshot.properties)) {
    assert(p.source.length > 0, `${path} has a source`);
    if (p.status === "unknown") assert(p.reason.trim().length > 0, `${path} has a reason`);
  }

  // The hash verifies after a round trip through the file format.
  const text = serializeSnapshot(snapshot);
  equal(parseSnapshot(text, "test.json").hash, snapshot.hash);
  match(snapshot.hash, /^sha256:[0-9a-f]{64}$/);
  equal(snapshot.redaction.enabled, true);
  match(snapshot.redaction.key_id ?? "", /^[0-9a-f]{8}$/);
});

Deno.test("a redacted snapshot contains no host name or home path", async () => {
  const { snapshot } = await snapshotWithKey(true);
  const text = serializeSnapshot(snapshot);
  const hostname = Deno.hostname();
  const home = Deno.env.get("HOME");
  assert(ok(snapshot, "env.LD_LIBRARY_PATH").redacted === true);
  assert(ok(snapshot, "env.CFLAGS").redacted === true);
  match(
    String(ok(snapshot, "env.LD_LIBRARY_PATH").value),
    /^hmac-sha256:[0-9a-f]{16}\/lib:\/usr\/local\/lib$/,
  );
  match(String(ok(snapshot, "host.hostname").value), /^hmac-sha256:[0-9a-f]{16}$/);
  assert(ok(snapshot, "host.hostname").redacted === true);
  // Property names and sources are reliab's own (e.g. /proc/sys/vm/… on a
  // host named "vm"); the host name must not appear in any value or reason.
  const escaped = hostname.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const token = new RegExp(`(?<![A-Za-z0-9-])${escaped}(?![A-Za-z0-9-])`);
  for (const [path, p] of Object.entries(snapshot.properties)) {
    const content = p.status === "ok" ? JSON.stringify(p.value) : p.reason;
    assert(!token.test(content), `${path} leaks the host name: ${content}`);
  }
  // A distinctive host name must not appear anywhere in the file.
  if (hostname.length >= 6) assert(!text.includes(hostname), "host name in the file");
  if (home !== undefined && home.length > 1) {
    assert(!text.includes(home), `home path "${home}" appears in the redacted snapshot`);
  }
});

Deno.test("--no-redact keeps the real host name", async () => {
  const { snapshot } = await snapshotWithKey(false);
  equal(ok(snapshot, "host.hostname").value, Deno.hostname());
  // The planted values are really recorded, so the redaction test can fail.
  equal(ok(snapshot, "env.LD_LIBRARY_PATH").value, PLANTED.LD_LIBRARY_PATH);
  equal(ok(snapshot, "env.CFLAGS").value, PLANTED.CFLAGS);
  deepEqual(snapshot.redaction, { enabled: false, key_id: null });
});
