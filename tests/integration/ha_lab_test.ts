// The ha lab on the real kernel: `lab up` makes the namespaces, a client
// reaches a node with a real TCP connection to the reference NF (every byte
// verified), the switch mirrors the client's frames to the other nodes, and
// `lab down` leaves nothing behind. Teardown runs in `finally`, so a failing
// run cleans up too. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
import assert from "node:assert/strict";
import { isCleanError, LAUNCHER, ROOT, runCli } from "../_support/cli.ts";
import { labDown, labLeftovers, labUp } from "../../lib/ha/lab.ts";

// Its own lab name, so a user's lab (`rlha`) is never touched.
const NAME = `rt${Deno.pid}`;
const NF_PORT = 7000;

async function rxBytes(netns: string, iface: string): Promise<number> {
  const out = await new Deno.Command("ip", {
    args: ["-n", netns, "-j", "-s", "link", "show", iface],
    stdout: "piped",
  }).output();
  const [link] = JSON.parse(new TextDecoder().decode(out.stdout));
  return link.stats64.rx.bytes;
}

/** Starts `reliab ARGS` in `netns` and waits until `ready` appears on stdout or stderr. */
async function startIn(
  netns: string,
  args: string[],
  ready: string,
  from: "stdout" | "stderr" = "stdout",
): Promise<{ child: Deno.ChildProcess; rest: Promise<string> }> {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", netns, LAUNCHER, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const other = from === "stdout" ? child.stderr : child.stdout;
  const otherText = new Response(other).text();
  const reader = child[from].pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes(ready)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`"${args.join(" ")}" did not start: ${text}${await otherText}`);
    text += value;
  }
  const rest = (async () => {
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
    return from === "stdout" ? text : await otherText;
  })();
  return { child, rest };
}

async function startNf(netns: string, addr: string): Promise<Deno.ChildProcess> {
  const nf = await startIn(netns, ["ha", "nf", "--listen", `${addr}:${NF_PORT}`], "listening");
  return nf.child;
}

async function stop(child: Deno.ChildProcess | undefined): Promise<void> {
  if (child === undefined) return;
  try {
    child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  await child.status;
}

Deno.test("lab up makes namespaces a client can use to reach the NF; lab down removes all", async () => {
  await labDown({ name: NAME });
  let nf: Deno.ChildProcess | undefined;
  try {
    const up = await runCli(["ha", "lab", "up", "--name", NAME, "--nodes", "2", "--json"]);
    assert.equal(up.code, 0, up.stderr);
    const lab = JSON.parse(up.stdout);
    assert.equal(lab.vip, "10.77.0.1");
    assert.equal(lab.client.netns, `${NAME}-c`);
    assert.deepEqual(lab.nodes.map((n: { id: number }) => n.id), [1, 2]);
    for (const node of lab.nodes) {
      assert.deepEqual(Object.keys(node).sort(), ["addr", "id", "iface", "netns"]);
    }
    const present = await labLeftovers(NAME);
    for (const ns of [lab.client.netns, ...lab.nodes.map((n: { netns: string }) => n.netns)]) {
      assert.ok(present.includes(ns), `${ns} missing from ${present}`);
    }

    // Idempotent: a second `up` keeps the same lab.
    const again = await runCli(["ha", "lab", "up", "--name", NAME, "--nodes", "2", "--json"]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), lab);
    const other = await runCli(["ha", "lab", "up", "--name", NAME, "--nodes", "3"]);
    assert.equal(other.code, 1);
    assert.ok(isCleanError(other.stderr), other.stderr);

    const [node1, node2] = lab.nodes;
    nf = await startNf(node1.netns, node1.addr);
    const mirroredBefore = await rxBytes(node2.netns, node2.iface);
    const load = await runCli(
      [
        "ha",
        "load",
        "--connect",
        `${node1.addr}:${NF_PORT}`,
        "--connections",
        "16",
        "--bytes",
        "1000000",
        "--json",
      ],
      { wrap: ["ip", "netns", "exec", lab.client.netns] },
    );
    assert.equal(load.code, 0, load.stderr + load.stdout);
    const report = JSON.parse(load.stdout);
    assert.equal(report.completed, 16);
    assert.equal(report.resets, 0);
    assert.equal(report.bytesVerified, 16_000_000);
    assert.equal(report.bytesLost + report.bytesDuplicated + report.bytesCorrupted, 0);
    // Node 2 saw the client's frames to node 1: the switch mirrors for free.
    const mirrored = await rxBytes(node2.netns, node2.iface) - mirroredBefore;
    assert.ok(mirrored >= 16_000_000, `node 2 received only ${mirrored} bytes`);
  } finally {
    await stop(nf);
    const down = await runCli(["ha", "lab", "down", "--name", NAME]);
    const downAgain = await runCli(["ha", "lab", "down", "--name", NAME]);
    await labDown({ name: NAME });
    assert.equal(down.code, 0, down.stderr);
    assert.equal(downAgain.code, 0, downAgain.stderr);
  }
  assert.deepEqual(await labLeftovers(NAME), []);
  await assert.rejects(Deno.stat(`/run/reliab/ha-lab-${NAME}.json`), Deno.errors.NotFound);
});

Deno.test("lab up without CAP_NET_ADMIN fails with one line and a hint, leaving nothing", async () => {
  const r = await runCli(["ha", "lab", "up", "--name", NAME], {
    wrap: ["setpriv", "--bounding-set=-all", "--inh-caps=-all"],
  });
  assert.equal(r.code, 1, r.stderr);
  assert.ok(isCleanError(r.stderr), r.stderr);
  assert.match(r.stderr, /CAP_NET_ADMIN/);
  assert.deepEqual(await labLeftovers(NAME), []);
});

Deno.test("an XDP program loaded from raw instructions counts frames on a node and on a mirror", async () => {
  const name = `rx${Deno.pid}`;
  await labDown({ name });
  let nf: Deno.ChildProcess | undefined;
  const probes: Deno.ChildProcess[] = [];
  try {
    const lab = await labUp({ name, nodes: 2 });
    const [node1, node2] = lab.nodes;
    nf = await startNf(node1!.netns, node1!.addr);
    const xdp = (netns: string, mode: string) =>
      startIn(
        netns,
        ["ha", "xdp-count", "--iface", "eth0", "--mode", mode, "--duration-ms", "60000", "--json"],
        "attached",
        "stderr",
      );
    const direct = await xdp(node1!.netns, "native");
    const mirror = await xdp(node2!.netns, "generic");
    probes.push(direct.child, mirror.child);
    const load = await runCli(
      [
        "ha",
        "load",
        "--connect",
        `${node1!.addr}:${NF_PORT}`,
        "--connections",
        "4",
        "--bytes",
        "2000000",
      ],
      { wrap: ["ip", "netns", "exec", lab.client.netns] },
    );
    assert.equal(load.code, 0, load.stderr + load.stdout);
    await stop(direct.child);
    await stop(mirror.child);
    const directCount = JSON.parse(await direct.rest);
    const mirrorCount = JSON.parse(await mirror.rest);
    // 8 MB in MTU-sized frames, at least; generic XDP sees GRO-merged packets, so fewer.
    assert.ok(Number(directCount.packets) > 8_000_000 / 1500, `direct ${directCount.packets}`);
    assert.ok(Number(mirrorCount.packets) > 100, `mirror ${mirrorCount.packets}`);
    // Detached on exit: no XDP program left on either interface.
    for (const node of [node1!, node2!]) {
      const link = await new Deno.Command("ip", {
        args: ["-n", node.netns, "-d", "link", "show", "eth0"],
        stdout: "piped",
      }).output();
      assert.doesNotMatch(new TextDecoder().decode(link.stdout), /prog\/xdp|xdpgeneric|xdp id/);
    }
  } finally {
    for (const probe of probes) await stop(probe);
    await stop(nf);
    await labDown({ name });
  }
  assert.deepEqual(await labLeftovers(name), []);
});
