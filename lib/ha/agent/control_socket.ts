/**
 * How `reliab ha status`, `fail` and `migrate` reach the agent: one unix
 * socket per network namespace, named by the namespace's inode, so a command
 * run inside a node's namespace finds that node's agent without being told
 * anything. One JSON line in (`{"op":"status"}`, `{"op":"fail"}` or
 * `{"op":"migrate","to":N}`), one JSON line out, then the connection closes.
 *
 * The server is generic over its target (anything with `status()` and
 * `fail()`), so it is tested with a fake agent, without the packet loop.
 *
 * @module
 */
import { ConfigError, ReliabError } from "../../errors.ts";
import { type HaAgentStatus, parseAgentStatus } from "./status.ts";

/** Folder of the control sockets. */
export const CONTROL_DIR = "/run/reliab/ha";
/** Longest request line accepted. */
const REQUEST_BYTES_MAX = 4096;
/** Longest reply line accepted (a status with 15 peers is ~3 KiB). */
const REPLY_BYTES_MAX = 16 * 1024 * 1024;
/** How long either side waits for the other's line. */
const LINE_TIMEOUT_MS = 5000;
/** How long `fail` watches for the agent's role or epoch to change before it replies. */
const FAIL_SETTLE_MS = 500;
const FAIL_POLL_MS = 5;

/** What the control socket serves: the running agent (or a fake in tests). */
export interface ControlTarget {
  status(): HaAgentStatus;
  fail(): void;
  migrate(to: number): void;
  migrateConn(to: number, clientIp: number, clientPort: number): void;
}

/** Options shared by the server and the client. */
export interface ControlOptions {
  /** Folder of the socket (default /run/reliab/ha). */
  readonly dir?: string;
}

/** A serving control socket; `close()` stops it and removes the file. */
export interface ControlServer extends AsyncDisposable {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * What `ha fail` did: the node's status before the request and once its role,
 * epoch or primary changed (or 0.5 s later, when nothing changed here: a
 * replica that forwarded the request sees the change only when a new primary
 * takes over).
 */
export interface FailOutcome {
  readonly before: HaAgentStatus;
  readonly after: HaAgentStatus;
}

/** State of a control socket path: an agent answers, a file without listener, or nothing. */
export type ControlSocketState = "live" | "stale" | "absent";

/**
 * Path of the control socket of this process's network namespace.
 *
 * @example
 * ```ts
 * controlSocketPath(); // "/run/reliab/ha/net-4026532301.sock"
 * ```
 */
export function controlSocketPath(options: ControlOptions = {}): string {
  const link = Deno.readLinkSync("/proc/self/ns/net");
  const inode = /^net:\[(\d+)\]$/.exec(link)?.[1];
  if (inode === undefined) {
    throw new ReliabError(`Cannot name this network namespace: "${link}" is not a namespace`, {
      code: "netns_unknown",
      hint: "run it on Linux with /proc mounted",
    });
  }
  return `${options.dir ?? CONTROL_DIR}/net-${inode}.sock`;
}

/**
 * Whether an agent listens on `path`.
 *
 * @example
 * ```ts
 * await probeControlSocket(controlSocketPath()); // "absent"
 * ```
 */
export async function probeControlSocket(path: string): Promise<ControlSocketState> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return "live";
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "absent";
    if (error instanceof Deno.errors.ConnectionRefused) return "stale";
    throw error;
  }
}

/**
 * Removes socket files whose agent died (SIGKILL leaves them): nothing
 * listens on them, and a recycled namespace inode would make one look like
 * the socket of a new namespace. Returns how many were removed.
 *
 * @example
 * ```ts
 * await sweepStaleControlSockets();
 * ```
 */
export async function sweepStaleControlSockets(dir: string = CONTROL_DIR): Promise<number> {
  let removed = 0;
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!/^net-\d+\.sock$/.test(entry.name)) continue;
      const path = `${dir}/${entry.name}`;
      if (await probeControlSocket(path) !== "stale") continue;
      await Deno.remove(path).catch(() => {});
      removed += 1;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return removed;
}

/**
 * Serves `target` on this namespace's control socket. A stale socket file
 * (its agent died) is replaced; a live one is an error: one agent per
 * namespace.
 *
 * @example
 * ```ts
 * await using server = await serveControl(agent);
 * ```
 */
export async function serveControl(
  target: ControlTarget,
  options: ControlOptions = {},
): Promise<ControlServer> {
  const path = controlSocketPath(options);
  const state = await probeControlSocket(path);
  if (state === "live") {
    throw new ConfigError(`Cannot start the ha agent: another agent serves this namespace`, {
      code: "agent_running",
      hint: `stop it first ('reliab ha status' shows it; its socket is ${path})`,
    });
  }
  if (state === "stale") await Deno.remove(path).catch(() => {});
  await Deno.mkdir(options.dir ?? CONTROL_DIR, { recursive: true });
  const listener = Deno.listen({ transport: "unix", path });
  // `fail` can take a node down: only root may ask.
  await Deno.chmod(path, 0o600);
  const open = new Set<Deno.Conn>();
  const handlers = new Set<Promise<void>>();
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        open.add(conn);
        const handler = serveOne(conn, target).finally(() => {
          open.delete(conn);
          handlers.delete(handler);
        });
        handlers.add(handler);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  })();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    listener.close();
    await accepting;
    for (const conn of open) closeQuietly(conn);
    await Promise.allSettled([...handlers]);
    await Deno.remove(path).catch(() => {});
  };
  return { path, close, [Symbol.asyncDispose]: close };
}

async function serveOne(conn: Deno.Conn, target: ControlTarget): Promise<void> {
  try {
    const line = await readLine(conn, REQUEST_BYTES_MAX);
    await writeAll(conn, `${JSON.stringify(await answer(line, target))}\n`);
  } catch {
    // A client that went away or sent garbage affects only its own connection.
  } finally {
    closeQuietly(conn);
  }
}

async function answer(
  line: string | undefined,
  target: ControlTarget,
): Promise<Record<string, unknown>> {
  try {
    const request: unknown = line === undefined ? undefined : JSON.parse(line);
    const op = typeof request === "object" && request !== null && "op" in request
      ? request.op
      : undefined;
    if (op === "status") return { ok: true, status: target.status() };
    if (op === "fail") {
      const before = target.status();
      target.fail();
      return { ok: true, before, after: await settled(target, before) };
    }
    if (op === "migrate") {
      const { to, conn } = request as { to?: unknown; conn?: unknown };
      const before = target.status();
      if (conn !== undefined) return await migrateConnection(target, before, to, conn);
      checkMigrationTarget(before, to);
      target.migrate(to as number);
      return { ok: true, before, after: await settled(target, before) };
    }
    return {
      ok: false,
      code: "bad_request",
      error: `Unknown control request ${JSON.stringify(line ?? "")}`,
      hint: 'send {"op":"status"}, {"op":"fail"} or {"op":"migrate","to":N}',
    };
  } catch (error) {
    return {
      ok: false,
      code: error instanceof ReliabError ? error.code : "agent_error",
      error: error instanceof Error ? error.message : String(error),
      hint: error instanceof ReliabError ? error.hint : "see the agent's output",
    };
  }
}

/** A node id as the agents use them: 1 to 255. */
function isNodeId(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 255;
}

/**
 * A migration target must be a live replica (this one, when a replica asks
 * for itself), with a primary to hand over from. The agent refuses anything else too (and counts
 * it), but only here can the refusal become a one-line error.
 */
function checkMigrationTarget(status: HaAgentStatus, to: unknown): void {
  if (!isNodeId(to)) {
    throw new ConfigError(`"${String(to)}" is not a node id`, {
      code: "bad_target",
      hint: "give --to with the id of a replica (reliab ha status lists the peers)",
    });
  }
  if (to === status.id && status.role === "primary") {
    throw new ConfigError("it is this node, which already serves", {
      code: "bad_target",
      hint: "give --to with the id of a replica",
    });
  }
  if (status.role !== "primary" && (status.role !== "replica" || status.primary_id === 0)) {
    throw new ConfigError(`this node is ${status.role} and follows no primary`, {
      code: "no_primary",
      hint: "run it on the primary or on a replica of a live group",
    });
  }
  // A replica may ask its primary to hand over to itself.
  if (to === status.id) return;
  const peer = status.peers.find((p) => p.id === to);
  if (peer === undefined || !peer.alive || peer.role !== "replica") {
    const why = peer === undefined
      ? "no such peer"
      : !peer.alive
      ? "it is not alive"
      : `it is ${peer.role}`;
    throw new ConfigError(why, {
      code: "bad_target",
      hint: "pick a live replica from 'reliab ha status'",
    });
  }
}

/**
 * One connection alone (`--conn ADDR:PORT`): the node serving it hands it
 * over; the agent says what became of the request in its status.
 */
async function migrateConnection(
  target: ControlTarget,
  before: HaAgentStatus,
  to: unknown,
  conn: unknown,
): Promise<Record<string, unknown>> {
  const client = parseClientAddress(conn);
  if (!isNodeId(to) || to === before.id) {
    throw new ConfigError(`"${String(to)}" is not another node's id`, {
      code: "bad_target",
      hint: "give --to with the id of a live replica or of the primary",
    });
  }
  const peer = before.peers.find((p) => p.id === to);
  if (peer === undefined || !peer.alive || (peer.role !== "replica" && peer.role !== "primary")) {
    throw new ConfigError(peer === undefined ? "no such peer" : `node ${to} cannot serve now`, {
      code: "bad_target",
      hint: "pick a live node from 'reliab ha status'",
    });
  }
  const seq = before.conn_migration?.request ?? 0;
  target.migrateConn(to, client.ip, client.port);
  const deadline = performance.now() + FAIL_SETTLE_MS;
  let after = target.status();
  while ((after.conn_migration?.request ?? 0) === seq && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, FAIL_POLL_MS));
    after = target.status();
  }
  const outcome = after.conn_migration;
  if (outcome === undefined || outcome.request === seq) {
    throw new ReliabError("the agent did not take the request within 0.5 s", {
      code: "agent_busy",
      hint: "check 'reliab ha status'; retry",
    });
  }
  const what = `the connection from ${client.text}`;
  if (outcome.result === "not_found") {
    throw new ConfigError(`no open connection from ${client.text} on this node`, {
      code: "conn_not_found",
      hint: "run 'ss -tn' in the client's namespace for its address and port",
    });
  }
  if (outcome.result === "not_served_here") {
    throw new ConfigError(`${what} is served by node ${outcome.owner}, not this one`, {
      code: "conn_not_served_here",
      hint: `run it on node ${outcome.owner}`,
    });
  }
  if (outcome.result === "bad_target") {
    throw new ConfigError(`node ${to} cannot take ${what} now`, {
      code: "bad_target",
      hint: "pick a live node from 'reliab ha status'",
    });
  }
  return { ok: true, before, after };
}

/** "10.78.0.1:40000" as a host-order address and port. */
function parseClientAddress(value: unknown): { ip: number; port: number; text: string } {
  const m = typeof value === "string"
    ? /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/.exec(value)
    : null;
  const octets = m === null ? [] : m.slice(1, 5).map(Number);
  const port = m === null ? 0 : Number(m[5]);
  if (m === null || octets.some((o) => o > 255) || port < 1 || port > 65535) {
    throw new ConfigError(`"${String(value)}" is not a client ADDR:PORT`, {
      code: "bad_conn",
      hint: "give --conn as the client's IPv4 address and port, e.g. 10.78.0.1:40000",
    });
  }
  const ip = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  return { ip, port, text: value as string };
}

/** The status once role, epoch or primary moved away from `before`, or after FAIL_SETTLE_MS. */
async function settled(target: ControlTarget, before: HaAgentStatus): Promise<HaAgentStatus> {
  const deadline = performance.now() + FAIL_SETTLE_MS;
  while (true) {
    const now = target.status();
    const moved = now.role !== before.role || now.epoch !== before.epoch ||
      now.primary_id !== before.primary_id;
    if (moved || performance.now() >= deadline) return now;
    await new Promise((resolve) => setTimeout(resolve, FAIL_POLL_MS));
  }
}

/**
 * Asks the agent of this network namespace for its status.
 *
 * @example
 * ```ts
 * const status = await requestStatus();
 * console.log(status.role, status.epoch);
 * ```
 */
export async function requestStatus(options: ControlOptions = {}): Promise<HaAgentStatus> {
  const reply = await request("status", "Cannot read the ha agent's status", options);
  return parseAgentStatus(reply.status);
}

/**
 * Asks the agent of this network namespace to fail (a primary fails itself;
 * a replica forwards the request to the primary) and returns its status
 * before and right after.
 *
 * @example
 * ```ts
 * const { before, after } = await requestFail();
 * ```
 */
export async function requestFail(options: ControlOptions = {}): Promise<FailOutcome> {
  const reply = await request("fail", "Cannot fail the ha agent", options);
  return { before: parseAgentStatus(reply.before), after: parseAgentStatus(reply.after) };
}

/**
 * Asks this namespace's agent to hand every connection over to node `to`
 * (a replica forwards the request to its primary); returns its status
 * before and once the primary changed.
 *
 * @example
 * ```ts
 * const { after } = await requestMigrate(2);
 * console.log(after.primary_id); // 2
 * ```
 */
export async function requestMigrate(
  to: number,
  options: ControlOptions & { readonly conn?: string } = {},
): Promise<FailOutcome> {
  const action = options.conn === undefined
    ? `Cannot migrate to node "${to}"`
    : `Cannot migrate ${options.conn} to node "${to}"`;
  const extra = options.conn === undefined ? { to } : { to, conn: options.conn };
  const reply = await request("migrate", action, options, extra);
  return { before: parseAgentStatus(reply.before), after: parseAgentStatus(reply.after) };
}

async function request(
  op: string,
  action: string,
  options: ControlOptions,
  extra: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  const path = controlSocketPath(options);
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.ConnectionRefused) {
      throw new ConfigError(`${action}: no agent runs in this network namespace`, {
        code: "agent_not_running",
        hint:
          "start one with 'reliab ha up' inside the node's namespace (ip netns exec NODE ./reliab ha up ...)",
      });
    }
    throw error;
  }
  let line: string | undefined;
  try {
    await writeAll(conn, `${JSON.stringify({ ...extra, op })}\n`);
    line = await readLine(conn, REPLY_BYTES_MAX);
  } finally {
    closeQuietly(conn);
  }
  let reply: unknown;
  try {
    reply = line === undefined ? undefined : JSON.parse(line);
  } catch {
    reply = undefined;
  }
  if (typeof reply !== "object" || reply === null) {
    throw new ReliabError(`${action}: the agent sent no answer`, {
      code: "agent_no_answer",
      hint: "check the agent's output; restart it if it hangs",
    });
  }
  const fields = reply as Record<string, unknown>;
  if (fields.ok !== true) {
    throw new ReliabError(`${action}: ${String(fields.error ?? "the agent refused")}`, {
      code: typeof fields.code === "string" ? fields.code : "agent_error",
      hint: typeof fields.hint === "string" ? fields.hint : "see the agent's output",
    });
  }
  return fields;
}

/** One line (without its newline) or undefined on EOF, timeout or overflow. */
async function readLine(conn: Deno.Conn, max: number): Promise<string | undefined> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const timer = setTimeout(() => closeQuietly(conn), LINE_TIMEOUT_MS);
  try {
    const buf = new Uint8Array(64 * 1024);
    while (length <= max) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        return undefined; // Closed by the timer or the peer.
      }
      if (n === null) return undefined;
      const chunk = buf.slice(0, n);
      const newline = chunk.indexOf(0x0a);
      if (newline >= 0) {
        chunks.push(chunk.subarray(0, newline));
        return new TextDecoder().decode(concat(chunks));
      }
      chunks.push(chunk);
      length += n;
    }
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

async function writeAll(conn: Deno.Conn, text: string): Promise<void> {
  const data = new TextEncoder().encode(text);
  for (let offset = 0; offset < data.length;) offset += await conn.write(data.subarray(offset));
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
