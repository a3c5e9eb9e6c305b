// `reliab ha up` on the real kernel, in labs of our own (`rlhu<pid><x>`):
// the NF namespace is built as designed and removed completely; every early
// error is one line and leaves nothing (namespaces, links, XDP, sockets);
// a failing agent start cleans up; the control socket answers `ha status`
// and `ha fail` through the CLI (fake agent); and, last, two real nodes with
// the native agent and the reference NF. Labs come down in `finally`, so a
// failing run cleans up too. Needs root.
import assert from "node:assert/strict";
import { isCleanError, LAUNCHER, ROOT, runCli } from "../_support/cli.ts";
import { labDown, labUp } from "../../lib/ha/lab.ts";
import { NF_SYSCTLS } from "../../lib/ha/agent/nf_namespace.ts";
import { probeControlSocket } from "../../lib/ha/agent/control_socket.ts";

const VIP = "10.77.0.1";
const NF_PORT = 7000;
const CHILD = new URL("./_ha_up_child.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

function labName(suffix: string): string {
  return `rlhu${Deno.pid % 10000}${suffix}`;
}

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(args[0]!, {
    args: args.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

async function stdout(args: string[]): Promise<string> {
  const r = await run(args);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** What `ha up` may have left in node namespace `node`; empty when clean. */
async function leftovers(node: string): Promise<string[]> {
  const found: string[] = [];
  const namespaces = (await stdout(["ip", "netns", "list"])).split("\n").map((l) =>
    l.split(" ")[0]
  );
  if (namespaces.includes(`${node}-nf`)) found.push(`namespace ${node}-nf`);
  const links = await stdout(["ip", "-n", node, "-d", "link", "show"]);
  if (/rlha\d+a/.test(links)) found.push("veth rlha<id>a");
  if (/xdp/.test(links)) found.push("an XDP program");
  const inode = /\[(\d+)\]/.exec(
    await stdout(["ip", "netns", "exec", node, "readlink", "/proc/self/ns/net"]),
  )?.[1];
  // Only a live socket is this agent's: a file left by an agent SIGKILLed in
  // another test may carry a recycled namespace inode.
  if (await probeControlSocket(`/run/reliab/ha/net-${inode}.sock`) === "live") {
    found.push("control socket");
  }
  return found;
}

/** Reads lines of a stream on demand. */
class Lines {
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  readonly seen: string[] = [];
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }
  /** The next line that `match`es; undefined at end of stream. */
  async find(match: (line: string) => boolean): Promise<string | undefined> {
    while (true) {
      const newline = this.#buffer.indexOf("\n");
      if (newline >= 0) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        this.seen.push(line);
        if (match(line)) return line;
        continue;
      }
      const { value, done } = await this.#reader.read();
      if (done) return undefined;
      this.#buffer += value;
    }
  }
  async rest(): Promise<string> {
    await this.find(() => false);
    return this.seen.join("\n");
  }
}

interface Started {
  readonly child: Deno.ChildProcess;
  readonly out: Lines;
  readonly err: Promise<string>;
}

function startChild(node: string, args: string[]): Started {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", node, Deno.execPath(), "run", "--quiet", "--allow-all", CHILD, ...args],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return { child, out: new Lines(child.stdout), err: new Response(child.stderr).text() };
}

function startCli(node: string, args: string[]): Started {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", node, LAUNCHER, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return { child, out: new Lines(child.stdout), err: new Response(child.stderr).text() };
}

async function ready(started: Started, what: string): Promise<Record<string, unknown>> {
  const line = await started.out.find((l) => l.startsWith("{"));
  if (line === undefined) {
    const status = await started.child.status;
    throw new Error(`${what} did not become ready (exit ${status.code}): ${await started.err}`);
  }
  return JSON.parse(line);
}

async function terminate(started: Started | undefined): Promise<Deno.CommandStatus | undefined> {
  if (started === undefined) return undefined;
  try {
    started.child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  try {
    await started.child.stdin.close();
  } catch {
    // Not piped, or closed.
  }
  return await started.child.status;
}

function upArgs(
  id: number,
  extra: { vip?: string; iface?: string; peers?: string } = {},
): string[] {
  return [
    "ha",
    "up",
    "--id",
    String(id),
    "--vip",
    extra.vip ?? VIP,
    "--iface",
    extra.iface ?? "eth0",
    "--peers",
    extra.peers ?? "10.77.0.12",
  ];
}

const NF = ["./reliab", "ha", "nf", "--listen", `${VIP}:${NF_PORT}`];

Deno.test("the NF namespace is built as designed and removed completely", async () => {
  const name = labName("a");
  await labDown({ name });
  let started: Started | undefined;
  try {
    const lab = await labUp({ name, nodes: 1 });
    const node = lab.nodes[0]!.netns;
    const nfns = `${node}-nf`;
    // A stale NF namespace with a process inside and a stale veth, as a SIGKILLed agent leaves.
    await stdout(["ip", "netns", "add", nfns]);
    await stdout([
      "ip",
      "-n",
      node,
      "link",
      "add",
      "rlha1a",
      "type",
      "veth",
      "peer",
      "name",
      "nf0",
      "netns",
      nfns,
    ]);
    const stale = new Deno.Command("ip", { args: ["netns", "exec", nfns, "sleep", "600"] }).spawn();
    // GRO on, so we can see that the outer interface gets back what it had.
    await stdout(["ip", "netns", "exec", node, "ethtool", "-K", "eth0", "gro", "on"]);

    started = startChild(node, ["nfns", "1", "eth0", VIP]);
    const info = await ready(started, "nfns");
    assert.equal((await stale.status).signal, "SIGKILL", "the stale NF was killed");
    assert.equal(info.netns, nfns);
    assert.equal(info.agentIface, "rlha1a");
    assert.equal(info.nodeAddr, "10.77.0.11");

    const [agent] = JSON.parse(await stdout(["ip", "-n", node, "-j", "link", "show", "rlha1a"]));
    const [nf0] = JSON.parse(await stdout(["ip", "-n", nfns, "-j", "addr", "show", "nf0"]));
    const [eth0] = JSON.parse(await stdout(["ip", "-n", node, "-j", "link", "show", "eth0"]));
    assert.equal(agent.ifindex, info.agentIfindex);
    assert.equal(agent.address, info.agentMac);
    assert.equal(nf0.address, info.nfMac);
    assert.equal(eth0.ifindex, info.outerIfindex);
    assert.equal(nf0.mtu, eth0.mtu);
    assert.equal(agent.mtu, eth0.mtu);
    assert.deepEqual(
      nf0.addr_info.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`),
      [`${VIP}/32`],
    );
    const addrs = JSON.parse(
      await stdout(["ip", "-n", node, "-j", "-4", "addr", "show", "rlha1a"]),
    );
    assert.deepEqual(addrs[0]?.addr_info ?? [], [], "the agent end has no address");
    const route = await stdout(["ip", "-n", nfns, "route", "show", "default"]);
    assert.match(route, /default via 169\.254\.0\.1 dev nf0 .*onlink/);
    assert.match(route, /quickack 1/);
    const neigh = await stdout(["ip", "-n", nfns, "neigh", "show", "169.254.0.1"]);
    assert.match(neigh, new RegExp(`lladdr ${info.agentMac} PERMANENT`));
    assert.match(await stdout(["ip", "-n", nfns, "link", "show", "lo"]), /UP/);
    for (const [key, value] of Object.entries(NF_SYSCTLS)) {
      const got = await stdout(["ip", "netns", "exec", nfns, "sysctl", "-n", key]);
      assert.equal(got.trim().replace(/\s+/g, " "), value, key);
    }
    const offloads = [
      ["ip", "netns", "exec", node, "ethtool", "-k", "rlha1a"],
      ["ip", "netns", "exec", nfns, "ethtool", "-k", "nf0"],
      ["ip", "netns", "exec", node, "ethtool", "-k", "eth0"],
    ];
    for (const args of offloads) {
      const features = await stdout(args);
      for (
        const feature of [
          "tcp-segmentation-offload",
          "generic-segmentation-offload",
          "generic-receive-offload",
          "tx-checksumming",
        ]
      ) {
        assert.match(features, new RegExp(`^${feature}: off`, "m"), `${args.at(-1)} ${feature}`);
      }
    }

    await started.child.stdin.close();
    assert.ok(await started.out.find((l) => l === "removed"), await started.err);
    assert.equal((await started.child.status).code, 0, await started.err);
    started = undefined;
    assert.deepEqual(await leftovers(node), []);
    const restored = await stdout(["ip", "netns", "exec", node, "ethtool", "-k", "eth0"]);
    assert.match(restored, /^generic-receive-offload: on/m, "eth0's GRO restored");
  } finally {
    await terminate(started);
    await labDown({ name });
  }
});

Deno.test("ha up errors are one line, exit 1 or 2, and leave nothing", async () => {
  const name = labName("b");
  await labDown({ name });
  try {
    const lab = await labUp({ name, nodes: 1 });
    const node = lab.nodes[0]!.netns;
    const wrap = ["ip", "netns", "exec", node];
    const cases: [string, string[], number, RegExp, string[]?][] = [
      [
        "no such interface",
        [...upArgs(1, { iface: "eth9" }), "--", ...NF],
        1,
        /"eth9": interface not found/,
      ],
      [
        "bad VIP",
        [...upArgs(1, { vip: "10.77.0.300" }), "--", ...NF],
        1,
        /Invalid VIP "10\.77\.0\.300"/,
      ],
      [
        "VIP is ours",
        [...upArgs(1, { vip: "10.77.0.11" }), "--", ...NF],
        1,
        /Invalid VIP .*address of this node/,
      ],
      [
        "peer is ours",
        [...upArgs(1, { peers: "10.77.0.12,10.77.0.11" }), "--", ...NF],
        1,
        /Invalid peer "10\.77\.0\.11"/,
      ],
      ["missing CMD", upArgs(1), 2, /Missing the NF command/],
      [
        "CMD exits at once",
        [...upArgs(1), "--", "false"],
        1,
        /Cannot start the NF: "false" exited with status 1 before listening on 10\.77\.0\.1/,
      ],
      [
        "no capabilities",
        [...upArgs(1), "--", ...NF],
        1,
        /missing CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF/,
        ["setpriv", "--bounding-set=-all", "--inh-caps=-all"],
      ],
    ];
    for (const [what, args, code, message, prefix] of cases) {
      const r = await runCli(args, { wrap: [...wrap, ...(prefix ?? [])] });
      assert.equal(r.code, code, `${what}: ${r.stderr}`);
      assert.ok(isCleanError(r.stderr), `${what}: ${r.stderr}`);
      assert.match(r.stderr, message, what);
      assert.deepEqual(await leftovers(node), [], what);
    }
    const status = await runCli(["ha", "status"], { wrap });
    assert.equal(status.code, 1);
    assert.ok(isCleanError(status.stderr), status.stderr);
    assert.match(status.stderr, /no agent runs in this network namespace/);
    assert.match(status.stderr, /hint: start one with 'reliab ha up' inside the node's namespace/);
  } finally {
    await labDown({ name });
  }
});

Deno.test("a failing native start (not_supported) stops the NF and removes everything", async () => {
  const name = labName("c");
  await labDown({ name });
  let started: Started | undefined;
  try {
    const lab = await labUp({ name, nodes: 1 });
    const node = lab.nodes[0]!.netns;
    started = startChild(node, ["up-not-supported", "1", "eth0", VIP, "10.77.0.12", "--", ...NF]);
    const error = await started.out.find((l) => l.startsWith("error:") || l.startsWith("{"));
    assert.equal((await started.child.status).code, 1, await started.err);
    started = undefined;
    assert.match(
      error ?? "",
      /^error: Cannot start the ha agent of node 1: the agent's packet loop is not built yet$/,
    );
    assert.deepEqual(await leftovers(node), []);
  } finally {
    await terminate(started);
    await labDown({ name });
  }
});

Deno.test("an NF that exits while serving stops the node: exit 1, one line, nothing left", async () => {
  const name = labName("f");
  await labDown({ name });
  let started: Started | undefined;
  try {
    const lab = await labUp({ name, nodes: 1 });
    const node = lab.nodes[0]!.netns;
    const nf = ["timeout", "3", ...NF];
    started = startChild(node, ["up-fake", "1", "eth0", VIP, "10.77.0.12", "--", ...nf]);
    await ready(started, "up-fake");
    const error = await started.out.find((l) => l.startsWith("error:"));
    assert.equal((await started.child.status).code, 1, await started.err);
    started = undefined;
    assert.equal(error, `error: NF "${nf.join(" ")}" exited with status 124`);
    assert.deepEqual(await leftovers(node), []);
  } finally {
    await terminate(started);
    await labDown({ name });
  }
});

Deno.test("ha status and ha fail reach the agent through the control socket (fake agent)", async () => {
  const name = labName("d");
  await labDown({ name });
  let started: Started | undefined;
  try {
    const lab = await labUp({ name, nodes: 1 });
    const node = lab.nodes[0]!.netns;
    const wrap = ["ip", "netns", "exec", node];
    started = startChild(node, ["up-fake", "1", "eth0", VIP, "10.77.0.12", "--", ...NF]);
    const info = await ready(started, "up-fake");
    assert.equal(info.role, "primary");
    assert.equal(info.netns, node);
    assert.equal(info.nfNetns, `${node}-nf`);
    // The NF is reachable on the VIP only inside the NF namespace (the agent is fake here).
    const ss = await stdout(["ip", "netns", "exec", `${node}-nf`, "ss", "-Hltn"]);
    assert.match(ss, new RegExp(`${VIP.replaceAll(".", "\\.")}:${NF_PORT}`));

    const json = await runCli(["ha", "status", "--json"], { wrap });
    assert.equal(json.code, 0, json.stderr);
    const status = JSON.parse(json.stdout);
    assert.equal(status.role, "primary");
    assert.equal(status.extra_field, "kept");
    const text = await runCli(["ha", "status"], { wrap });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^node 1: primary, epoch 17, this node is primary/);
    assert.match(text.stdout, /node 2 10\.77\.0\.99 +alive +replica/);
    assert.match(text.stdout, /connections 3, held segments 2/);
    assert.match(text.stdout, /client_frames 42/);

    const second = await runCli([...upArgs(1), "--", ...NF], { wrap });
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, /another agent serves this namespace/);

    const fail = await runCli(["ha", "fail"], { wrap });
    assert.equal(fail.code, 0, fail.stderr);
    assert.match(fail.stdout, /^node 1 \(primary, epoch 17\) failed itself: now failed/);
    const after = JSON.parse((await runCli(["ha", "status", "--json"], { wrap })).stdout);
    assert.equal(after.role, "failed");

    const status2 = await terminate(started);
    assert.equal(status2?.code, 0, await started.err);
    assert.ok(
      await started.out.find((l) => l === "stopped: agent stops 1"),
      started.out.seen.join("\n"),
    );
    started = undefined;
    assert.deepEqual(await leftovers(node), []);
  } finally {
    await terminate(started);
    await labDown({ name });
  }
});

// Passes only with the native agent (HaAgent.start): two nodes, the reference NF behind each.
Deno.test("two real nodes: roles, traffic through the VIP, ha fail, clean stop", async () => {
  const name = labName("e");
  await labDown({ name });
  const nodes: Started[] = [];
  try {
    const lab = await labUp({ name, nodes: 2 });
    const [n1, n2] = lab.nodes;
    nodes.push(
      startCli(n1!.netns, [...upArgs(1, { peers: n2!.addr }), "--primary", "--json", "--", ...NF]),
    );
    nodes.push(startCli(n2!.netns, [...upArgs(2, { peers: n1!.addr }), "--json", "--", ...NF]));
    const ready1 = await ready(nodes[0]!, "node 1");
    const ready2 = await ready(nodes[1]!, "node 2");
    assert.deepEqual(ready1, {
      id: 1,
      role: "primary",
      netns: n1!.netns,
      nf_netns: `${n1!.netns}-nf`,
      vip: VIP,
    });
    assert.equal(ready2.role, "replica");

    const statusOf = async (netns: string) => {
      const r = await runCli(["ha", "status", "--json"], { wrap: ["ip", "netns", "exec", netns] });
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout);
    };
    // Heartbeats flow: each sees the other alive.
    const deadline = Date.now() + 5000;
    let s1 = await statusOf(n1!.netns);
    let s2 = await statusOf(n2!.netns);
    while ((!s1.peers[0]?.alive || !s2.peers[0]?.alive) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      [s1, s2] = [await statusOf(n1!.netns), await statusOf(n2!.netns)];
    }
    assert.equal(s1.role, "primary");
    assert.equal(s2.role, "replica");
    assert.equal(s2.primary_id, 1);
    assert.ok(s1.peers[0].alive && s2.peers[0].alive, JSON.stringify([s1.peers, s2.peers]));

    const load = await runCli(
      [
        "ha",
        "load",
        "--connect",
        `${VIP}:${NF_PORT}`,
        "--connections",
        "8",
        "--bytes",
        "200000",
        "--json",
      ],
      { wrap: ["ip", "netns", "exec", lab.client.netns] },
    );
    assert.equal(load.code, 0, load.stderr + load.stdout);
    const report = JSON.parse(load.stdout);
    assert.equal(report.completed, 8);
    assert.equal(report.resets, 0);

    const fail = await runCli(["ha", "fail"], { wrap: ["ip", "netns", "exec", n1!.netns] });
    assert.equal(fail.code, 0, fail.stderr);
    assert.match(fail.stdout, /^node 1 \(primary, epoch \d+\) failed itself/);
    const takeoverBy = Date.now() + 5000;
    while ((await statusOf(n2!.netns)).role !== "primary" && Date.now() < takeoverBy) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const after = await statusOf(n2!.netns);
    assert.equal(after.role, "primary");
    assert.ok(after.epoch > s2.epoch, `epoch ${after.epoch} after ${s2.epoch}`);

    for (const node of nodes.splice(0)) {
      const status = await terminate(node);
      assert.equal(status?.code, 0, await node.err);
    }
    for (const node of lab.nodes) assert.deepEqual(await leftovers(node.netns), [], node.netns);
  } finally {
    for (const node of nodes) await terminate(node);
    await labDown({ name });
  }
});
