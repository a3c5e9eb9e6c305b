// Split brain on the real kernel: two nodes, verified streams running, the
// primary's switch port cut (node 1 keeps running, alone, believing it is
// primary), node 2 takes over with a higher epoch, then node 1's port comes
// back while the streams go on. Node 1 must hear the higher epoch and be
// fenced, and must never emit for the connections it no longer owns: its
// `to_client` counter stays where it was when it was cut off, and no TCP
// frame from the VIP enters the switch from its port after it came back (a
// counting filter on that port). The clients finish with no reset and no
// byte lost, duplicated or corrupted. The lab goes in `finally`. Needs root.
import assert from "node:assert/strict";
import { LAUNCHER } from "../_support/cli.ts";
import { labDown, labLeftovers } from "../../lib/ha/lab.ts";
import { claimLab, readLoadSummary } from "../../lib/ha/demo.ts";
import { type Cluster, startCluster } from "../../lib/ha/lab_cluster.ts";
import { NetnsProcess } from "../../lib/ha/_netns_process.ts";
import { parseLoadProgress } from "../../lib/ha/child_output.ts";
import { mustRun, runCommand } from "../../lib/ha/_command.ts";

const NAME = "rlsb";
const CONNECTIONS = 8;
/**
 * Long enough to stream through the cut, the takeover and well past the
 * healing: node 2 alone streams at up to ~90 MB/s here.
 */
const BYTES = 64 * 1024 * 1024;
/** Share of the stream verified before the cut. */
const CUT_AT = 0.02;
/** Node 1 stays cut off this long after node 2 took over: past its replica drop timeout (200 ms). */
const PARTITION_MS = 600;
/** A device in the switch namespace that drops what is mirrored to it, counting. */
const COUNTER = "rlcount";
/** Classic BPF: IPv4, source 10.77.0.1 (the VIP), TCP. */
const FROM_VIP_TCP = "8,40 0 0 12,21 0 5 2048,32 0 0 26,21 0 3 172818433,48 0 0 23," +
  "21 0 1 6,6 0 0 4294967295,6 0 0 0";

interface RawStatus {
  readonly role: string;
  readonly epoch: number;
  readonly counters: Readonly<Record<string, number>>;
}

async function rawStatus(cluster: Cluster, id: number): Promise<RawStatus> {
  const r = await runCommand("ip", [
    "netns",
    "exec",
    cluster.node(id).lab.netns,
    LAUNCHER,
    "ha",
    "status",
    "--json",
  ]);
  assert.equal(r.code, 0, `ha status on node ${id}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Frames the counting filter on switch port `port` saw (its mirred action's packet count). */
async function countedFrames(sw: string, port: string): Promise<number> {
  const out = await mustRun("tc", ["-n", sw, "-s", "filter", "show", "dev", port, "ingress"], "tc");
  const m = /Sent \d+ bytes (\d+) pkt/.exec(out);
  assert.ok(m !== null, `no counter on ${port}:\n${out}`);
  return Number(m[1]);
}

Deno.test("a primary cut off and plugged back in is fenced and never emits again", async () => {
  await labDown({ name: NAME });
  let cluster: Cluster | undefined;
  let load: NetnsProcess | undefined;
  try {
    const lab = await claimLab(NAME, 2);
    const sw = lab.switch.netns;
    cluster = await startCluster(lab, { port: 7000 });
    const epochBefore = (await rawStatus(cluster, 1)).epoch;

    load = new NetnsProcess(lab.client.netns, [
      LAUNCHER,
      "ha",
      "load",
      "--connect",
      `${lab.vip}:7000`,
      "--connections",
      String(CONNECTIONS),
      "--bytes",
      String(BYTES),
      "--progress-ms",
      "50",
      "--json",
    ]);
    const progress = () =>
      parseLoadProgress(
        load!.lines("stderr").findLast((l) => parseLoadProgress(l) !== undefined) ?? "",
      );
    await load.waitForLine("stderr", (line) => {
      const p = parseLoadProgress(line);
      return p !== undefined && p.connected === CONNECTIONS && p.verified >= CUT_AT * p.total;
    }, { timeoutMs: 120_000, action: "the load never got going", hint: "" });

    // The cut: node 1 runs on, alone.
    const atCut = await rawStatus(cluster, 1);
    await cluster.kill(1, "link");
    const next = await cluster.waitForPrimary(1, epochBefore, 5_000);
    assert.ok(next !== undefined, "node 2 did not take over");
    assert.equal(next.id, 2);
    assert.ok(next.epoch > epochBefore, `epoch ${next.epoch} is not above ${epochBefore}`);
    await new Promise((resolve) => setTimeout(resolve, PARTITION_MS));
    const cut = await rawStatus(cluster, 1);
    // Cut off, it went on emitting into the void (its NF retransmits): the counter moves.
    const emittedWhileCut = cut.counters.to_client! - atCut.counters.to_client!;
    assert.equal(cut.role, "primary", "cut off, node 1 cannot know it was replaced");

    // Count TCP from the VIP entering the switch from node 1's port from now on.
    await mustRun("ip", ["-n", sw, "link", "add", COUNTER, "type", "ifb"], "ifb");
    await mustRun("ip", ["-n", sw, "link", "set", COUNTER, "up"], "ifb up");
    await mustRun("tc", [
      "-n",
      sw,
      "qdisc",
      "replace",
      "dev",
      COUNTER,
      "root",
      "pfifo",
      "limit",
      "0",
    ], "q");
    // Node 2's port gets one too: it serves, so its count shows the filter works.
    for (const port of ["n1", "n2"]) {
      await mustRun("tc", ["-n", sw, "qdisc", "add", "dev", port, "clsact"], "clsact");
      await mustRun("tc", [
        ...["-n", sw, "filter", "add", "dev", port, "ingress", "prio", "1", "protocol", "all"],
        ...[
          "bpf",
          "bytecode",
          FROM_VIP_TCP,
          "action",
          "mirred",
          "egress",
          "mirror",
          "dev",
          COUNTER,
        ],
      ], "counter");
    }
    const streamingBefore = progress();
    if (!load.running) {
      const early = await load.output();
      assert.fail(`the load ended before node 1 came back: ${early.stdout}${load.lastError()}`);
    }

    // The healing.
    await cluster.revive(1);
    let fenced: RawStatus | undefined;
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const s = await rawStatus(cluster, 1);
      if (s.role === "fenced") {
        fenced = s;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const healed = await rawStatus(cluster, 1);
    assert.ok(
      fenced !== undefined,
      `node 1 is not fenced after coming back: ${JSON.stringify(healed)}`,
    );
    assert.ok(load.running, "the load ended before node 1 was fenced: give more bytes");

    const out = await load.output();
    const summary = readLoadSummary(out.stdout, load, "the load");
    const after = await rawStatus(cluster, 1);
    const wire = await countedFrames(sw, "n1");
    const wireNode2 = await countedFrames(sw, "n2");
    const streamingAfter = progress();
    const emitted = (s: RawStatus) => s.counters.to_client! - cut.counters.to_client!;
    const detail = JSON.stringify({
      summary,
      emittedWhenFenced: emitted(fenced),
      emittedAtEnd: emitted(after),
      vipFramesOnTheWire: wire,
      vipFramesOnTheWireFromNode2: wireNode2,
      emittedWhileCut,
      node1: { cut: cut.counters, fenced: fenced.counters, end: after.counters },
      verifiedBeforeHealing: streamingBefore?.verified,
      verifiedAtEnd: streamingAfter?.verified,
    });
    console.log(
      `split brain: node 1 emitted ${emitted(after)} frames (to_client) and put ${wire} ` +
        `VIP TCP frames on the wire after coming back (node 2: ${wireNode2}); while cut off ` +
        `it emitted ${emittedWhileCut}; ` +
        `${summary.completed}/${summary.connections} complete, longest stall ${
          summary.longestStallMs.toFixed(1)
        } ms`,
    );
    // It kept streaming after the healing: node 1 was back while bytes flowed.
    assert.ok((streamingAfter?.verified ?? 0) > (streamingBefore?.verified ?? 0), detail);
    // Fenced, it stays fenced and silent.
    assert.equal(after.role, "fenced", detail);
    assert.equal(emitted(after), 0, detail);
    assert.equal(wire, 0, detail);
    assert.ok(wireNode2 > 0, `the counting filter saw nothing from node 2 either: ${detail}`);
    // Node 2 stays primary with its epoch.
    const survivor = await rawStatus(cluster, 2);
    assert.equal(survivor.role, "primary", detail);
    assert.equal(survivor.epoch, next.epoch, detail);
    // The clients saw nothing of it.
    assert.equal(summary.completed, CONNECTIONS, detail);
    assert.equal(summary.resets, 0, detail);
    assert.equal(summary.bytesVerified, CONNECTIONS * BYTES, detail);
    assert.equal(summary.bytesLost + summary.bytesDuplicated + summary.bytesCorrupted, 0, detail);
    assert.equal(out.status.code, 0, detail);
  } finally {
    await load?.terminate(2_000);
    await cluster?.stop();
    await labDown({ name: NAME });
  }
  assert.deepEqual(await labLeftovers(NAME), []);
});
