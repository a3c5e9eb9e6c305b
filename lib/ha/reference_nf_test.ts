import assert from "node:assert/strict";
import { KV_LINE_BYTES_MAX, KvSession, serveReferenceNf } from "./reference_nf.ts";
import { runLoad } from "./load_client.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const feed = (s: KvSession, text: string) => decoder.decode(s.feed(encoder.encode(text)));

Deno.test("kv answers SET/GET/DEL and errors, across split lines", () => {
  const store = new Map<string, string>();
  const s = new KvSession(store);
  assert.equal(feed(s, "SET a hello world\nGE"), "OK\n");
  assert.equal(feed(s, "T a\nGET b\r\n"), "VALUE hello world\nNONE\n");
  assert.equal(feed(s, "DEL a\nDEL a\nGET a\n"), "OK\nNONE\nNONE\n");
  assert.equal(feed(s, "PUT x\nSET\n"), 'ERR unknown command "PUT"\nERR usage: SET key value\n');
  // One store for all sessions, as in one server process.
  assert.equal(feed(new KvSession(store), "SET k v\n"), "OK\n");
  assert.equal(feed(s, "GET k\n"), "VALUE v\n");
});

Deno.test("kv refuses an endless line instead of buffering it", () => {
  const s = new KvSession(new Map());
  assert.equal(feed(s, "x".repeat(KV_LINE_BYTES_MAX + 1)), "ERR line too long\n");
  assert.equal(s.failed, true);
  assert.equal(feed(s, "GET a\n"), "");
});

Deno.test("kv is deterministic: same input, same output on two servers", () => {
  const script = "SET a 1\nGET a\nSET a 2\nDEL b\nGET a\nDEL a\nGET a\n";
  const one = feed(new KvSession(new Map()), script);
  const two = feed(new KvSession(new Map()), script);
  assert.equal(one, two);
  assert.equal(one, "OK\nVALUE 1\nOK\nNONE\nVALUE 2\nOK\nNONE\n");
});

Deno.test("the kv server answers over TCP and counts bytes", async () => {
  await using nf = serveReferenceNf({ hostname: "127.0.0.1", port: 0, mode: "kv" });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: nf.port });
  await conn.write(encoder.encode("SET x 42\nGET x\n"));
  let reply = "";
  const buf = new Uint8Array(100);
  while (!reply.endsWith("VALUE 42\n")) {
    const n = await conn.read(buf);
    assert.notEqual(n, null);
    reply += decoder.decode(buf.subarray(0, n!));
  }
  conn.close();
  assert.equal(reply, "OK\nVALUE 42\n");
  assert.equal(nf.stats().bytesReceived, 15);
  assert.equal(nf.stats().connectionsAccepted, 1);
});

Deno.test("proxy: every client connection gets one backend connection, and every byte goes through", async () => {
  await using backend = serveReferenceNf({ hostname: "127.0.0.1", port: 0 });
  await using proxy = serveReferenceNf({
    hostname: "127.0.0.1",
    port: 0,
    mode: "proxy",
    backend: { hostname: "127.0.0.1", port: backend.port },
  });
  const report = await runLoad({
    hostname: "127.0.0.1",
    port: proxy.port,
    connections: 6,
    bytesPerConnection: 256 * 1024,
  });
  assert.equal(report.completed, 6);
  assert.equal(report.bytesVerified, 6 * 256 * 1024);
  assert.equal(backend.stats().connectionsAccepted, 6);
  assert.equal(proxy.stats().bytesReceived, 6 * 256 * 1024);
  assert.equal(proxy.stats().bytesSent, 6 * 256 * 1024);
  assert.throws(
    () => serveReferenceNf({ hostname: "127.0.0.1", port: 0, mode: "proxy" }),
    RangeError,
  );
});

Deno.test("socks5: clients name the backend, each gets one connection to it, every byte goes through", async () => {
  await using backend = serveReferenceNf({ hostname: "127.0.0.1", port: 0 });
  await using proxy = serveReferenceNf({ hostname: "127.0.0.1", port: 0, mode: "socks5" });
  const report = await runLoad({
    hostname: "127.0.0.1",
    port: backend.port,
    socks5: { hostname: "127.0.0.1", port: proxy.port },
    connections: 4,
    bytesPerConnection: 128 * 1024,
  });
  assert.equal(report.completed, 4);
  assert.equal(report.bytesVerified, 4 * 128 * 1024);
  assert.equal(backend.stats().connectionsAccepted, 4);
  // A destination nothing listens on: refused, reported, not thrown.
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const nowhere = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const refused = await runLoad({
    hostname: "127.0.0.1",
    port: nowhere,
    socks5: { hostname: "127.0.0.1", port: proxy.port },
    connections: 1,
  });
  assert.equal(refused.perConnection[0]!.outcome, "refused");
});
