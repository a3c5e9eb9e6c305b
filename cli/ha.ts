/**
 * `reliab ha`: the lab, the reference NF and the verifying load client.
 * Parsing and printing only; the work is in lib/ha.
 *
 * @module
 */
import { LAB_NAME_DEFAULT, labDown, labUp } from "../lib/ha/lab.ts";
import { type NfMode, serveReferenceNf } from "../lib/ha/reference_nf.ts";
import { runLoad } from "../lib/ha/load_client.ts";
import { countFrames } from "../lib/ha/xdp_probe.ts";
import { AGENT_USAGE, failCommand, migrateCommand, statusCommand, upCommand } from "./_ha_agent.ts";
import { benchCommand, DEMO_USAGE, demoCommand, latencyCommand } from "./_ha_demo.ts";
import { formatLoadProgress } from "../lib/ha/child_output.ts";
import { UsageError } from "../lib/errors.ts";
import { dispatch, endpoint, parse, positionals } from "./_args.ts";
import { err, out, outJson } from "./_render.ts";

const HELP = `reliab ha: transparent failover of live TCP connections

Usage:
  ${DEMO_USAGE.demo}
  ${DEMO_USAGE.bench}
  reliab ha lab up [--nodes N] [--name NAME] [--netem SPEC] [--json]
  reliab ha lab down [--name NAME]

Commands:
  demo       the whole story: a lab, an agent and the reference NF on every node,
             verified streams on many connections, the primary killed mid-stream
             (default sigkill), then the report; exit 0 only if every connection
             survived with no reset and no byte lost, duplicated or corrupted
  bench      direct path against HA with one replica: latency p50/p99,
             throughput, CPU per MB, and the stall over N failovers (default 5)
  lab up     make the lab: a client, a switch and N nodes (default 3) as network
             namespaces; the switch floods the VIP's frames to every node;
             --netem "loss 1% delay 1ms 200us reorder 5% duplicate 1%" impairs
             every link both ways (without sch_netem: loss and duplicate only)
  lab down   remove everything the lab made; safe to run twice

Node agent (run inside a node's namespace with 'ip netns exec NODE ./reliab ...'):
  reliab ha up --id N --vip ADDR --iface IF --peers ADDR,ADDR,... [--primary]
       [--heartbeat-ms X] [--miss N] [--xdp-mode native|generic] [--json] -- CMD [ARGS...]
  ${AGENT_USAGE.status}
  ${AGENT_USAGE.fail}
  ${AGENT_USAGE.migrate}

  up         run CMD, unmodified, in its own namespace behind this node's agent,
             in the foreground; SIGTERM stops it and removes what it made
  status     role, epoch, peers and their health, connections, counters
  fail       force a failover now: a primary fails itself, a replica asks the primary
  migrate    planned handover: the primary stops emitting and node ID serves every
             connection at once, with the old primary staying on as its replica;
             with --conn, only that client's connection moves (run it on the node
             serving it), and every node keeps its role

Test tools (run inside a lab namespace with 'ip netns exec NS ./reliab ...'):
  reliab ha nf --listen ADDR:PORT [--mode echo|kv|socks5|proxy --backend ADDR:PORT]
  reliab ha load --connect ADDR:PORT [--socks5 ADDR:PORT] [--connections N] [--bytes N]
       [--rate BYTES_PER_S] [--seed N] [--progress-ms N] [--timeout-ms N] [--json]
  ${DEMO_USAGE.latency}
  reliab ha xdp-count --iface IF [--mode generic|native] [--duration-ms N] [--json]`;

const USAGE = {
  up: "reliab ha lab up [--nodes N] [--name NAME] [--netem SPEC] [--json]",
  down: "reliab ha lab down [--name NAME]",
  nf: "reliab ha nf --listen ADDR:PORT [--mode echo|kv|socks5|proxy --backend ADDR:PORT]",
  load:
    "reliab ha load --connect ADDR:PORT [--socks5 ADDR:PORT] [--connections N] [--bytes N] [--rate BYTES_PER_S] [--seed N] [--progress-ms N] [--timeout-ms N] [--json]",
  xdp: "reliab ha xdp-count --iface IF [--mode generic|native] [--duration-ms N] [--json]",
} as const;

/** Runs `reliab ha ...`. */
export async function haCommand(args: string[]): Promise<number> {
  return await dispatch("ha", args, HELP, {
    lab: labCommand,
    nf: nfCommand,
    load: loadCommand,
    "xdp-count": xdpCountCommand,
    up: upCommand,
    status: statusCommand,
    fail: failCommand,
    migrate: migrateCommand,
    demo: demoCommand,
    bench: benchCommand,
    latency: latencyCommand,
  });
}

async function labCommand(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command === "up") {
    const { values, positionals: extra } = parse(rest, {
      nodes: { type: "string" },
      name: { type: "string" },
      netem: { type: "string" },
      json: { type: "boolean" },
    }, USAGE.up);
    if (values.help) return usage(USAGE.up);
    positionals(extra, 0, 0, USAGE.up);
    const nodes = integer(values.nodes ?? "3", "--nodes", USAGE.up);
    const lab = await labUp({
      nodes,
      name: values.name ?? LAB_NAME_DEFAULT,
      ...(values.netem === undefined ? {} : { netem: values.netem }),
    });
    if (values.json) {
      outJson({
        name: lab.name,
        vip: lab.vip,
        client: { netns: lab.client.netns, iface: lab.client.iface, addr: lab.client.addr },
        switch: { netns: lab.switch.netns },
        nodes: lab.nodes,
        netem: lab.netem?.spec ?? null,
        netemMode: lab.netem?.mode ?? null,
      });
    } else {
      out(`lab "${lab.name}" up: vip ${lab.vip}, client ${lab.client.netns} (${lab.client.addr})`);
      for (const n of lab.nodes) out(`  node ${n.id}: ${n.netns} ${n.iface} ${n.addr}`);
      if (lab.netem !== undefined) {
        out(
          `  netem on every link, both ways: ${lab.netem.spec}${
            lab.netem.mode === "emulated" ? " (emulated: this kernel has no sch_netem)" : ""
          }`,
        );
      }
    }
    return 0;
  }
  if (command === "down") {
    const { values, positionals: extra } = parse(rest, { name: { type: "string" } }, USAGE.down);
    if (values.help) return usage(USAGE.down);
    positionals(extra, 0, 0, USAGE.down);
    const removed = await labDown({ name: values.name ?? LAB_NAME_DEFAULT });
    out(removed.length === 0 ? "no lab was up" : `removed ${removed.join(", ")}`);
    return 0;
  }
  if (command === "-h" || command === "--help") return usage(`${USAGE.up}\n       ${USAGE.down}`);
  throw new UsageError(
    command === undefined ? "Missing lab command" : `Unknown lab command "${command}"`,
    { code: "usage", hint: `usage: ${USAGE.up} | ${USAGE.down}` },
  );
}

async function nfCommand(args: string[]): Promise<number> {
  const { values, positionals: extra } = parse(args, {
    listen: { type: "string" },
    mode: { type: "string" },
    backend: { type: "string" },
  }, USAGE.nf);
  if (values.help) return usage(USAGE.nf);
  positionals(extra, 0, 0, USAGE.nf);
  const { hostname, port } = endpoint(values.listen, "--listen", USAGE.nf);
  const mode = values.mode ?? "echo";
  if (mode !== "echo" && mode !== "kv" && mode !== "proxy" && mode !== "socks5") {
    throw new UsageError(`Unknown NF mode "${mode}"`, {
      code: "usage",
      hint: "use echo, kv, socks5 or proxy",
    });
  }
  if ((mode === "proxy") !== (values.backend !== undefined)) {
    throw new UsageError(
      mode === "proxy" ? "A proxy NF needs --backend" : `--backend is for --mode proxy only`,
      { code: "usage", hint: `usage: ${USAGE.nf}` },
    );
  }
  const backend = values.backend === undefined
    ? undefined
    : endpoint(values.backend, "--backend", USAGE.nf);
  const nf = serveReferenceNf({
    hostname,
    port,
    mode: mode as NfMode,
    ...(backend === undefined ? {} : { backend }),
  });
  const stop = Promise.withResolvers<void>();
  const onSignal = () => stop.resolve();
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  // The line tests and scripts wait for before connecting.
  out(`listening ${nf.hostname}:${nf.port}`);
  await stop.promise;
  Deno.removeSignalListener("SIGTERM", onSignal);
  Deno.removeSignalListener("SIGINT", onSignal);
  const stats = nf.stats();
  await nf.close();
  // What the NF saw, for tests and scripts (e.g. how many connections a backend got).
  out(
    `stopped accepted=${stats.connectionsAccepted} received=${stats.bytesReceived} sent=${stats.bytesSent}`,
  );
  return 0;
}

async function loadCommand(args: string[]): Promise<number> {
  const { values, positionals: extra } = parse(args, {
    connect: { type: "string" },
    connections: { type: "string" },
    bytes: { type: "string" },
    rate: { type: "string" },
    socks5: { type: "string" },
    seed: { type: "string" },
    "progress-ms": { type: "string" },
    "timeout-ms": { type: "string" },
    json: { type: "boolean" },
  }, USAGE.load);
  if (values.help) return usage(USAGE.load);
  positionals(extra, 0, 0, USAGE.load);
  const { hostname, port } = endpoint(values.connect, "--connect", USAGE.load);
  const report = await runLoad({
    hostname,
    port,
    connections: integer(values.connections ?? "8", "--connections", USAGE.load),
    bytesPerConnection: integer(values.bytes ?? String(1024 * 1024), "--bytes", USAGE.load),
    seed: integer(values.seed ?? "1", "--seed", USAGE.load),
    // Through a SOCKS5 proxy (the reference NF's socks5 mode) to --connect.
    ...(values.socks5 === undefined ? {} : {
      socks5: endpoint(values.socks5, "--socks5", USAGE.load),
    }),
    // Per connection: paced streams stay open for a known time.
    ...(values.rate === undefined
      ? {}
      : { rateBytesPerSecond: integer(values.rate, "--rate", USAGE.load) }),
    // A lossy network (--netem) can need longer than the default 30 s per connection.
    ...(values["timeout-ms"] === undefined
      ? {}
      : { timeoutMs: integer(values["timeout-ms"], "--timeout-ms", USAGE.load) }),
    // Progress lines on stderr: how the demo knows when to kill the primary mid-stream.
    ...(values["progress-ms"] === undefined ? {} : {
      progressIntervalMs: integer(values["progress-ms"], "--progress-ms", USAGE.load),
      onProgress: (p: Parameters<typeof formatLoadProgress>[0]) => err(formatLoadProgress(p)),
    }),
  });
  if (values.json) {
    const { perConnection: _, ...summary } = report;
    outJson(summary);
  } else {
    out(
      `${report.completed}/${report.connections} connections complete, ${report.resets} resets; ` +
        `sent ${report.bytesSent} B, verified ${report.bytesVerified} B, lost ${report.bytesLost}, ` +
        `duplicated ${report.bytesDuplicated}, corrupted ${report.bytesCorrupted}; ` +
        `longest stall ${report.longestStallMs.toFixed(1)} ms; ${
          report.goodputMbps.toFixed(0)
        } Mbit/s`,
    );
  }
  const clean = report.completed === report.connections && report.bytesLost === 0 &&
    report.bytesDuplicated === 0 && report.bytesCorrupted === 0;
  return clean ? 0 : 1;
}

async function xdpCountCommand(args: string[]): Promise<number> {
  const { values, positionals: extra } = parse(args, {
    iface: { type: "string" },
    mode: { type: "string" },
    "duration-ms": { type: "string" },
    json: { type: "boolean" },
  }, USAGE.xdp);
  if (values.help) return usage(USAGE.xdp);
  positionals(extra, 0, 0, USAGE.xdp);
  if (values.iface === undefined) {
    throw new UsageError("Missing --iface", { code: "usage", hint: `usage: ${USAGE.xdp}` });
  }
  const mode = values.mode ?? "generic";
  if (mode !== "generic" && mode !== "native") {
    throw new UsageError(`Unknown XDP mode "${mode}"`, {
      code: "usage",
      hint: "use generic or native",
    });
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const count = await countFrames(values.iface, {
      mode,
      durationMs: integer(values["duration-ms"] ?? "1000", "--duration-ms", USAGE.xdp),
      signal: stop.signal,
      // The line tests wait for before sending traffic.
      onAttached: () => err(`attached to ${values.iface} (${mode})`),
    });
    if (values.json) outJson(count);
    else out(`${count.packets} frames on ${count.iface} in ${count.durationMs.toFixed(0)} ms`);
  } finally {
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  return 0;
}

function usage(text: string): number {
  out(`Usage: ${text}`);
  return 0;
}

function integer(text: string, option: string, usageLine: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`Invalid ${option} "${text}": not a whole number`, {
      code: "usage",
      hint: `usage: ${usageLine}`,
    });
  }
  return Number(text);
}
