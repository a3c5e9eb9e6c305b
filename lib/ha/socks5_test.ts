import assert from "node:assert/strict";
import {
  connectRequest,
  MessageReader,
  parseAnswers,
  parseGreeting,
  parseRequest,
  reply,
  SOCKS_ADDRESS_NOT_SUPPORTED,
  SOCKS_COMMAND_NOT_SUPPORTED,
} from "./socks5.ts";

Deno.test("the client's greeting and request parse back, piece by piece", () => {
  const bytes = connectRequest("10.77.0.2", 9000);
  assert.equal(parseGreeting(bytes.subarray(0, 2)), undefined);
  const greeting = parseGreeting(bytes)!;
  assert.deepEqual(greeting, { consumed: 3, noAuth: true });
  const rest = bytes.subarray(greeting.consumed);
  assert.equal(parseRequest(rest.subarray(0, 9)), undefined);
  assert.deepEqual(parseRequest(rest), { consumed: 10, hostname: "10.77.0.2", port: 9000 });
  assert.throws(() => connectRequest("backend.example", 80), RangeError);
});

Deno.test("names, IPv6 and commands other than CONNECT are refused with their codes", () => {
  const name = new Uint8Array([5, 1, 0, 3, 3, 0x61, 0x62, 0x63, 0, 80]);
  assert.deepEqual(parseRequest(name), { consumed: 10, refuse: SOCKS_ADDRESS_NOT_SUPPORTED });
  const bind = new Uint8Array([5, 2, 0, 1, 10, 0, 0, 1, 0, 80]);
  assert.deepEqual(parseRequest(bind), { consumed: 10, refuse: SOCKS_COMMAND_NOT_SUPPORTED });
  assert.equal(parseGreeting(new Uint8Array([5, 1, 2]))?.noAuth, false);
});

Deno.test("the proxy's answers parse on the client, and its reply names no node's own port", () => {
  const answers = new Uint8Array([5, 0, ...reply(0)]);
  assert.equal(parseAnswers(answers.subarray(0, 5)), undefined);
  assert.deepEqual(parseAnswers(answers), { consumed: 12, code: 0 });
  assert.deepEqual([...reply(5).subarray(4)], [0, 0, 0, 0, 0, 0]);
  assert.equal(parseAnswers(new Uint8Array([5, 0xff]))?.code, 1);
});

Deno.test("the reader hands out one message at a time, across reads, and keeps what follows", async () => {
  const chunks = [
    new Uint8Array([5]),
    new Uint8Array([1, 0, 5, 1, 0, 1, 10, 77]),
    new Uint8Array([0, 2, 0x23, 0x28, 9, 9]),
  ];
  const reader = new MessageReader({
    read(buffer: Uint8Array) {
      const chunk = chunks.shift();
      if (chunk === undefined) return Promise.resolve(null);
      buffer.set(chunk);
      return Promise.resolve(chunk.length);
    },
  });
  assert.deepEqual(await reader.next(parseGreeting), { consumed: 3, noAuth: true });
  assert.deepEqual(await reader.next(parseRequest), {
    consumed: 10,
    hostname: "10.77.0.2",
    port: 9000,
  });
  assert.deepEqual([...reader.rest()], [9, 9]);
  assert.equal(await reader.next(parseRequest), undefined); // closed before a whole one
});
