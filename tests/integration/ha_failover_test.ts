// Transparent failover on the real kernel, through the commands users run:
// `ha lab up`, `ha up` on two nodes (node 1 primary), 64 connections
// streaming verified bytes both ways (`ha load`), then the primary fails —
// (a) SIGKILL of everything in its namespaces, (b) its link set down,
// (c) `ha fail` — and (d) the same for an unmodified server that is not ours
// (socat + cat). Each time every connection must finish on the new primary
// with no reset and no byte lost, duplicated or corrupted (the load client
// checks every echoed byte), and the new primary must say so with a higher
// epoch. (e) A clean stop leaves no NF namespace, XDP program or process, and
// `lab down` leaves nothing at all. (f) `ha demo` tells the same story.
//
// Every case has its own lab name; agents are stopped and the lab taken down
// in `finally`, so a failing case leaves nothing behind. Needs root.
import assert from "node:assert/strict";
import { LAUNCHER, runCli } from "../_support/cli.ts";
import { labDown, labLeftovers } from "../../lib/ha/lab.ts";
import { killNetns, netnsPids, NetnsProcess } from "../../lib/ha/_netns_process.ts";

const PORT = 7000;
const CONNECTIONS = 64;
const BYTES = 2 * 1024 * 1024;
/** Share of the stream verified before the primary is failed: mid-stream. */
const KILL_AT = 0.25;
const names: string[] = [];

interface LabJson {
  readonly vip: string;
  readonly client: { readonly netns: string };
  readonly switch: { readonly netns: string };
  readonly nodes: readonly { id: number; netns: string; iface: string; addr: string }[];
}

interface Node {
  readonly id: number;
  readonly netns: string;
  readonly nfNetns: string;
  readonly agent: NetnsProcess;
}

interface Status {
  readonly id: number;
  readonly role: string;
  readonly epoch: number;
  readonly peers: readonly { readonly alive: boolean }[];
}

function labName(tag: string): string {
  // At most 10 characters (lab names become namespace names).
  const name = `rf${Deno.pid % 1_000_000}${tag}`;
  names.push(name);
  return name;
}

async function lines(argv: string[]): Promise<string> {
  const out = await new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout);
}

async function status(netns: string): Promise<Status> {
  const r = await runCli(["ha", "status", "--json"], { wrap: ["ip", "netns", "exec", netns] });
  assert.equal(r.code, 0, `ha status in ${netns}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Waits for the JSON object `ha up --json` prints (one line or pretty). */
function upObject(agent: NetnsProcess): Record<string, unknown> | undefined {
  const out = agent.lines("stdout");
  for (let i = 0; i < out.length; i++) {
    const line = out[i]!.trim();
    if (line.startsWith("{") && line.endsWith("}")) return JSON.parse(line);
    if (line !== "{") continue;
    const end = out.findIndex((l, k) => k > i && l.trimEnd() === "}");
    return end < 0 ? undefined : JSON.parse(out.slice(i, end + 1).join("\n"));
  }
  return undefined;
}

/**
 * Starts `ha up` on every node, the primary first (a replica that hears no
 * primary would take over); every agent started is pushed to `started` at
 * once, so the caller stops it even if a later one fails.
 */
async function startAgents(
  lab: LabJson,
  nf: string[],
  started: NetnsProcess[],
): Promise<Node[]> {
  const peers = (id: number) => lab.nodes.filter((n) => n.id !== id).map((n) => n.addr).join(",");
  const start = async (node: LabJson["nodes"][number]): Promise<Node> => {
    const agent = new NetnsProcess(node.netns, [
      LAUNCHER,
      "ha",
      "up",
      "--id",
      String(node.id),
      "--vip",
      lab.vip,
      "--iface",
      node.iface,
      "--peers",
      peers(node.id),
      ...(node.id === 1 ? ["--primary"] : []),
      "--json",
      "--",
      ...nf,
    ]);
    started.push(agent);
    await agent.waitForLine("stdout", () => upObject(agent) !== undefined, {
      timeoutMs: 120_000,
      action: `ha up on node ${node.id}`,
      hint: "run the same 'reliab ha up' by hand to see why",
    });
    const up = upObject(agent)!;
    assert.equal(up.id, node.id);
    assert.equal(up.netns, node.netns);
    assert.equal(up.vip, lab.vip);
    assert.equal(up.role, node.id === 1 ? "primary" : "replica");
    return { id: node.id, netns: node.netns, nfNetns: String(up.nf_netns), agent };
  };
  // `ha up` prints its ready line once the NF listens on the VIP: the
  // replicas' NFs are ready for the first SYN too.
  const primary = await start(lab.nodes[0]!);
  const nodes = [primary, ...await Promise.all(lab.nodes.slice(1).map(start))];
  // Connections opened before the primary hears a replica are not replicated.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await status(primary.netns);
    const alive = s.peers.filter((p) => p.alive).length;
    if (alive === lab.nodes.length - 1) break;
    assert.ok(Date.now() < deadline, `the primary hears ${alive} replicas: ${JSON.stringify(s)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return nodes;
}

async function stopAgents(agents: readonly NetnsProcess[]): Promise<void> {
  await Promise.all(agents.map((agent) => agent.terminate(10_000)));
}

/** No XDP program on any link, no NF namespace, no process: what a clean stop must leave. */
async function assertClean(node: Node): Promise<void> {
  const links = await lines(["ip", "-n", node.netns, "-d", "link", "show"]);
  assert.doesNotMatch(links, /xdp/, `XDP left in ${node.netns}:\n${links}`);
  const namespaces = await lines(["ip", "netns", "list"]);
  assert.ok(
    !namespaces.split("\n").some((l) => l.split(" ")[0] === node.nfNetns),
    `${node.nfNetns} left after a clean stop`,
  );
  assert.deepEqual(await netnsPids(node.netns), [], `processes left in ${node.netns}`);
}

type Kill = "sigkill" | "link" | "fail";

async function failPrimary(lab: LabJson, primary: Node, kill: Kill): Promise<void> {
  if (kill === "sigkill") {
    // The NF is the agent's child even where its namespace cannot be entered by name.
    await killNetns(primary.netns, primary.nfNetns);
  } else if (kill === "link") {
    const out = await new Deno.Command("ip", {
      args: ["-n", lab.switch.netns, "link", "set", `n${primary.id}`, "down"],
    }).output();
    assert.ok(out.success, "cannot set the primary's switch port down");
  } else {
    const r = await runCli(["ha", "fail"], { wrap: ["ip", "netns", "exec", primary.netns] });
    assert.equal(r.code, 0, `ha fail: ${r.stderr}`);
  }
}

/** The whole scenario on a fresh lab; every check is an assertion. */
async function failoverCase(tag: string, kill: Kill, nf: (vip: string) => string[]) {
  const name = labName(tag);
  await labDown({ name });
  const agents: NetnsProcess[] = [];
  let nodes: Node[] = [];
  let load: NetnsProcess | undefined;
  let lab: LabJson | undefined;
  try {
    // One primary and one replica: what issue 3 promises (several replicas are issue 4).
    const up = await runCli(["ha", "lab", "up", "--name", name, "--nodes", "2", "--json"]);
    assert.equal(up.code, 0, up.stderr);
    lab = JSON.parse(up.stdout) as LabJson;
    nodes = await startAgents(lab, nf(lab.vip), agents);
    const [primary, ...replicas] = nodes;
    const before = await status(primary!.netns);
    assert.equal(before.role, "primary");
    for (const r of replicas) assert.equal((await status(r.netns)).role, "replica");

    load = new NetnsProcess(lab.client.netns, [
      LAUNCHER,
      "ha",
      "load",
      "--connect",
      `${lab.vip}:${PORT}`,
      "--connections",
      String(CONNECTIONS),
      "--bytes",
      String(BYTES),
      "--progress-ms",
      "20",
      // Stalls after a failover are measured by the bench, not here (a
      // loaded 2-core VM can add seconds of retransmission timeouts): this
      // suite checks that every connection continues with no byte lost,
      // duplicated or corrupted. A connection still stuck at 90 s fails it.
      "--timeout-ms",
      "90000",
      "--json",
    ]);
    // Mid-stream: every connection is up and a quarter of the bytes came back.
    await load.waitForLine("stderr", (line) => {
      const m = /^progress connected=(\d+) verified=(\d+) total=(\d+)$/.exec(line);
      return m !== null && Number(m[1]) === CONNECTIONS && Number(m[2]) >= KILL_AT * Number(m[3]);
    }, { timeoutMs: 120_000, action: "load never got going", hint: "" });
    await failPrimary(lab, primary!, kill);

    const out = await load.output();
    assert.ok(out.stdout.trim().startsWith("{"), `the load gave no report: ${out.stderr}`);
    const report = JSON.parse(out.stdout);
    const detail = `${kill}: ${JSON.stringify(report)}`;
    assert.equal(report.connections, CONNECTIONS, detail);
    assert.equal(report.completed, CONNECTIONS, detail);
    assert.equal(report.resets, 0, detail);
    assert.equal(report.bytesSent, CONNECTIONS * BYTES, detail);
    assert.equal(report.bytesVerified, CONNECTIONS * BYTES, detail);
    assert.equal(report.bytesLost, 0, detail);
    assert.equal(report.bytesDuplicated, 0, detail);
    assert.equal(report.bytesCorrupted, 0, detail);
    assert.equal(out.status.code, 0, detail);

    // One survivor is primary, with a higher epoch than the old primary had.
    const after = await Promise.all(replicas.map((r) => status(r.netns)));
    const primaries = after.filter((s) => s.role === "primary");
    assert.equal(primaries.length, 1, JSON.stringify(after));
    assert.ok(primaries[0]!.epoch > before.epoch, JSON.stringify({ before, after }));
    if (kill === "fail") assert.notEqual((await status(primary!.netns)).role, "primary");

    // (e) A clean stop (SIGTERM) of every agent still running leaves nothing.
    await stopAgents(agents);
    for (const node of nodes) if (kill !== "sigkill" || node !== primary) await assertClean(node);
  } finally {
    await load?.terminate(1000);
    await stopAgents(agents);
    await killNetns(...nodes.map((n) => n.nfNetns), ...await labLeftovers(name));
    await labDown({ name });
  }
  assert.deepEqual(await labLeftovers(name), []);
}

const referenceNf = (vip: string) => [
  LAUNCHER,
  "ha",
  "nf",
  "--listen",
  `${vip}:${PORT}`,
  "--mode",
  "echo",
];

Deno.test("(a) SIGKILL of everything in the primary's namespaces: every connection continues", async () => {
  await failoverCase("a", "sigkill", referenceNf);
});

Deno.test("(b) the primary's link set down: every connection continues", async () => {
  await failoverCase("b", "link", referenceNf);
});

Deno.test("(c) 'reliab ha fail': every connection continues", async () => {
  await failoverCase("c", "fail", referenceNf);
});

Deno.test("(d) an unmodified server (socat + cat) survives a SIGKILL of the primary", async () => {
  const socat = await new Deno.Command("sh", { args: ["-c", "command -v socat"] }).output();
  assert.ok(socat.success, "socat is not installed: apt-get install socat (.ci/run does)");
  await failoverCase(
    "d",
    "sigkill",
    // -t 30: after the client's EOF, wait for cat to echo the rest (socat's
    // default 0.5 s can cut the echo short on a loaded 2-CPU machine).
    // backlog=128: socat's default accept backlog is 5, and with 64 clients
    // connecting at once an overflow drops a handshake on one node and not on
    // another — the nodes' NFs then diverge (see the issue's closing note).
    (
      vip,
    ) => [
      "socat",
      "-t",
      "30",
      `TCP-LISTEN:${PORT},bind=${vip},fork,reuseaddr,backlog=128`,
      "EXEC:cat",
    ],
  );
});

Deno.test("(f) 'reliab ha demo' reports a clean failover and removes its lab", async () => {
  const name = labName("f");
  try {
    const r = await runCli([
      "ha",
      "demo",
      "--json",
      "--name",
      name,
      "--connections",
      String(CONNECTIONS),
      "--bytes",
      String(BYTES),
    ]);
    assert.ok(r.stdout.trim().startsWith("{"), `the demo gave no report: ${r.stderr}`);
    const report = JSON.parse(r.stdout);
    assert.equal(r.code, 0, `${r.stderr}\n${r.stdout}`);
    assert.equal(report.ok, true, report.problems.join("; "));
    assert.equal(report.survived, CONNECTIONS);
    assert.equal(report.bytesVerified, CONNECTIONS * BYTES);
    assert.equal(report.failover.midStream, true);
    assert.ok(report.failover.newPrimary === 2 || report.failover.newPrimary === 3);
    assert.ok(report.failover.epochAfter > report.failover.epochBefore);
    // Progress went to stderr, a line per step.
    assert.match(r.stderr, /killing node 1/);
    assert.deepEqual(await labLeftovers(name), []);
  } finally {
    await killNetns(...await labLeftovers(name));
    await labDown({ name });
  }
});

Deno.test("(e) after everything: no namespace, link or XDP program of these tests is left", async () => {
  for (const name of names) assert.deepEqual(await labLeftovers(name), [], name);
  const namespaces = await lines(["ip", "netns", "list"]);
  const ours = namespaces.split("\n").filter((l) => names.some((n) => l.startsWith(`${n}-`)));
  assert.deepEqual(ours, []);
  // Nothing of ours in the caller's namespace: no link with our prefix, no XDP on a link.
  const root = await lines(["ip", "-d", "-o", "link", "show"]);
  for (const name of names) assert.ok(!root.includes(name), `${name} link in the root namespace`);
  assert.doesNotMatch(root, /xdp/, "an XDP program is attached in the root namespace");
});
