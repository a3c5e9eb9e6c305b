// The AF_XDP layer of `ha` on the real kernel: a forwarder (two AF_XDP
// sockets, two XDP redirect programs) in a middle namespace between a client
// and a server that owns the VIP. 16 connections echo 4 MiB each through it
// and every byte is checked; ARP for the VIP is redirected and other ARP is
// not; after stop, and after SIGKILL, no XDP program is left. It also prints
// the throughput of the forwarded path next to a direct veth path (measured,
// not asserted). Needs root (CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN).
import assert from "node:assert/strict";
import { ROOT } from "../_support/cli.ts";

const PREFIX = "rlxt";
const TAG = `${PREFIX}${Deno.pid}`;
const NS = { client: `${TAG}-c`, middle: `${TAG}-m`, server: `${TAG}-s` } as const;
const VIP = "10.88.0.1";
const CLIENT_ADDR = "10.88.0.2";
const DIRECT_SERVER = "10.89.0.1";
const DIRECT_CLIENT = "10.89.0.2";
const MAC = {
  client: "02:88:00:00:00:02",
  server: "02:88:00:00:00:01",
  a: "02:88:00:00:0a:00",
  b: "02:88:00:00:0b:00",
} as const;
const ECHO_PORT = 7000;
const SINK_PORT = 7001;
const CONNECTIONS = 16;
const BYTES_PER_CONNECTION = 4 * 1024 * 1024;
const FORWARDER = new URL("./_ha_xsk_forwarder.ts", import.meta.url).pathname;
const DENO = Deno.execPath();
// The CLI without the launcher: the launcher rebuilds the native core when
// any native file is newer, which other work in the tree keeps triggering.
const CLI = [DENO, "run", "--quiet", "--no-prompt", "--allow-all", `${ROOT}cli/main.ts`];

type Mode = "native" | "generic";

async function run(program: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`"${program} ${args.join(" ")}" failed: ${err}`);
  }
  return text;
}

async function namespaces(): Promise<string[]> {
  const text = await run("ip", ["netns", "list"]);
  return text.split("\n").map((l) => l.split(" ")[0]!).filter((n) => n.startsWith(PREFIX));
}

/** Removes this test's namespaces, and leftovers of earlier runs (same prefix). */
async function sweep(): Promise<void> {
  for (const ns of await namespaces()) await run("ip", ["netns", "del", ns]);
}

/** Offloads that make frames a wire never carries: GSO super-frames, partial checksums. */
async function offloadsOff(ns: string, dev: string): Promise<void> {
  await run("ip", [
    "netns",
    "exec",
    ns,
    "ethtool",
    "-K",
    dev,
    ..."tso off gso off gro off tx off".split(" "),
  ]);
}

async function topologyUp(): Promise<void> {
  for (const ns of Object.values(NS)) {
    await run("ip", ["netns", "add", ns]);
    await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    // No IPv6 chatter: the ARP check counts frames.
    await run("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    await run("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
  }
  const { client, middle, server } = NS;
  // Forwarded path: client eth0 <-> a0 (middle) ... b0 (middle) <-> server eth0.
  await run(
    "ip",
    [
      ..."-n X link add eth0 address M type veth peer name a0 address N netns Y".split(" "),
    ].map((w) => ({ X: client, M: MAC.client, N: MAC.a, Y: middle })[w] ?? w),
  );
  await run(
    "ip",
    [
      ..."-n X link add eth0 address M type veth peer name b0 address N netns Y".split(" "),
    ].map((w) => ({ X: server, M: MAC.server, N: MAC.b, Y: middle })[w] ?? w),
  );
  // Direct path for comparison: client d0 <-> server d0.
  await run("ip", [
    "-n",
    client,
    "link",
    "add",
    "d0",
    "type",
    "veth",
    "peer",
    "name",
    "d0",
    "netns",
    server,
  ]);
  await run("ip", ["-n", client, "addr", "add", `${CLIENT_ADDR}/24`, "dev", "eth0"]);
  await run("ip", ["-n", server, "addr", "add", `${VIP}/24`, "dev", "eth0"]);
  await run("ip", ["-n", client, "addr", "add", `${DIRECT_CLIENT}/24`, "dev", "d0"]);
  await run("ip", ["-n", server, "addr", "add", `${DIRECT_SERVER}/24`, "dev", "d0"]);
  // The forwarder is a bump in the wire that answers no ARP (from_vip takes
  // only TCP): each end knows the other's next hop statically.
  await run("ip", ["-n", client, "neigh", "add", VIP, "lladdr", MAC.a, "dev", "eth0"]);
  await run("ip", ["-n", server, "neigh", "add", CLIENT_ADDR, "lladdr", MAC.b, "dev", "eth0"]);
  for (const [ns, dev] of [[client, "eth0"], [middle, "a0"], [middle, "b0"], [server, "eth0"]]) {
    await offloadsOff(ns!, dev!);
    await run("ip", ["-n", ns!, "link", "set", dev!, "up"]);
  }
  for (const ns of [client, server]) {
    await offloadsOff(ns, "d0");
    await run("ip", ["-n", ns, "link", "set", "d0", "up"]);
  }
}

/** One line-oriented child process (JSON events on stdout). */
class Child {
  readonly process: Deno.ChildProcess;
  #lines: ReadableStreamDefaultReader<string>;
  #buffered = "";
  #stderr: Promise<string>;

  constructor(argv: string[], stdin: "piped" | "null") {
    this.process = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      cwd: ROOT,
      stdin,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#lines = this.process.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderr = new Response(this.process.stderr).text();
  }

  async line(): Promise<string> {
    while (!this.#buffered.includes("\n")) {
      const { value, done } = await this.#lines.read();
      if (done) throw new Error(`child ended early: ${this.#buffered}${await this.#stderr}`);
      this.#buffered += value;
    }
    const at = this.#buffered.indexOf("\n");
    const line = this.#buffered.slice(0, at);
    this.#buffered = this.#buffered.slice(at + 1);
    return line;
  }

  async send(text: string): Promise<void> {
    const writer = this.process.stdin.getWriter();
    await writer.write(new TextEncoder().encode(text + "\n"));
    writer.releaseLock();
  }

  async kill(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    try {
      this.process.kill(signal);
    } catch {
      // Already gone.
    }
    await this.process.status;
    await this.#lines.cancel().catch(() => {});
    await this.#stderr.catch(() => "");
  }
}

type Stats = Record<string, string | number>;

/** The forwarder, in its own Deno process inside the middle namespace. */
async function startForwarder(mode: Mode): Promise<Child> {
  const args = JSON.stringify({
    a: "a0",
    b: "b0",
    vip: VIP,
    mode,
    toA: { dst: MAC.client, src: MAC.a },
    toB: { dst: MAC.server, src: MAC.b },
  });
  const child = new Child(
    ["ip", "netns", "exec", NS.middle, DENO, "run", "--allow-all", FORWARDER, args],
    "piped",
  );
  const event = JSON.parse(await child.line());
  if (event.event !== "started") {
    await child.kill();
    throw new Error(`forwarder (${mode}) did not start: ${event.message}`);
  }
  return child;
}

async function forwarderStats(child: Child): Promise<Stats> {
  await child.send("stats");
  return JSON.parse(await child.line()).stats;
}

async function stopForwarder(child: Child): Promise<Stats> {
  await child.send("stop");
  const event = JSON.parse(await child.line());
  const status = await child.process.status;
  assert.equal(status.code, 0);
  await child.kill();
  return event.stats;
}

async function startEchoNf(): Promise<Child> {
  const nf = new Child(
    ["ip", "netns", "exec", NS.server, ...CLI, "ha", "nf", "--listen", `0.0.0.0:${ECHO_PORT}`],
    "null",
  );
  while (!(await nf.line()).includes("listening"));
  return nf;
}

interface LoadReport {
  completed: number;
  longestStallMs: number;
  resets: number;
  bytesVerified: number;
  bytesLost: number;
  bytesDuplicated: number;
  bytesCorrupted: number;
  elapsedMs: number;
  goodputMbps: number;
}

async function echoLoad(address: string): Promise<LoadReport> {
  const text = await run("ip", [
    ..."netns exec".split(" "),
    NS.client,
    ...CLI,
    ..."ha load --connect".split(" "),
    `${address}:${ECHO_PORT}`,
    "--connections",
    String(CONNECTIONS),
    "--bytes",
    String(BYTES_PER_CONNECTION),
    "--json",
  ]);
  return JSON.parse(text);
}

function assertIntact(report: LoadReport, path: string): void {
  assert.equal(report.completed, CONNECTIONS, `${path}: ${JSON.stringify(report)}`);
  assert.equal(report.resets, 0, path);
  assert.equal(report.bytesVerified, CONNECTIONS * BYTES_PER_CONNECTION, path);
  assert.equal(report.bytesLost + report.bytesDuplicated + report.bytesCorrupted, 0, path);
}

async function hasSocat(): Promise<boolean> {
  try {
    return (await new Deno.Command("socat", { args: ["-V"], stdout: "null" }).output()).success;
  } catch {
    return false;
  }
}

/** One-way bulk TCP (socat, no JS in the data path): Gbit/s of `bytes` to `address`. */
async function bulkGbps(address: string, bytes: number): Promise<number> {
  const sink = new Deno.Command("ip", {
    args: [
      ..."netns exec".split(" "),
      NS.server,
      "socat",
      "-u",
      `TCP-LISTEN:${SINK_PORT},bind=${address},reuseaddr`,
      "OPEN:/dev/null",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = performance.now();
    await run("bash", [
      "-c",
      `head -c ${bytes} /dev/zero | ip netns exec ${NS.client} socat -u - TCP:${address}:${SINK_PORT}`,
    ]);
    const seconds = (performance.now() - started) / 1000;
    return (bytes * 8) / seconds / 1e9;
  } finally {
    try {
      sink.kill();
    } catch {
      // Exited with its one connection.
    }
    await sink.status;
  }
}

/**
 * Sends `count` ARP requests for `target` out of the client's eth0 (python3,
 * AF_PACKET: Deno has no raw sockets). False when python3 cannot do it here.
 */
async function sendArpRequests(target: string, count: number): Promise<boolean> {
  const frame = [
    "ff:ff:ff:ff:ff:ff",
    MAC.client,
  ].map((m) => m.replaceAll(":", "")).join("") + "0806" + "0001080006040001" +
    MAC.client.replaceAll(":", "") + hexIp(CLIENT_ADDR) + "000000000000" + hexIp(target);
  const script = `import socket\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n` +
    `s.bind(("eth0",0))\nfor _ in range(${count}): s.send(bytes.fromhex("${frame}"))\n`;
  try {
    const out = await new Deno.Command("ip", {
      args: ["netns", "exec", NS.client, "python3", "-c", script],
      stdout: "null",
      stderr: "piped",
    }).output();
    return out.success;
  } catch {
    return false; // no python3 here
  }
}

function hexIp(address: string): string {
  return address.split(".").map((b) => Number(b).toString(16).padStart(2, "0")).join("");
}

async function xdpOn(ns: string, dev: string): Promise<string> {
  const text = await run("ip", ["-n", ns, "-d", "link", "show", dev]);
  return /xdp/.test(text) ? text : "";
}

async function assertNoXdpLeft(): Promise<void> {
  for (const dev of ["a0", "b0"]) {
    assert.equal(await xdpOn(NS.middle, dev), "", `XDP program left on ${dev}`);
  }
}

function n(stats: Stats, key: string): number {
  return Number(stats[key]);
}

function describe(report: LoadReport, stats?: Stats): string {
  const text = `${report.goodputMbps.toFixed(0)} Mbit/s in ${report.elapsedMs.toFixed(0)} ms, ` +
    `longest stall ${report.longestStallMs.toFixed(0)} ms`;
  if (stats === undefined) return text;
  const drops = ["txFullDrops", "aKernelDrops", "aRxRingFull", "aFillRingEmpty", "bKernelDrops"]
    .map((k) => `${k} ${stats[k]}`).join(", ");
  return `${text}; ${stats.polls} polls, ${stats.kicks} kicks; ${drops}`;
}

/** The forwarded-path test for one mode; returns the load report and the final stats. */
async function forwardedEcho(mode: Mode): Promise<{ report: LoadReport; stats: Stats }> {
  const forwarder = await startForwarder(mode);
  try {
    // `ip link` flags the mode: "xdp" in the driver, "xdpgeneric" in the stack.
    const flag = mode === "native" ? / mtu \d+ xdp / : / mtu \d+ xdpgeneric /;
    for (const dev of ["a0", "b0"]) assert.match(await xdpOn(NS.middle, dev), flag);
    const report = await echoLoad(VIP);
    const stats = await stopForwarder(forwarder);
    assertIntact(report, `forwarded (${mode})`);
    // Every byte went through the forwarder (headers make the frames larger).
    const payload = CONNECTIONS * BYTES_PER_CONNECTION;
    assert.ok(n(stats, "aToBBytes") > payload, `a->b ${stats.aToBBytes} bytes`);
    assert.ok(n(stats, "bToABytes") > payload, `b->a ${stats.bToABytes} bytes`);
    assert.equal(n(stats, "loopErrno"), 0);
    await assertNoXdpLeft();
    return { report, stats };
  } finally {
    await forwarder.kill();
  }
}

Deno.test("AF_XDP forwarder: 16 echo connections x 4 MiB intact, ARP for the VIP, nothing left", async () => {
  await sweep();
  let nf: Child | undefined;
  try {
    await topologyUp();
    nf = await startEchoNf();

    const native = await forwardedEcho("native");
    const generic = await forwardedEcho("generic");

    // ARP: requests for the VIP are taken to B, others are left to the kernel.
    const forwarder = await startForwarder("native");
    let arpChecked = false;
    try {
      const before = await forwarderStats(forwarder);
      arpChecked = await sendArpRequests(VIP, 5) && await sendArpRequests("10.88.0.9", 5);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const after = await forwarderStats(forwarder);
      if (arpChecked) {
        const forwarded = n(after, "aToBFrames") - n(before, "aToBFrames");
        assert.ok(forwarded >= 5 && forwarded < 10, `${forwarded} ARP frames forwarded`);
      }
    } finally {
      await stopForwarder(forwarder).finally(() => forwarder.kill());
    }
    await assertNoXdpLeft();

    // A killed forwarder leaves nothing either: its BPF links die with it.
    const doomed = await startForwarder("native");
    assert.notEqual(await xdpOn(NS.middle, "b0"), "");
    await doomed.kill("SIGKILL");
    await assertNoXdpLeft();

    // Measured, not asserted: the same load on the direct veth path, and bulk one-way TCP.
    const direct = await echoLoad(DIRECT_SERVER);
    assertIntact(direct, "direct");
    const lines = [
      `ha_xsk: echo ${CONNECTIONS}x${BYTES_PER_CONNECTION} B both ways (goodput, Deno client):`,
      `  direct veth ${describe(direct)}`,
      `  forwarded native ${describe(native.report, native.stats)}`,
      `  forwarded generic ${describe(generic.report, generic.stats)}`,
    ];
    if (!arpChecked) lines.push("  (ARP check skipped: python3 with AF_PACKET not available)");
    if (await hasSocat()) {
      const bulk = 256 * 1024 * 1024;
      const directGbps = await bulkGbps(DIRECT_SERVER, bulk);
      const fwd = await startForwarder("native");
      let nativeGbps = 0;
      let genericGbps = 0;
      try {
        nativeGbps = await bulkGbps(VIP, bulk);
      } finally {
        await stopForwarder(fwd).finally(() => fwd.kill());
      }
      const fwdGeneric = await startForwarder("generic");
      try {
        genericGbps = await bulkGbps(VIP, bulk);
      } finally {
        await stopForwarder(fwdGeneric).finally(() => fwdGeneric.kill());
      }
      await run("ip", [
        ..."netns exec".split(" "),
        NS.client,
        ..."ethtool -K d0 tso on gso on tx on".split(" "),
      ]);
      const offloadGbps = await bulkGbps(DIRECT_SERVER, bulk);
      lines.push(
        `ha_xsk: bulk one-way ${bulk / 2 ** 20} MiB (socat): direct ${
          directGbps.toFixed(2)
        } Gbit/s, ` +
          `forwarded native ${nativeGbps.toFixed(2)}, generic ${genericGbps.toFixed(2)}; ` +
          `direct with TSO/GSO/csum offload ${offloadGbps.toFixed(2)}`,
      );
    }
    console.log(lines.join("\n"));
  } finally {
    await nf?.kill();
    await sweep();
  }
  assert.deepEqual(await namespaces(), []);
});
