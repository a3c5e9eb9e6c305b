// Divergence detection on the real kernel: two nodes (node 1 primary) run an
// NF that writes different bytes on each node (socat + /dev/urandom, then
// cat). A client reads 200 000 bytes (three 64 KiB checkpoints): the replica
// must find its copy stale (counter, listed connection, a line in its log),
// the primary must hear so and stop waiting for that replica (the client's
// next bytes come back without its reports), and at a takeover the replica
// must reset the connection towards the client rather than serve diverged
// bytes. The reference echo NF, deterministic, must show checkpoints compared
// and no divergence.
//
// Each case has its own lab; agents, the client and the lab go in `finally`,
// whatever failed. Needs root.
import assert from "node:assert/strict";
import { runCli } from "../_support/cli.ts";
import { labDown, labLeftovers } from "../../lib/ha/lab.ts";
import { claimLab } from "../../lib/ha/demo.ts";
import { type Cluster, startCluster } from "../../lib/ha/lab_cluster.ts";
import { killNetns } from "../../lib/ha/_netns_process.ts";

const PORT = 7000;
/** Output the NF writes at random: three whole checkpoint windows and a bit. */
const RANDOM_BYTES = 200_000;
/** Echoed per connection by the reference NF: four windows each. */
const ECHO_BYTES = 256 * 1024;
const WAIT_MS = 10_000;

type Json = Record<string, unknown>;

async function rawStatus(netns: string): Promise<Json> {
  const r = await runCli(["ha", "status", "--json"], { wrap: ["ip", "netns", "exec", netns] });
  assert.equal(r.code, 0, `ha status in ${netns}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function counter(status: Json, name: string): number {
  const value = (status.counters as Record<string, unknown>)[name];
  assert.equal(typeof value, "number", `counter ${name} missing: ${JSON.stringify(status)}`);
  return value as number;
}

/** Polls node status until `done` holds; fails with the last status after WAIT_MS. */
async function waitStatus(netns: string, done: (s: Json) => boolean, what: string): Promise<Json> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const s = await rawStatus(netns);
    if (done(s)) return s;
    assert.ok(Date.now() < deadline, `${what}: ${JSON.stringify(s)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A TCP client in the client namespace (socat, both ways), read as bytes. */
class Client {
  readonly #child: Deno.ChildProcess;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  received = new Uint8Array(0);

  constructor(netns: string, vip: string) {
    this.#child = new Deno.Command("ip", {
      args: ["netns", "exec", netns, "socat", "-", `TCP:${vip}:${PORT}`],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reader = this.#child.stdout.getReader();
    this.#writer = this.#child.stdin.getWriter();
  }

  /** Reads until `total` bytes came in all, or the stream ended; false on timeout. */
  async readUntil(total: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < total) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
      });
      const next = await Promise.race([this.#reader.read(), timeout]);
      clearTimeout(timer);
      if (next === "timeout") return false;
      if (next.done) return false;
      const joined = new Uint8Array(this.received.length + next.value.length);
      joined.set(this.received);
      joined.set(next.value, this.received.length);
      this.received = joined;
    }
    return true;
  }

  async write(text: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(text));
  }

  /** Waits for socat to exit; its status and stderr. */
  async exit(timeoutMs: number): Promise<{ code: number; stderr: string } | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    const status = await Promise.race([this.#child.status, timeout]);
    clearTimeout(timer);
    if (status === undefined) return undefined;
    const stderr = await new Response(this.#child.stderr).text();
    return { code: status.code, stderr };
  }

  async close(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Exited already.
    }
    await this.#reader.cancel().catch(() => {});
    await this.#writer.close().catch(() => {});
    await this.#child.status;
    await this.#child.stderr.cancel().catch(() => {});
  }
}

async function withCluster(
  name: string,
  command: ((vip: string, port: number) => string[]) | undefined,
  body: (cluster: Cluster) => Promise<void>,
): Promise<void> {
  let cluster: Cluster | undefined;
  try {
    const lab = await claimLab(name, 2);
    cluster = await startCluster(lab, {
      port: PORT,
      readyTimeoutMs: 60_000,
      ...(command === undefined ? {} : { command }),
    });
    await body(cluster);
  } finally {
    await cluster?.stop().catch(() => {});
    await killNetns(...await labLeftovers(name)).catch(() => []);
    await labDown({ name });
  }
  assert.deepEqual(await labLeftovers(name), []);
}

const randomNf = (vip: string, port: number) => [
  "socat",
  `TCP-LISTEN:${port},bind=${vip},reuseaddr,fork,backlog=128`,
  `SYSTEM:head -c ${RANDOM_BYTES} /dev/urandom; exec cat`,
];

Deno.test("a non-deterministic NF: the replica finds its copy stale, the primary stops waiting, a takeover resets", async () => {
  await withCluster("rldva", randomNf, async (cluster) => {
    const [primary, replica] = [cluster.node(1), cluster.node(2)];
    const client = new Client(cluster.lab.client.netns, cluster.lab.vip);
    try {
      assert.ok(
        await client.readUntil(RANDOM_BYTES, WAIT_MS),
        `read ${client.received.length} bytes`,
      );
      // The replica: a divergence, the connection listed as stale here.
      const r = await waitStatus(
        replica.lab.netns,
        (s) => counter(s, "divergences") > 0 && counter(s, "digests_compared") > 0,
        "the replica saw no divergence",
      );
      assert.equal(r.role, "replica");
      assert.equal(r.connections_stale, 1, JSON.stringify(r));
      const mine = (r.diverged as Json[])[0]!;
      assert.equal(mine.here, true);
      assert.equal(mine.port, PORT);
      assert.equal(mine.offset, 65536, "the first window already differs");
      assert.match(String(mine.client), new RegExp(`^${cluster.lab.client.addr}:\\d+$`));
      // The primary: told by node 2, its own copy fine.
      const p = await waitStatus(
        primary.lab.netns,
        (s) => counter(s, "divergences_reported") > 0,
        "the primary was not told",
      );
      assert.equal(counter(p, "divergences"), 0);
      const told = (p.diverged as Json[])[0]!;
      assert.equal(told.here, false);
      assert.deepEqual(told.reported_by, [2]);
      assert.equal(told.client, mine.client);
      // The primary no longer waits for node 2 on this connection: bytes
      // the client sends now come back (cat) without node 2's reports.
      await client.write("still served\n");
      assert.ok(
        await client.readUntil(RANDOM_BYTES + 13, WAIT_MS),
        `no echo after the divergence: ${client.received.length} bytes`,
      );
      assert.equal(
        new TextDecoder().decode(client.received.subarray(RANDOM_BYTES)),
        "still served\n",
      );
      // The logs say so.
      await waitFor(() => log(replica.agent.lines("stderr")).includes("diverged from the primary"));
      await waitFor(() => log(primary.agent.lines("stderr")).includes("replica node 2 reports"));

      // Takeover: node 2 must not serve its diverged copy, but reset it.
      const resetsBefore = await estabResets(cluster.lab.client.netns);
      await cluster.kill(1, "fail");
      const after = await waitStatus(
        replica.lab.netns,
        (s) => s.role === "primary" && counter(s, "stale_resets") > 0,
        "the new primary did not reset the stale connection",
      );
      assert.equal(counter(after, "stale_resets"), 1);
      // The client's kernel took it as a reset (socat itself ends quietly on one).
      const end = await client.exit(WAIT_MS);
      assert.ok(end !== undefined, "the client's connection did not end");
      assert.equal(await estabResets(cluster.lab.client.netns), resetsBefore + 1);
      await waitFor(() => log(replica.agent.lines("stderr")).includes("reset 1 stale connection"));
    } finally {
      await client.close();
    }
  });
});

Deno.test("the reference echo NF: checkpoints compared, no divergence", async () => {
  await withCluster("rldvb", undefined, async (cluster) => {
    const load = await runCli([
      "ha",
      "load",
      "--connect",
      `${cluster.lab.vip}:${PORT}`,
      "--connections",
      "2",
      "--bytes",
      String(ECHO_BYTES),
      "--json",
    ], { wrap: ["ip", "netns", "exec", cluster.lab.client.netns] });
    assert.equal(load.code, 0, load.stderr);
    const report = JSON.parse(load.stdout);
    assert.equal(report.bytesVerified, 2 * ECHO_BYTES, load.stdout);
    // Four windows per connection: the digests that reached the replica were compared.
    const r = await waitStatus(
      cluster.node(2).lab.netns,
      (s) => counter(s, "digests_compared") >= 4,
      "the replica compared too few checkpoints",
    );
    assert.equal(counter(r, "divergences"), 0, JSON.stringify(r.counters));
    assert.equal(r.connections_stale, 0);
    const p = await rawStatus(cluster.node(1).lab.netns);
    assert.ok(counter(p, "digests_sent") >= 8, JSON.stringify(p.counters));
    assert.equal(counter(p, "divergences_reported"), 0);
    assert.equal(counter(p, "divergences"), 0);
    assert.ok(!log(cluster.node(2).agent.lines("stderr")).includes("diverged"));
  });
});

/** Tcp EstabResets of a namespace: connections that went from established to closed by a RST. */
async function estabResets(netns: string): Promise<number> {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", netns, "cat", "/proc/net/snmp"],
    stdout: "piped",
  }).output();
  const tcp = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.startsWith("Tcp:"));
  const names = tcp[0]!.split(/\s+/);
  const values = tcp[1]!.split(/\s+/);
  const at = names.indexOf("EstabResets");
  assert.ok(at > 0, "no Tcp EstabResets in /proc/net/snmp");
  return Number(values[at]);
}

function log(lines: readonly string[]): string {
  return lines.join("\n");
}

async function waitFor(done: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!done()) {
    assert.ok(Date.now() < deadline, "timed out");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
