import assert from "node:assert/strict";
import { checkLatencyOptions, runLatency } from "./latency_client.ts";
import { serveReferenceNf } from "./reference_nf.ts";

Deno.test("latency options get defaults and refuse out-of-range values", () => {
  const o = checkLatencyOptions({ hostname: "127.0.0.1", port: 7000 });
  assert.equal(o.requests, 5000);
  assert.equal(o.messageBytes, 64);
  assert.throws(() => checkLatencyOptions({ hostname: "h", port: 1, requests: 0 }), RangeError);
  assert.throws(
    () => checkLatencyOptions({ hostname: "h", port: 1, messageBytes: 1401 }),
    RangeError,
  );
  assert.throws(() => checkLatencyOptions({ hostname: "h", port: 0 }), RangeError);
  assert.throws(() => checkLatencyOptions({ hostname: "h", port: 1, warmup: 1.5 }), RangeError);
});

Deno.test("latency over loopback times every round trip and checks the echo", async () => {
  await using nf = serveReferenceNf({ hostname: "127.0.0.1", port: 0 });
  const r = await runLatency({ hostname: "127.0.0.1", port: nf.port, requests: 300, warmup: 20 });
  assert.equal(r.requests, 300);
  assert.equal(r.mismatches, 0);
  assert.ok(r.p50Us > 0 && r.p50Us <= r.p90Us && r.p90Us <= r.p99Us && r.p99Us <= r.maxUs);
  assert.ok(r.meanUs <= r.maxUs);
  // Warm-up and timed round trips all went through the NF.
  assert.equal(nf.stats().bytesReceived, 320 * 64);
});

Deno.test("latency catches an echo that changes bytes", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = (async () => {
    const conn = await listener.accept();
    const buf = new Uint8Array(4096);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      buf[0] = buf[0]! ^ 1; // corrupt the first byte of every read
      await conn.write(buf.subarray(0, n));
    }
    conn.close();
  })();
  const r = await runLatency({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
    requests: 50,
    warmup: 0,
    messageBytes: 16,
  });
  listener.close();
  await server;
  assert.equal(r.mismatches, 50);
});
