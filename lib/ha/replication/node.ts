/**
 * The replication protocol of one `ha` node, as a pure state machine: inputs
 * are client segments, peer messages and the time; outputs are actions (send
 * a message, acknowledge the client, role changes). No I/O and no clock of
 * its own, so the seeded simulator drives it through loss and partitions, and
 * the real agent can drive the same code from its sockets and timers.
 *
 * The rules, and why:
 *
 * - **Ack holding.** A client segment reaching the primary is copied to every
 *   member of its group and fed to the primary's stack only when all of them
 *   acknowledged the copy. A lost copy is never acknowledged; the client's
 *   retransmission recovers it (the channel needs no reliability of its own).
 * - **Client acks are clamped** to the prefix every member reported holding.
 *   In steady state ack holding already ensures it; after a failover it is
 *   what stops a new primary from acknowledging bytes only it has, until it
 *   has re-sent them to the members that lack them.
 * - **Sync before serve.** A new primary emits nothing until every member
 *   reported its prefix and its own stream reaches the longest of them; bytes
 *   it lacks it fetches from a member (the agent injects them into its stack
 *   as the client's segments). Else a candidate that was following another
 *   branch during a race could take over without bytes already acknowledged.
 * - **Heartbeats and a miss threshold.** The primary sends heartbeats every
 *   `heartbeatIntervalMs`; a replica that hears none for `missThreshold`
 *   intervals (plus a stagger by rank, so one candidate usually wins) promotes
 *   itself with a higher epoch. The group of the new epoch is the old group
 *   minus the new primary: the old primary is presumed dead.
 * - **Epochs** are `counter * EPOCH_NODE_SLOTS + id`, so two candidates never
 *   share one. A node that sees a higher epoch follows it if it is a member of
 *   that group, and is fenced for good otherwise.
 * - **Majority groups (3 or more nodes).** A replica promotes itself only if
 *   the new group (itself and the other members) is still a majority of the
 *   cluster. Two groups that could both emit then share a node, and that node
 *   acknowledges one epoch at a time (below), so they never emit together.
 *   Without it, overlapping partitions let groups shrink along two branches
 *   until two one-node groups both emitted: the simulator found it. With two
 *   nodes no majority survives a failure, so a pair keeps the reference's
 *   rule (any survivor takes over) and relies on the lease alone, as CARP does.
 * - **Leases fence a stale primary.** A primary emits only while every member
 *   acknowledged a heartbeat sent less than `lease` ago, and `lease` is
 *   shorter than the silence after which a replica promotes itself. A member
 *   acknowledges a heartbeat of a new epoch only once its last acknowledgement
 *   to an older epoch has expired. So by the time any new primary can emit,
 *   every older primary's lease has run out, and it stays out.
 *
 * Not handled yet (issue 4): dropping a dead replica (a dead member stalls
 * the primary, as in the reference), joining a live group, several
 * connections (one stream here), the NF's output.
 *
 * @module
 */
import { ReassemblyStream } from "./stream.ts";

/** Node identifier, 0 .. EPOCH_NODE_SLOTS - 1. */
export type NodeId = number;
/** `counter * EPOCH_NODE_SLOTS + id of the node that started it`. */
export type Epoch = number;

/** Most nodes in a group; also the epoch's id slots. */
export const EPOCH_NODE_SLOTS = 16;

/** Timing of the protocol (all in ms of the injected clock). */
export interface ProtocolConfig {
  readonly heartbeatIntervalMs: number;
  /** Missed heartbeat intervals after which a replica promotes itself. */
  readonly missThreshold: number;
  /** Bytes per re-sent copy when a new primary brings a member up to date. */
  readonly resyncSegmentBytes: number;
  /** Re-sent copies per member per tick, at most. */
  readonly resyncSegmentsPerTickMax: number;
}

/** Messages between nodes. */
export type PeerMessage =
  | {
    readonly kind: "heartbeat";
    readonly epoch: Epoch;
    readonly from: NodeId;
    readonly members: readonly NodeId[];
    readonly sentAt: number;
  }
  | {
    readonly kind: "heartbeat_ack";
    readonly epoch: Epoch;
    readonly from: NodeId;
    readonly sentAt: number;
    readonly prefix: number;
  }
  | {
    readonly kind: "replicate";
    readonly epoch: Epoch;
    readonly from: NodeId;
    readonly offset: number;
    readonly data: Uint8Array;
  }
  | {
    readonly kind: "replicate_ack";
    readonly epoch: Epoch;
    readonly from: NodeId;
    readonly offset: number;
    readonly length: number;
    readonly prefix: number;
  }
  | {
    /** A new primary asks a member for stream bytes it lacks. */
    readonly kind: "fetch";
    readonly epoch: Epoch;
    readonly from: NodeId;
    readonly offset: number;
    readonly length: number;
  }
  | {
    readonly kind: "fetch_reply";
    readonly epoch: Epoch;
    readonly from: NodeId;
    readonly offset: number;
    readonly data: Uint8Array;
  }
  | {
    /** Tells a node that sent a stale heartbeat which epoch is current. */
    readonly kind: "epoch_notice";
    readonly epoch: Epoch;
    readonly from: NodeId;
    readonly members: readonly NodeId[];
  };

/** What a node asks its driver to do. */
export type Action =
  | { readonly kind: "send"; readonly to: NodeId; readonly message: PeerMessage }
  | { readonly kind: "client_ack"; readonly ack: number; readonly epoch: Epoch }
  | { readonly kind: "promoted"; readonly epoch: Epoch; readonly members: readonly NodeId[] }
  | { readonly kind: "following"; readonly epoch: Epoch; readonly primary: NodeId }
  | { readonly kind: "fenced"; readonly epoch: Epoch };

/** Role of a node. "fenced": excluded from the current group, silent for good. */
export type Role = "primary" | "replica" | "fenced";

/** Options of a new node. */
export interface NodeOptions {
  readonly id: NodeId;
  /** Every node of the group, the first primary included. */
  readonly nodes: readonly NodeId[];
  readonly primary: NodeId;
  readonly config: ProtocolConfig;
  readonly now: number;
}

interface Pending {
  readonly offset: number;
  readonly data: Uint8Array;
  readonly acked: Set<NodeId>;
}

/**
 * One node's protocol state.
 *
 * @example
 * ```ts
 * const config = { heartbeatIntervalMs: 1, missThreshold: 5, resyncSegmentBytes: 1000, resyncSegmentsPerTickMax: 8 };
 * const node = new ReplicationNode({ id: 0, nodes: [0, 1], primary: 0, config, now: 0 });
 * const actions = node.tick(0); // heartbeats to node 1
 * ```
 */
export class ReplicationNode {
  readonly id: NodeId;
  readonly stream = new ReassemblyStream();
  readonly #config: ProtocolConfig;
  #role: Role;
  #epoch: Epoch;
  #primary: NodeId;
  /** Members of the current group: every node of it except the primary. */
  #members: NodeId[];
  readonly #clusterSize: number;
  #pending = new Map<string, Pending>();
  #leaseSentAt = new Map<NodeId, number>();
  #memberPrefix = new Map<NodeId, number>();
  #ackEmitted = 0;
  #nextHeartbeatAt: number;
  #lastHeartbeatAt: number;
  /** A replica's promise: no ack to another epoch before `until`. */
  #promise = { epoch: -1, until: -Infinity };

  constructor(options: NodeOptions) {
    if (options.nodes.length > EPOCH_NODE_SLOTS || !options.nodes.includes(options.id)) {
      throw new RangeError(`Cannot make node "${options.id}": not in a group of 1..16 nodes`);
    }
    this.id = options.id;
    this.#clusterSize = options.nodes.length;
    this.#config = options.config;
    this.#primary = options.primary;
    this.#epoch = EPOCH_NODE_SLOTS + options.primary;
    this.#members = options.nodes.filter((n) => n !== options.primary);
    this.#role = options.id === options.primary ? "primary" : "replica";
    this.#nextHeartbeatAt = options.now;
    this.#lastHeartbeatAt = options.now;
  }

  get role(): Role {
    return this.#role;
  }

  get epoch(): Epoch {
    return this.#epoch;
  }

  get primary(): NodeId {
    return this.#primary;
  }

  get members(): readonly NodeId[] {
    return this.#members;
  }

  /** Silence (ms) after which a replica promotes itself (before its rank stagger). */
  get detectionMs(): number {
    return this.#config.missThreshold * this.#config.heartbeatIntervalMs;
  }

  /** How long a heartbeat acknowledgement lets the primary emit; shorter than detection. */
  get leaseMs(): number {
    return (this.#config.missThreshold - 1) * this.#config.heartbeatIntervalMs;
  }

  /** Smallest group (primary and members) that may serve: a majority, or 1 in a pair. */
  get groupSizeMin(): number {
    return this.#clusterSize === 2 ? 1 : Math.floor(this.#clusterSize / 2) + 1;
  }

  /** Whether this primary may emit now (every member acked a recent heartbeat). */
  leaseValid(now: number): boolean {
    if (this.#role !== "primary") return false;
    if (this.#members.length + 1 < this.groupSizeMin) return false;
    return this.#members.every((m) => (this.#leaseSentAt.get(m) ?? -Infinity) + this.leaseMs > now);
  }

  /** Advances timers: heartbeats, re-sends, failure detection, held acks. */
  tick(now: number): Action[] {
    const actions: Action[] = [];
    if (this.#role === "primary") {
      if (now >= this.#nextHeartbeatAt) {
        for (const to of this.#members) {
          actions.push(this.#send(to, {
            kind: "heartbeat",
            epoch: this.#epoch,
            from: this.id,
            members: this.#members,
            sentAt: now,
          }));
        }
        this.#nextHeartbeatAt = now + this.#config.heartbeatIntervalMs;
      }
      this.#resync(actions);
      this.#fetchMissing(actions);
      this.#emitAck(now, false, actions);
    } else if (this.#role === "replica") {
      const rank = [...this.#members].sort((a, b) => a - b).indexOf(this.id);
      const stagger = 2 * this.#config.heartbeatIntervalMs * Math.max(0, rank);
      // The new group is this replica and the other members: it must stay a majority.
      const quorate = this.#members.length >= this.groupSizeMin;
      if (quorate && now - this.#lastHeartbeatAt >= this.detectionMs + stagger) {
        this.#promote(now, actions);
      }
    }
    return actions;
  }

  /** A client segment reached this node (only the primary acts on it). */
  clientSegment(offset: number, data: Uint8Array, now: number): Action[] {
    const actions: Action[] = [];
    if (this.#role !== "primary" || data.length === 0) return actions;
    if (this.stream.has(offset, data.length)) {
      // Already in the stack: the client missed our ack; say it again.
      this.#emitAck(now, true, actions);
      return actions;
    }
    const key = `${offset}:${data.length}`;
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      pending = { offset, data, acked: new Set() };
      this.#pending.set(key, pending);
    }
    for (const to of this.#members) {
      if (pending.acked.has(to)) continue;
      actions.push(
        this.#send(to, { kind: "replicate", epoch: this.#epoch, from: this.id, offset, data }),
      );
    }
    this.#deliverReady(now, actions);
    return actions;
  }

  /** A message from another node arrived. */
  message(message: PeerMessage, now: number): Action[] {
    const actions: Action[] = [];
    if (this.#role === "fenced") return actions;
    switch (message.kind) {
      case "heartbeat":
        this.#onHeartbeat(message, now, actions);
        break;
      case "epoch_notice":
        if (message.epoch > this.#epoch) {
          this.#adopt(message.epoch, message.from, message.members, now, actions);
        }
        break;
      case "heartbeat_ack":
        if (this.#role !== "primary" || message.epoch !== this.#epoch) break;
        if (!this.#members.includes(message.from)) break;
        this.#leaseSentAt.set(
          message.from,
          Math.max(this.#leaseSentAt.get(message.from) ?? -Infinity, message.sentAt),
        );
        this.#notePrefix(message.from, message.prefix);
        this.#emitAck(now, false, actions);
        break;
      case "replicate":
        if (
          this.#role !== "replica" || message.epoch !== this.#epoch ||
          message.from !== this.#primary
        ) break;
        this.stream.insert(message.offset, message.data);
        actions.push(this.#send(message.from, {
          kind: "replicate_ack",
          epoch: this.#epoch,
          from: this.id,
          offset: message.offset,
          length: message.data.length,
          prefix: this.stream.prefix,
        }));
        break;
      case "fetch": {
        if (
          this.#role !== "replica" || message.epoch !== this.#epoch ||
          message.from !== this.#primary
        ) break;
        const length = Math.min(message.length, this.stream.prefix - message.offset);
        if (length <= 0) break;
        actions.push(this.#send(message.from, {
          kind: "fetch_reply",
          epoch: this.#epoch,
          from: this.id,
          offset: message.offset,
          data: this.stream.read(message.offset, length),
        }));
        break;
      }
      case "fetch_reply":
        if (this.#role !== "primary" || message.epoch !== this.#epoch) break;
        if (!this.#members.includes(message.from)) break;
        this.stream.insert(message.offset, message.data);
        this.#emitAck(now, false, actions);
        break;
      case "replicate_ack": {
        if (this.#role !== "primary" || message.epoch !== this.#epoch) break;
        if (!this.#members.includes(message.from)) break;
        this.#notePrefix(message.from, message.prefix);
        this.#pending.get(`${message.offset}:${message.length}`)?.acked.add(message.from);
        this.#deliverReady(now, actions);
        break;
      }
    }
    return actions;
  }

  #onHeartbeat(message: PeerMessage & { kind: "heartbeat" }, now: number, actions: Action[]): void {
    if (message.epoch < this.#epoch) {
      // A stale primary would never hear the new one (it is not a member): tell it.
      actions.push(this.#send(message.from, {
        kind: "epoch_notice",
        epoch: this.#epoch,
        from: this.#primary,
        members: this.#members,
      }));
      return;
    }
    if (message.epoch > this.#epoch) {
      this.#adopt(message.epoch, message.from, message.members, now, actions);
      if (this.#role !== "replica") return;
    }
    if (this.#role !== "replica" || message.from !== this.#primary) return;
    this.#lastHeartbeatAt = now;
    // The promise: never acknowledge a newer epoch while an older lease may still run.
    if (this.#promise.epoch !== message.epoch && now < this.#promise.until) return;
    const until = message.sentAt + this.leaseMs;
    this.#promise = {
      epoch: message.epoch,
      until: this.#promise.epoch === message.epoch ? Math.max(this.#promise.until, until) : until,
    };
    actions.push(this.#send(message.from, {
      kind: "heartbeat_ack",
      epoch: message.epoch,
      from: this.id,
      sentAt: message.sentAt,
      prefix: this.stream.prefix,
    }));
  }

  /** Follows a higher epoch if this node is in its group; is fenced otherwise. */
  #adopt(
    epoch: Epoch,
    primary: NodeId,
    members: readonly NodeId[],
    now: number,
    actions: Action[],
  ): void {
    if (epoch <= this.#epoch) throw new Error("adopt needs a higher epoch");
    this.#epoch = epoch;
    this.#primary = primary;
    this.#pending.clear();
    this.#leaseSentAt.clear();
    this.#memberPrefix.clear();
    if (!members.includes(this.id)) {
      this.#role = "fenced";
      this.#members = [];
      actions.push({ kind: "fenced", epoch });
      return;
    }
    this.#role = "replica";
    this.#members = [...members];
    this.#lastHeartbeatAt = now;
    actions.push({ kind: "following", epoch, primary });
  }

  #promote(now: number, actions: Action[]): void {
    const counter = Math.floor(this.#epoch / EPOCH_NODE_SLOTS) + 1;
    this.#epoch = counter * EPOCH_NODE_SLOTS + this.id;
    this.#members = this.#members.filter((m) => m !== this.id);
    this.#primary = this.id;
    this.#role = "primary";
    this.#pending.clear();
    this.#leaseSentAt.clear();
    this.#memberPrefix.clear();
    this.#ackEmitted = 0;
    this.#nextHeartbeatAt = now;
    actions.push({ kind: "promoted", epoch: this.#epoch, members: [...this.#members] });
    actions.push(...this.tick(now));
  }

  #notePrefix(member: NodeId, prefix: number): void {
    this.#memberPrefix.set(member, Math.max(this.#memberPrefix.get(member) ?? 0, prefix));
  }

  /** Feeds every segment all members acknowledged to the stack. */
  #deliverReady(now: number, actions: Action[]): void {
    let delivered = false;
    for (const [key, pending] of this.#pending) {
      if (!this.#members.every((m) => pending.acked.has(m))) continue;
      this.stream.insert(pending.offset, pending.data);
      this.#pending.delete(key);
      delivered = true;
    }
    if (delivered) this.#emitAck(now, false, actions);
  }

  /** The ack the client may see: what the stack has and every member holds. */
  #ackable(): number {
    let ack = this.stream.prefix;
    for (const m of this.#members) ack = Math.min(ack, this.#memberPrefix.get(m) ?? 0);
    return ack;
  }

  /** Whether this primary has every byte its members reported (sync before serve). */
  #synced(): boolean {
    return this.#members.every((m) => {
      const prefix = this.#memberPrefix.get(m);
      return prefix !== undefined && prefix <= this.stream.prefix;
    });
  }

  #emitAck(now: number, again: boolean, actions: Action[]): void {
    if (!this.leaseValid(now) || !this.#synced()) return;
    const ack = this.#ackable();
    if (ack > this.#ackEmitted || (again && ack > 0)) {
      this.#ackEmitted = Math.max(this.#ackEmitted, ack);
      actions.push({ kind: "client_ack", ack, epoch: this.#epoch });
    }
  }

  /** Re-sends stack bytes to members that reported less (after a failover). */
  #resync(actions: Action[]): void {
    for (const m of this.#members) {
      const known = this.#memberPrefix.get(m);
      if (known === undefined) continue;
      let offset = known;
      for (
        let i = 0;
        i < this.#config.resyncSegmentsPerTickMax && offset < this.stream.prefix;
        i++
      ) {
        const length = Math.min(this.#config.resyncSegmentBytes, this.stream.prefix - offset);
        actions.push(this.#send(m, {
          kind: "replicate",
          epoch: this.#epoch,
          from: this.id,
          offset,
          data: this.stream.read(offset, length),
        }));
        offset += length;
      }
    }
  }

  /** Asks the member with the longest stream for what this primary lacks. */
  #fetchMissing(actions: Action[]): void {
    let best: NodeId | undefined;
    let bestPrefix = this.stream.prefix;
    for (const m of this.#members) {
      const prefix = this.#memberPrefix.get(m) ?? 0;
      if (prefix > bestPrefix) [best, bestPrefix] = [m, prefix];
    }
    if (best === undefined) return;
    const length = Math.min(
      bestPrefix - this.stream.prefix,
      this.#config.resyncSegmentBytes * this.#config.resyncSegmentsPerTickMax,
    );
    actions.push(this.#send(best, {
      kind: "fetch",
      epoch: this.#epoch,
      from: this.id,
      offset: this.stream.prefix,
      length,
    }));
  }

  #send(to: NodeId, message: PeerMessage): Action {
    return { kind: "send", to, message };
  }
}
