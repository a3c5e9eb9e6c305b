import assert from "node:assert/strict";
import { runLoad, stallAcross, StreamPattern, StreamVerifier } from "./load_client.ts";
import { serveReferenceNf } from "./reference_nf.ts";

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

Deno.test("patterns are deterministic per seed and connection and differ otherwise", () => {
  const a = new StreamPattern(5, 0).slice(1000, 64);
  assert.deepEqual([...a], [...new StreamPattern(5, 0).slice(1000, 64)]);
  assert.notDeepEqual([...a], [...new StreamPattern(5, 1).slice(1000, 64)]);
  assert.notDeepEqual([...a], [...new StreamPattern(6, 0).slice(1000, 64)]);
  // Not constant: a stuck generator would verify anything.
  assert.ok(new Set(a).size > 20);
});

Deno.test("the verifier counts a clean stream as verified", () => {
  const p = new StreamPattern(3, 2);
  const v = new StreamVerifier(p);
  for (let at = 0; at < 300_000; at += 7_000) v.feed(p.slice(at, 7_000));
  assert.deepEqual(v.counts(), {
    verified: 301_000,
    lost: 0,
    duplicated: 0,
    corrupted: 0,
    position: 301_000,
  });
});

Deno.test("the verifier tells duplication, loss and corruption apart", () => {
  const p = new StreamPattern(9, 0);
  const dup = new StreamVerifier(p);
  dup.feed(concat(p.slice(0, 5000), p.slice(4000, 3000)));
  assert.equal(dup.counts().duplicated, 1000);
  assert.equal(dup.counts().verified, 7000);
  assert.equal(dup.counts().position, 7000);

  const lost = new StreamVerifier(p);
  lost.feed(concat(p.slice(0, 5000), p.slice(5500, 1000)));
  assert.equal(lost.counts().lost, 500);
  assert.equal(lost.counts().position, 6500);

  const bad = new StreamVerifier(p);
  const data = concat(p.slice(0, 5000));
  data[100] = data[100]! ^ 0xff;
  data[2000] = data[2000]! ^ 0x01;
  bad.feed(data);
  assert.equal(bad.counts().corrupted, 2);
  assert.equal(bad.counts().verified, 4998);
  assert.equal(bad.counts().lost + bad.counts().duplicated, 0);
});

Deno.test("load over loopback against the echo NF verifies every byte", async () => {
  await using nf = serveReferenceNf({ hostname: "127.0.0.1", port: 0 });
  const report = await runLoad({
    hostname: "127.0.0.1",
    port: nf.port,
    connections: 8,
    bytesPerConnection: 512 * 1024,
    seed: 42,
  });
  assert.equal(report.completed, 8);
  assert.equal(report.resets, 0);
  assert.equal(report.bytesSent, 8 * 512 * 1024);
  assert.equal(report.bytesVerified, report.bytesSent);
  assert.equal(report.bytesLost + report.bytesDuplicated + report.bytesCorrupted, 0);
  assert.equal(nf.stats().bytesReceived, report.bytesSent);
});

Deno.test("a server that corrupts one byte per connection is caught", async () => {
  // A broken NF (flips byte 1000 of each connection) must not pass verification.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const tasks: Promise<void>[] = [];
    for await (const conn of listener) {
      tasks.push((async () => {
        const buf = new Uint8Array(65536);
        let seen = 0;
        for (let n; (n = await conn.read(buf)) !== null;) {
          const out = buf.slice(0, n);
          if (seen <= 1000 && 1000 < seen + n) out[1000 - seen]! ^= 0x55;
          seen += n;
          for (let at = 0; at < out.length;) at += await conn.write(out.subarray(at));
        }
        conn.close();
      })());
      if (tasks.length === 3) break;
    }
    await Promise.all(tasks);
  })();
  const report = await runLoad({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
    connections: 3,
    bytesPerConnection: 100_000,
  });
  await serving; // the for-await `break` closed the listener
  assert.equal(report.bytesCorrupted, 3);
  assert.equal(report.bytesVerified, 300_000 - 3);
});

Deno.test("a connection that times out counts its final silence as its longest stall", async () => {
  // Echoes the first 1000 bytes, then reads on in silence and never closes.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const loadDone = Promise.withResolvers<void>();
  const serving = (async () => {
    const conn = await listener.accept();
    const buf = new Uint8Array(65536);
    let echoed = 0;
    try {
      for (let n; (n = await conn.read(buf)) !== null;) {
        const out = buf.subarray(0, Math.max(0, Math.min(n, 1000 - echoed)));
        echoed += out.length;
        for (let at = 0; at < out.length;) at += await conn.write(out.subarray(at));
      }
      await loadDone.promise;
    } catch {
      // The load closed it at its timeout.
    }
    conn.close();
  })();
  const report = await runLoad({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
    connections: 1,
    bytesPerConnection: 100_000,
    timeoutMs: 400,
  });
  loadDone.resolve();
  listener.close();
  await serving;
  assert.equal(report.perConnection[0]!.outcome, "timeout");
  assert.equal(report.bytesVerified, 1000);
  assert.ok(report.longestStallMs >= 300, `longest stall ${report.longestStallMs} ms`);
  // Its final silence is a gap, longest first, which spans any instant of it.
  const silence = report.gaps[0]!;
  assert.equal(silence.ms, report.longestStallMs);
  const middle = silence.atUnixMs + silence.ms / 2;
  assert.equal(stallAcross(report.gaps, middle, middle), silence.ms);
  // On the wall clock: it ended when the load gave up, just now.
  const endedAgoMs = Date.now() - (silence.atUnixMs + silence.ms);
  assert.ok(Math.abs(endedAgoMs) < 1000, `the silence ended ${endedAgoMs} ms ago`);
});

Deno.test("the stall across a failure is the longest gap that overlaps it, not one elsewhere", () => {
  const gaps = [{ atUnixMs: 5000, ms: 90 }, { atUnixMs: 1000, ms: 60 }, { atUnixMs: 1040, ms: 8 }];
  assert.equal(stallAcross(gaps, 1010, 1012), 60); // inside the first
  assert.equal(stallAcross(gaps, 1050, 1070), 60); // overlaps the end of the first and the second
  assert.equal(stallAcross(gaps, 990, 1000), 60); // the failure ended as the gap began
  assert.equal(stallAcross(gaps, 2000, 3000), 0); // no gap
  assert.equal(stallAcross(gaps, 4000, 6000), 90);
});

Deno.test("a refused connection is reported, not thrown", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const report = await runLoad({ hostname: "127.0.0.1", port, connections: 2 });
  assert.equal(report.completed, 0);
  assert.deepEqual(report.perConnection.map((c) => c.outcome), ["refused", "refused"]);
});

Deno.test("load reports progress while it runs and a final count of every byte", async () => {
  await using nf = serveReferenceNf({ hostname: "127.0.0.1", port: 0 });
  const seen: { connected: number; verified: number; total: number }[] = [];
  const report = await runLoad({
    hostname: "127.0.0.1",
    port: nf.port,
    connections: 3,
    bytesPerConnection: 2_000_000,
    onProgress: (p) => seen.push(p),
    progressIntervalMs: 5,
  });
  assert.ok(seen.length >= 2, `only ${seen.length} progress calls`);
  assert.ok(seen.every((p) => p.total === 6_000_000));
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.verified >= seen[i - 1]!.verified);
  assert.deepEqual(seen.at(-1), { connected: 3, verified: 6_000_000, total: 6_000_000 });
  assert.equal(report.bytesVerified, 6_000_000);
});

Deno.test("a paced load sends no faster than its rate, and a bad rate is refused", async () => {
  await using nf = serveReferenceNf({ hostname: "127.0.0.1", port: 0 });
  const rate = 256 * 1024;
  const bytes = 128 * 1024;
  const report = await runLoad({
    hostname: "127.0.0.1",
    port: nf.port,
    connections: 2,
    bytesPerConnection: bytes,
    chunkBytes: 16 * 1024,
    rateBytesPerSecond: rate,
  });
  assert.equal(report.completed, 2);
  assert.equal(report.bytesVerified, 2 * bytes);
  // The last chunk may leave at (bytes - chunk) / rate: a lower bound, never an upper one.
  assert.ok(report.elapsedMs >= ((bytes - 16 * 1024) / rate) * 1000, `${report.elapsedMs} ms`);
  await assert.rejects(
    () => runLoad({ hostname: "127.0.0.1", port: nf.port, rateBytesPerSecond: 0 }),
    RangeError,
  );
});
