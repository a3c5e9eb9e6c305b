// A proxy NF through a failover (issue 4, "Proxies"). Two nodes run the
// reference NF as a TCP reverse proxy (then as a SOCKS5 proxy) to a backend
// echo server in the client's namespace; 16 paced connections stream verified bytes through
// it. Each node's NF opens its own backend connection per client
// connection, but only the primary's reaches the backend: the replicas'
// are paired with it and kept back. The backend must see exactly one
// connection per client connection — before and after a SIGKILL of the
// primary, when the replica's NF's backend connections take over — and the
// clients no reset and no byte lost, duplicated or corrupted. The lab is
// taken down in `finally`. Needs root.
import assert from "node:assert/strict";
import { labDown, labLeftovers } from "../../lib/ha/lab.ts";
import { claimLab } from "../../lib/ha/demo.ts";
import { type Cluster, startCluster } from "../../lib/ha/lab_cluster.ts";
import { NetnsProcess } from "../../lib/ha/_netns_process.ts";
import { parseLoadSummary } from "../../lib/ha/child_output.ts";
import { reliabArgv } from "../../lib/ha/self_command.ts";
import { startLoad, untilShare } from "../_support/ha_load.ts";

const NAME = `rlpx${Deno.pid % 10_000}`;
const CONNECTIONS = 16;
const BYTES = 2 * 1024 * 1024;
const RATE = 512 * 1024;
const BACKEND_PORT = 9000;

/** Established connections to the backend's port, seen from its namespace. */
async function backendConnections(netns: string): Promise<number> {
  const out = await new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      netns,
      "ss",
      "-Htn",
      "state",
      "established",
      `( sport = :${BACKEND_PORT} )`,
    ],
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.trim() !== "").length;
}

async function proxyCase(mode: "proxy" | "socks5") {
  await labDown({ name: NAME });
  let cluster: Cluster | undefined;
  let load: NetnsProcess | undefined;
  let backend: NetnsProcess | undefined;
  try {
    const lab = await claimLab(NAME, 2);
    const backendAddr = `${lab.client.addr}:${BACKEND_PORT}`;
    backend = new NetnsProcess(lab.client.netns, [
      ...reliabArgv(),
      "ha",
      "nf",
      "--listen",
      backendAddr,
      "--mode",
      "echo",
    ]);
    await backend.waitForLine("stdout", (l) => l.startsWith("listening"), {
      timeoutMs: 60_000,
      action: "The backend did not start",
      hint: "",
    });
    cluster = await startCluster(lab, {
      port: 7000,
      command: (vip, port) => [
        ...reliabArgv(),
        "ha",
        "nf",
        "--listen",
        `${vip}:${port}`,
        "--mode",
        mode,
        ...(mode === "proxy" ? ["--backend", backendAddr] : []),
      ],
    });
    const via = mode === "socks5" ? { connect: backendAddr, socks5: `${lab.vip}:7000` } : undefined;
    load = startLoad(lab, 7000, CONNECTIONS, BYTES, RATE, via);
    await untilShare(load, CONNECTIONS, 0.2);
    assert.equal(await backendConnections(lab.client.netns), CONNECTIONS);
    const [primary, replica] = [await cluster.status(1), await cluster.status(2)];
    const counters = JSON.stringify({ primary: primary.counters, replica: replica.counters });
    assert.equal(primary.counters["outgoing_opened"], CONNECTIONS, counters);
    assert.equal(replica.counters["outgoing_paired"], CONNECTIONS, counters);

    await cluster.kill(1, "sigkill");
    await untilShare(load, CONNECTIONS, 0.6);
    // The new primary's NF carries on over its own (paired) backend connections.
    assert.equal(await backendConnections(lab.client.netns), CONNECTIONS);
    const out = await load.output();
    const summary = parseLoadSummary(out.stdout);
    const after = await cluster.status(2);
    const detail = JSON.stringify({ summary, counters: after.counters });
    assert.equal(after.role, "primary", detail);
    assert.equal(summary.completed, CONNECTIONS, detail);
    assert.equal(summary.resets, 0, detail);
    assert.equal(summary.bytesVerified, CONNECTIONS * BYTES, detail);
    assert.equal(summary.bytesLost + summary.bytesDuplicated + summary.bytesCorrupted, 0, detail);
    assert.equal(after.counters["divergences"] ?? 0, 0, detail);
    // Over the whole run the backend accepted one connection per client connection.
    await backend.terminate(5000);
    const stopped = backend.lines("stdout").find((l) => l.startsWith("stopped "));
    assert.match(stopped ?? "", new RegExp(`accepted=${CONNECTIONS} `), stopped);
  } finally {
    await load?.terminate(1000);
    await backend?.terminate(1000);
    await cluster?.stop();
    await labDown({ name: NAME });
  }
  assert.deepEqual(await labLeftovers(NAME), []);
}

Deno.test("a reverse proxy NF: the backend sees one connection per client connection, before and after a failover", async () => {
  await proxyCase("proxy");
});

Deno.test("a SOCKS5 proxy NF: the same, with each client naming the backend", async () => {
  await proxyCase("socks5");
});
