/**
 * `reliab ha up`, `status`, `fail` and `migrate`: parsing and
 * printing of the agent's control plane (the work is in lib/ha/agent).
 *
 * @module
 */
import { haUp } from "../lib/ha/agent/up.ts";
import { requestFail, requestMigrate, requestStatus } from "../lib/ha/agent/control_socket.ts";
import { type HaAgentStatus, statusLines } from "../lib/ha/agent/status.ts";
import { UsageError } from "../lib/errors.ts";
import { parse, positionals } from "./_args.ts";
import { err, out, outJson } from "./_render.ts";

/** Usage lines of the agent commands (also shown by `reliab ha --help`). */
export const AGENT_USAGE = {
  up: "reliab ha up --id N --vip ADDR --iface IF --peers ADDR,ADDR,... [--primary] " +
    "[--heartbeat-ms X] [--miss N] [--xdp-mode native|generic] [--json] -- CMD [ARGS...]",
  status: "reliab ha status [--json]",
  fail: "reliab ha fail [--json]",
  migrate: "reliab ha migrate --to ID [--conn CLIENT_ADDR:PORT] [--json]",
} as const;

/** `reliab ha up ... -- CMD [ARGS...]`: runs one node in the foreground until SIGTERM/SIGINT. */
export async function upCommand(args: string[]): Promise<number> {
  const usage = AGENT_USAGE.up;
  const split = args.indexOf("--");
  const own = split < 0 ? args : args.slice(0, split);
  const command = split < 0 ? [] : args.slice(split + 1);
  const { values, positionals: extra } = parse(own, {
    id: { type: "string" },
    vip: { type: "string" },
    iface: { type: "string" },
    peers: { type: "string" },
    primary: { type: "boolean" },
    "heartbeat-ms": { type: "string" },
    miss: { type: "string" },
    "xdp-mode": { type: "string" },
    json: { type: "boolean" },
  }, usage);
  if (values.help) {
    out(`Usage: ${usage}`);
    return 0;
  }
  positionals(extra, 0, 0, usage);
  const id = number(required(values.id, "--id", usage), "--id", usage, /^\d+$/);
  const vip = required(values.vip, "--vip", usage);
  const iface = required(values.iface, "--iface", usage);
  const peers = required(values.peers, "--peers", usage).split(",").filter((p) => p !== "");
  if (command.length === 0) {
    throw new UsageError("Missing the NF command", {
      code: "usage",
      hint: `give it after '--': ${usage}`,
    });
  }
  const xdpMode = values["xdp-mode"];
  if (xdpMode !== undefined && xdpMode !== "native" && xdpMode !== "generic") {
    throw new UsageError(`Unknown XDP mode "${xdpMode}"`, {
      code: "usage",
      hint: "use native or generic",
    });
  }
  const heartbeat = values["heartbeat-ms"];
  const miss = values.miss;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    await haUp({
      id,
      vip,
      iface,
      peers,
      primary: values.primary === true,
      command,
      signal: stop.signal,
      ...(heartbeat === undefined
        ? {}
        : { heartbeatMs: number(heartbeat, "--heartbeat-ms", usage, /^\d+(\.\d+)?$/) }),
      ...(miss === undefined ? {} : { missThreshold: number(miss, "--miss", usage, /^\d+$/) }),
      ...(xdpMode === undefined ? {} : { xdpMode }),
      // People read stderr; with --json, stdout carries one JSON object per
      // event after the ready object, for log pipelines.
      onLog: (event) => {
        err(`reliab: ${event.message}`);
        if (values.json) out(JSON.stringify({ at_unix_ms: Date.now(), ...event }));
      },
      onReady: (ready) => {
        // The lines scripts and the demo wait for.
        err(
          `reliab: ha node ${ready.id} ready: ${ready.role}, vip ${ready.vip}, ` +
            `NF namespace ${ready.nfNetns} (pid ${ready.nfPid}), control ${ready.controlPath}`,
        );
        if (values.json) {
          out(JSON.stringify({
            id: ready.id,
            role: ready.role,
            netns: ready.netns,
            nf_netns: ready.nfNetns,
            vip: ready.vip,
          }));
        }
      },
    });
  } finally {
    Deno.removeSignalListener("SIGTERM", onSignal);
    Deno.removeSignalListener("SIGINT", onSignal);
  }
  err(`reliab: ha node ${id} stopped; removed its NF namespace`);
  return 0;
}

/** `reliab ha status [--json]`: the agent of this network namespace. */
export async function statusCommand(args: string[]): Promise<number> {
  const usage = AGENT_USAGE.status;
  const { values, positionals: extra } = parse(args, { json: { type: "boolean" } }, usage);
  if (values.help) {
    out(`Usage: ${usage}`);
    return 0;
  }
  positionals(extra, 0, 0, usage);
  const status = await requestStatus();
  if (values.json) outJson(status);
  else out(statusLines(status).join("\n"));
  return 0;
}

/** `reliab ha fail [--json]`: forces a failover now (the test hook). */
export async function failCommand(args: string[]): Promise<number> {
  const usage = AGENT_USAGE.fail;
  const { values, positionals: extra } = parse(args, { json: { type: "boolean" } }, usage);
  if (values.help) {
    out(`Usage: ${usage}`);
    return 0;
  }
  positionals(extra, 0, 0, usage);
  const { before, after } = await requestFail();
  if (values.json) outJson({ before, after });
  else out(failText(before, after));
  return 0;
}

/** `reliab ha migrate --to ID [--json]`: planned handover of every connection to node ID. */
export async function migrateCommand(args: string[]): Promise<number> {
  const usage = AGENT_USAGE.migrate;
  const { values, positionals: extra } = parse(args, {
    to: { type: "string" },
    conn: { type: "string" },
    json: { type: "boolean" },
  }, usage);
  if (values.help) {
    out(`Usage: ${usage}`);
    return 0;
  }
  positionals(extra, 0, 0, usage);
  const text = required(values.to, "--to", usage);
  const to = Number(text);
  if (!/^\d+$/.test(text) || to < 1 || to > 255) {
    throw new UsageError(`Cannot migrate: --to "${text}" is not a node id`, {
      code: "usage",
      hint: "give the id (1-255) of a live replica, as 'reliab ha status' lists them",
    });
  }
  const conn = values.conn;
  const { before, after } = await requestMigrate(to, conn === undefined ? {} : { conn });
  if (values.json) outJson({ before, after });
  else if (conn !== undefined) {
    out(
      `node ${before.id} handed the connection from ${conn} to node ${to}; ` +
        `'reliab ha status' there shows how fast it resumed`,
    );
  } else out(migrateText(before, after, to));
  return 0;
}

function migrateText(before: HaAgentStatus, after: HaAgentStatus, to: number): string {
  const node = `node ${before.id}`;
  const served = after.primary_id === to;
  const result = served
    ? `node ${to} serves now (epoch ${after.epoch}); 'reliab ha status' there shows how fast each connection resumed`
    : "no handover seen here within 0.5 s; check 'reliab ha status' on both nodes";
  if (before.role === "primary") return `${node} handed its connections over: ${result}`;
  return `${node} asked primary node ${before.primary_id} to hand over to node ${to}: ${result}`;
}

function failText(before: HaAgentStatus, after: HaAgentStatus): string {
  const node = `node ${before.id}`;
  const now = `now ${after.role}, epoch ${after.epoch}` +
    (after.primary_id === 0 || after.primary_id === after.id
      ? ""
      : `, primary is node ${after.primary_id}`);
  if (before.role === "primary") {
    return `${node} (primary, epoch ${before.epoch}) failed itself: ${now}; a replica takes over`;
  }
  if (before.role === "replica") {
    const primary = before.primary_id === 0 ? "the primary" : `primary node ${before.primary_id}`;
    const moved = after.epoch !== before.epoch || after.role !== before.role;
    return `${node} (replica, epoch ${before.epoch}) asked ${primary} to fail: ` +
      (moved ? now : "no takeover seen here within 0.5 s");
  }
  return `${node} is ${before.role}: nothing to fail (${now})`;
}

function required(value: string | undefined, option: string, usage: string): string {
  if (value === undefined || value === "") {
    throw new UsageError(`Missing ${option}`, { code: "usage", hint: `usage: ${usage}` });
  }
  return value;
}

function number(text: string, option: string, usage: string, pattern: RegExp): number {
  if (!pattern.test(text) || !Number.isFinite(Number(text))) {
    throw new UsageError(`Invalid ${option} "${text}": not a number`, {
      code: "usage",
      hint: `usage: ${usage}`,
    });
  }
  return Number(text);
}
