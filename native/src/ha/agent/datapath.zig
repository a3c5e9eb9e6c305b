//! What one node's agent does with every frame, datagram and tick, with no
//! I/O of its own: the agent's thread feeds it frames from the two AF_XDP
//! sockets (outer: the client's side; inner: the NF's veth) and datagrams
//! from the replication channel, and it answers through a `Sink`. Unit tests
//! drive two of them against each other with captured frames.
//!
//! The rules, and why:
//!
//! - **Every node sees the client's frames.** The switch floods frames for the
//!   VIP's virtual MAC to every node, so a replica's NF gets the client's
//!   segments straight from the wire (translated into its own sequence
//!   space) and the primary never copies payload onto the replication channel.
//! - **Ack holding, by the replicas' own stacks.** The primary holds each
//!   client segment that occupies sequence space (data, SYN, FIN) until every
//!   live member reported that its NF's TCP acknowledged the bytes (the
//!   replica agent reads the ack field of its NF's output, which it then
//!   drops). So the primary's stack never acknowledges to the client, nor
//!   hands its NF, a byte a replica's stack does not hold — not merely a
//!   byte a replica's agent saw, which a full receive buffer could still
//!   drop. The cost is one replica stack traversal and one datagram.
//! - **One sequence space.** Each replica learns the primary's ISN and TSval
//!   (conn_open) and rewrites the client's ack, SACK edges and TSecr into its
//!   own NF's space; after a takeover it rewrites its NF's seq and TSval into
//!   the old primary's space for the client, for the life of the connection.
//! - **Replica send state.** The client's ack is clamped to what the replica's
//!   NF has sent (Linux drops a segment, data included, whose ack covers
//!   unsent data), and a synthetic ACK up to the highest client ack drains
//!   the replica's send buffer as its NF catches up.
//! - **Clamped acks out.** A primary never emits an ack beyond what every live
//!   member reported; after a takeover this makes the client retransmit what
//!   the new primary had alone, so the surviving replicas get it.
//! - **Takeover.** A replica that hears no heartbeat from the primary for
//!   `miss_threshold` intervals, and knows no live replica with a lower id,
//!   promotes itself with a higher epoch, announces the VIP (gratuitous ARP)
//!   and makes its NF acknowledge at once (an old byte injected into each
//!   connection draws an immediate ACK), so clients resume without waiting
//!   for a retransmission timeout. A primary that hears a higher epoch is
//!   fenced and never emits again.
//! - **Catch-up.** A member that restarted knows none of the open
//!   connections, and its unmodified NF's per-connection state (sockets and
//!   memory alike) cannot be copied into it. But the NF is deterministic —
//!   what replication assumes anyway — so the same input rebuilds the same
//!   state: every node logs the client bytes it gives its NF, by stream
//!   offset (input_log.zig; 16 MiB per connection, 1 GiB per node, past
//!   that the connection cannot be caught up and says so). A node serving a
//!   connection names it (conn_open) to a peer heard again after a silence,
//!   and when it holds bytes for a member; a member that lacks it answers
//!   conn_missing. The serving node stops waiting for it at once, then
//!   replays the client's SYN (catchup_open) and its log (catchup_data, a
//!   window of 256 KiB beyond the member's report, sent again from the
//!   report after 20 ms without progress) into the member's NF, whose
//!   output is acked as far as the client acked the real one. Live client
//!   frames reach the member's NF meanwhile (out of order: its stack queues
//!   them). Once the member reports what our NF holds it is a member again
//!   (an empty catchup_data says so, 9 times 2 ms apart: datagrams get lost). A member that must take over before
//!   that resets the connection cleanly towards the client: its NF lacks
//!   bytes the client was told we have. Connections migrated on their own
//!   (per-connection owners) are not caught up.
//! - **Outgoing connections.** An NF that is a proxy opens connections of
//!   its own, from the VIP, to a backend on the client's segment; the
//!   backend's answers reach every node as the client's do (the VIP's MAC
//!   is flooded). The backend must see one connection per client
//!   connection, so only the primary's NF's SYN leaves (its MAC learned by
//!   ARP from the VIP). The primary announces each such connection
//!   (out_open: its port, ISN, TSval, and its order among the connections
//!   its NF opened to that backend); a replica keeps its own NF's SYN back
//!   and pairs it, by the same order, with the primary's. The pair is then
//!   a connection like a client's, with the roles of the handshake
//!   swapped: the backend's sequence space is shared, the NF's is
//!   translated, and the replica also rewrites its NF's port into the
//!   primary's (frames from the NF are looked up by the NF's own port
//!   first: a replica's NF often uses, for one connection, the port the
//!   primary's used for another). The backend's bytes are held like the
//!   client's. A deterministic NF opens them in input order, which the
//!   pairing relies on; a mismatch shows as a divergence. A SYN-ACK that
//!   comes before the replica's NF's SYN is kept until it pairs.
//! - **Divergence.** Transparent failover assumes every node's NF writes the
//!   same bytes for the same input. Each node hashes its own NF's output per
//!   connection (CRC-32C, in hardware where the CPU has it: ~0.1 ms per MB)
//!   by stream offset — bytes counted from the NF's first data byte, so the
//!   offsets agree although the sequence spaces differ — in windows of
//!   `output_checkpoint_bytes`. Only new in-order bytes count (retransmissions
//!   are skipped); a window with a hole (the agent missed a frame and the
//!   client will never make the NF resend it) gets no digest, and the next
//!   window starts clean, so one missed frame costs one comparison, not the
//!   rest of the connection (why windows and not one rolling hash). The
//!   node serving the connection (the primary, or the owner it migrated to)
//!   sends its digests to the connection's members (output_digest); a member
//!   compares them with its own at equal offsets. On a mismatch the
//!   member's copy is stale: it resets its NF's copy at once (a diverged
//!   copy can never serve, and would only cost the NF memory and the owner
//!   waiting), drops the connection's client frames and tells the owner
//!   (conn_stale, repeated while the client's frames keep coming), which
//!   stops holding the client's bytes for it. A stale connection is never
//!   promoted as if nothing happened: at a takeover the new primary resets it
//!   towards the client (RST in the old primary's space, and again for each
//!   client segment that still arrives) — a clean reset is better than
//!   silently corrupted bytes. Limit: a divergence shows at the end of its
//!   window; a takeover before that, or beyond the last digest received,
//!   serves the new primary's bytes unchecked.
const std = @import("std");
const assert = std.debug.assert;
const packet = @import("../packet.zig");
const wire = @import("wire.zig");
const config_mod = @import("config.zig");
const input_log = @import("input_log.zig");

const Config = config_mod.Config;
const Mac = config_mod.Mac;
const Role = wire.Role;

pub const conns_max = 4096;
pub const held_frames_max = 16384;
pub const frame_bytes_max = 2048;
/// Held or pending frames one connection may have before new ones are dropped
/// (the client retransmits them): one slow connection cannot take the pool.
pub const held_per_conn_max = 512;
pub const pending_per_conn_max = 64;
/// Cached NF output per connection on a replica (about 180 KiB of segments).
pub const out_per_conn_max = 128;
const template_bytes_max = 14 + 60 + 60;
const none: u32 = std.math.maxInt(u32);
/// An NF silent this long while behind the client's acks is nudged (see nudge).
const nudge_after_ns: u64 = 200 * std.time.ns_per_ms;
/// A closed connection's state stays this long for late retransmissions.
const closed_linger_ns: u64 = 3 * std.time.ns_per_s;
const idle_timeout_ns: u64 = 600 * std.time.ns_per_s;
/// Held frames older than this make the primary resend conn_open: the
/// replica may have missed it and be holding the client's frames unmapped,
/// or its last report may have been lost (a repeat makes it report again).
const conn_open_resend_ns: u64 = 5 * std.time.ns_per_ms;
/// Nodes compare their NF's output in windows of this many bytes (a power
/// of two dividing 2^32, so windows stay aligned when offsets wrap).
pub const output_checkpoint_bytes: u32 = 64 * 1024;
/// Checkpoints a replica keeps per connection while waiting for the other
/// side: its own the primary has not sent yet, and the primary's it has not
/// reached yet (each 8 bytes: 4096 connections cost 256 KiB for both).
pub const checkpoints_per_conn_max = 4;
/// Digests a primary batches per loop iteration before sending.
const digest_queue_max = 256;
/// Stale notices a replica batches per loop iteration.
const stale_queue_max = 64;
/// A replica repeats a stale notice at most this often (it may be lost).
const stale_notice_resend_ns: u64 = 5 * std.time.ns_per_ms;
/// Catch-up (see the header comment): client bytes in flight to one member
/// beyond what it reported, chunks sent per connection per tick, and how
/// long without progress before the rest is sent again from its report.
const catchup_window_bytes: u32 = 256 * 1024;
const catchup_burst = 16;
const catchup_retry_ns: u64 = 20 * std.time.ns_per_ms;
/// Chunks per tick over all connections: bursts past the member's socket
/// buffer are lost, and cost a retry each.
const catchup_tick_chunks_max = 64;
/// "You are a member again" is said this many more times, this often
/// (a lost one would leave the member thinking itself behind: it would
/// reset the connection at a takeover).
const catchup_confirms = 8;
const catchup_confirm_interval_ns: u64 = 2 * std.time.ns_per_ms;
/// The input logs of all connections together, per node.
pub const input_log_budget_bytes: u64 = 1024 * 1024 * 1024;
/// CRC-32C: the SSE4.2 instruction where the target has it (~10 GB/s here),
/// the same function in software elsewhere, so mixed nodes still agree.
const OutputCrc = std.hash.crc.@"CRC-32/ISCSI";

pub const Sink = struct {
    ctx: *anyopaque,
    to_nf: *const fn (ctx: *anyopaque, frame: []const u8) void,
    to_client: *const fn (ctx: *anyopaque, frame: []const u8) void,
    to_peer: *const fn (ctx: *anyopaque, peer: u8, datagram: []const u8) void,
};

pub const Counters = struct {
    client_frames: u64 = 0,
    nf_frames: u64 = 0,
    to_nf: u64 = 0,
    to_client: u64 = 0,
    arp_replies: u64 = 0,
    held: u64 = 0,
    released: u64 = 0,
    hold_drops: u64 = 0,
    pending: u64 = 0,
    pending_drops: u64 = 0,
    parse_drops: u64 = 0,
    unknown_conn_drops: u64 = 0,
    silenced_frames: u64 = 0,
    withheld: u64 = 0,
    replayed: u64 = 0,
    cache_drops: u64 = 0,
    acks_clamped_in: u64 = 0,
    acks_clamped_out: u64 = 0,
    synthetic_acks: u64 = 0,
    nudges: u64 = 0,
    kicks: u64 = 0,
    reports_sent: u64 = 0,
    reports_received: u64 = 0,
    conn_opens_sent: u64 = 0,
    conn_opens_received: u64 = 0,
    heartbeats_sent: u64 = 0,
    heartbeats_received: u64 = 0,
    failovers: u64 = 0,
    migrations_in: u64 = 0,
    migrations_out: u64 = 0,
    migrations_refused: u64 = 0,
    conn_migrations_in: u64 = 0,
    conn_migrations_out: u64 = 0,
    conn_migrations_refused: u64 = 0,
    conns_reclaimed: u64 = 0,
    isolations: u64 = 0,
    repair_acks: u64 = 0,
    beyond_window_acks: u64 = 0,
    holes_reported: u64 = 0,
    isolated_drops: u64 = 0,
    handovers_sent: u64 = 0,
    inferred_mappings: u64 = 0,
    dropped_from_group: u64 = 0,
    replicas_dropped: u64 = 0,
    conns_opened: u64 = 0,
    conns_closed: u64 = 0,
    table_full: u64 = 0,
    /// Divergence detection (see the header comment): digests sent by a
    /// primary and received by a replica (items), checkpoints compared,
    /// windows skipped for a hole in the output seen here.
    digests_sent: u64 = 0,
    digests_received: u64 = 0,
    digests_compared: u64 = 0,
    digest_gaps: u64 = 0,
    /// Connections whose copy here differed from the primary's.
    divergences: u64 = 0,
    /// Primary: connections a replica reported stale (per replica).
    divergences_reported: u64 = 0,
    /// Stale connections reset towards the client by this node as primary.
    stale_resets: u64 = 0,
    /// Client frames of stale connections (dropped; a primary answers with a RST).
    stale_frames: u64 = 0,
    /// Member: client segments kept until our NF's receive window opened.
    waited_for_window: u64 = 0,
    /// Past our NF's window with no room left to keep them (fed, and dropped).
    window_overflows: u64 = 0,
    /// Catch-up (see the header comment). Serving node: members that said
    /// they lack a connection, catch-ups started, finished (the member is
    /// one again) and impossible (the input log was lost or too big),
    /// chunks sent. Member: connections opened from a catch-up, and reset
    /// at a takeover because theirs had not finished.
    conns_missing: u64 = 0,
    catchups_started: u64 = 0,
    catchups_done: u64 = 0,
    catchups_impossible: u64 = 0,
    catchup_chunks_sent: u64 = 0,
    catchups_joined: u64 = 0,
    catchup_resets: u64 = 0,
    /// Connections whose input log outgrew its limits.
    input_logs_lost: u64 = 0,
    /// Outgoing connections (see the header comment): opened by our NF,
    /// paired on a replica with the primary's, out_opens sent, frames
    /// dropped for want of the backend's MAC, ARP requests sent, neighbours
    /// learned.
    outgoing_opened: u64 = 0,
    outgoing_paired: u64 = 0,
    out_opens_sent: u64 = 0,
    no_mac_drops: u64 = 0,
    arp_requests: u64 = 0,
    neighbors_learned: u64 = 0,
};

pub const Peer = struct {
    addr: config_mod.Ip4,
    id: u8 = 0,
    role: Role = .replica,
    epoch: u32 = 0,
    heard: bool = false,
    last_heard_ns: u64 = 0,
    alive: bool = false,
    /// Longest silence seen from this peer while it was alive (tuning the miss threshold).
    gap_max_ns: u64 = 0,
    /// A replica that knows itself dropped from the group says so (bit 0 of
    /// its heartbeat's group field): nobody waits for it, hands over to it or
    /// defers a takeover to it, since it never serves.
    out: bool = false,
    /// The epoch in which this peer handed over (0: never): a heartbeat it
    /// sent just before, still saying primary, must not make it one again.
    handover_epoch: u32 = 0,
};

const Conn = struct {
    key: wire.Key,
    client_mac: Mac,
    /// Peers (bit = peer index) that must hold client bytes before our stack gets them.
    members: u16,
    reported: u16 = 0,
    replica_rcv: [config_mod.peers_max]u32 = @splat(0),
    client_isn: u32,
    /// The client's window scale (its SYN's option): shifts its window field.
    client_wscale: u8 = 0,
    /// The furthest right edge (ack + window) the client offered, our space.
    edge_known: bool = false,
    edge: u32 = 0,
    has_ts: bool = false,
    local_known: bool = false,
    local_isn: u32 = 0,
    local_tsval: u32 = 0,
    primary_known: bool = false,
    primary_isn: u32 = 0,
    primary_tsval: u32 = 0,
    /// primary space = local space + seq_delta (and TSval + ts_delta).
    mapped: bool = false,
    seq_delta: u32 = 0,
    ts_delta: u32 = 0,
    ack_max_known: bool = false,
    ack_max: u32 = 0,
    snd_nxt: u32 = 0,
    rcv_known: bool = false,
    rcv_nxt: u32 = 0,
    reported_rcv: u32 = 0,
    report_known: bool = false,
    dirty: bool = false,
    acked_to_nf: u32 = 0,
    held: FrameList = .{},
    held_since_ns: u64 = 0,
    conn_open_sent_ns: u64 = 0,
    pending: FrameList = .{},
    /// The replica NF's output the client may still lack (see cacheOutput).
    out: FrameList = .{},
    /// Client segments past our NF's receive window, fed as it opens (a member only).
    later: FrameList = .{},
    template: [template_bytes_max]u8 = undefined,
    template_len: u16 = 0,
    /// Divergence detection state (see OutputCheck).
    check: OutputCheck = .{},
    /// A takeover's kick waits until every live member reported to us.
    kick_pending: bool = false,
    /// The node serving this connection when it was migrated on its own
    /// (`ha migrate --conn`); 0: whichever node is primary.
    owner: u8 = 0,
    /// When this node started to serve it after such a migration (0: not pending).
    owner_since_ns: u64 = 0,
    /// The old owner repeats its conn_owner notice on the client's frames
    /// (datagrams get lost) this many more times.
    owner_notices_left: u8 = 0,
    owner_notice_ns: u64 = 0,
    fin_client: bool = false,
    fin_nf: bool = false,
    closed_ns: u64 = 0,
    last_ns: u64 = 0,
    /// The NF's last frame on this connection (see nudge).
    nf_last_ns: u64 = 0,
    /// What the client last got from us (primary space): the ack, window
    /// and TSval a repair ACK must repeat to count as a duplicate.
    out_known: bool = false,
    ack_out: u32 = 0,
    window_out: u16 = 0,
    tsval_out: u32 = 0,
    repair_ns: u64 = 0,
    /// The right edge of the NF's own receive window (its ack + window, by
    /// its window scale): a client segment past it is dropped by the NF's
    /// stack, ACK field and all (see clientSegment).
    nf_wscale: u8 = 0,
    nf_right_known: bool = false,
    nf_right: u32 = 0,
    /// The client's latest TSval (a repair ACK echoes it).
    client_tsval: ?u32 = null,
    /// When this member last told the node serving it that its NF has a hole.
    hole_sent_ns: u64 = 0,
    /// The client's SYN as it arrived: a member that lacks the connection
    /// gets it replayed (see "Catch-up").
    syn: [wire.syn_bytes_max]u8 = undefined,
    syn_len: u8 = 0,
    /// Every client byte our NF was given, by stream offset.
    log: input_log.InputLog = .{},
    /// Serving node: members being caught up (bit = peer index), and per
    /// such member the next offset to send, the offset it reported, and
    /// when that last moved.
    catchup: u16 = 0,
    catchup_next: [config_mod.peers_max]u32 = @splat(0),
    catchup_acked: [config_mod.peers_max]u32 = @splat(0),
    catchup_moved_ns: [config_mod.peers_max]u64 = @splat(0),
    catchup_confirms_left: [config_mod.peers_max]u8 = @splat(0),
    /// Member: opened from a catch-up that has not finished; never served.
    catching_up: bool = false,
    /// Opened by our NF (to a backend), not by a client (see "Outgoing
    /// connections"). `local_port` is our NF's own port: on a replica it
    /// differs from the key's, which is the primary's. `out_dest` (the
    /// backend's address and port) and `out_order` pair a replica's copy
    /// with the primary's; `paired` once they are.
    outgoing: bool = false,
    local_port: u16 = 0,
    out_dest: u64 = 0,
    out_order: u32 = 0,
    paired: bool = false,
    /// In `index` under `key` (an unpaired replica copy is only in `out_index`),
    /// and in `out_index` under its own key (a replica's copy).
    indexed: bool = true,
    local_indexed: bool = false,
    mac_known: bool = true,
    arp_ns: u64 = 0,
};

/// An address on the client's segment and its MAC (learned from ARP).
const Neighbor = struct { ip: [4]u8 = .{ 0, 0, 0, 0 }, mac: Mac = @splat(0) };
const neighbors_max = 16;
/// Outgoing connections per backend so far (the pairing order), per node.
const OutCount = struct { dest: u64 = 0, count: u32 = 0 };
const out_counts_max = 64;
/// out_opens a replica got before its own NF opened the connection.
const early_outs_max = 64;
/// Backends' SYN-ACKs a replica got before it paired the connection: its
/// NF's SYN came after the backend answered the primary's.
const early_syn_acks_max = 16;
const syn_ack_bytes_max = 128;
const EarlySynAck = struct { key: wire.Key = 0, len: u8 = 0, frame: [syn_ack_bytes_max]u8 = undefined };

const Checkpoint = struct { offset: u32 = 0, digest: u32 = 0 };
/// A digest to send, with the peers (bit = peer index) it goes to.
const DigestItem = struct { item: wire.Digest, peers: u16 };
/// A stale notice and the peer index of the node serving its connection.
const StaleItem = struct { item: wire.Stale, peer: u8 };

/// One connection's output hashing and comparison (see "Divergence").
const OutputCheck = struct {
    crc: OutputCrc = .init(),
    /// Stream offset of the next output byte to hash.
    next: u32 = 0,
    /// The current window has a hole: it gets no digest.
    broken: bool = false,
    /// Replica: its own checkpoints the primary's digest has not matched yet,
    /// and the primary's it has not reached yet; both in offset order.
    own: [checkpoints_per_conn_max]Checkpoint = @splat(.{}),
    own_len: u8 = 0,
    theirs: [checkpoints_per_conn_max]Checkpoint = @splat(.{}),
    theirs_len: u8 = 0,
    /// This node's copy differed from the primary's at checkpoint `stale_offset`.
    stale: bool = false,
    stale_offset: u32 = 0,
    stale_notice_ns: u64 = 0,
    /// Primary: replicas (bit = peer index) that reported their copy stale.
    stale_peers: u16 = 0,
};

comptime {
    // Per connection, and conns_max of them: keep it small.
    assert(@sizeOf(OutputCheck) <= 128);
    assert(@as(u64, 1 << 32) % output_checkpoint_bytes == 0);
}

/// How many times the takeover silence a primary waits before it drops a replica.
pub const replica_drop_factor = 4;

/// Reports for connections the primary has not seen open yet, kept briefly.
const early_max = 64;
const EarlyReport = struct { conn: wire.Key, rcv_nxt: u32, peer: u8 };

/// What became of an `ha migrate --conn` request, for status (`seq` counts them).
pub const ConnRequest = struct {
    seq: u32 = 0,
    result: enum { none, handed, not_found, not_served_here, bad_target } = .none,
    owner: u8 = 0,
    matched: u16 = 0,
};

/// Frames of the pool chained through `frame_next`, oldest first.
const FrameList = struct { head: u32 = none, tail: u32 = none, count: u16 = 0 };

pub const Datapath = struct {
    config: Config,
    sink: Sink,
    role: Role,
    epoch: u32,
    primary_id: u8,
    peers: [config_mod.peers_max]Peer,
    counters: Counters = .{},
    takeover_at_ns: u64 = 0,
    takeover_detect_ns: u64 = 0,
    /// The last takeover was a planned migration (a handover), not a failover.
    takeover_planned: bool = false,
    /// Connections the last takeover had to resume, how many resumed, and
    /// when the last one did (its NF kicked and its output replayed).
    takeover_conns: u32 = 0,
    takeover_resumed: u32 = 0,
    takeover_resumed_ns: u64 = 0,
    /// A handover this node started: resent every interval until the target
    /// is heard as primary of a newer epoch (the datagram may be lost).
    handover_to: u8 = 0,
    /// A primary cut off from everything (see `isolate`): it passes nothing
    /// between the client and its NF until it hears a peer, or until the
    /// client's frames have kept coming for the takeover silence alone.
    isolated: bool = false,
    isolated_client_since_ns: u64 = 0,
    last_peer_ns: u64 = 0,
    last_client_ns: u64 = 0,
    /// The last `ha migrate --conn` request this node handled, for status.
    conn_request: ConnRequest = .{},
    /// From a conn_owner notice to the connection resumed on this node, the last time.
    conn_resume_ns: u64 = 0,
    handover_epoch: u32 = 0,
    handover_sent_ns: u64 = 0,
    handover_started_ns: u64 = 0,
    /// The old primary's clock when it took the migrate command (see wire.handover_bytes).
    takeover_origin_ns: u64 = 0,
    started_ns: u64,
    last_heartbeat_ns: u64 = 0,
    /// The agent sends periodic heartbeats from a thread of their own (see
    /// agent.zig); the datapath then sends only the one that announces a takeover.
    heartbeats_external: bool = false,
    /// This replica was in the primary's group; `dropped` once it no longer is.
    in_group: bool = false,
    dropped: bool = false,
    last_gc_ns: u64 = 0,
    primary_last_heard_ns: u64 = 0,

    conns: []Conn,
    conn_used: []bool,
    conn_free: []u32,
    conn_free_len: u32,
    index: std.AutoHashMapUnmanaged(wire.Key, u32),
    dirty: []u32,
    dirty_len: u32 = 0,

    frames: []u8,
    frame_len: []u16,
    frame_next: []u32,
    frame_end: []u32,
    frame_free: []u32,
    frame_free_len: u32,

    scratch: [frame_bytes_max]u8 = undefined,
    early: [early_max]EarlyReport = @splat(.{ .conn = 0, .rcv_nxt = 0, .peer = 0 }),
    early_next: u32 = 0,
    /// Output digests (primary) and stale notices (replica) waiting for
    /// flushReports, batched like the reports.
    digest_queue: [digest_queue_max]DigestItem = undefined,
    digest_queue_len: u32 = 0,
    stale_queue: [stale_queue_max]StaleItem = undefined,
    stale_queue_len: u32 = 0,
    allocator: std.mem.Allocator,
    log_budget: input_log.Budget = .{ .limit = input_log_budget_bytes },
    /// Connections with a catch-up in progress (tick scans only then).
    catchups_active: u32 = 0,
    /// Replica: outgoing connections by our NF's own key (backend, our port).
    out_index: std.AutoHashMapUnmanaged(wire.Key, u32) = .empty,
    out_counts: [out_counts_max]OutCount = @splat(.{}),
    out_counts_len: u32 = 0,
    early_outs: [early_outs_max]?wire.OutOpen = @splat(null),
    early_outs_next: u32 = 0,
    unpaired: u32 = 0,
    neighbors: [neighbors_max]Neighbor = @splat(.{}),
    neighbors_next: u32 = 0,
    early_syn_acks: [early_syn_acks_max]EarlySynAck = @splat(.{}),
    early_syn_acks_next: u32 = 0,

    pub fn init(allocator: std.mem.Allocator, config: Config, sink: Sink, now: u64) !*Datapath {
        const self = try allocator.create(Datapath);
        errdefer allocator.destroy(self);
        self.* = .{
            .config = config,
            .sink = sink,
            .allocator = allocator,
            .role = if (config.primary) .primary else .replica,
            .epoch = if (config.primary) epochNext(0, config.id) else 0,
            .primary_id = if (config.primary) config.id else 0,
            .peers = undefined,
            .started_ns = now,
            // So the first tick sends a heartbeat at once.
            .last_heartbeat_ns = now -% @as(u64, config.heartbeat_us) * std.time.ns_per_us,
            .conns = try allocator.alloc(Conn, conns_max),
            .conn_used = try allocator.alloc(bool, conns_max),
            .conn_free = try allocator.alloc(u32, conns_max),
            .conn_free_len = conns_max,
            .index = .empty,
            .dirty = try allocator.alloc(u32, conns_max),
            .frames = try allocator.alloc(u8, held_frames_max * frame_bytes_max),
            .frame_len = try allocator.alloc(u16, held_frames_max),
            .frame_next = try allocator.alloc(u32, held_frames_max),
            .frame_end = try allocator.alloc(u32, held_frames_max),
            .frame_free = try allocator.alloc(u32, held_frames_max),
            .frame_free_len = held_frames_max,
        };
        try self.index.ensureTotalCapacity(allocator, conns_max);
        try self.out_index.ensureTotalCapacity(allocator, conns_max);
        for (config.peerSlice(), 0..) |addr, i| self.peers[i] = .{ .addr = addr };
        @memset(self.conn_used, false);
        for (self.conn_free, 0..) |*slot, i| slot.* = @intCast(conns_max - 1 - i);
        for (self.frame_free, 0..) |*slot, i| slot.* = @intCast(held_frames_max - 1 - i);
        return self;
    }

    pub fn deinit(self: *Datapath, allocator: std.mem.Allocator) void {
        for (self.conns, 0..) |*c, i| if (self.conn_used[i]) c.log.deinit(allocator, &self.log_budget);
        self.index.deinit(allocator);
        self.out_index.deinit(allocator);
        allocator.free(self.conns);
        allocator.free(self.conn_used);
        allocator.free(self.conn_free);
        allocator.free(self.dirty);
        allocator.free(self.frames);
        allocator.free(self.frame_len);
        allocator.free(self.frame_next);
        allocator.free(self.frame_end);
        allocator.free(self.frame_free);
        allocator.destroy(self);
    }

    pub fn peerSlice(self: *Datapath) []Peer {
        return self.peers[0..self.config.peer_count];
    }

    pub fn connectionCount(self: *const Datapath) u32 {
        return conns_max - self.conn_free_len;
    }

    pub const Stuck = struct { key: wire.Key = 0, held: u16 = 0, pending: u16 = 0, mapped: bool = false, members: u16 = 0, reported: u16 = 0, need: u32 = 0, first_end: u32 = 0, rcv_nxt: u32 = 0, snd_nxt: u32 = 0, ack_max: u32 = 0, acked_to_nf: u32 = 0, kick_pending: bool = false, fins: u8 = 0, idle_ms: u32 = 0, local_isn: u32 = 0, client_isn: u32 = 0, client_tsval: u32 = 0, later: u16 = 0, later_first_end: u32 = 0, nf_right: u32 = 0, nf_idle_ms: u32 = 0 };
    pub const Health = struct { unmapped: u32 = 0, holding: u32 = 0, oldest_held_ns: u64 = 0, pending: u32 = 0, stuck: [4]Stuck = @splat(.{}), stuck_len: u8 = 0 };

    /// Connections that wait for something, for status (a scan: call it rarely).
    pub fn health(self: *const Datapath, now: u64) Health {
        var h: Health = .{};
        for (self.conns, 0..) |*c, i| {
            if (!self.conn_used[i] or c.closed_ns != 0) continue;
            if (!c.mapped) h.unmapped += 1;
            h.pending += c.pending.count;
            if (c.held.count > 0) {
                h.holding += 1;
                h.oldest_held_ns = @max(h.oldest_held_ns, now -% c.held_since_ns);
            }
            const idle = now -% c.last_ns > 2 * std.time.ns_per_s and !(c.fin_client and c.fin_nf);
            const waiting = (c.held.count > 0 and now -% c.held_since_ns > std.time.ns_per_s) or c.pending.count > 0 or c.later.count > 0 or idle;
            if (waiting and h.stuck_len < h.stuck.len) {
                var need: u32 = 0;
                for (0..self.config.peer_count) |pi| {
                    if (c.reported & (@as(u16, 1) << @intCast(pi)) != 0) need = c.replica_rcv[pi];
                }
                h.stuck[h.stuck_len] = .{
                    .key = c.key,
                    .held = c.held.count,
                    .pending = c.pending.count,
                    .mapped = c.mapped,
                    .members = c.members,
                    .reported = c.reported,
                    .need = need,
                    .first_end = if (c.held.head != none) self.frame_end[c.held.head] else 0,
                    .rcv_nxt = c.rcv_nxt,
                    .snd_nxt = c.snd_nxt,
                    .ack_max = c.ack_max,
                    .acked_to_nf = c.acked_to_nf,
                    .local_isn = c.local_isn,
                    .client_isn = c.client_isn,
                    .client_tsval = c.client_tsval orelse 0,
                    .kick_pending = c.kick_pending,
                    .fins = @as(u8, @intFromBool(c.fin_client)) | @as(u8, @intFromBool(c.fin_nf)) << 1,
                    .idle_ms = @intCast(@min((now -% c.last_ns) / std.time.ns_per_ms, 1 << 30)),
                    .later = c.later.count,
                    .later_first_end = if (c.later.head != none) self.frame_end[c.later.head] else 0,
                    .nf_right = c.nf_right,
                    .nf_idle_ms = @intCast(@min((now -% c.nf_last_ns) / std.time.ns_per_ms, 1 << 30)),
                };
                h.stuck_len += 1;
            }
        }
        return h;
    }

    pub fn heldCount(self: *const Datapath) u32 {
        return held_frames_max - self.frame_free_len;
    }

    fn emitting(self: *const Datapath) bool {
        return self.role == .primary;
    }

    /// The node that serves `c`: its own owner after a per-connection
    /// migration, otherwise the primary.
    fn ownerId(self: *const Datapath, c: *const Conn) u8 {
        return if (c.owner == 0) self.primary_id else c.owner;
    }

    /// Whether this node serves `c`: holds the client's bytes for the
    /// members, emits its NF's output, and takes the others' reports.
    fn serves(self: *const Datapath, c: *const Conn) bool {
        if (c.owner == 0) return self.emitting();
        return c.owner == self.config.id and serving(self.role);
    }

    // ------------------------------------------------------------ client side

    /// A frame from the node's outer interface: the client's TCP to the VIP,
    /// or ARP for the VIP.
    pub fn outerFrame(self: *Datapath, frame: []u8, now: u64) void {
        self.counters.client_frames += 1;
        if (self.role == .failed or self.role == .fenced) {
            self.counters.silenced_frames += 1;
            return;
        }
        self.last_client_ns = now;
        if (self.isolated) {
            // The client is back but no peer yet: wait a silence for one (it
            // may have taken over, and then we are fenced), else serve alone.
            if (self.isolated_client_since_ns == 0) self.isolated_client_since_ns = now;
            if (now -% self.isolated_client_since_ns <= self.silenceNs()) {
                self.counters.isolated_drops += 1;
                return;
            }
            self.isolated = false;
        }
        if (frame.len >= 14 + 28 and std.mem.readInt(u16, frame[12..14], .big) == 0x0806) {
            self.arp(frame);
            return;
        }
        const p = packet.parse(frame) catch {
            self.counters.parse_drops += 1;
            return;
        };
        const key = wire.key(p.source_ip, p.source_port, p.destination_port);
        var conn = self.lookup(key);
        if (conn == null and p.flags & packet.flag_syn != 0 and p.flags & packet.flag_ack == 0) {
            conn = self.open(key, frame, p, now);
            if (conn == null) {
                self.counters.table_full += 1;
                if (self.emitting()) self.deliverToNf(frame);
                return;
            }
        }
        const c = conn orelse {
            // Not ours: a primary lets its NF answer (with a RST, as a server
            // would); a replica's NF must never see it — but a backend's
            // SYN-ACK may come before our NF's own SYN (kept for pairing).
            if (self.emitting()) return self.deliverToNf(frame);
            self.counters.unknown_conn_drops += 1;
            const syn_ack = p.flags & (packet.flag_syn | packet.flag_ack) == (packet.flag_syn | packet.flag_ack);
            if (syn_ack and frame.len <= syn_ack_bytes_max) {
                const slot = &self.early_syn_acks[self.early_syn_acks_next % early_syn_acks_max];
                self.early_syn_acks_next +%= 1;
                slot.* = .{ .key = key, .len = @intCast(frame.len) };
                @memcpy(slot.frame[0..frame.len], frame);
            }
            return;
        };
        c.last_ns = now;
        @memcpy(&c.client_mac, frame[6..12]);
        c.mac_known = true;
        if (c.check.stale) return self.staleClientFrame(c, frame, p, now);
        if (p.flags & packet.flag_ack != 0 and !c.mapped) {
            self.appendPending(c, frame, p);
            return;
        }
        self.clientSegment(c, frame, p, now);
    }

    /// Translates, clamps and forwards (or holds) one client segment of a mapped connection.
    fn clientSegment(self: *Datapath, c: *Conn, frame: []u8, p: packet.Packet, now: u64) void {
        if (c.outgoing) {
            // Our NF's port, before anything copies the header (the template).
            if (c.local_port != keyPort(c.key)) packet.setPort(frame, p, .destination, c.local_port);
            if (p.flags & packet.flag_syn != 0 and c.client_isn == 0) {
                c.client_isn = p.seq;
                c.client_wscale = @min(p.options.window_scale orelse 0, 14);
            }
        }
        if (p.flags & packet.flag_ack != 0) {
            packet.translate(frame, p, .{ .ack_delta = 0 -% c.seq_delta, .tsecr_delta = 0 -% c.ts_delta });
            const ack = p.ack -% c.seq_delta;
            if (!c.ack_max_known or seqLt(c.ack_max, ack)) c.ack_max = ack;
            c.ack_max_known = true;
            // The client's right edge, in our space: synthetic ACKs offer the
            // NF this window, never a stale one (a zero window there parks the
            // NF on its persist timer, whose probes a replica drops).
            const edge = ack +% (@as(u32, p.window) << @intCast(c.client_wscale));
            if (!c.edge_known or seqLt(c.edge, edge)) c.edge = edge;
            c.edge_known = true;
            self.trimOutput(c);
            var delivered = ack;
            if (c.local_known and seqLt(c.snd_nxt, ack)) {
                // Keep the client's right edge: with the ack lowered and the
                // window unchanged, a client with a nearly full buffer would
                // leave the NF no usable window, and it would never send the
                // bytes that make up the difference.
                writeAckKeepEdge(frame, p, c.snd_nxt, c.client_wscale);
                delivered = c.snd_nxt;
                self.counters.acks_clamped_in += 1;
            }
            if (c.local_known and seqLt(c.acked_to_nf, delivered)) c.acked_to_nf = delivered;
            if (p.options.timestamp_offset) |ts| {
                // The newest, in TS order (a duplicate or reordered segment may be older).
                const tsval = std.mem.readInt(u32, frame[ts..][0..4], .big);
                if (c.client_tsval == null or seqLt(c.client_tsval.?, tsval)) c.client_tsval = tsval;
            }
            if (p.flags & (packet.flag_syn | packet.flag_rst | packet.flag_fin) == 0) {
                const len = p.tcp_offset + p.tcp_header_len;
                if (len <= template_bytes_max) {
                    @memcpy(c.template[0..len], frame[0..len]);
                    // What is built from it goes to our NF, whose stack drops
                    // a frame for another MAC (the client's was the VIP's):
                    // every synthetic ACK, nudge and kick was lost that way,
                    // and a replica whose NF waited on them alone — the client
                    // held back by the primary, its own ACKs gone quiet —
                    // never drained its output (a bulk load stalled for good).
                    rewriteMacs(c.template[0..len], self.config.nf_mac, self.config.inner_mac);
                    c.template_len = len;
                }
            }
        }
        if (p.flags & packet.flag_fin != 0) c.fin_client = true;
        if (p.flags & packet.flag_rst != 0) self.close(c, now);
        rewriteMacs(frame, self.config.nf_mac, self.config.inner_mac);
        const end = segmentEnd(p);
        const occupies = end != p.seq;
        // A segment ending past the NF's receive window is dropped whole by
        // its stack (Linux: beyond the window, or past it while data waits
        // unread), its ACK unread. After a takeover the client may have sent
        // that far against the old primary's larger window: then every one of
        // its segments is dropped, the NF's output is never acknowledged, its
        // application blocks writing, stops reading, and the window never
        // opens — the connection stalls for good. So the ACK also goes alone,
        // at the NF's rcv_nxt, where the window check passes.
        var went_alone = false;
        if (p.flags & packet.flag_ack != 0 and c.nf_right_known and c.rcv_known and c.template_len != 0 and
            seqLt(c.nf_right, end) and p.flags & (packet.flag_syn | packet.flag_rst) == 0)
        {
            if (buildFromTemplate(c, &self.scratch, c.rcv_nxt, c.acked_to_nf, 0)) |ack_alone| {
                self.counters.beyond_window_acks += 1;
                self.deliverToNf(ack_alone);
                went_alone = true;
            }
        }
        if (c.owner_notices_left > 0 and now -% c.owner_notice_ns >= std.time.ns_per_ms) self.sendOwner(c, now);
        // A bare ACK has said all it had to: past the window the NF would
        // only drop it (BeyondWindow) and answer a duplicate ACK.
        if (went_alone and !occupies) return;
        if (!self.serves(c) or !occupies or p.flags & packet.flag_rst != 0) {
            // A member's NF may offer a smaller window than the node serving
            // the connection, whose window the client fills: what ends past
            // ours would be dropped by our NF — a hole the client must fill
            // again, while the serving node holds everything after it and the
            // client's timer grows with the hold (a bulk load stalled for
            // tens of seconds). It waits here until our NF's window opens.
            const past = c.nf_right_known and seqLt(c.nf_right, end) and occupies and
                p.flags & (packet.flag_syn | packet.flag_rst) == 0 and !self.serves(c);
            if (past and c.later.count < held_per_conn_max) {
                if (self.frameAlloc(frame)) |slot| {
                    self.frame_end[slot] = end;
                    self.listAppend(&c.later, slot);
                    self.counters.waited_for_window += 1;
                    return;
                }
            }
            if (past) self.counters.window_overflows += 1;
            self.feedNf(c, frame);
            return;
        }
        switch (self.holdVerdict(c, end, now)) {
            .forward => self.feedNf(c, frame),
            .hold => self.hold(c, frame, end, now),
        }
    }

    const Verdict = enum { forward, hold };

    fn holdVerdict(self: *Datapath, c: *Conn, end: u32, now: u64) Verdict {
        const need = self.membersHold(c, now) orelse return .hold;
        return if (need.all or !seqLt(need.rcv, end)) .forward else .hold;
    }

    const Need = struct { all: bool, rcv: u32 };

    /// The prefix of client bytes every live member's stack holds; `all` when
    /// no live member is left (nothing to wait for). Null while a live
    /// member has not reported yet.
    fn membersHold(self: *Datapath, c: *Conn, now: u64) ?Need {
        _ = now;
        const mask = c.members & self.aliveMask();
        if (mask == 0) return .{ .all = true, .rcv = 0 };
        var need: ?u32 = null;
        for (0..self.config.peer_count) |i| {
            const bit = @as(u16, 1) << @intCast(i);
            if (mask & bit == 0) continue;
            if (c.reported & bit == 0) return null;
            const rcv = c.replica_rcv[i];
            if (need == null or seqLt(rcv, need.?)) need = rcv;
        }
        return .{ .all = false, .rcv = need.? };
    }

    fn hold(self: *Datapath, c: *Conn, frame: []const u8, end: u32, now: u64) void {
        if (c.held.count >= held_per_conn_max or frame.len > frame_bytes_max) {
            self.counters.hold_drops += 1;
            return;
        }
        const slot = self.frameAlloc(frame) orelse {
            self.counters.hold_drops += 1;
            return;
        };
        self.frame_end[slot] = end;
        if (c.held.count == 0) c.held_since_ns = now;
        self.listAppend(&c.held, slot);
        self.counters.held += 1;
    }

    /// Feeds the NF every held frame the members now hold, oldest first.
    fn release(self: *Datapath, c: *Conn, now: u64) void {
        if (c.held.count == 0) return;
        const need = self.membersHold(c, now) orelse return;
        var prev: u32 = none;
        var at = c.held.head;
        while (at != none) {
            const next = self.frame_next[at];
            if (need.all or !seqLt(need.rcv, self.frame_end[at])) {
                if (prev == none) c.held.head = next else self.frame_next[prev] = next;
                if (c.held.tail == at) c.held.tail = prev;
                c.held.count -= 1;
                self.feedKept(c, at);
                self.counters.released += 1;
            } else prev = at;
            at = next;
        }
        if (c.held.count > 0) c.held_since_ns = now;
    }

    /// A held segment reaches the NF with the client's newest TSval, not its
    /// own. The NF echoes the TSval of the oldest segment it took in order,
    /// and once a hole was filled by a retransmission the client's only RTT
    /// sample is that echo (Karn's rule rules out its own send times). With
    /// the original TSval the sample is the whole hold: under loss, seconds,
    /// and the client's retransmission timeout grows to tens of seconds. The
    /// newest TSval keeps the sample to the replication round trip. It is
    /// never older than what the NF has seen, so PAWS passes it.
    fn freshenTsval(c: *const Conn, frame: []u8) void {
        const newest = c.client_tsval orelse return;
        const p = packet.parse(frame) catch return;
        const ts = p.options.timestamp_offset orelse return;
        const tsval = std.mem.readInt(u32, frame[ts..][0..4], .big);
        if (seqLt(tsval, newest)) packet.translate(frame, p, .{ .tsval_delta = newest -% tsval });
    }

    fn appendPending(self: *Datapath, c: *Conn, frame: []const u8, p: packet.Packet) void {
        _ = p;
        if (c.pending.count >= pending_per_conn_max) {
            self.counters.pending_drops += 1;
            return;
        }
        const slot = self.frameAlloc(frame) orelse {
            self.counters.pending_drops += 1;
            return;
        };
        self.listAppend(&c.pending, slot);
        self.counters.pending += 1;
    }

    fn flushPending(self: *Datapath, c: *Conn, now: u64) void {
        while (self.takeFront(&c.pending)) |frame| {
            const p = packet.parse(frame) catch continue;
            self.clientSegment(c, frame, p, now);
        }
    }

    /// Client segments that waited for our NF's window, those that fit now,
    /// in order (see clientSegment).
    /// They go in with the client's newest TSval: meanwhile our NF saw a
    /// newer one (on the client's later frames, or on an ACK built from them)
    /// and PAWS drops a segment more than a tick older — a hole at this
    /// member alone, the serving node holding everything after it, and the
    /// client's timer grown by the hold (a clean bulk load stalled for
    /// 10–28 s; the replica's NF counted PAWSEstab drops, the primary's none).
    fn feedLater(self: *Datapath, c: *Conn) void {
        while (c.later.head != none and !seqLt(c.nf_right, self.frame_end[c.later.head])) {
            self.feedKept(c, self.listPop(&c.later).?);
        }
    }

    /// A client segment this node kept (held for the members, or past our
    /// NF's window) to our NF, with the client's newest TSval (see
    /// freshenTsval), and its slot freed.
    fn feedKept(self: *Datapath, c: *Conn, slot: u32) void {
        const frame = self.frameBytes(slot);
        freshenTsval(c, frame);
        self.feedNf(c, frame);
        self.frameFree(slot);
    }

    /// A client segment to our NF, its bytes logged first (see "Catch-up").
    fn feedNf(self: *Datapath, c: *Conn, frame: []const u8) void {
        if (!c.log.lost) {
            if (packet.parse(frame)) |p| {
                if (p.payload_len > 0 and p.flags & packet.flag_syn == 0) {
                    const payload = frame[p.tcp_offset + p.tcp_header_len ..][0..p.payload_len];
                    c.log.write(self.allocator, &self.log_budget, p.seq -% c.client_isn -% 1, payload);
                    if (c.log.lost) self.counters.input_logs_lost += 1;
                }
            } else |_| {}
        }
        self.deliverToNf(frame);
    }

    fn deliverToNf(self: *Datapath, frame: []const u8) void {
        self.counters.to_nf += 1;
        self.sink.to_nf(self.sink.ctx, frame);
    }

    fn arp(self: *Datapath, frame: []u8) void {
        const a = frame[14..];
        const op = std.mem.readInt(u16, a[6..8], .big);
        const target = a[24..28];
        // Whoever asks for the VIP or answers its question is a neighbour.
        if (std.mem.eql(u8, target, &self.config.vip)) self.learnNeighbor(a[14..18].*, a[8..14].*);
        if (op != 1 or !std.mem.eql(u8, target, &self.config.vip) or !self.emitting() or self.isolated) return;
        var reply: [42]u8 = undefined;
        @memcpy(reply[0..6], frame[6..12]);
        @memcpy(reply[6..12], &self.config.virtual_mac);
        fillArp(&reply, 2, self.config.virtual_mac, self.config.vip, a[8..14][0..6].*, a[14..18][0..4].*);
        self.counters.arp_replies += 1;
        self.sink.to_client(self.sink.ctx, &reply);
    }

    /// Gratuitous ARP: tells switches and the client where the VIP is now.
    fn announce(self: *Datapath) void {
        var frame: [42]u8 = undefined;
        @memset(frame[0..6], 0xff);
        @memcpy(frame[6..12], &self.config.virtual_mac);
        fillArp(&frame, 1, self.config.virtual_mac, self.config.vip, @splat(0), self.config.vip);
        self.sink.to_client(self.sink.ctx, &frame);
    }

    // ------------------------------------------------------------ NF side

    /// A frame from the NF's veth: its TCP output from the VIP.
    pub fn innerFrame(self: *Datapath, frame: []u8, now: u64) void {
        self.counters.nf_frames += 1;
        if (self.role == .failed or self.role == .fenced) {
            self.counters.silenced_frames += 1;
            return;
        }
        if (self.isolated) {
            self.counters.isolated_drops += 1;
            return;
        }
        const p = packet.parse(frame) catch {
            self.counters.parse_drops += 1;
            return;
        };
        const key = wire.key(p.destination_ip, p.destination_port, p.source_port);
        // Our NF's own key first: a replica's NF picks its ports from the
        // same range as the primary's, so its port for one backend
        // connection is often the primary's port of another.
        const known = self.lookupLocal(key) orelse self.lookup(key);
        const c = known orelse opened: {
            // Our NF opens a connection of its own (a proxy to its backend).
            if (p.flags & (packet.flag_syn | packet.flag_ack) == packet.flag_syn) {
                if (self.openOutgoing(key, frame, p, now)) |c| break :opened c;
            }
            if (self.emitting()) self.deliverToClientRaw(frame) else self.counters.unknown_conn_drops += 1;
            return;
        };
        c.last_ns = now;
        c.nf_last_ns = now;
        const syn_ack = p.flags & (packet.flag_syn | packet.flag_ack) == (packet.flag_syn | packet.flag_ack);
        if (syn_ack and !c.local_known) {
            c.local_known = true;
            c.nf_wscale = @min(p.options.window_scale orelse 0, 14);
            c.local_isn = p.seq;
            c.snd_nxt = p.seq;
            c.acked_to_nf = p.seq;
            if (p.options.timestamp_offset) |ts| {
                c.has_ts = true;
                c.local_tsval = std.mem.readInt(u32, frame[ts..][0..4], .big);
            }
            if (self.emitting() and !c.primary_known) {
                // The connection opened on us: our space is the primary's.
                c.primary_known = true;
                c.primary_isn = c.local_isn;
                c.primary_tsval = c.local_tsval;
                self.sendConnOpen(c, now);
            }
            self.map(c, now);
        }
        if (!c.local_known) {
            self.counters.unknown_conn_drops += 1;
            return;
        }
        if (c.check.stale) return; // reset: what its NF still says goes nowhere
        const end = segmentEnd(p);
        if (seqLt(c.snd_nxt, end)) c.snd_nxt = end;
        if (p.flags & packet.flag_ack != 0 and p.flags & packet.flag_syn == 0) {
            c.nf_right = p.ack +% (@as(u32, p.window) << @intCast(c.nf_wscale));
            c.nf_right_known = true;
            if (c.later.count > 0) self.feedLater(c);
        }
        if (p.flags & packet.flag_ack != 0 and (!c.rcv_known or !seqLt(p.ack, c.rcv_nxt))) {
            // A repeated ack is reported again too: the NF repeats an ack when
            // the client retransmits, which it does because the primary still
            // holds the segment — so the primary may have missed the report.
            c.rcv_nxt = p.ack;
            c.rcv_known = true;
            if (!self.serves(c)) self.markDirty(c);
        }
        // A pure ACK with SACK blocks past its ACK: our NF holds client bytes
        // past a hole. A D-SACK alone (the client sent again what our NF had:
        // a spurious retransmission, or a kick's old byte) is none, and made
        // the serving node send the client repair ACKs for nothing.
        const hole = p.payload_len == 0 and sacksPastAck(frame, p) and
            p.flags & (packet.flag_syn | packet.flag_fin | packet.flag_rst) == 0;
        const hole_due = c.hole_sent_ns == 0 or now -% c.hole_sent_ns >= std.time.ns_per_ms;
        // (A member being caught up has holes by design: the catch-up fills them.)
        if (hole and hole_due and !self.serves(c) and c.rcv_known and !c.catching_up) {
            self.sendHole(c, now);
        }
        if (p.flags & packet.flag_fin != 0) c.fin_nf = true;
        if (p.flags & packet.flag_rst != 0) self.close(c, now);
        if (c.fin_nf and c.fin_client and c.closed_ns == 0 and c.ack_max_known and !seqLt(c.ack_max, c.snd_nxt)) {
            self.close(c, now);
        }
        self.hashOutput(c, frame, p, now);
        if (c.check.stale) return; // diverged just now: this output goes nowhere
        self.syntheticAck(c);
        if (!self.serves(c)) {
            if (p.payload_len > 0 or p.flags & packet.flag_fin != 0) self.cacheOutput(c, frame, end);
            return;
        }
        self.emit(c, frame, now);
    }

    /// Sends one NF frame to the client, in the primary's sequence space.
    fn emit(self: *Datapath, c: *Conn, frame: []u8, now: u64) void {
        const p = packet.parse(frame) catch return;
        if (!c.mapped) {
            self.counters.unknown_conn_drops += 1;
            return;
        }
        // A live member that has not reported yet (just after a takeover)
        // may lack bytes our stack would acknowledge: emit nothing until it has.
        // (Our NF's SYN to its backend acknowledges nothing: it waits for no one.)
        const opening: ?Need = if (c.outgoing and p.flags & packet.flag_syn != 0) .{ .all = true, .rcv = 0 } else null;
        const need = opening orelse self.membersHold(c, now) orelse {
            self.counters.withheld += 1;
            return;
        };
        if (!c.mac_known and !self.resolve(c, now)) {
            self.counters.no_mac_drops += 1;
            return;
        }
        packet.translate(frame, p, .{ .seq_delta = c.seq_delta, .tsval_delta = c.ts_delta });
        if (c.outgoing and c.local_port != keyPort(c.key)) packet.setPort(frame, p, .source, keyPort(c.key));
        if (p.flags & packet.flag_ack != 0 and !need.all and seqLt(need.rcv, p.ack)) {
            writeAck(frame, p, need.rcv);
            self.counters.acks_clamped_out += 1;
        }
        rewriteMacs(frame, c.client_mac, self.config.virtual_mac);
        if (p.flags & packet.flag_ack != 0) {
            c.out_known = true;
            c.ack_out = std.mem.readInt(u32, frame[p.tcp_offset + 8 ..][0..4], .big);
            c.window_out = p.window;
            if (p.options.timestamp_offset) |ts| c.tsval_out = std.mem.readInt(u32, frame[ts..][0..4], .big);
        }
        self.counters.to_client += 1;
        self.sink.to_client(self.sink.ctx, frame);
    }

    /// A replica keeps its NF's recent output that the client has not
    /// acknowledged: at a takeover it goes out at once. Without it the client
    /// waits for the NF's retransmission timer — its tail-loss probe fired
    /// during the silence and was dropped here, so the next try is an RTO
    /// (200 ms or more).
    fn cacheOutput(self: *Datapath, c: *Conn, frame: []const u8, end: u32) void {
        if (c.out.count >= out_per_conn_max) self.frameFree(self.listPop(&c.out).?);
        const slot = self.frameAlloc(frame) orelse {
            self.counters.cache_drops += 1;
            return;
        };
        self.frame_end[slot] = end;
        self.listAppend(&c.out, slot);
    }

    /// Drops cached output the client acknowledged.
    fn trimOutput(self: *Datapath, c: *Conn) void {
        while (c.out.head != none and !seqLt(c.ack_max, self.frame_end[c.out.head])) {
            self.frameFree(self.listPop(&c.out).?);
        }
    }

    /// After a takeover: what the client may lack goes out now.
    fn replayOutput(self: *Datapath, c: *Conn, now: u64) void {
        self.trimOutput(c);
        while (self.takeFront(&c.out)) |frame| {
            self.counters.replayed += 1;
            self.emit(c, frame, now);
        }
    }

    fn deliverToClientRaw(self: *Datapath, frame: []u8) void {
        // An NF frame for a connection we keep no state for (table full): the
        // client's MAC is unknown here, so broadcast on the segment is wrong;
        // drop it and let TCP recover.
        _ = frame;
        self.counters.unknown_conn_drops += 1;
    }

    /// When the NF sent data the client already acknowledged, ACK it at once.
    fn syntheticAck(self: *Datapath, c: *Conn) void {
        if (!c.ack_max_known or c.template_len == 0 or !c.rcv_known) return;
        const target = if (seqLt(c.snd_nxt, c.ack_max)) c.snd_nxt else c.ack_max;
        if (!seqLt(c.acked_to_nf, target)) return;
        // The client's own acks reach the NF too; only fill the gap they leave.
        const frame = buildFromTemplate(c, &self.scratch, c.rcv_nxt, target, 0) orelse return;
        c.acked_to_nf = target;
        self.counters.synthetic_acks += 1;
        self.deliverToNf(frame);
    }

    // ------------------------------------------------------------ replication channel

    /// A datagram from peer `peer` (index into config.peers).
    pub fn controlDatagram(self: *Datapath, peer: u8, datagram: []const u8, now: u64) void {
        assert(peer < self.config.peer_count);
        if (self.role == .failed) return;
        const header = wire.readHeader(datagram) catch return;
        self.last_peer_ns = now;
        self.isolated = false;
        const p = &self.peers[peer];
        if (p.heard and now -% p.last_heard_ns > p.gap_max_ns) p.gap_max_ns = now -% p.last_heard_ns;
        p.id = header.sender;
        const revived = p.heard and !p.alive;
        p.heard = true;
        p.last_heard_ns = now;
        p.alive = true;
        // Back after a silence, perhaps restarted with none of our
        // connections: name them all, it says which it lacks (Catch-up).
        if (revived and self.emitting()) self.announceConns(peer, now);
        // A datagram that left before a newer one we already have (its heartbeat
        // thread raced a handover, or it is older than the epoch we know) keeps
        // its role claim to itself: a primary that believed such a claim
        // would stop holding for that replica, which would then know itself
        // dropped from the group for good.
        const stale = header.epoch < p.epoch or
            (header.role == .primary and header.epoch == p.handover_epoch);
        if (header.kind == .handover) p.handover_epoch = header.epoch;
        if (!stale) {
            p.role = header.role;
            p.epoch = header.epoch;
        }
        switch (header.kind) {
            .heartbeat => {
                self.counters.heartbeats_received += 1;
                if (header.role != .primary) p.out = wire.readGroup(datagram) & wire.group_dropped != 0;
                self.follow(header, now);
                if (header.role == .primary and header.epoch == self.epoch and self.role == .replica) {
                    self.checkMembership(wire.readGroup(datagram));
                }
            },
            .conn_open => {
                self.counters.conn_opens_received += 1;
                self.follow(header, now);
                if (header.epoch != self.epoch) return;
                self.connOpens(peer, datagram, header.count, now);
            },
            .rcv_report => {
                self.counters.reports_received += 1;
                if (!serving(self.role)) return;
                const bit = @as(u16, 1) << @intCast(peer);
                for (0..header.count) |i| {
                    const r = wire.readReport(datagram, i);
                    const found = self.lookup(r.conn);
                    if (found) |c| {
                        // Only the node serving it waits for reports (a
                        // replica may serve a connection migrated to it).
                        if (!self.serves(c)) continue;
                    } else if (!self.emitting()) continue;
                    const c = found orelse {
                        // The replica's stack answered a SYN this node has not
                        // seen yet (its path was faster): keep it for `open`.
                        self.early[self.early_next % early_max] = .{ .conn = r.conn, .rcv_nxt = r.rcv_nxt, .peer = peer };
                        self.early_next +%= 1;
                        continue;
                    };
                    if (c.reported & bit == 0 or seqLt(c.replica_rcv[peer], r.rcv_nxt)) c.replica_rcv[peer] = r.rcv_nxt;
                    c.reported |= bit;
                    self.release(c, now);
                    self.kickIfSynced(c, now);
                }
            },
            .fail_request => if (self.emitting()) self.fail(),
            .output_digest => {
                // Only in our epoch, and per connection only from the node
                // serving it: the primary, or the owner it migrated to.
                if (!serving(self.role) or header.epoch != self.epoch) return;
                self.counters.digests_received += header.count;
                for (0..header.count) |i| self.ownerDigest(header.sender, wire.readDigest(datagram, i), now);
            },
            .conn_stale => {
                if (!serving(self.role)) return;
                for (0..header.count) |i| self.staleNotice(peer, wire.readStale(datagram, i), now);
            },
            .migrate_request => if (self.emitting()) self.handOver(wire.readTarget(datagram), now),
            .rcv_hole => {
                for (0..header.count) |i| {
                    const r = wire.readReport(datagram, i);
                    const c = self.lookup(r.conn) orelse continue;
                    if (self.serves(c) and c.held.count > 0) self.repair(c, now);
                }
            },
            .out_open => {
                self.follow(header, now);
                if (header.epoch != self.epoch or self.role != .replica or header.sender != self.primary_id) return;
                for (0..header.count) |i| self.outOpen(wire.readOutOpen(datagram, i), now);
            },
            .conn_missing => {
                if (!serving(self.role)) return;
                for (0..header.count) |i| {
                    const c = self.lookup(wire.readReport(datagram, i).conn) orelse continue;
                    if (self.serves(c)) self.missing(c, peer, now);
                }
            },
            .catchup_open, .catchup_data => {
                // Only from the node we follow, in its epoch.
                const ours = self.role == .replica and header.sender == self.primary_id and header.epoch == self.epoch;
                if (!ours) return;
                if (header.kind == .catchup_open) {
                    self.catchupOpen(wire.readCatchupOpen(datagram, header.count), now);
                } else {
                    self.catchupData(wire.readCatchupData(datagram) catch return, now);
                }
            },
            .conn_owner => {
                if (header.epoch != self.epoch or !serving(self.role)) return;
                for (0..header.count) |i| self.connOwner(peer, wire.readOwner(datagram, i), now);
            },
            .handover => {
                // Only from the primary we follow, in its epoch, naming us.
                const ours = self.role == .replica and header.sender == self.primary_id and
                    header.epoch == self.epoch and wire.readTarget(datagram) == self.config.id;
                if (ours and !self.dropped) {
                    self.promote(now, 0, true);
                    self.takeover_origin_ns = wire.readStarted(datagram);
                }
            },
            _ => {},
        }
    }

    /// Applies what a heartbeat says about roles and epochs.
    fn follow(self: *Datapath, header: wire.Header, now: u64) void {
        if (header.role != .primary) return;
        if (self.role == .primary and header.epoch > self.epoch) {
            self.role = .fenced; // a newer primary exists: never emit again
            return;
        }
        if (self.role != .replica or header.epoch < self.epoch) return;
        // A new epoch is a new primary even when we already named it (a
        // handover sets primary_id before the target promotes).
        const changed = header.sender != self.primary_id or header.epoch != self.epoch;
        self.epoch = header.epoch;
        self.primary_id = header.sender;
        self.primary_last_heard_ns = now;
        if (changed) {
            // A new primary: tell it everything we hold, and stop counting it as a member.
            const bit = self.peerBit(header.sender);
            for (self.conns, 0..) |*c, i| {
                if (!self.conn_used[i]) continue;
                c.members &= ~bit;
                self.markDirty(c);
            }
        }
    }

    /// A batch of conn_opens from `peer`; those we lack (or whose catch-up
    /// has not finished) are answered, all in one conn_missing.
    fn connOpens(self: *Datapath, peer: u8, datagram: []const u8, count: u8, now: u64) void {
        var buf: [wire.datagram_bytes_max]u8 = undefined;
        var lacking: u8 = 0;
        for (0..count) |i| {
            const item = wire.readConnOpen(datagram, i);
            const known = self.lookup(item.conn);
            if (known == null or known.?.catching_up) {
                if (self.role != .replica) continue;
                wire.writeReport(&buf, lacking, .{ .conn = item.conn, .rcv_nxt = 0 });
                lacking += 1;
                continue;
            }
            self.connOpen(known.?, item, now);
        }
        if (lacking == 0) return;
        self.writeOwnHeader(&buf, .conn_missing, lacking);
        self.sink.to_peer(self.sink.ctx, peer, buf[0 .. wire.header_bytes + @as(usize, lacking) * wire.report_bytes]);
    }

    fn connOpen(self: *Datapath, c: *Conn, item: wire.ConnOpen, now: u64) void {
        if (c.primary_known) {
            // A repeat: the primary still holds the client's bytes for us, so
            // our last report may have been lost; say again where we are.
            if (c.rcv_known and !self.serves(c)) self.markDirty(c);
            return;
        }
        c.primary_known = true;
        c.primary_isn = item.isn;
        c.primary_tsval = item.tsval;
        self.map(c, now);
    }

    /// Both ISNs known: fix the translation and release what waited for it.
    fn map(self: *Datapath, c: *Conn, now: u64) void {
        if (c.mapped or !c.local_known or !c.primary_known) return;
        c.seq_delta = c.primary_isn -% c.local_isn;
        c.ts_delta = c.primary_tsval -% c.local_tsval;
        c.mapped = true;
        if (c.catching_up) self.catchupHandshake(c);
        self.flushPending(c, now);
    }

    fn sendConnOpen(self: *Datapath, c: *Conn, now: u64) void {
        var buf: [wire.header_bytes + wire.conn_open_bytes]u8 = undefined;
        self.writeOwnHeader(&buf, .conn_open, 1);
        wire.writeConnOpen(&buf, 0, .{ .conn = c.key, .isn = c.primary_isn, .tsval = c.primary_tsval, .has_ts = c.has_ts });
        c.conn_open_sent_ns = now;
        for (0..self.config.peer_count) |i| {
            if (c.members & (@as(u16, 1) << @intCast(i)) == 0) continue;
            self.counters.conn_opens_sent += 1;
            self.sink.to_peer(self.sink.ctx, @intCast(i), &buf);
        }
    }

    fn writeOwnHeader(self: *Datapath, out: []u8, kind: wire.Kind, count: u8) void {
        wire.writeHeader(out, .{
            .kind = kind,
            .sender = self.config.id,
            .role = self.role,
            .primary = self.primary_id,
            .count = count,
            .epoch = self.epoch,
        });
    }

    fn markDirty(self: *Datapath, c: *Conn) void {
        if (c.dirty) return;
        c.dirty = true;
        self.dirty[self.dirty_len] = self.connIndex(c);
        self.dirty_len += 1;
    }

    /// Replica: sends what its NF's stack newly acknowledged to the primary.
    pub fn flushReports(self: *Datapath) void {
        // Runs last (defers unwind in reverse): stale notices queued below go out now.
        defer self.flushChecks();
        if (self.dirty_len == 0) return;
        defer self.dirty_len = 0;
        const primary = self.primaryPeer();
        var buf: [wire.datagram_bytes_max]u8 = undefined;
        var count: usize = 0;
        const able = serving(self.role);
        for (self.dirty[0..self.dirty_len]) |index| {
            const c = &self.conns[index];
            c.dirty = false;
            if (self.conn_used[index] and c.check.stale) {
                self.queueStaleNotice(c);
                continue;
            }
            if (!self.conn_used[index] or !able or self.serves(c) or !c.rcv_known) continue;
            if (c.owner != 0) {
                // Served by a node of its own: one report, to that node.
                const owner = self.peerIndex(c.owner) orelse continue;
                var one: [wire.header_bytes + wire.report_bytes]u8 = undefined;
                wire.writeReport(&one, 0, .{ .conn = c.key, .rcv_nxt = c.rcv_nxt });
                c.reported_rcv = c.rcv_nxt;
                self.sendReports(owner, &one, 1);
                continue;
            }
            if (self.role != .replica or primary == null) continue;
            wire.writeReport(&buf, count, .{ .conn = c.key, .rcv_nxt = c.rcv_nxt });
            c.reported_rcv = c.rcv_nxt;
            count += 1;
            if (count == wire.reports_max) {
                self.sendReports(primary.?, &buf, count);
                count = 0;
            }
        }
        if (count > 0) self.sendReports(primary.?, &buf, count);
    }

    fn sendReports(self: *Datapath, peer: u8, buf: []u8, count: usize) void {
        self.writeOwnHeader(buf, .rcv_report, @intCast(count));
        self.counters.reports_sent += 1;
        self.sink.to_peer(self.sink.ctx, peer, buf[0 .. wire.header_bytes + count * wire.report_bytes]);
    }

    // ------------------------------------------------------------ divergence

    /// Extends the connection's output hash with a segment's new in-order
    /// bytes, and checkpoints at every window end (see "Divergence").
    fn hashOutput(self: *Datapath, c: *Conn, frame: []const u8, p: packet.Packet, now: u64) void {
        if (p.payload_len == 0 or c.check.stale) return;
        const check = &c.check;
        const payload = frame[p.tcp_offset + p.tcp_header_len ..][0..p.payload_len];
        // The NF's first data byte follows its SYN: offset 0 on every node.
        const offset = p.seq -% c.local_isn -% 1;
        const end = offset +% p.payload_len;
        if (!seqLt(check.next, end)) return; // a retransmission: hashed already
        if (seqLt(check.next, offset)) self.skipOutput(c, offset);
        var at: u32 = check.next -% offset; // the first new byte: skips what was hashed
        assert(at < payload.len);
        while (at < payload.len) {
            const room = output_checkpoint_bytes - check.next % output_checkpoint_bytes;
            const take: u32 = @min(room, @as(u32, @intCast(payload.len)) - at);
            if (!check.broken) check.crc.update(payload[at..][0..take]);
            at += take;
            check.next +%= take;
            if (check.next % output_checkpoint_bytes == 0) self.checkpoint(c, now);
        }
        assert(check.next == end or c.check.stale);
    }

    /// A hole before `offset`: the agent missed a frame of the NF's (its RX
    /// ring was full), and the client, which got it, will not make the NF
    /// send it again. The window with the hole gets no digest; the window
    /// `offset` falls in starts clean if `offset` is its first byte.
    fn skipOutput(self: *Datapath, c: *Conn, offset: u32) void {
        const check = &c.check;
        assert(seqLt(check.next, offset));
        self.counters.digest_gaps += 1;
        const room = output_checkpoint_bytes - check.next % output_checkpoint_bytes;
        if (offset -% check.next < room) {
            check.broken = true;
        } else {
            check.crc = .init();
            check.broken = offset % output_checkpoint_bytes != 0;
        }
        check.next = offset;
    }

    /// A window ended at `c.check.next`: compare its digest with the
    /// primary's if that came first, else keep it (replica) or send it to
    /// the members (primary).
    fn checkpoint(self: *Datapath, c: *Conn, now: u64) void {
        const check = &c.check;
        const cp = Checkpoint{ .offset = check.next, .digest = check.crc.final() };
        const broken = check.broken;
        check.crc = .init();
        check.broken = false;
        if (broken) return;
        // A new primary still checks what the old one sent before it died.
        const theirs = findCheckpoint(&check.theirs, check.theirs_len, cp.offset);
        dropCheckpoints(&check.theirs, &check.theirs_len, cp.offset);
        if (theirs) |digest| {
            self.compare(c, cp.offset, cp.digest, digest, now);
            if (check.stale) return;
        }
        if (self.serves(c)) return self.queueDigest(c, cp);
        if (theirs == null) _ = pushCheckpoint(&check.own, &check.own_len, cp);
    }

    /// A member: one of the digests of the node serving the connection.
    fn ownerDigest(self: *Datapath, sender: u8, item: wire.Digest, now: u64) void {
        const c = self.lookup(item.conn) orelse return;
        const check = &c.check;
        if (check.stale or self.serves(c) or sender != self.ownerId(c)) return;
        const mine = findCheckpoint(&check.own, check.own_len, item.offset);
        // The primary sends in offset order: older ones of ours will not be matched.
        dropCheckpoints(&check.own, &check.own_len, item.offset);
        if (mine) |digest| return self.compare(c, item.offset, digest, item.digest, now);
        // Passed without a digest of ours (a hole, or our ring was full).
        if (!seqLt(check.next, item.offset)) return;
        _ = pushCheckpoint(&check.theirs, &check.theirs_len, .{ .offset = item.offset, .digest = item.digest });
    }

    fn compare(self: *Datapath, c: *Conn, offset: u32, mine: u32, theirs: u32, now: u64) void {
        self.counters.digests_compared += 1;
        if (mine != theirs) self.diverged(c, offset, now);
    }

    /// This node's copy of the connection differs from the primary's.
    fn diverged(self: *Datapath, c: *Conn, offset: u32, now: u64) void {
        const check = &c.check;
        assert(!check.stale);
        check.stale = true;
        check.stale_offset = offset;
        check.own_len = 0;
        check.theirs_len = 0;
        self.counters.divergences += 1;
        // Nothing of it may reach the client or the NF any more.
        for ([_]*FrameList{ &c.out, &c.held, &c.pending, &c.later }) |list| {
            while (self.listPop(list)) |slot| self.frameFree(slot);
        }
        self.resetNf(c);
        if (self.serves(c)) return self.resetClient(c, now);
        check.stale_notice_ns = now;
        self.markDirty(c); // flushReports sends the stale notice
    }

    /// A client frame of a stale connection: never to the NF. A primary
    /// answers with a RST; a replica repeats its stale notice (it may have
    /// been lost, and the primary then still waits for this node's reports).
    fn staleClientFrame(self: *Datapath, c: *Conn, frame: []const u8, p: packet.Packet, now: u64) void {
        _ = frame;
        self.counters.stale_frames += 1;
        if (p.flags & (packet.flag_rst | packet.flag_fin) != 0) self.close(c, now);
        if (p.flags & packet.flag_ack != 0 and c.mapped) {
            // Still followed: a takeover's RST must land at the client's
            // rcv_nxt, where the primary's output got to since.
            const ack = p.ack -% c.seq_delta;
            if (!c.ack_max_known or seqLt(c.ack_max, ack)) c.ack_max = ack;
            c.ack_max_known = true;
        }
        if (self.serves(c)) {
            // RFC 793: the reset of a segment with an ACK takes its sequence
            // number from that ACK (already in the old primary's space), which
            // is exactly what the client's stack accepts (RFC 5961).
            if (p.flags & packet.flag_rst == 0 and p.flags & packet.flag_ack != 0) self.sendClientReset(c, p.ack);
            return;
        }
        if (now -% c.check.stale_notice_ns >= stale_notice_resend_ns) {
            c.check.stale_notice_ns = now;
            self.markDirty(c);
        }
    }

    /// Takeover (or a divergence seen as primary): the client's connection
    /// ends with a RST at the last byte it acknowledged, in the old primary's
    /// space; a late client segment draws another (staleClientFrame).
    fn resetClient(self: *Datapath, c: *Conn, now: u64) void {
        defer self.close(c, now);
        if (c.closed_ns != 0 or !c.mapped) return;
        const acked = if (c.ack_max_known) c.ack_max else c.snd_nxt;
        self.sendClientReset(c, acked +% c.seq_delta);
        self.counters.stale_resets += 1;
        c.kick_pending = false;
    }

    fn sendClientReset(self: *Datapath, c: *Conn, seq: u32) void {
        var buf: [reset_frame_bytes]u8 = undefined;
        const frame = buildReset(&buf, self.toClient(c, seq));
        self.counters.to_client += 1;
        self.sink.to_client(self.sink.ctx, frame);
    }

    /// From the VIP to the connection's client, as the primary sends.
    fn toClient(self: *const Datapath, c: *const Conn, seq: u32) Endpoints {
        return .{
            .destination_mac = c.client_mac,
            .source_mac = self.config.virtual_mac,
            .source_ip = std.mem.readInt(u32, &self.config.vip, .big),
            .destination_ip = @truncate(c.key >> 32),
            .source_port = @truncate(c.key),
            .destination_port = @truncate(c.key >> 16),
            .seq = seq,
        };
    }

    /// Ends the NF's copy: a RST at what its stack acknowledged last.
    fn resetNf(self: *Datapath, c: *Conn) void {
        if (!c.rcv_known) return;
        var buf: [reset_frame_bytes]u8 = undefined;
        self.deliverToNf(buildReset(&buf, .{
            .destination_mac = self.config.nf_mac,
            .source_mac = self.config.inner_mac,
            .source_ip = @truncate(c.key >> 32),
            .destination_ip = std.mem.readInt(u32, &self.config.vip, .big),
            .source_port = @truncate(c.key >> 16),
            .destination_port = @truncate(c.key),
            .seq = c.rcv_nxt,
        }));
    }

    /// The node serving `c`: queues a digest for the connection's live members.
    fn queueDigest(self: *Datapath, c: *Conn, cp: Checkpoint) void {
        const peers = c.members & self.aliveMask();
        if (peers == 0) return;
        if (self.digest_queue_len == digest_queue_max) self.sendDigests();
        assert(self.digest_queue_len < digest_queue_max);
        self.digest_queue[self.digest_queue_len] = .{
            .item = .{ .conn = c.key, .offset = cp.offset, .digest = cp.digest },
            .peers = peers,
        };
        self.digest_queue_len += 1;
    }

    /// A member: queues "no longer held here" for the node serving `c`.
    fn queueStaleNotice(self: *Datapath, c: *Conn) void {
        assert(c.check.stale);
        if (!serving(self.role) or self.serves(c)) return;
        const owner = self.peerIndex(self.ownerId(c)) orelse return;
        if (self.stale_queue_len == stale_queue_max) self.sendStaleNotices();
        assert(self.stale_queue_len < stale_queue_max);
        self.stale_queue[self.stale_queue_len] = .{ .item = .{ .conn = c.key, .offset = c.check.stale_offset }, .peer = owner };
        self.stale_queue_len += 1;
    }

    /// The node serving the connection: member `peer` holds it no more.
    fn staleNotice(self: *Datapath, peer: u8, item: wire.Stale, now: u64) void {
        const c = self.lookup(item.conn) orelse return;
        if (!self.serves(c)) return;
        const bit = @as(u16, 1) << @intCast(peer);
        if (c.check.stale_peers & bit == 0) {
            self.counters.divergences_reported += 1;
            c.check.stale_peers |= bit;
            c.check.stale_offset = item.offset;
        }
        c.members &= ~bit;
        self.release(c, now);
        self.kickIfSynced(c, now);
    }

    fn flushChecks(self: *Datapath) void {
        if (self.digest_queue_len > 0) self.sendDigests();
        if (self.stale_queue_len > 0) self.sendStaleNotices();
    }

    /// One batch per peer, of the digests that peer is a member for.
    fn sendDigests(self: *Datapath) void {
        defer self.digest_queue_len = 0;
        // Fenced, handed over or migrated away since: stale news.
        for (self.digest_queue[0..self.digest_queue_len]) |*queued| {
            const c = self.lookup(queued.item.conn);
            if (c == null or !self.serves(c.?)) queued.peers = 0;
        }
        var buf: [wire.datagram_bytes_max]u8 = undefined;
        for (0..self.config.peer_count) |i| {
            const bit = @as(u16, 1) << @intCast(i);
            var count: usize = 0;
            for (self.digest_queue[0..self.digest_queue_len]) |queued| {
                if (queued.peers & bit == 0) continue;
                wire.writeDigest(&buf, count, queued.item);
                count += 1;
                if (count == wire.digests_max) {
                    self.sendDigestBatch(@intCast(i), &buf, count);
                    count = 0;
                }
            }
            if (count > 0) self.sendDigestBatch(@intCast(i), &buf, count);
        }
    }

    fn sendDigestBatch(self: *Datapath, peer: u8, buf: []u8, count: usize) void {
        assert(count > 0 and count <= wire.digests_max);
        self.writeOwnHeader(buf, .output_digest, @intCast(count));
        self.counters.digests_sent += count;
        self.sink.to_peer(self.sink.ctx, peer, buf[0 .. wire.header_bytes + count * wire.digest_bytes]);
    }

    /// One batch per peer, of the notices for the connections it serves.
    fn sendStaleNotices(self: *Datapath) void {
        defer self.stale_queue_len = 0;
        if (!serving(self.role)) return;
        var buf: [wire.datagram_bytes_max]u8 = undefined;
        comptime assert(stale_queue_max <= wire.stales_max);
        for (0..self.config.peer_count) |peer| {
            var count: usize = 0;
            for (self.stale_queue[0..self.stale_queue_len]) |queued| {
                if (queued.peer != peer) continue;
                wire.writeStale(&buf, count, queued.item);
                count += 1;
            }
            if (count == 0) continue;
            self.writeOwnHeader(&buf, .conn_stale, @intCast(count));
            self.sink.to_peer(self.sink.ctx, @intCast(peer), buf[0 .. wire.header_bytes + count * wire.stale_bytes]);
        }
    }

    pub const Diverged = struct {
        key: wire.Key = 0,
        /// The checkpoint (output offset) that differed.
        offset: u32 = 0,
        /// This node's copy is stale (else a replica reported its own).
        here: bool = false,
        /// Node ids (bit = id) of the replicas that reported their copy stale.
        reported_by: u16 = 0,
        closed: bool = false,
    };
    pub const Divergence = struct { connections: u32 = 0, list: [8]Diverged = @splat(.{}), len: u8 = 0 };

    /// Connections with a diverged copy, here or on a replica, for status
    /// (a scan, and only once a divergence happened: call it rarely).
    pub fn divergence(self: *const Datapath) Divergence {
        var d: Divergence = .{};
        if (self.counters.divergences == 0 and self.counters.divergences_reported == 0) return d;
        for (self.conns, 0..) |*c, i| {
            if (!self.conn_used[i] or (!c.check.stale and c.check.stale_peers == 0)) continue;
            d.connections += 1;
            if (d.len == d.list.len) continue;
            var ids: u16 = 0;
            for (self.peers[0..self.config.peer_count], 0..) |peer, pi| {
                if (c.check.stale_peers & (@as(u16, 1) << @intCast(pi)) != 0) ids |= @as(u16, 1) << @intCast(peer.id & 15);
            }
            d.list[d.len] = .{ .key = c.key, .offset = c.check.stale_offset, .here = c.check.stale, .reported_by = ids, .closed = c.closed_ns != 0 };
            d.len += 1;
        }
        return d;
    }

    // ------------------------------------------------------------ time

    /// Heartbeats, liveness, takeover, conn_open resends and cleanup.
    fn silenceNs(self: *const Datapath) u64 {
        return @as(u64, self.config.heartbeat_us) * std.time.ns_per_us * self.config.miss_threshold;
    }

    /// A primary whose peers and clients fell silent together was most
    /// likely cut off (its link went down), not left alone by dead peers:
    /// a replica may be taking over right now. If it came back and answered
    /// the client's retransmissions before hearing the new primary's
    /// heartbeat, its NF would emit for connections it no longer owns (the
    /// split-brain test saw stale duplicate ACKs in that millisecond). Only
    /// the moment the peers fall silent counts (within two silences of the
    /// last one heard), and not just after a takeover, when the silence of
    /// the dead old primary is expected.
    fn isolate(self: *Datapath, now: u64) void {
        const silence = self.silenceNs();
        if (self.role != .primary or self.isolated or self.config.peer_count == 0 or self.last_peer_ns == 0) return;
        const peers_quiet = now -% self.last_peer_ns;
        if (peers_quiet <= silence or peers_quiet > 2 * silence) return;
        if (now -% self.last_client_ns <= silence) return;
        if (self.takeover_at_ns != 0 and now -% self.takeover_at_ns <= 2 * silence) return;
        self.isolated = true;
        self.isolated_client_since_ns = 0;
        self.counters.isolations += 1;
    }

    pub fn tick(self: *Datapath, now: u64) void {
        if (self.role == .failed) return;
        const interval = @as(u64, self.config.heartbeat_us) * std.time.ns_per_us;
        const silence = interval * self.config.miss_threshold;
        self.isolate(now);
        var lost_member = false;
        for (self.peerSlice()) |*p| {
            // A primary waits longer before dropping a replica than a replica
            // waits before taking over: a dropped replica may lack acknowledged
            // bytes and is out for good, while a late drop costs only a stall.
            const limit = if (self.emitting() and p.role == .replica) silence * replica_drop_factor else silence;
            const alive = p.heard and now -% p.last_heard_ns <= limit;
            if (p.alive and !alive and p.role == .replica) lost_member = true;
            p.alive = alive;
        }
        if (lost_member and self.emitting()) {
            self.counters.replicas_dropped += 1;
            self.reclaimConns(now);
            self.releaseAll(now);
        }
        // After the liveness update: the heartbeat's group must not list a
        // replica whose bytes this primary no longer waits for.
        if (!self.heartbeats_external and now -% self.last_heartbeat_ns >= interval) {
            self.last_heartbeat_ns = now;
            self.heartbeat();
        }
        if (self.role == .replica and self.primary_id != 0 and self.shouldPromote(now, silence)) {
            self.promote(now, now -% self.primary_last_heard_ns, false);
        }
        if (self.role == .replica and self.handover_to != 0 and self.epoch == self.handover_epoch and now -% self.handover_sent_ns >= interval) {
            self.sendHandover(now);
        }
        if (self.emitting()) self.resendConnOpens(now);
        if (self.catchups_active > 0) self.pumpCatchups(now);
        if (now -% self.last_gc_ns >= 100 * std.time.ns_per_ms) {
            self.last_gc_ns = now;
            self.collect(now);
        }
    }

    fn heartbeat(self: *Datapath) void {
        var buf: [wire.heartbeat_bytes]u8 = undefined;
        self.writeOwnHeader(&buf, .heartbeat, 0);
        wire.writeGroup(&buf, self.groupMask());
        for (0..self.config.peer_count) |i| {
            self.counters.heartbeats_sent += 1;
            self.sink.to_peer(self.sink.ctx, @intCast(i), &buf);
        }
    }

    /// Ids of the live replicas this primary holds client bytes for.
    pub fn groupMask(self: *Datapath) u16 {
        if (self.role != .primary) return if (self.dropped) wire.group_dropped else 0;
        var mask: u16 = 0;
        for (self.peerSlice()) |p| {
            if (p.alive and p.role == .replica and p.id != 0 and !p.out) mask |= @as(u16, 1) << @intCast(p.id);
        }
        return mask;
    }

    /// A replica the primary dropped from its group (it fell silent for a
    /// while) may lack client bytes the primary acknowledged meanwhile: it
    /// must never take over. It stays out until restarted (rejoining with
    /// state transfer is issue 4).
    fn checkMembership(self: *Datapath, group: u16) void {
        const mine = group & (@as(u16, 1) << @intCast(self.config.id)) != 0;
        if (mine) {
            self.in_group = true;
        } else if (self.in_group and !self.dropped) {
            self.dropped = true;
            self.counters.dropped_from_group += 1;
        }
    }

    /// The primary must have been silent *as primary* for the takeover
    /// silence, not merely silent: a node we follow that handed over and
    /// lives on as a replica, to a target that never took over (it was
    /// dropped), must not hold the group without a primary for good.
    fn shouldPromote(self: *Datapath, now: u64, silence: u64) bool {
        if (self.dropped) return false;
        if (now -% self.primary_last_heard_ns <= silence) return false;
        for (self.peerSlice()) |p| {
            if (p.id == self.primary_id and p.alive and p.role == .primary) return false;
        }
        // The lowest-id live replica of this epoch takes over; the others follow it.
        for (self.peerSlice()) |p| {
            if (p.alive and p.role == .replica and !p.out and p.id != 0 and p.id < self.config.id and p.epoch == self.epoch) return false;
        }
        return true;
    }

    /// Becomes the primary of a new epoch. `planned`: the old primary handed
    /// over and lives on as a replica holding every byte it acknowledged, so
    /// it stays a member; after a failure it is gone and no longer waited for.
    pub fn promote(self: *Datapath, now: u64, detect_ns: u64, planned: bool) void {
        const old_primary = self.primary_id;
        self.role = .primary;
        self.epoch = epochNext(self.epoch, self.config.id);
        self.primary_id = self.config.id;
        if (planned) self.counters.migrations_in += 1 else self.counters.failovers += 1;
        self.takeover_at_ns = now;
        self.takeover_detect_ns = detect_ns;
        self.takeover_planned = planned;
        self.takeover_origin_ns = 0;
        self.takeover_conns = 0;
        self.takeover_resumed = 0;
        self.takeover_resumed_ns = now;
        const old_bit = self.peerBit(old_primary);
        self.heartbeat();
        self.last_heartbeat_ns = now;
        self.announce();
        for (self.conns, 0..) |*c, i| {
            if (!self.conn_used[i]) continue;
            // A diverged copy is never served as if nothing happened; nor is
            // one whose catch-up had not finished (its NF lacks client bytes
            // the client was told we have).
            if (c.outgoing and !c.paired and !c.indexed) {
                // Our NF's own connection the old primary never announced:
                // its SYN never left, so it starts here, as the primary's would.
                self.adoptOutgoing(c);
                continue;
            }
            if (c.check.stale or c.catching_up) {
                if (c.catching_up) self.counters.catchup_resets += 1;
                self.resetClient(c, now);
                continue;
            }
            if (c.owner != 0) {
                // Migrated on its own to a node that still serves it: stays there.
                const at = self.peerIndex(c.owner);
                const elsewhere = c.owner != self.config.id and c.owner != old_primary and
                    at != null and self.peers[at.?].alive;
                if (elsewhere) {
                    c.members &= ~old_bit;
                    continue;
                }
                c.owner = 0;
            }
            if (planned and self.aliveMask() & old_bit != 0) c.members |= old_bit else c.members &= ~old_bit;
            c.reported = 0; // members report again to the new primary
            if (!c.primary_known) self.inferPrimarySpace(c, now);
            c.kick_pending = true;
            self.takeover_conns += 1;
            self.kickIfSynced(c, now);
        }
    }

    /// `ha migrate --to`: a primary hands its connections over to replica
    /// `to` and becomes its replica; a replica asks its primary to. A target
    /// that is not a live replica of this group is refused (counted).
    pub fn requestMigrate(self: *Datapath, to: u8, now: u64) void {
        if (self.emitting()) return self.handOver(to, now);
        if (self.role != .replica) return;
        const primary = self.primaryPeer() orelse return;
        var buf: [wire.header_bytes + wire.target_bytes]u8 = undefined;
        self.writeOwnHeader(&buf, .migrate_request, 0);
        wire.writeTarget(&buf, to);
        self.sink.to_peer(self.sink.ctx, primary, &buf);
    }

    /// Stops emitting at once and tells `to` to serve. Everything this node's
    /// stack acknowledged, every live member holds (that is the hold rule),
    /// so the target may take over like after a failure, but without the
    /// detection delay and with this node as one more member: its NF keeps
    /// its state and follows the target as a replica from now on.
    fn handOver(self: *Datapath, to: u8, now: u64) void {
        const bit = self.peerBit(to);
        if (to == self.config.id or bit == 0 or self.aliveMask() & bit == 0 or self.groupMask() & (@as(u16, 1) << @intCast(to)) == 0) {
            self.counters.migrations_refused += 1;
            return;
        }
        self.role = .replica;
        self.primary_id = to;
        self.primary_last_heard_ns = now;
        self.in_group = true;
        self.handover_to = to;
        self.handover_epoch = self.epoch;
        self.handover_started_ns = now;
        self.counters.migrations_out += 1;
        for (self.conns, 0..) |*c, i| {
            // Reports follow the handover at once, on the same socket: the
            // target needs ours before it serves, and waiting for its first
            // heartbeat (or for this loop iteration to end) costs a round trip.
            if (self.conn_used[i]) self.yieldConn(c);
        }
        self.sendHandover(now);
        self.flushReports();
    }

    /// `ha migrate --conn ADDR:PORT --to N`: the node serving the client's
    /// connection (any VIP port) hands it alone to node N, a live replica
    /// or the primary. As for a whole handover, every byte this node
    /// acknowledged the members hold, so N serves it as soon as this node
    /// (a member of it from now on) and the other members reported to it.
    pub fn requestConnMigrate(self: *Datapath, to: u8, client_ip: u32, client_port: u16, now: u64) void {
        var request: ConnRequest = .{ .seq = self.conn_request.seq +% 1, .result = .not_found };
        defer self.conn_request = request;
        const able = self.aliveMask() & self.peerBit(to) != 0;
        const wanted = (@as(u64, client_ip) << 16 | client_port);
        for (self.conns, 0..) |*c, i| {
            if (!self.conn_used[i] or c.closed_ns != 0 or c.key >> 16 != wanted) continue;
            request.matched += 1;
            if (!self.serves(c)) {
                request.result = .not_served_here;
                request.owner = self.ownerId(c);
                continue;
            }
            // A member only: one whose copy went stale holds nothing to serve.
            if (!able or !c.mapped or c.members & self.peerBit(to) == 0) {
                request.result = .bad_target;
                self.counters.conn_migrations_refused += 1;
                continue;
            }
            // The primary's own connections follow it (owner 0) again.
            c.owner = if (to == self.primary_id) 0 else to;
            self.yieldConn(c);
            c.owner_notices_left = 20;
            self.sendOwner(c, now);
            self.counters.conn_migrations_out += 1;
            request.result = .handed;
            request.owner = to;
        }
        if (request.result == .handed) self.flushReports();
    }

    // ------------------------------------------------------------ outgoing connections

    /// A replica's copy of an outgoing connection, by our NF's own key.
    fn lookupLocal(self: *Datapath, key: wire.Key) ?*Conn {
        const index = self.out_index.get(key) orelse return null;
        return &self.conns[index];
    }

    /// How many connections our NF opened to `dest` before (its pairing order).
    fn nextOrder(self: *Datapath, dest: u64) u32 {
        for (self.out_counts[0..self.out_counts_len]) |*e| {
            if (e.dest != dest) continue;
            e.count += 1;
            return e.count - 1;
        }
        // A full table overwrites its first slot (each time: it is no ring,
        // see the issue note): orders then restart at 0 for that backend on
        // this node alone, and pairing fails safe (an unpaired copy never
        // serves; see `adoptOutgoing`).
        const at = if (self.out_counts_len < out_counts_max) self.out_counts_len else self.out_counts_len % out_counts_max;
        if (self.out_counts_len < out_counts_max) self.out_counts_len += 1;
        self.out_counts[at] = .{ .dest = dest, .count = 1 };
        return 0;
    }

    /// Our NF's SYN to a backend. The primary's goes out (once the
    /// backend's MAC is known) and is announced to the members (out_open);
    /// a replica's is kept back and waits for the primary's to pair with.
    fn openOutgoing(self: *Datapath, key: wire.Key, frame: []const u8, p: packet.Packet, now: u64) ?*Conn {
        if (!serving(self.role) or self.conn_free_len == 0) return null;
        if (self.emitting() and self.lookupLocal(key) != null) return null;
        const dest = key >> 16;
        self.conn_free_len -= 1;
        const index = self.conn_free[self.conn_free_len];
        self.conn_used[index] = true;
        const c = &self.conns[index];
        c.* = .{
            .key = key,
            .client_mac = @splat(0),
            .members = self.aliveMask() & ~self.peerBit(self.primary_id),
            .client_isn = 0,
            .last_ns = now,
            .outgoing = true,
            .local_port = p.source_port,
            .out_dest = dest,
            .out_order = self.nextOrder(dest),
            .local_known = true,
            .local_isn = p.seq,
            // Past the SYN already: a backend's SYN-ACK kept for pairing is
            // fed from in here, before the rest of innerFrame counts the SYN,
            // and an ack clamped to the ISN would draw our NF's RST.
            .snd_nxt = p.seq +% 1,
            .acked_to_nf = p.seq,
            .nf_wscale = @min(p.options.window_scale orelse 0, 14),
            .mac_known = false,
        };
        if (p.options.timestamp_offset) |ts| {
            c.has_ts = true;
            c.local_tsval = std.mem.readInt(u32, frame[ts..][0..4], .big);
        }
        self.counters.outgoing_opened += 1;
        self.counters.conns_opened += 1;
        if (self.emitting()) {
            self.index.putAssumeCapacityNoClobber(key, index);
            c.paired = true;
            c.primary_known = true;
            c.primary_isn = c.local_isn;
            c.primary_tsval = c.local_tsval;
            self.map(c, now);
            self.sendOutOpen(c, now);
            return c;
        }
        c.indexed = false;
        c.local_indexed = true;
        self.out_index.putAssumeCapacityNoClobber(key, index);
        self.unpaired += 1;
        for (&self.early_outs) |*slot| {
            const item = slot.* orelse continue;
            if (item.open.conn >> 16 != dest or item.order != c.out_order) continue;
            slot.* = null;
            self.pairOutgoing(c, item, now);
            break;
        }
        return c;
    }

    fn sendOutOpen(self: *Datapath, c: *Conn, now: u64) void {
        var buf: [wire.header_bytes + wire.out_open_bytes]u8 = undefined;
        self.writeOwnHeader(&buf, .out_open, 1);
        wire.writeOutOpen(&buf, 0, .{
            .open = .{ .conn = c.key, .isn = c.primary_isn, .tsval = c.primary_tsval, .has_ts = c.has_ts },
            .order = c.out_order,
        });
        c.conn_open_sent_ns = now;
        for (0..self.config.peer_count) |i| {
            if (c.members & (@as(u16, 1) << @intCast(i)) == 0) continue;
            self.counters.out_opens_sent += 1;
            self.sink.to_peer(self.sink.ctx, @intCast(i), &buf);
        }
    }

    /// Replica: the primary's NF opened a connection; ours opened (or will
    /// open) the same one, its `order`-th to that backend.
    fn outOpen(self: *Datapath, item: wire.OutOpen, now: u64) void {
        if (self.lookup(item.open.conn)) |c| {
            // A repeat (the primary holds the backend's bytes for us): report again.
            if (c.rcv_known and !self.serves(c)) self.markDirty(c);
            return;
        }
        if (self.unpaired > 0) {
            for (self.conns, 0..) |*c, i| {
                if (!self.conn_used[i] or !c.outgoing or c.indexed) continue;
                if (c.out_dest != item.open.conn >> 16 or c.out_order != item.order) continue;
                return self.pairOutgoing(c, item, now);
            }
        }
        // Our NF has not got that far yet: kept for its SYN.
        for (self.early_outs) |slot| {
            if (slot) |e| if (e.open.conn == item.open.conn) return;
        }
        self.early_outs[self.early_outs_next % early_outs_max] = item;
        self.early_outs_next +%= 1;
    }

    /// An unpaired copy becomes a connection of the primary's space, `key`,
    /// with the primary's ISN and TSval. False if that key is taken.
    fn settleOutgoing(self: *Datapath, c: *Conn, key: wire.Key, isn: u32, tsval: u32) bool {
        if (self.index.contains(key)) return false;
        c.key = key;
        self.index.putAssumeCapacityNoClobber(key, self.connIndex(c));
        c.indexed = true;
        c.paired = true;
        self.unpaired -= 1;
        c.primary_known = true;
        c.primary_isn = isn;
        c.primary_tsval = tsval;
        return true;
    }

    fn pairOutgoing(self: *Datapath, c: *Conn, item: wire.OutOpen, now: u64) void {
        if (!self.settleOutgoing(c, item.open.conn, item.open.isn, item.open.tsval)) return;
        self.counters.outgoing_paired += 1;
        self.map(c, now);
        for (&self.early_syn_acks) |*e| {
            if (e.len == 0 or e.key != c.key) continue;
            var buf: [syn_ack_bytes_max]u8 = undefined;
            const frame = buf[0..e.len];
            @memcpy(frame, e.frame[0..e.len]);
            e.len = 0;
            self.outerFrame(frame, now);
        }
    }

    /// At a takeover, an unpaired copy of ours (the old primary never
    /// announced it, so its SYN never left) becomes the connection itself.
    fn adoptOutgoing(self: *Datapath, c: *Conn) void {
        if (!self.settleOutgoing(c, c.key, c.local_isn, c.local_tsval)) return;
        c.seq_delta = 0;
        c.ts_delta = 0;
        c.mapped = true;
        c.members = 0; // the others' copies, if any, never paired with it
    }

    /// The backend's MAC for an outgoing connection, from what ARP taught
    /// us; else ask (at most every 100 ms) and let the NF retransmit.
    fn resolve(self: *Datapath, c: *Conn, now: u64) bool {
        const ip: u32 = @intCast(c.key >> 32);
        var want: [4]u8 = undefined;
        std.mem.writeInt(u32, &want, ip, .big);
        for (self.neighbors) |n| {
            if (!std.mem.eql(u8, &n.ip, &want)) continue;
            c.client_mac = n.mac;
            c.mac_known = true;
            return true;
        }
        if (c.arp_ns != 0 and now -% c.arp_ns < 100 * std.time.ns_per_ms) return false;
        c.arp_ns = now;
        var frame: [42]u8 = undefined;
        @memset(frame[0..6], 0xff);
        @memcpy(frame[6..12], &self.config.virtual_mac);
        fillArp(&frame, 1, self.config.virtual_mac, self.config.vip, @splat(0), want);
        self.counters.arp_requests += 1;
        self.sink.to_client(self.sink.ctx, &frame);
        return false;
    }

    fn learnNeighbor(self: *Datapath, ip: [4]u8, mac: Mac) void {
        if (std.mem.eql(u8, &ip, &self.config.vip) or std.mem.eql(u8, &ip, &[4]u8{ 0, 0, 0, 0 })) return;
        for (&self.neighbors) |*n| {
            if (!std.mem.eql(u8, &n.ip, &ip)) continue;
            n.mac = mac;
            return;
        }
        self.neighbors[self.neighbors_next % neighbors_max] = .{ .ip = ip, .mac = mac };
        self.neighbors_next +%= 1;
        self.counters.neighbors_learned += 1;
    }

    // ------------------------------------------------------------ catch-up

    /// Serving node: conn_opens for every connection we serve, to a peer
    /// heard again after a silence; it answers conn_missing for those it lacks.
    fn announceConns(self: *Datapath, peer: u8, now: u64) void {
        _ = now;
        var buf: [wire.datagram_bytes_max]u8 = undefined;
        var count: usize = 0;
        for (self.conns, 0..) |*c, i| {
            if (!self.conn_used[i] or c.closed_ns != 0 or !c.primary_known or !self.serves(c)) continue;
            wire.writeConnOpen(&buf, count, .{ .conn = c.key, .isn = c.primary_isn, .tsval = c.primary_tsval, .has_ts = c.has_ts });
            count += 1;
            if (count == wire.conn_opens_max) {
                self.sendConnOpenBatch(peer, &buf, count);
                count = 0;
            }
        }
        if (count > 0) self.sendConnOpenBatch(peer, &buf, count);
    }

    fn sendConnOpenBatch(self: *Datapath, peer: u8, buf: []u8, count: usize) void {
        self.writeOwnHeader(buf, .conn_open, @intCast(count));
        self.counters.conn_opens_sent += count;
        self.sink.to_peer(self.sink.ctx, peer, buf[0 .. wire.header_bytes + count * wire.conn_open_bytes]);
    }

    /// Serving node: member `peer` lacks `c` (it restarted). It is no
    /// member from now on — nothing waits for it — and, if our input log is
    /// whole, it is caught up: its NF gets the client's SYN and every byte
    /// since, and becomes a member again once it holds what ours does.
    fn missing(self: *Datapath, c: *Conn, peer: u8, now: u64) void {
        const bit = @as(u16, 1) << @intCast(peer);
        self.counters.conns_missing += 1;
        c.members &= ~bit;
        c.reported &= ~bit;
        self.release(c, now);
        self.kickIfSynced(c, now);
        if (c.catchup & bit != 0) return self.sendCatchupOpen(c, peer); // its open was lost
        const able = c.owner == 0 and c.syn_len > 0 and !c.log.lost and c.rcv_known and
            c.local_known and c.closed_ns == 0 and !c.fin_client and !c.check.stale;
        if (!able) {
            self.counters.catchups_impossible += 1;
            return;
        }
        if (c.catchup == 0) self.catchups_active += 1;
        c.catchup |= bit;
        c.catchup_next[peer] = 0;
        c.catchup_acked[peer] = 0;
        c.catchup_moved_ns[peer] = now;
        self.counters.catchups_started += 1;
        self.sendCatchupOpen(c, peer);
    }

    fn sendCatchupOpen(self: *Datapath, c: *Conn, peer: u8) void {
        var buf: [wire.datagram_bytes_max]u8 = undefined;
        self.writeOwnHeader(&buf, .catchup_open, c.syn_len);
        const len = wire.writeCatchupOpen(&buf, .{
            .conn = c.key,
            .isn = c.primary_isn,
            .tsval = c.primary_tsval,
            .has_ts = c.has_ts,
            .syn = c.syn[0..c.syn_len],
        });
        self.sink.to_peer(self.sink.ctx, peer, buf[0..len]);
    }

    /// Serving node, every tick while a catch-up runs: sends each member
    /// being caught up the next chunks of the log, at most a window beyond
    /// what it reported; after a stretch with no progress, sends again from
    /// its report (chunks get lost); once it holds all our NF holds, makes
    /// it a member again.
    fn pumpCatchups(self: *Datapath, now: u64) void {
        var budget: u32 = catchup_tick_chunks_max;
        for (self.conns, 0..) |*c, i| {
            if (!self.conn_used[i] or c.catchup == 0) continue;
            for (0..self.config.peer_count) |at| {
                const peer: u8 = @intCast(at);
                const bit = @as(u16, 1) << @intCast(peer);
                if (c.catchup & bit == 0) continue;
                if (!self.peers[peer].alive or !self.serves(c) or c.closed_ns != 0 or c.log.lost) {
                    self.endCatchup(c, bit);
                    continue;
                }
                self.pumpCatchup(c, peer, now, &budget);
            }
        }
    }

    fn pumpCatchup(self: *Datapath, c: *Conn, peer: u8, now: u64, budget: *u32) void {
        const bit = @as(u16, 1) << @intCast(peer);
        const base = c.client_isn +% 1;
        if (c.reported & bit != 0) {
            const acked = c.replica_rcv[peer] -% base;
            if (acked < input_log.bytes_max and c.catchup_acked[peer] < acked) {
                c.catchup_acked[peer] = acked;
                c.catchup_moved_ns[peer] = now;
            }
        }
        // What our NF holds: the whole prefix of the log.
        const whole = @min(c.rcv_nxt -% base, c.log.len);
        const acked = c.catchup_acked[peer];
        if (c.members & bit != 0) {
            // A member again already: say so a few more times.
            if (now -% c.catchup_moved_ns[peer] < catchup_confirm_interval_ns) return;
            c.catchup_moved_ns[peer] = now;
            self.sendCatchupChunk(c, peer, whole, 0);
            c.catchup_confirms_left[peer] -|= 1;
            if (c.catchup_confirms_left[peer] == 0) self.endCatchup(c, bit);
            return;
        }
        if (c.reported & bit != 0 and acked >= whole) {
            // Caught up: a member again, held for from the next byte on.
            c.members |= bit;
            self.counters.catchups_done += 1;
            c.catchup_confirms_left[peer] = catchup_confirms;
            c.catchup_moved_ns[peer] = now;
            self.sendCatchupChunk(c, peer, whole, 0);
            return;
        }
        if (now -% c.catchup_moved_ns[peer] >= catchup_retry_ns) {
            c.catchup_moved_ns[peer] = now;
            c.catchup_next[peer] = acked;
            if (c.reported & bit == 0) self.sendCatchupOpen(c, peer);
        }
        const limit = @min(whole, acked +| catchup_window_bytes);
        var sent: u32 = 0;
        while (c.catchup_next[peer] < limit and sent < catchup_burst and budget.* > 0) : (sent += 1) {
            budget.* -= 1;
            const from = c.catchup_next[peer];
            const len: u32 = @min(limit - from, wire.catchup_payload_max);
            self.sendCatchupChunk(c, peer, from, len);
            c.catchup_next[peer] = from + len;
        }
    }

    fn endCatchup(self: *Datapath, c: *Conn, bit: u16) void {
        c.catchup &= ~bit;
        if (c.catchup == 0) self.catchups_active -= 1;
    }

    /// `len` log bytes from `from`; none: "you are a member again".
    fn sendCatchupChunk(self: *Datapath, c: *Conn, peer: u8, from: u32, len: u32) void {
        var buf: [wire.datagram_bytes_max]u8 = undefined;
        // The client's acknowledged output, as a stream offset (ours: the
        // NF's first byte follows its SYN, on every node).
        const out_acked: u32 = if (c.ack_max_known) c.ack_max -% c.local_isn -% 1 else 0;
        self.writeOwnHeader(&buf, .catchup_data, 0);
        const n = wire.writeCatchupData(&buf, .{
            .conn = c.key,
            .offset = from,
            .out_acked = out_acked,
            .data = if (len == 0) &.{} else c.log.slice(from, from + len),
        });
        self.counters.catchup_chunks_sent += 1;
        self.sink.to_peer(self.sink.ctx, peer, buf[0..n]);
    }

    /// Member: the serving node replays a connection we lack. Our NF gets
    /// the client's SYN now; the rest follows once its SYN-ACK maps it.
    fn catchupOpen(self: *Datapath, item: wire.CatchupOpen, now: u64) void {
        if (self.lookup(item.conn)) |known| {
            // A repeat: our NF may not have been listening yet (it answered
            // the SYN with a RST), so it gets the SYN again until it answers.
            // Otherwise a catch-up from a new primary for one we have.
            if (!known.catching_up or known.local_known) return;
            const syn = self.scratch[0..known.syn_len];
            @memcpy(syn, known.syn[0..known.syn_len]);
            rewriteMacs(syn, self.config.nf_mac, self.config.inner_mac);
            self.deliverToNf(syn);
            return;
        }
        if (item.syn.len > frame_bytes_max) return;
        const syn = self.scratch[0..item.syn.len];
        @memcpy(syn, item.syn);
        const p = packet.parse(syn) catch return;
        if (p.flags & (packet.flag_syn | packet.flag_ack) != packet.flag_syn) return;
        if (wire.key(p.source_ip, p.source_port, p.destination_port) != item.conn) return;
        const c = self.open(item.conn, syn, p, now) orelse {
            self.counters.table_full += 1;
            return;
        };
        c.primary_known = true;
        c.primary_isn = item.isn;
        c.primary_tsval = item.tsval;
        c.catching_up = true;
        if (p.options.timestamp_offset) |ts| c.client_tsval = std.mem.readInt(u32, syn[ts..][0..4], .big);
        self.counters.catchups_joined += 1;
        rewriteMacs(syn, self.config.nf_mac, self.config.inner_mac);
        self.deliverToNf(syn);
    }

    /// Member, once the NF's SYN-ACK mapped a caught-up connection: a
    /// client header built from its SYN (the template for what follows,
    /// until the client's own frames give one) and the handshake's ACK.
    fn catchupHandshake(self: *Datapath, c: *Conn) void {
        const syn = c.syn[0..c.syn_len];
        const p = packet.parse(syn) catch return;
        const options: u16 = if (p.options.timestamp_offset != null) 12 else 0;
        const tcp = p.tcp_offset;
        const len = tcp + 20 + options;
        if (len > template_bytes_max) return;
        const t = c.template[0..len];
        @memcpy(t[0 .. tcp + 20], syn[0 .. tcp + 20]);
        t[tcp + 12] = @intCast((20 + options) / 4 << 4);
        std.mem.writeInt(u32, t[tcp + 8 ..][0..4], c.local_isn +% 1, .big);
        std.mem.writeInt(u16, t[tcp + 14 ..][0..2], 0xffff, .big);
        std.mem.writeInt(u16, t[tcp + 18 ..][0..2], 0, .big);
        if (options != 0) {
            const o = t[tcp + 20 ..][0..12];
            o[0..4].* = .{ packet.option_nop, packet.option_nop, 8, 10 };
            std.mem.writeInt(u32, o[4..8], c.client_tsval orelse 0, .big);
            std.mem.writeInt(u32, o[8..12], c.local_tsval, .big);
        }
        rewriteMacs(t, self.config.nf_mac, self.config.inner_mac);
        c.template_len = @intCast(len);
        const ack = buildFromTemplate(c, &self.scratch, c.client_isn +% 1, c.local_isn +% 1, 0) orelse return;
        c.acked_to_nf = c.local_isn +% 1;
        self.deliverToNf(ack);
    }

    /// Member: a chunk of the client's bytes for a connection being caught
    /// up, fed to our NF as a client segment (its stack drops what it has).
    /// It acknowledges the NF's output as far as the client did, no further:
    /// past that the client may still need our NF to send it, at a takeover.
    fn catchupData(self: *Datapath, item: wire.CatchupData, now: u64) void {
        _ = now;
        const c = self.lookup(item.conn) orelse return;
        if (!c.catching_up) return;
        if (item.data.len == 0) {
            c.catching_up = false; // a member again
            return;
        }
        if (!c.mapped or c.template_len == 0 or c.check.stale) return; // sent again
        const out_acked = c.local_isn +% 1 +% item.out_acked;
        if (!c.ack_max_known or seqLt(c.ack_max, out_acked)) {
            c.ack_max = out_acked;
            c.ack_max_known = true;
        }
        var ack = if (seqLt(c.snd_nxt, c.ack_max)) c.snd_nxt else c.ack_max;
        if (seqLt(ack, c.acked_to_nf)) ack = c.acked_to_nf;
        const len: u16 = @intCast(item.data.len);
        var buf: [frame_bytes_max]u8 = undefined;
        const frame = buildFromTemplate(c, &buf, c.client_isn +% 1 +% item.offset, ack, len) orelse return;
        const p = packet.parse(frame) catch return;
        @memcpy(frame[p.tcp_offset + p.tcp_header_len ..][0..len], item.data);
        packet.tcpChecksumRecompute(frame, p);
        c.acked_to_nf = ack;
        self.feedNf(c, frame);
    }

    /// Tells the node serving `c` that our NF lacks the client's bytes at
    /// rcv_nxt while it holds later ones (see repair).
    fn sendHole(self: *Datapath, c: *Conn, now: u64) void {
        const to = self.peerIndex(self.ownerId(c)) orelse return;
        var buf: [wire.header_bytes + wire.report_bytes]u8 = undefined;
        self.writeOwnHeader(&buf, .rcv_hole, 1);
        wire.writeReport(&buf, 0, .{ .conn = c.key, .rcv_nxt = c.rcv_nxt });
        c.hole_sent_ns = now;
        self.counters.holes_reported += 1;
        self.sink.to_peer(self.sink.ctx, to, &buf);
    }

    /// Tells every peer who serves `c` now.
    fn sendOwner(self: *Datapath, c: *Conn, now: u64) void {
        var buf: [wire.header_bytes + wire.owner_bytes]u8 = undefined;
        self.writeOwnHeader(&buf, .conn_owner, 1);
        wire.writeOwner(&buf, 0, .{ .conn = c.key, .owner = self.ownerId(c) });
        c.owner_notice_ns = now;
        if (c.owner_notices_left > 0) c.owner_notices_left -= 1;
        for (0..self.config.peer_count) |i| self.sink.to_peer(self.sink.ctx, @intCast(i), &buf);
    }

    /// A conn_owner notice from `peer`: `item.owner` serves the connection now.
    fn connOwner(self: *Datapath, peer: u8, item: wire.Owner, now: u64) void {
        const c = self.lookup(item.conn) orelse return;
        const owner: u8 = if (item.owner == self.primary_id) 0 else item.owner;
        if (c.owner == owner) return; // a repeat
        c.owner = owner;
        c.owner_notices_left = 0;
        if (self.serves(c)) {
            // Ours now. The node that served it holds every byte it
            // acknowledged: it is a member, and we wait for its report.
            c.members |= @as(u16, 1) << @intCast(peer);
            c.reported = 0;
            c.kick_pending = true;
            c.owner_since_ns = now;
            self.counters.conn_migrations_in += 1;
            if (c.check.stale) return self.resetClient(c, now); // never served diverged
            self.kickIfSynced(c, now);
        } else {
            // Someone else's: our NF's acks go to it from now on.
            self.yieldConn(c);
        }
    }

    /// This node stops serving `c` (a handover, a migrated connection): it
    /// acknowledges to the client no more, so what it held for the members
    /// goes to its own NF now, as on any replica, and its next report goes
    /// to the node serving `c`.
    fn yieldConn(self: *Datapath, c: *Conn) void {
        while (self.takeFront(&c.held)) |frame| self.feedNf(c, frame);
        c.kick_pending = false;
        self.markDirty(c);
    }

    /// A primary that lost a replica serving connections of its own serves
    /// them again, and says so (the other members report to it then).
    fn reclaimConns(self: *Datapath, now: u64) void {
        for (self.conns, 0..) |*c, i| {
            if (!self.conn_used[i] or c.owner == 0 or c.owner == self.config.id) continue;
            const at = self.peerIndex(c.owner) orelse continue;
            if (self.peers[at].alive) continue;
            c.owner = 0;
            c.members &= ~(@as(u16, 1) << @intCast(at));
            c.reported = 0;
            c.kick_pending = true;
            c.owner_since_ns = now;
            c.owner_notices_left = 20;
            self.sendOwner(c, now);
            self.counters.conns_reclaimed += 1;
            // As at a takeover: a diverged copy is never served.
            if (c.check.stale) {
                self.resetClient(c, now);
                continue;
            }
            self.kickIfSynced(c, now);
        }
    }

    fn sendHandover(self: *Datapath, now: u64) void {
        var buf: [wire.header_bytes + wire.handover_bytes]u8 = undefined;
        self.writeOwnHeader(&buf, .handover, 0);
        wire.writeTarget(&buf, self.handover_to);
        wire.writeStarted(&buf, self.handover_started_ns);
        self.handover_sent_ns = now;
        for (0..self.config.peer_count) |i| {
            self.counters.handovers_sent += 1;
            self.sink.to_peer(self.sink.ctx, @intCast(i), &buf);
        }
    }

    /// A connection whose conn_open never arrived (the old primary died in
    /// its handshake): the client's first ACK, waiting in the pending list,
    /// acknowledges exactly the old primary's SYN-ACK, so it carries that
    /// ISN + 1 and echoes that TSval. Only the first frame is used: before
    /// the server sends data every client ACK carries the same values.
    fn inferPrimarySpace(self: *Datapath, c: *Conn, now: u64) void {
        if (c.pending.head == none or !c.local_known) return;
        const frame = self.frameBytes(c.pending.head);
        const p = packet.parse(frame) catch return;
        c.primary_known = true;
        c.primary_isn = p.ack -% 1;
        c.primary_tsval = if (p.options.timestamp_offset) |ts| std.mem.readInt(u32, frame[ts + 4 ..][0..4], .big) else c.local_tsval;
        self.counters.inferred_mappings += 1;
        self.map(c, now);
    }

    /// Sync before serve: a new primary's acks may not run ahead of what the
    /// surviving members hold, and it learns that only from their reports.
    fn kickIfSynced(self: *Datapath, c: *Conn, now: u64) void {
        if (!c.kick_pending or self.membersHold(c, now) == null) return;
        c.kick_pending = false;
        self.kick(c);
        self.replayOutput(c, now);
        if (c.owner_since_ns != 0) {
            self.conn_resume_ns = now -% c.owner_since_ns;
            c.owner_since_ns = 0;
            return;
        }
        self.takeover_resumed += 1;
        self.takeover_resumed_ns = now;
    }

    /// Makes the NF acknowledge now: an old byte draws an immediate ACK, which
    /// tells the client what this node holds and restarts its sending.
    fn kick(self: *Datapath, c: *Conn) void {
        if (!c.mapped or !c.rcv_known or c.template_len == 0 or c.closed_ns != 0) return;
        const ack = if (c.ack_max_known and seqLt(c.ack_max, c.snd_nxt)) c.ack_max else c.snd_nxt;
        const frame = buildFromTemplate(c, &self.scratch, c.rcv_nxt -% 1, ack, 1) orelse return;
        self.counters.kicks += 1;
        self.deliverToNf(frame);
    }

    /// A pure ACK to the client at `ack`, with what we last told it of our
    /// NF's window and TSval, echoing its newest TSval; one SACK block if given.
    fn ackToClient(self: *const Datapath, c: *const Conn, buf: *[repair_frame_bytes]u8, ack: u32, sack: ?[2]u32) []u8 {
        return buildRepairAck(buf, .{
            .to = self.toClient(c, c.snd_nxt +% c.seq_delta),
            .ack = ack,
            .window = c.window_out,
            .tsval = c.tsval_out,
            .tsecr = c.client_tsval,
            .sack = sack,
        });
    }

    fn releaseAll(self: *Datapath, now: u64) void {
        for (self.conns, 0..) |*c, i| {
            if (!self.conn_used[i]) continue;
            self.release(c, now);
            self.kickIfSynced(c, now);
        }
    }

    fn resendConnOpens(self: *Datapath, now: u64) void {
        // Cheap in the common case: nothing is held for long.
        if (self.heldCount() == 0) return;
        for (self.conns, 0..) |*c, i| {
            if (!self.conn_used[i] or c.held.count == 0 or !c.primary_known) continue;
            if (now -% c.held_since_ns < conn_open_resend_ns) continue;
            // Also asks the members to report again: a lost report would
            // otherwise hold the client's bytes until its next retransmission.
            if (now -% c.conn_open_sent_ns < conn_open_resend_ns) continue;
            if (c.outgoing) self.sendOutOpen(c, now) else self.sendConnOpen(c, now);
        }
    }

    /// A member lacks a client segment this node holds (it was lost on the
    /// member's port only: its NF's ACKs carry SACK blocks, and it sent a
    /// rcv_hole), so everything after it waits here — and our NF,
    /// fed nothing past the hole, sends the client no duplicate ACK: only the
    /// client's retransmission timer would end it, and the held segments'
    /// round-trip samples inflate that timer to seconds under loss. Three
    /// duplicate ACKs whose SACK block covers what we hold beyond the hole
    /// make the client retransmit the missing segment now (fast
    /// retransmit), to every node. The SACKed bytes are held here, so the
    /// promise is true; were this node to die, the client would find them
    /// missing at its next timeout and send them again (a renege).
    fn repair(self: *Datapath, c: *Conn, now: u64) void {
        if (!c.out_known or c.template_len == 0 or !self.serves(c)) return;
        if (c.repair_ns != 0 and now -% c.repair_ns < repair_interval_ns) return;
        // The held segment that came last, past the client's acked point. Only
        // it: the client takes the age of every newly SACKed segment as a
        // round trip, and segments held since the hole opened made those
        // seconds (its timeout grew to ~28 s in a bulk load). One fresh
        // SACKed segment, sent after the hole, is enough for RACK to call
        // the hole lost at once.
        var start: u32 = 0;
        var end: u32 = 0;
        var found = false;
        var at = c.held.head;
        while (at != none) : (at = self.frame_next[at]) {
            const p = packet.parse(self.frameBytes(at)) catch continue;
            if (!seqLt(c.ack_out, p.seq)) continue; // the hole itself, or older
            start = p.seq;
            end = self.frame_end[at];
            found = true;
        }
        if (!found) return;
        c.repair_ns = now;
        var buf: [repair_frame_bytes]u8 = undefined;
        const frame = self.ackToClient(c, &buf, c.ack_out, .{ start, end });
        for (0..3) |_| {
            self.counters.repair_acks += 1;
            self.counters.to_client += 1;
            self.sink.to_client(self.sink.ctx, frame);
        }
    }

    fn collect(self: *Datapath, now: u64) void {
        for (self.conns, 0..) |*c, i| {
            if (!self.conn_used[i]) continue;
            const expired = (c.closed_ns != 0 and now -% c.closed_ns > closed_linger_ns) or now -% c.last_ns > idle_timeout_ns;
            if (expired) self.free(c) else self.nudge(c, now);
        }
    }

    /// An NF behind what the client acknowledged that has been silent for a
    /// while gets the synthetic ACK again, with the client's furthest window.
    /// Whatever parked it — a window it saw shrink to zero, whose persist
    /// probes this agent dropped (a replica emits nothing) and whose backoff
    /// then grew to seconds — an ACK that opens the window restarts it.
    /// Without this a connection whose NF lags the client could wait on that
    /// timer for good after a takeover. It acks nothing new (everything the
    /// NF sent is acked already), so it is no duplicate ACK to the NF.
    fn nudge(self: *Datapath, c: *Conn, now: u64) void {
        if (c.closed_ns != 0 or !c.mapped or !c.rcv_known or c.template_len == 0 or !c.ack_max_known or c.check.stale) return;
        if (!seqLt(c.snd_nxt, c.ack_max) or now -% c.nf_last_ns < nudge_after_ns) return;
        const frame = buildFromTemplate(c, &self.scratch, c.rcv_nxt, c.snd_nxt, 0) orelse return;
        c.acked_to_nf = c.snd_nxt;
        c.nf_last_ns = now; // once per interval, not once per scan
        self.counters.nudges += 1;
        self.deliverToNf(frame);
    }

    /// The `ha fail` hook: this node behaves as dead from now on.
    pub fn fail(self: *Datapath) void {
        self.role = .failed;
    }

    /// Asks the primary to fail (the `ha fail` command run on a replica).
    pub fn requestFail(self: *Datapath) void {
        if (self.emitting()) return self.fail();
        const primary = self.primaryPeer() orelse return;
        var buf: [wire.header_bytes]u8 = undefined;
        self.writeOwnHeader(&buf, .fail_request, 0);
        self.sink.to_peer(self.sink.ctx, primary, &buf);
    }

    fn peerIndex(self: *Datapath, id: u8) ?u8 {
        for (self.peerSlice(), 0..) |p, i| {
            if (p.id == id and id != 0) return @intCast(i);
        }
        return null;
    }

    fn primaryPeer(self: *Datapath) ?u8 {
        return self.peerIndex(self.primary_id);
    }

    fn peerBit(self: *Datapath, id: u8) u16 {
        const i = self.peerIndex(id) orelse return 0;
        return @as(u16, 1) << @intCast(i);
    }

    pub fn aliveMaskPublic(self: *Datapath) u16 {
        return self.aliveMask();
    }

    /// Peers that may be members of a connection: live replicas, and the
    /// primary (a member of a connection migrated away from it).
    fn aliveMask(self: *Datapath) u16 {
        var mask: u16 = 0;
        for (self.peerSlice(), 0..) |p, i| {
            if (p.alive and serving(p.role) and !p.out) mask |= @as(u16, 1) << @intCast(i);
        }
        return mask;
    }

    // ------------------------------------------------------------ tables

    fn lookup(self: *Datapath, key: wire.Key) ?*Conn {
        const index = self.index.get(key) orelse return null;
        return &self.conns[index];
    }

    fn connIndex(self: *Datapath, c: *Conn) u32 {
        return @intCast((@intFromPtr(c) - @intFromPtr(self.conns.ptr)) / @sizeOf(Conn));
    }

    fn open(self: *Datapath, key: wire.Key, frame: []const u8, p: packet.Packet, now: u64) ?*Conn {
        if (self.conn_free_len == 0) return null;
        self.conn_free_len -= 1;
        const index = self.conn_free[self.conn_free_len];
        self.conn_used[index] = true;
        self.index.putAssumeCapacityNoClobber(key, index);
        const c = &self.conns[index];
        c.* = .{
            .key = key,
            .client_mac = frame[6..12].*,
            .members = self.aliveMask() & ~self.peerBit(self.primary_id),
            .client_isn = p.seq,
            .client_wscale = @min(p.options.window_scale orelse 0, 14),
            .last_ns = now,
        };
        if (frame.len <= wire.syn_bytes_max) {
            @memcpy(c.syn[0..frame.len], frame);
            c.syn_len = @intCast(frame.len);
        }
        self.counters.conns_opened += 1;
        for (&self.early) |*e| {
            if (e.conn != key) continue;
            const bit = @as(u16, 1) << @intCast(e.peer);
            if (!seqLt(e.rcv_nxt, p.seq +% 1)) {
                c.replica_rcv[e.peer] = e.rcv_nxt;
                c.reported |= bit;
            }
            e.conn = 0;
        }
        return c;
    }

    fn close(self: *Datapath, c: *Conn, now: u64) void {
        _ = self;
        if (c.closed_ns == 0) c.closed_ns = now;
    }

    fn free(self: *Datapath, c: *Conn) void {
        for ([_]*FrameList{ &c.out, &c.held, &c.pending, &c.later }) |list| {
            while (self.listPop(list)) |slot| self.frameFree(slot);
        }
        c.log.deinit(self.allocator, &self.log_budget);
        if (c.catchup != 0) self.catchups_active -= 1;
        const index = self.connIndex(c);
        if (c.indexed) _ = self.index.remove(c.key);
        if (c.local_indexed) _ = self.out_index.remove(localKey(c));
        if (c.outgoing and !c.paired and !c.indexed) self.unpaired -= 1;
        self.conn_used[index] = false;
        self.conn_free[self.conn_free_len] = index;
        self.conn_free_len += 1;
        self.counters.conns_closed += 1;
    }

    fn listAppend(self: *Datapath, list: *FrameList, slot: u32) void {
        self.frame_next[slot] = none;
        if (list.tail == none) list.head = slot else self.frame_next[list.tail] = slot;
        list.tail = slot;
        list.count += 1;
    }

    /// Unlinks the oldest frame; the caller owns its slot.
    fn listPop(self: *Datapath, list: *FrameList) ?u32 {
        const at = list.head;
        if (at == none) return null;
        list.head = self.frame_next[at];
        if (list.head == none) list.tail = none;
        list.count -= 1;
        return at;
    }

    /// Pops the oldest frame into `scratch` (the pool slot is freed at once,
    /// so handling the frame may hold or cache it again).
    fn takeFront(self: *Datapath, list: *FrameList) ?[]u8 {
        const at = self.listPop(list) orelse return null;
        const len = self.frame_len[at];
        @memcpy(self.scratch[0..len], self.frameBytes(at));
        self.frameFree(at);
        return self.scratch[0..len];
    }

    fn frameAlloc(self: *Datapath, frame: []const u8) ?u32 {
        if (self.frame_free_len == 0 or frame.len > frame_bytes_max) return null;
        self.frame_free_len -= 1;
        const slot = self.frame_free[self.frame_free_len];
        @memcpy(self.frames[slot * frame_bytes_max ..][0..frame.len], frame);
        self.frame_len[slot] = @intCast(frame.len);
        self.frame_next[slot] = none;
        return slot;
    }

    fn frameBytes(self: *Datapath, slot: u32) []u8 {
        return self.frames[slot * frame_bytes_max ..][0..self.frame_len[slot]];
    }

    fn frameFree(self: *Datapath, slot: u32) void {
        self.frame_free[self.frame_free_len] = slot;
        self.frame_free_len += 1;
    }
};

fn findCheckpoint(ring: *const [checkpoints_per_conn_max]Checkpoint, len: u8, offset: u32) ?u32 {
    for (ring[0..len]) |cp| {
        if (cp.offset == offset) return cp.digest;
    }
    return null;
}

/// Drops the checkpoints up to `offset`, included: the other side checkpoints
/// in offset order, so none of them can be matched any more.
fn dropCheckpoints(ring: *[checkpoints_per_conn_max]Checkpoint, len: *u8, offset: u32) void {
    var kept: u8 = 0;
    for (ring[0..len.*]) |cp| {
        if (!seqLt(offset, cp.offset)) continue;
        ring[kept] = cp;
        kept += 1;
    }
    len.* = kept;
}

/// Appends unless full: the oldest are the ones the other side reaches
/// first, so a lagging side still gets every other comparison or so. Keeps
/// offset order: a digest older than the last one kept (a reordered
/// datagram, a new primary that lags the old one) is refused, not asserted —
/// it comes from the network.
fn pushCheckpoint(ring: *[checkpoints_per_conn_max]Checkpoint, len: *u8, cp: Checkpoint) bool {
    if (len.* == checkpoints_per_conn_max) return false;
    if (len.* > 0 and !seqLt(ring[len.* - 1].offset, cp.offset)) return false;
    ring[len.*] = cp;
    len.* += 1;
    return true;
}

const reset_frame_bytes = packet.ethernet_header_len + 20 + 20;
/// Where a segment the agent writes itself goes, and its seq.
const Endpoints = struct {
    destination_mac: Mac,
    source_mac: Mac,
    source_ip: u32,
    destination_ip: u32,
    source_port: u16,
    destination_port: u16,
    seq: u32,
};

/// Ethernet, IPv4 and the TCP header but for ack, window and options (all
/// zero) of a segment with `options_len` bytes of options and no payload;
/// returns the TCP header. Checksums: the IP one here, the TCP one by the caller.
fn writeHeaders(out: []u8, e: Endpoints, options_len: u16, flags: u8) []u8 {
    const total: u16 = 20 + 20 + options_len;
    @memset(out[0 .. packet.ethernet_header_len + total], 0);
    @memcpy(out[0..6], &e.destination_mac);
    @memcpy(out[6..12], &e.source_mac);
    std.mem.writeInt(u16, out[12..14], packet.ethertype_ipv4, .big);
    const ip = out[packet.ethernet_header_len..][0..20];
    ip[0] = 0x45;
    std.mem.writeInt(u16, ip[2..4], total, .big);
    std.mem.writeInt(u16, ip[6..8], 0x4000, .big); // don't fragment
    ip[8] = 64;
    ip[9] = packet.ip_protocol_tcp;
    std.mem.writeInt(u32, ip[12..16], e.source_ip, .big);
    std.mem.writeInt(u32, ip[16..20], e.destination_ip, .big);
    std.mem.writeInt(u16, ip[10..12], ~packet.fold(packet.sumWords(0, ip)), .big);
    const tcp = out[packet.ethernet_header_len + 20 ..][0 .. 20 + options_len];
    std.mem.writeInt(u16, tcp[0..2], e.source_port, .big);
    std.mem.writeInt(u16, tcp[2..4], e.destination_port, .big);
    std.mem.writeInt(u32, tcp[4..8], e.seq, .big);
    tcp[12] = @intCast((20 + options_len) / 4 << 4);
    tcp[13] = flags;
    return tcp;
}

const repair_frame_bytes = packet.ethernet_header_len + 20 + 20 + 12 + 12;
/// A held hole older than this draws repair ACKs, at most this often per connection.
const repair_interval_ns: u64 = 5 * std.time.ns_per_ms;

const RepairAck = struct {
    to: Endpoints,
    ack: u32,
    window: u16,
    tsval: u32,
    tsecr: ?u32,
    /// One SACK block, start and end (null: none).
    sack: ?[2]u32,
};

/// A pure ACK to the client with a timestamp (when the connection has them:
/// PAWS) and at most one SACK block.
fn buildRepairAck(out: *[repair_frame_bytes]u8, r: RepairAck) []u8 {
    const options_len: u16 = @as(u16, if (r.tsecr != null) 12 else 0) + @as(u16, if (r.sack != null) 12 else 0);
    const tcp = writeHeaders(out, r.to, options_len, packet.flag_ack);
    std.mem.writeInt(u32, tcp[8..12], r.ack, .big);
    std.mem.writeInt(u16, tcp[14..16], r.window, .big);
    var o: usize = 20;
    if (r.tsecr) |tsecr| {
        tcp[o] = packet.option_nop;
        tcp[o + 1] = packet.option_nop;
        tcp[o + 2] = packet.option_timestamp;
        tcp[o + 3] = 10;
        std.mem.writeInt(u32, tcp[o + 4 ..][0..4], r.tsval, .big);
        std.mem.writeInt(u32, tcp[o + 8 ..][0..4], tsecr, .big);
        o += 12;
    }
    if (r.sack) |block| {
        tcp[o] = packet.option_nop;
        tcp[o + 1] = packet.option_nop;
        tcp[o + 2] = packet.option_sack;
        tcp[o + 3] = 10;
        std.mem.writeInt(u32, tcp[o + 4 ..][0..4], block[0], .big);
        std.mem.writeInt(u32, tcp[o + 8 ..][0..4], block[1], .big);
    }
    const frame = out[0 .. packet.ethernet_header_len + 20 + 20 + options_len];
    const p = packet.parse(frame) catch unreachable;
    packet.tcpChecksumRecompute(frame, p);
    return frame;
}

/// A bare RST, no options: RFC 7323 lets a RST go without a timestamp (so
/// no PAWS check), and Linux accepts one whose seq is exactly its rcv_nxt.
fn buildReset(out: *[reset_frame_bytes]u8, e: Endpoints) []u8 {
    _ = writeHeaders(out, e, 0, packet.flag_rst);
    const p = packet.parse(out) catch unreachable;
    assert(p.flags == packet.flag_rst and p.payload_len == 0);
    packet.tcpChecksumRecompute(out, p);
    return out;
}

/// The key's own port: the VIP's for a client connection, the primary NF's
/// for an outgoing one.
fn keyPort(key: wire.Key) u16 {
    return @truncate(key);
}

/// A replica's outgoing connection under our NF's own port.
fn localKey(c: *const Conn) wire.Key {
    return (c.key & ~@as(wire.Key, 0xffff)) | c.local_port;
}

/// Roles that take part in the group: a primary, or a replica following one
/// (not failed, not fenced).
fn serving(role: Role) bool {
    return role == .primary or role == .replica;
}

/// `counter * 16 + id`: two candidates never share an epoch.
pub fn epochNext(epoch: u32, id: u8) u32 {
    return (epoch / 16 + 1) * 16 + id;
}

/// a < b in sequence space (RFC 793 modular comparison).
pub fn seqLt(a: u32, b: u32) bool {
    return @as(i32, @bitCast(a -% b)) < 0;
}

/// The sequence number after the segment: SYN and FIN take one each.
fn segmentEnd(p: packet.Packet) u32 {
    var end = p.seq +% p.payload_len;
    if (p.flags & packet.flag_syn != 0) end +%= 1;
    if (p.flags & packet.flag_fin != 0) end +%= 1;
    return end;
}

/// Lowers the ack to `ack` and widens the window by as much, so the window's
/// right edge (ack + window << wscale) stays where the sender put it.
fn writeAckKeepEdge(frame: []u8, p: packet.Packet, ack: u32, wscale: u8) void {
    const edge = p.ack +% (@as(u32, p.window) << @intCast(wscale));
    writeAck(frame, p, ack);
    const span = edge -% ack;
    const unit = @as(u32, 1) << @intCast(wscale);
    const window: u16 = @intCast(@min((span + unit - 1) >> @intCast(wscale), 0xffff));
    var bytes: [2]u8 = undefined;
    std.mem.writeInt(u16, &bytes, window, .big);
    packet.checksumReplace(frame, p, p.tcp_offset + 14, &bytes);
}

fn writeAck(frame: []u8, p: packet.Packet, ack: u32) void {
    var bytes: [4]u8 = undefined;
    std.mem.writeInt(u32, &bytes, ack, .big);
    packet.checksumReplace(frame, p, p.tcp_offset + 8, &bytes);
}

fn rewriteMacs(frame: []u8, destination: Mac, source: Mac) void {
    @memcpy(frame[0..6], &destination);
    @memcpy(frame[6..12], &source);
}

fn fillArp(frame: *[42]u8, op: u16, sender_mac: Mac, sender_ip: [4]u8, target_mac: Mac, target_ip: [4]u8) void {
    std.mem.writeInt(u16, frame[12..14], 0x0806, .big);
    const a = frame[14..];
    std.mem.writeInt(u16, a[0..2], 1, .big); // Ethernet
    std.mem.writeInt(u16, a[2..4], 0x0800, .big); // IPv4
    a[4] = 6;
    a[5] = 4;
    std.mem.writeInt(u16, a[6..8], op, .big);
    @memcpy(a[8..14], &sender_mac);
    @memcpy(a[14..18], &sender_ip);
    @memcpy(a[18..24], &target_mac);
    @memcpy(a[24..28], &target_ip);
}

/// Whether a SACK block lies past the ACK: a D-SACK (an old byte received
/// again, below the ACK) tells of no hole.
fn sacksPastAck(frame: []const u8, p: packet.Packet) bool {
    const sack = p.options.sack_offset orelse return false;
    for (0..p.options.sack_blocks) |i| {
        const left = std.mem.readInt(u32, frame[sack + 8 * i ..][0..4], .big);
        if (seqLt(p.ack, left)) return true;
    }
    return false;
}

/// A segment to the NF built from the client's last header: `payload_len`
/// zero bytes at `seq`, acknowledging `ack`, SACK blocks blanked (they would
/// be stale), checksums computed from scratch.
fn buildFromTemplate(c: *const Conn, out: []u8, seq: u32, ack: u32, payload_len: u16) ?[]u8 {
    const header_len = c.template_len;
    const frame = out[0 .. header_len + payload_len];
    @memcpy(frame[0..header_len], c.template[0..header_len]);
    @memset(frame[header_len..], 0);
    const ip = packet.ethernet_header_len;
    const ip_header_len: u16 = @as(u16, frame[ip] & 0x0f) * 4;
    const tcp = ip + ip_header_len;
    std.mem.writeInt(u16, frame[ip + 2 ..][0..2], header_len - ip + payload_len, .big);
    std.mem.writeInt(u16, frame[ip + 10 ..][0..2], 0, .big);
    std.mem.writeInt(u16, frame[ip + 10 ..][0..2], ~packet.fold(packet.sumWords(0, frame[ip..tcp])), .big);
    std.mem.writeInt(u32, frame[tcp + 4 ..][0..4], seq, .big);
    // Same right edge as the client's last segment: ack + window << scale.
    const old_ack = std.mem.readInt(u32, frame[tcp + 8 ..][0..4], .big);
    const old_window = std.mem.readInt(u16, frame[tcp + 14 ..][0..2], .big);
    const scale: u5 = @intCast(c.client_wscale);
    const template_edge = old_ack +% (@as(u32, old_window) << scale);
    const edge = if (c.edge_known and seqLt(template_edge, c.edge)) c.edge else template_edge;
    const span: u32 = if (seqLt(edge, ack)) 0 else edge -% ack;
    std.mem.writeInt(u16, frame[tcp + 14 ..][0..2], @intCast(@min(span >> scale, 0xffff)), .big);
    std.mem.writeInt(u32, frame[tcp + 8 ..][0..4], ack, .big);
    frame[tcp + 13] = packet.flag_ack;
    const p = packet.parse(frame) catch return null;
    if (p.options.sack_offset) |sack| {
        // kind and length sit just before the first edge.
        @memset(frame[sack - 2 .. sack + @as(u16, p.options.sack_blocks) * 8], packet.option_nop);
    }
    // The client's newest TSval, not the template's: the template skips FIN
    // segments, and once the client's FIN (sent when it finished writing)
    // gave the NF a newer timestamp, PAWS made the NF drop every synthetic
    // ACK built with the older one. Its output then never drained after a
    // takeover: the connection stalled for good (seen under netem loss).
    if (p.options.timestamp_offset) |ts| {
        if (c.client_tsval) |tsval| std.mem.writeInt(u32, frame[ts..][0..4], tsval, .big);
    }
    const q = packet.parse(frame) catch return null;
    packet.tcpChecksumRecompute(frame, q);
    return frame;
}

// ---------------------------------------------------------------- tests

const testing = std.testing;
const fixtures = @import("../packet_fixtures.zig");

/// Collects what a datapath emits.
const Recorder = struct {
    to_nf: std.ArrayListUnmanaged([]u8) = .empty,
    to_client: std.ArrayListUnmanaged([]u8) = .empty,
    to_peer: std.ArrayListUnmanaged([]u8) = .empty,

    fn sink(self: *Recorder) Sink {
        return .{ .ctx = self, .to_nf = toNf, .to_client = toClient, .to_peer = toPeer };
    }
    fn toNf(ctx: *anyopaque, frame: []const u8) void {
        const self: *Recorder = @ptrCast(@alignCast(ctx));
        self.to_nf.append(testing.allocator, testing.allocator.dupe(u8, frame) catch unreachable) catch unreachable;
    }
    fn toClient(ctx: *anyopaque, frame: []const u8) void {
        const self: *Recorder = @ptrCast(@alignCast(ctx));
        self.to_client.append(testing.allocator, testing.allocator.dupe(u8, frame) catch unreachable) catch unreachable;
    }
    fn toPeer(ctx: *anyopaque, peer: u8, datagram: []const u8) void {
        _ = peer;
        const self: *Recorder = @ptrCast(@alignCast(ctx));
        self.to_peer.append(testing.allocator, testing.allocator.dupe(u8, datagram) catch unreachable) catch unreachable;
    }
    fn clear(self: *Recorder) void {
        for (self.to_nf.items) |f| testing.allocator.free(f);
        for (self.to_client.items) |f| testing.allocator.free(f);
        for (self.to_peer.items) |f| testing.allocator.free(f);
        self.to_nf.clearRetainingCapacity();
        self.to_client.clearRetainingCapacity();
        self.to_peer.clearRetainingCapacity();
    }
    fn deinit(self: *Recorder) void {
        self.clear();
        self.to_nf.deinit(testing.allocator);
        self.to_client.deinit(testing.allocator);
        self.to_peer.deinit(testing.allocator);
    }
    /// Datagrams of `kind` sent so far.
    fn count(self: *Recorder, kind: wire.Kind) usize {
        var n: usize = 0;
        for (self.to_peer.items) |d| {
            if ((wire.readHeader(d) catch continue).kind == kind) n += 1;
        }
        return n;
    }
};

fn testConfig(id: u8, primary: bool, peer: [4]u8) Config {
    var config = Config{
        .id = id,
        .vip = .{ 10, 78, 0, 2 }, // the fixtures' server
        .virtual_mac = .{ 2, 0x72, 0x6c, 0, 0, 2 },
        .node_addr = .{ 10, 77, 0, 10 + id },
        .outer_ifindex = 2,
        .inner_ifindex = 3,
        .inner_mac = .{ 0xaa, 0, 0, 0, 0, id },
        .nf_mac = .{ 0xbb, 0, 0, 0, 0, id },
        .primary = primary,
    };
    config.peers[0] = peer;
    config.peer_count = 1;
    return config;
}

fn copyFrame(buf: []u8, frame: []const u8) []u8 {
    @memcpy(buf[0..frame.len], frame);
    return buf[0..frame.len];
}

/// The fixture SYN-ACK with its ISN moved by `shift` and TSval by `ts_shift`.
fn synAckWith(buf: []u8, shift: u32, ts_shift: u32) []u8 {
    const frame = copyFrame(buf, &fixtures.syn_ack);
    const p = packet.parse(frame) catch unreachable;
    packet.translate(frame, p, .{ .seq_delta = shift, .tsval_delta = ts_shift });
    return frame;
}

const Pair = struct {
    p_rec: Recorder = .{},
    r_rec: Recorder = .{},
    primary: *Datapath = undefined,
    replica: *Datapath = undefined,

    fn init(self: *Pair) !void {
        self.primary = try Datapath.init(testing.allocator, testConfig(1, true, .{ 10, 77, 0, 12 }), self.p_rec.sink(), 0);
        self.replica = try Datapath.init(testing.allocator, testConfig(2, false, .{ 10, 77, 0, 11 }), self.r_rec.sink(), 0);
        // Exchange heartbeats so each knows the other's role.
        self.primary.tick(1);
        self.replica.tick(1);
        self.deliverPeers(1);
    }
    fn deinit(self: *Pair) void {
        self.primary.deinit(testing.allocator);
        self.replica.deinit(testing.allocator);
        self.p_rec.deinit();
        self.r_rec.deinit();
    }
    /// Delivers queued datagrams both ways.
    fn deliverPeers(self: *Pair, now: u64) void {
        for (self.p_rec.to_peer.items) |d| self.replica.controlDatagram(0, d, now);
        for (self.r_rec.to_peer.items) |d| self.primary.controlDatagram(0, d, now);
        for (self.p_rec.to_peer.items) |d| testing.allocator.free(d);
        for (self.r_rec.to_peer.items) |d| testing.allocator.free(d);
        self.p_rec.to_peer.clearRetainingCapacity();
        self.r_rec.to_peer.clearRetainingCapacity();
    }
    /// The client's frame reaches both nodes (the switch floods it).
    fn client(self: *Pair, frame: []const u8, now: u64) void {
        var a: [frame_bytes_max]u8 = undefined;
        var b: [frame_bytes_max]u8 = undefined;
        self.primary.outerFrame(copyFrame(&a, frame), now);
        self.replica.outerFrame(copyFrame(&b, frame), now);
    }
    /// Opens the fixtures' connection; the replica's NF uses another ISN and TSval.
    fn handshake(self: *Pair, shift: u32, ts_shift: u32) !void {
        self.client(&fixtures.syn, 10);
        try testing.expectEqual(@as(usize, 0), self.p_rec.to_nf.items.len); // held
        try testing.expectEqual(@as(usize, 1), self.r_rec.to_nf.items.len);
        var buf: [frame_bytes_max]u8 = undefined;
        self.replica.innerFrame(synAckWith(&buf, shift, ts_shift), 20);
        try testing.expectEqual(@as(usize, 0), self.r_rec.to_client.items.len); // replica output is dropped
        self.replica.flushReports();
        self.deliverPeers(30);
        try testing.expectEqual(@as(usize, 1), self.p_rec.to_nf.items.len); // SYN released
        self.primary.innerFrame(copyFrame(&buf, &fixtures.syn_ack), 40);
        try testing.expectEqual(@as(usize, 1), self.p_rec.to_client.items.len);
        try testing.expectEqual(@as(usize, 1), self.p_rec.count(.conn_open));
        self.deliverPeers(50);
    }
};

test "handshake: the primary holds the SYN until the replica's stack answered it" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    try pair.handshake(0x1000_0000, 777);
    const out = pair.p_rec.to_client.items[0];
    // The primary's SYN-ACK goes out unchanged but for the MACs: dst = client, src = VIP's MAC.
    try testing.expectEqualSlices(u8, fixtures.syn_ack[14..], out[14..]);
    try testing.expectEqualSlices(u8, fixtures.syn[6..12], out[0..6]);
    try testing.expectEqualSlices(u8, &pair.primary.config.virtual_mac, out[6..12]);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.held);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.released);
}

test "data: the replica translates ack and TSecr; the primary releases on the replica's ack" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    const shift: u32 = 0xf000_0000; // wraps around 2^32
    const ts_shift: u32 = 12345;
    try pair.handshake(shift, ts_shift);
    pair.p_rec.clear();
    pair.r_rec.clear();
    pair.client(&fixtures.data, 60);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_nf.items.len);
    try testing.expectEqual(@as(usize, 1), pair.r_rec.to_nf.items.len);
    const in = pair.r_rec.to_nf.items[0];
    const p = try packet.parse(in);
    const orig = try packet.parse(&fixtures.data);
    // ack moves into the replica's space (clamped to what its NF sent: its SYN only).
    try testing.expectEqual(orig.ack +% shift, p.ack);
    const ts = p.options.timestamp_offset.?;
    const orig_ts = orig.options.timestamp_offset.?;
    try testing.expectEqual(std.mem.readInt(u32, fixtures.data[orig_ts + 4 ..][0..4], .big) +% ts_shift, std.mem.readInt(u32, in[ts + 4 ..][0..4], .big));
    try testing.expect(packet.checksumsValid(in, p));
    try testing.expectEqualSlices(u8, &pair.replica.config.nf_mac, in[0..6]);
    // The replica's NF acks the 13 bytes; the primary releases them.
    var buf: [frame_bytes_max]u8 = undefined;
    const ack_frame = copyFrame(&buf, &fixtures.syn_ack);
    const q = try packet.parse(ack_frame);
    packet.translate(ack_frame, q, .{ .seq_delta = shift +% 1, .ack_delta = 13, .tsval_delta = ts_shift });
    ack_frame[q.tcp_offset + 13] = packet.flag_ack;
    packet.tcpChecksumRecompute(ack_frame, q);
    pair.replica.innerFrame(ack_frame, 70);
    pair.replica.flushReports();
    pair.deliverPeers(80);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.to_nf.items.len);
    try testing.expectEqualSlices(u8, fixtures.data[14..], pair.p_rec.to_nf.items[0][14..]);
}

test "takeover: silence promotes the replica, which translates its output into the old space" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    const shift: u32 = 0x0123_4567;
    const ts_shift: u32 = 99;
    try pair.handshake(shift, ts_shift);
    pair.client(&fixtures.data, 60);
    pair.r_rec.clear();
    const interval = @as(u64, pair.replica.config.heartbeat_us) * std.time.ns_per_us;
    var now: u64 = 100;
    // The primary goes silent; the replica promotes after miss_threshold intervals.
    while (pair.replica.role == .replica) : (now += interval) {
        pair.replica.tick(now);
        try testing.expect(now < 100 + interval * (pair.replica.config.miss_threshold + 3));
    }
    try testing.expectEqual(Role.primary, pair.replica.role);
    try testing.expect(pair.replica.epoch > pair.primary.epoch);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.kicks);
    // A gratuitous ARP went out, and a kick (one old byte) went to the NF.
    try testing.expectEqual(@as(usize, 1), pair.r_rec.to_client.items.len);
    const kick = try packet.parse(pair.r_rec.to_nf.items[pair.r_rec.to_nf.items.len - 1]);
    try testing.expectEqual(@as(u16, 1), kick.payload_len);
    // Its NF's output now reaches the client in the old primary's space.
    var buf: [frame_bytes_max]u8 = undefined;
    const frame = copyFrame(&buf, &fixtures.syn_ack);
    const q = try packet.parse(frame);
    packet.translate(frame, q, .{ .seq_delta = shift +% 1, .ack_delta = 13, .tsval_delta = ts_shift + 5 });
    frame[q.tcp_offset + 13] = packet.flag_ack;
    packet.tcpChecksumRecompute(frame, q);
    pair.replica.innerFrame(frame, now);
    const out = pair.r_rec.to_client.items[pair.r_rec.to_client.items.len - 1];
    const o = try packet.parse(out);
    const orig = try packet.parse(&fixtures.syn_ack);
    try testing.expectEqual(orig.seq +% 1, o.seq);
    try testing.expectEqual(orig.ack +% 13, o.ack);
    try testing.expectEqual(std.mem.readInt(u32, fixtures.syn_ack[orig.options.timestamp_offset.?..][0..4], .big) +% 5, std.mem.readInt(u32, out[o.options.timestamp_offset.?..][0..4], .big));
    try testing.expect(packet.checksumsValid(out, o));
    // The old primary hears the new epoch and is fenced: it never emits again.
    pair.deliverPeers(now);
    pair.p_rec.clear();
    pair.primary.innerFrame(copyFrame(&buf, &fixtures.syn_ack), now);
    try testing.expectEqual(Role.fenced, pair.primary.role);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_client.items.len);
}

test "a dead replica stops holding the primary" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    try pair.handshake(5, 5);
    pair.p_rec.clear();
    pair.client(&fixtures.data, 60);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_nf.items.len);
    const interval = @as(u64, pair.primary.config.heartbeat_us) * std.time.ns_per_us;
    pair.primary.tick(interval * (pair.primary.config.miss_threshold * replica_drop_factor + 2));
    try testing.expectEqual(@as(usize, 1), pair.p_rec.to_nf.items.len);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.replicas_dropped);
}

test "the replica clamps acks to what its NF sent and acks the rest when the NF catches up" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    try pair.handshake(0, 0);
    pair.r_rec.clear();
    // The client acks 100 bytes of server data the replica's NF has not produced yet.
    var buf: [frame_bytes_max]u8 = undefined;
    const frame = copyFrame(&buf, &fixtures.data);
    const p = try packet.parse(frame);
    packet.translate(frame, p, .{ .ack_delta = 100 });
    pair.replica.outerFrame(frame, 60);
    const in = try packet.parse(pair.r_rec.to_nf.items[0]);
    try testing.expectEqual((try packet.parse(&fixtures.data)).ack, in.ack); // clamped to its SYN-ACK's end
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.acks_clamped_in);
    // Its NF now sends 100 bytes (as seen leaving it): a synthetic ACK follows at once.
    var data_buf: [frame_bytes_max]u8 = undefined;
    const data_out = buildServerData(&data_buf, 100);
    pair.replica.innerFrame(data_out, 70);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.synthetic_acks);
    const synthetic = try packet.parse(pair.r_rec.to_nf.items[pair.r_rec.to_nf.items.len - 1]);
    try testing.expectEqual(in.ack +% 100, synthetic.ack);
    try testing.expectEqual(@as(u16, 0), synthetic.payload_len);
    try testing.expect(packet.checksumsValid(pair.r_rec.to_nf.items[pair.r_rec.to_nf.items.len - 1], synthetic));
}

test "an NF silent while behind the client's acks is nudged with an open window, once per interval" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    try pair.handshake(0, 0);
    // The client acks 100 bytes the replica's NF has not sent (it is parked).
    var buf: [frame_bytes_max]u8 = undefined;
    const frame = copyFrame(&buf, &fixtures.data);
    const p = try packet.parse(frame);
    packet.translate(frame, p, .{ .ack_delta = 100 });
    pair.replica.outerFrame(frame, 60);
    pair.r_rec.clear();
    // Not yet: the NF answered 20 ns ago (the handshake), under the delay.
    pair.replica.tick(100 * std.time.ns_per_ms);
    try testing.expectEqual(@as(u64, 0), pair.replica.counters.nudges);
    // Silent past the delay: one ACK for what it sent, with a window.
    pair.replica.tick(300 * std.time.ns_per_ms);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.nudges);
    const nudge = try packet.parse(pair.r_rec.to_nf.items[pair.r_rec.to_nf.items.len - 1]);
    try testing.expectEqual(p.ack, nudge.ack); // everything its NF sent, nothing more
    try testing.expect(nudge.window > 0);
    try testing.expect(packet.checksumsValid(pair.r_rec.to_nf.items[pair.r_rec.to_nf.items.len - 1], nudge));
    pair.replica.tick(400 * std.time.ns_per_ms);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.nudges);
    // Once its NF caught up with the client, it is left alone.
    var data_buf: [frame_bytes_max]u8 = undefined;
    pair.replica.innerFrame(buildServerData(&data_buf, 100), 500 * std.time.ns_per_ms);
    pair.replica.tick(900 * std.time.ns_per_ms);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.nudges);
}

/// The replica's NF acknowledging the client's SYN (its ISN `shift` past the
/// primary's) with receive window `window`.
fn nfWindowAck(buf: []u8, shift: u32, window: u16) ![]u8 {
    const frame = copyFrame(buf, &fixtures.syn_ack);
    const q = try packet.parse(frame);
    packet.translate(frame, q, .{ .seq_delta = shift +% 1, .tsval_delta = 1 });
    frame[q.tcp_offset + 13] = packet.flag_ack;
    std.mem.writeInt(u16, frame[q.tcp_offset + 14 ..][0..2], window, .big);
    packet.tcpChecksumRecompute(frame, q);
    return frame;
}

/// The client's data fixture without its payload, `advance` bytes further on.
fn bareClientAck(buf: []u8, advance: u32) []u8 {
    const orig = packet.parse(&fixtures.data) catch unreachable;
    const total = fixtures.data.len - orig.payload_len;
    @memcpy(buf[0..total], fixtures.data[0..total]);
    const frame = buf[0..total];
    const ip = packet.ethernet_header_len;
    std.mem.writeInt(u16, frame[ip + 2 ..][0..2], @intCast(total - ip), .big);
    std.mem.writeInt(u16, frame[ip + 10 ..][0..2], 0, .big);
    std.mem.writeInt(u16, frame[ip + 10 ..][0..2], ~packet.fold(packet.sumWords(0, frame[ip .. ip + 20])), .big);
    std.mem.writeInt(u32, frame[orig.tcp_offset + 4 ..][0..4], orig.seq +% advance, .big);
    frame[orig.tcp_offset + 13] = packet.flag_ack;
    const q = packet.parse(frame) catch unreachable;
    packet.tcpChecksumRecompute(frame, q);
    return frame;
}

/// A server->client segment of `len` bytes right after the fixture SYN-ACK.
fn buildServerData(buf: []u8, len: u16) []u8 {
    const base = fixtures.syn_ack;
    const orig = packet.parse(&base) catch unreachable;
    const total = base.len + len;
    @memcpy(buf[0..base.len], &base);
    @memset(buf[base.len..total], 'x');
    const frame = buf[0..total];
    const ip = packet.ethernet_header_len;
    std.mem.writeInt(u16, frame[ip + 2 ..][0..2], @intCast(total - ip), .big);
    std.mem.writeInt(u16, frame[ip + 10 ..][0..2], 0, .big);
    std.mem.writeInt(u16, frame[ip + 10 ..][0..2], ~packet.fold(packet.sumWords(0, frame[ip .. ip + 20])), .big);
    std.mem.writeInt(u32, frame[orig.tcp_offset + 4 ..][0..4], orig.seq +% 1, .big);
    frame[orig.tcp_offset + 13] = packet.flag_ack;
    const q = packet.parse(frame) catch unreachable;
    packet.tcpChecksumRecompute(frame, q);
    return frame;
}

test "ARP for the VIP is answered by the primary only, with the virtual MAC" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    var request: [42]u8 = undefined;
    @memset(request[0..6], 0xff);
    const client_mac: Mac = .{ 0x5a, 1, 2, 3, 4, 5 };
    @memcpy(request[6..12], &client_mac);
    fillArp(&request, 1, client_mac, .{ 10, 78, 0, 1 }, @splat(0), .{ 10, 78, 0, 2 });
    pair.client(&request, 5);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.to_client.items.len);
    try testing.expectEqual(@as(usize, 0), pair.r_rec.to_client.items.len);
    const reply = pair.p_rec.to_client.items[0];
    try testing.expectEqualSlices(u8, &client_mac, reply[0..6]);
    try testing.expectEqual(@as(u16, 2), std.mem.readInt(u16, reply[20..22], .big));
    try testing.expectEqualSlices(u8, &pair.primary.config.virtual_mac, reply[22..28]);
}

test "seqLt wraps; epochs grow and carry the node id" {
    try testing.expect(seqLt(0xffff_fff0, 5));
    try testing.expect(!seqLt(5, 0xffff_fff0));
    try testing.expect(!seqLt(7, 7));
    try testing.expectEqual(@as(u32, 18), epochNext(0, 2));
    try testing.expectEqual(@as(u32, 35), epochNext(18, 3));
}

test "a report that overtakes the client's SYN is kept until the primary sees the SYN" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    var a: [frame_bytes_max]u8 = undefined;
    pair.replica.outerFrame(copyFrame(&a, &fixtures.syn), 10);
    var buf: [frame_bytes_max]u8 = undefined;
    pair.replica.innerFrame(synAckWith(&buf, 7, 7), 20);
    pair.replica.flushReports();
    pair.deliverPeers(30); // the primary has no such connection yet
    pair.primary.outerFrame(copyFrame(&a, &fixtures.syn), 40);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.to_nf.items.len); // not held
    try testing.expectEqual(@as(u64, 0), pair.primary.counters.held);
}

test "a repeated ack from the replica's NF is reported again" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    var a: [frame_bytes_max]u8 = undefined;
    pair.replica.outerFrame(copyFrame(&a, &fixtures.syn), 10);
    var buf: [frame_bytes_max]u8 = undefined;
    pair.replica.innerFrame(synAckWith(&buf, 7, 7), 20);
    pair.replica.flushReports();
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.reports_sent);
    pair.replica.innerFrame(synAckWith(&buf, 7, 7), 30); // the SYN-ACK again
    pair.replica.flushReports();
    try testing.expectEqual(@as(u64, 2), pair.replica.counters.reports_sent);
}

test "sync before serve: a new primary emits nothing until every live member reported" {
    var rec: Recorder = .{};
    defer rec.deinit();
    var config = testConfig(2, false, .{ 10, 77, 0, 11 });
    config.peers[1] = .{ 10, 77, 0, 13 };
    config.peer_count = 2;
    const dp = try Datapath.init(testing.allocator, config, rec.sink(), 0);
    defer dp.deinit(testing.allocator);
    // Heartbeats: node 1 is primary (epoch 17), node 3 a replica.
    var hb: [wire.heartbeat_bytes]u8 = undefined;
    wire.writeHeader(&hb, .{ .kind = .heartbeat, .sender = 1, .role = .primary, .primary = 1, .count = 0, .epoch = 17 });
    wire.writeGroup(&hb, 1 << 2 | 1 << 3);
    dp.controlDatagram(0, &hb, 1);
    wire.writeHeader(&hb, .{ .kind = .heartbeat, .sender = 3, .role = .replica, .primary = 1, .count = 0, .epoch = 17 });
    wire.writeGroup(&hb, 0);
    dp.controlDatagram(1, &hb, 1);
    var buf: [frame_bytes_max]u8 = undefined;
    dp.outerFrame(copyFrame(&buf, &fixtures.syn), 2);
    dp.innerFrame(synAckWith(&buf, 0, 0), 3);
    var open_msg: [wire.header_bytes + wire.conn_open_bytes]u8 = undefined;
    const orig = try packet.parse(&fixtures.syn_ack);
    wire.writeHeader(&open_msg, .{ .kind = .conn_open, .sender = 1, .role = .primary, .primary = 1, .count = 1, .epoch = 17 });
    wire.writeConnOpen(&open_msg, 0, .{ .conn = wire.key(0x0a4e0001, 39714, 7000), .isn = orig.seq, .tsval = 0, .has_ts = true });
    dp.controlDatagram(0, &open_msg, 4);
    dp.outerFrame(copyFrame(&buf, &fixtures.data), 5);
    dp.promote(6, 0, false);
    try testing.expectEqual(Role.primary, dp.role);
    try testing.expectEqual(@as(u64, 0), dp.counters.kicks); // node 3 has not reported
    rec.clear();
    dp.innerFrame(buildServerData(&buf, 10), 7);
    try testing.expectEqual(@as(usize, 0), rec.to_client.items.len);
    try testing.expectEqual(@as(u64, 1), dp.counters.withheld);
    // Node 3 reports it holds the SYN only: the kick goes out, and acks are clamped to its prefix.
    var report: [wire.header_bytes + wire.report_bytes]u8 = undefined;
    wire.writeHeader(&report, .{ .kind = .rcv_report, .sender = 3, .role = .replica, .primary = 2, .count = 1, .epoch = dp.epoch });
    const syn = try packet.parse(&fixtures.syn);
    wire.writeReport(&report, 0, .{ .conn = wire.key(0x0a4e0001, 39714, 7000), .rcv_nxt = syn.seq +% 1 });
    dp.controlDatagram(1, &report, 8);
    try testing.expectEqual(@as(u64, 1), dp.counters.kicks);
    dp.innerFrame(buildServerData(&buf, 10), 9);
    const out = try packet.parse(rec.to_client.items[rec.to_client.items.len - 1]);
    try testing.expectEqual(syn.seq +% 1, out.ack);
}

test "a clamped ack keeps the client's window right edge" {
    var buf: [frame_bytes_max]u8 = undefined;
    const frame = copyFrame(&buf, &fixtures.data);
    const p = try packet.parse(frame);
    const wscale: u8 = 7;
    const edge = p.ack +% (@as(u32, p.window) << wscale);
    writeAckKeepEdge(frame, p, p.ack -% 100_000, wscale);
    const q = try packet.parse(frame);
    try testing.expectEqual(p.ack -% 100_000, q.ack);
    // Rounded up to the next window unit: never narrower than the client's.
    const new_edge = q.ack +% (@as(u32, q.window) << wscale);
    try testing.expect(!seqLt(new_edge, edge));
    try testing.expect(new_edge -% edge < (@as(u32, 1) << wscale));
    try testing.expect(packet.checksumsValid(frame, q));
}

test "a segment that waited for the NF's window goes in with the client's newest TSval (PAWS)" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    const shift: u32 = 0x10;
    try pair.handshake(shift, 1);
    // The replica's NF advertises a zero window.
    var buf: [frame_bytes_max]u8 = undefined;
    pair.replica.innerFrame(try nfWindowAck(&buf, shift, 0), 40);
    // Client data past it waits, and the next segment, 10 ticks newer, too;
    // but its ACK goes alone at once, with its TSval: the NF's ts_recent moves.
    pair.client(&fixtures.data, 50);
    var next_buf: [frame_bytes_max]u8 = undefined;
    const next = copyFrame(&next_buf, &fixtures.data);
    const d = try packet.parse(next);
    const old_tsval = std.mem.readInt(u32, next[d.options.timestamp_offset.?..][0..4], .big);
    packet.translate(next, d, .{ .seq_delta = d.payload_len, .tsval_delta = 10 });
    pair.client(next, 60);
    try testing.expectEqual(@as(u64, 2), pair.replica.counters.waited_for_window);
    const alone = pair.r_rec.to_nf.items[pair.r_rec.to_nf.items.len - 1];
    const a = try packet.parse(alone);
    try testing.expectEqual(old_tsval +% 10, std.mem.readInt(u32, alone[a.options.timestamp_offset.?..][0..4], .big));
    pair.r_rec.clear();
    // The window opens: the segment goes in, no older than what the NF saw.
    pair.replica.innerFrame(try nfWindowAck(&buf, shift, 100), 70);
    try testing.expectEqual(@as(usize, 2), pair.r_rec.to_nf.items.len);
    const fed_frame = pair.r_rec.to_nf.items[0];
    const fed = try packet.parse(fed_frame);
    try testing.expectEqual(d.payload_len, fed.payload_len);
    try testing.expectEqual(old_tsval +% 10, std.mem.readInt(u32, fed_frame[fed.options.timestamp_offset.?..][0..4], .big));
    try testing.expect(packet.checksumsValid(fed_frame, fed));
}

test "a D-SACK block (below the ACK) tells of no hole; a block past the ACK does" {
    var buf: [frame_bytes_max]u8 = undefined;
    const frame = copyFrame(&buf, &fixtures.sack_aligned);
    const p = try packet.parse(frame);
    try testing.expect(sacksPastAck(frame, p));
    const sack = p.options.sack_offset.?;
    for (0..p.options.sack_blocks) |i| {
        std.mem.writeInt(u32, frame[sack + 8 * i ..][0..4], p.ack -% 1, .big);
        std.mem.writeInt(u32, frame[sack + 8 * i + 4 ..][0..4], p.ack, .big);
    }
    try testing.expect(!sacksPastAck(frame, p));
    std.mem.writeInt(u32, frame[sack + 8 ..][0..4], p.ack +% 10, .big);
    std.mem.writeInt(u32, frame[sack + 12 ..][0..4], p.ack +% 20, .big);
    try testing.expect(sacksPastAck(frame, p));
    try testing.expect(!sacksPastAck(&fixtures.data, try packet.parse(&fixtures.data)));
}

test "a replica replays its NF's unacknowledged output at takeover" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    try pair.handshake(0x40, 3);
    pair.client(&fixtures.data, 60);
    // The replica's NF sends 100 bytes (shifted into its space); the client never acks them.
    var buf: [frame_bytes_max]u8 = undefined;
    const out = buildServerData(&buf, 100);
    const q = try packet.parse(out);
    packet.translate(out, q, .{ .seq_delta = 0x40, .tsval_delta = 3 });
    pair.replica.innerFrame(out, 70);
    try testing.expectEqual(@as(usize, 0), pair.r_rec.to_client.items.len);
    pair.r_rec.clear();
    pair.replica.promote(80, 0, false);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.replayed);
    // GARP, then the replayed segment in the old primary's space.
    const sent = pair.r_rec.to_client.items[pair.r_rec.to_client.items.len - 1];
    const r = try packet.parse(sent);
    try testing.expectEqual(@as(u16, 100), r.payload_len);
    try testing.expectEqual((try packet.parse(&fixtures.syn_ack)).seq +% 1, r.seq);
    try testing.expect(packet.checksumsValid(sent, r));
}

test "a replica the primary dropped from its group never takes over" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    // Pair.init exchanged heartbeats before the primary knew the replica:
    // the next one lists it.
    pair.primary.tick(2 * std.time.ns_per_ms);
    pair.deliverPeers(2 * std.time.ns_per_ms);
    try testing.expect(pair.replica.in_group);
    // The primary stops hearing the replica and drops it; its heartbeat says so.
    const interval = @as(u64, pair.primary.config.heartbeat_us) * std.time.ns_per_us;
    var now: u64 = interval * (pair.primary.config.miss_threshold * replica_drop_factor + 5);
    pair.primary.tick(now);
    try testing.expectEqual(@as(u16, 0), pair.primary.groupMask());
    pair.deliverPeers(now);
    try testing.expect(pair.replica.dropped);
    // Then the primary dies: the dropped replica stays a replica.
    const until = now + interval * (pair.replica.config.miss_threshold + 5);
    while (now < until) : (now += interval) pair.replica.tick(now);
    try testing.expectEqual(Role.replica, pair.replica.role);
}

test "migration: the primary hands over, the target serves at once and keeps it as a member" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    pair.primary.tick(2 * std.time.ns_per_ms); // a heartbeat that lists the replica
    pair.deliverPeers(2 * std.time.ns_per_ms);
    try pair.handshake(0x777, 9);
    pair.p_rec.clear();
    pair.r_rec.clear();
    // Client data the replica's stack has not acknowledged yet: held on the primary.
    pair.client(&fixtures.data, 60);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_nf.items.len);
    const old_epoch = pair.primary.epoch;
    // Not a member of this group: refused, nothing changes.
    pair.primary.requestMigrate(9, 61);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.migrations_refused);
    try testing.expectEqual(Role.primary, pair.primary.role);
    pair.primary.requestMigrate(2, 62);
    try testing.expectEqual(Role.replica, pair.primary.role);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.migrations_out);
    // The held segment reaches the old primary's NF now (it acknowledges to no one).
    try testing.expectEqual(@as(usize, 1), pair.p_rec.to_nf.items.len);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.count(.handover));
    // Its NF's output no longer reaches the client.
    var buf: [frame_bytes_max]u8 = undefined;
    pair.primary.innerFrame(buildServerData(&buf, 50), 63);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_client.items.len);
    // The target promotes on the handover alone, with no detection delay.
    for (pair.p_rec.to_peer.items) |d| {
        if ((try wire.readHeader(d)).kind == .handover) pair.replica.controlDatagram(0, d, 64);
    }
    try testing.expectEqual(Role.primary, pair.replica.role);
    try testing.expect(pair.replica.epoch > old_epoch);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.migrations_in);
    try testing.expectEqual(@as(u64, 0), pair.replica.counters.failovers);
    try testing.expect(pair.replica.takeover_planned);
    // A heartbeat the old primary's thread sent just before the handover,
    // arriving late, does not make it primary again (nor drop it from the group).
    var stale: [wire.heartbeat_bytes]u8 = undefined;
    wire.writeHeader(&stale, .{ .kind = .heartbeat, .sender = 1, .role = .primary, .primary = 1, .count = 0, .epoch = old_epoch });
    wire.writeGroup(&stale, 1 << 2);
    pair.replica.controlDatagram(0, &stale, 64);
    try testing.expectEqual(Role.replica, pair.replica.peers[0].role);
    try testing.expect(pair.replica.groupMask() & (1 << 1) != 0);
    // It waits for the old primary's report (a member now) before resuming.
    try testing.expectEqual(@as(u32, 1), pair.replica.takeover_conns);
    try testing.expectEqual(@as(u32, 0), pair.replica.takeover_resumed);
    // The old primary's reports, sent right after the handover, let it resume
    // without waiting for a heartbeat round trip.
    try testing.expect(pair.p_rec.count(.rcv_report) >= 1);
    pair.deliverPeers(65); // and the new primary's heartbeat reaches the old one
    try testing.expectEqual(@as(u32, 1), pair.replica.takeover_resumed);
    try testing.expectEqual(Role.replica, pair.primary.role); // not fenced: it handed over
    try testing.expectEqual(pair.replica.epoch, pair.primary.epoch);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.kicks);
    // Ticks resend nothing once the target is primary of the newer epoch.
    const sent = pair.primary.counters.handovers_sent;
    pair.primary.tick(10 * std.time.ns_per_ms);
    try testing.expectEqual(sent, pair.primary.counters.handovers_sent);
}

test "migration: a lost handover is resent until the target serves" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    pair.primary.tick(2 * std.time.ns_per_ms);
    pair.deliverPeers(2 * std.time.ns_per_ms);
    pair.primary.requestMigrate(2, 3 * std.time.ns_per_ms);
    // The datagram is lost.
    for (pair.p_rec.to_peer.items) |d| testing.allocator.free(d);
    pair.p_rec.to_peer.clearRetainingCapacity();
    try testing.expectEqual(Role.replica, pair.replica.role);
    pair.primary.tick(5 * std.time.ns_per_ms);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.count(.handover));
    pair.deliverPeers(5 * std.time.ns_per_ms);
    try testing.expectEqual(Role.primary, pair.replica.role);
}

// ---------------------------------------------------------------- divergence tests

/// Byte `offset` of the test NF's output stream.
fn patternByte(offset: u32) u8 {
    return @truncate(offset *% 131 +% (offset >> 9));
}

/// A segment of the NF's output: stream bytes [offset, offset + len) of the
/// pattern, `corrupt_at` (a stream offset) flipped, bytes before `garbage_to`
/// overwritten with garbage; in a space shifted by `shift`/`ts_shift`.
const SegmentOptions = struct { shift: u32 = 0, ts_shift: u32 = 0, corrupt_at: ?u32 = null, garbage_to: u32 = 0 };

fn outputSegment(buf: []u8, offset: u32, len: u16, o: SegmentOptions) []u8 {
    const frame = buildServerData(buf, len);
    const p = packet.parse(frame) catch unreachable;
    const payload = frame[p.tcp_offset + p.tcp_header_len ..][0..len];
    for (payload, 0..) |*b, i| {
        const at = offset + @as(u32, @intCast(i));
        b.* = if (at < o.garbage_to) 0xee else patternByte(at);
        if (o.corrupt_at == at) b.* ^= 0x01;
    }
    std.mem.writeInt(u32, frame[p.tcp_offset + 4 ..][0..4], p.seq +% offset, .big);
    packet.tcpChecksumRecompute(frame, p);
    packet.translate(frame, p, .{ .seq_delta = o.shift, .tsval_delta = o.ts_shift });
    return frame;
}

/// The NF on `dp` writes stream bytes [from, to) in `segment`-byte segments,
/// skipping the segment that starts at `lose` (a frame the agent missed).
fn nfWrites(dp: *Datapath, from: u32, to: u32, segment: u16, o: SegmentOptions, lose: ?u32, now: u64) void {
    var buf: [frame_bytes_max]u8 = undefined;
    var at = from;
    while (at < to) : (at += segment) {
        if (lose == at) continue;
        const len: u16 = @intCast(@min(segment, to - at));
        dp.innerFrame(outputSegment(&buf, at, len, o), now);
    }
}

const dv_shift: u32 = 0x0bad_0000;
const dv_ts_shift: u32 = 777;

/// A pair with an open connection and the client's first data segment.
fn divergencePair(pair: *Pair) !void {
    try pair.init();
    try pair.handshake(dv_shift, dv_ts_shift);
    pair.client(&fixtures.data, 60);
    pair.replica.flushReports();
    pair.deliverPeers(61);
}

test "divergence: the same output on both nodes compares equal" {
    var pair: Pair = .{};
    try divergencePair(&pair);
    defer pair.deinit();
    const end = 2 * output_checkpoint_bytes + 1000;
    nfWrites(pair.primary, 0, end, 1400, .{}, null, 70);
    nfWrites(pair.replica, 0, end, 1400, .{ .shift = dv_shift, .ts_shift = dv_ts_shift }, null, 70);
    pair.primary.flushReports();
    try testing.expectEqual(@as(u64, 2), pair.primary.counters.digests_sent);
    pair.deliverPeers(80);
    try testing.expectEqual(@as(u64, 2), pair.replica.counters.digests_received);
    try testing.expectEqual(@as(u64, 2), pair.replica.counters.digests_compared);
    try testing.expectEqual(@as(u64, 0), pair.replica.counters.divergences);
    try testing.expectEqual(@as(u32, 0), pair.replica.divergence().connections);
}

test "divergence: a different byte marks the replica's copy stale and frees the primary" {
    var pair: Pair = .{};
    try divergencePair(&pair);
    defer pair.deinit();
    const end = output_checkpoint_bytes + 1000;
    nfWrites(pair.primary, 0, end, 1400, .{}, null, 70);
    // The primary's digest arrives first: the replica compares when it gets there.
    pair.primary.flushReports();
    pair.deliverPeers(71);
    pair.r_rec.clear();
    nfWrites(pair.replica, 0, end, 1400, .{ .shift = dv_shift, .ts_shift = dv_ts_shift, .corrupt_at = 40_000 }, null, 72);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.digests_compared);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.divergences);
    const d = pair.replica.divergence();
    try testing.expectEqual(@as(u32, 1), d.connections);
    try testing.expect(d.list[0].here);
    try testing.expectEqual(output_checkpoint_bytes, d.list[0].offset);
    // Its NF's copy is reset at once: a RST at what its stack acknowledged.
    try testing.expectEqual(@as(usize, 1), pair.r_rec.to_nf.items.len);
    const rst_frame = pair.r_rec.to_nf.items[0];
    const rst = try packet.parse(rst_frame);
    try testing.expectEqual(packet.flag_rst, rst.flags);
    // (the output segments here acknowledge the client's SYN only).
    try testing.expectEqual((try packet.parse(&fixtures.data)).seq, rst.seq);
    try testing.expect(packet.checksumsValid(rst_frame, rst));
    try testing.expectEqualSlices(u8, &pair.replica.config.nf_mac, rst_frame[0..6]);
    // Nothing of that connection is cached for a takeover any more.
    try testing.expectEqual(@as(usize, 0), pair.r_rec.to_client.items.len);
    // The primary is told, and stops holding the client's bytes for it.
    pair.replica.flushReports();
    try testing.expectEqual(@as(usize, 1), pair.r_rec.count(.conn_stale));
    pair.deliverPeers(73);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.divergences_reported);
    const pd = pair.primary.divergence();
    try testing.expect(!pd.list[0].here);
    try testing.expectEqual(@as(u16, 1) << 2, pd.list[0].reported_by);
    pair.p_rec.clear();
    pair.r_rec.clear();
    var buf: [frame_bytes_max]u8 = undefined;
    const more = copyFrame(&buf, &fixtures.data);
    const q = try packet.parse(more);
    packet.translate(more, q, .{ .seq_delta = 13 }); // the client's next 13 bytes
    pair.client(more, 74);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.to_nf.items.len); // not held
    try testing.expectEqual(@as(usize, 0), pair.r_rec.to_nf.items.len); // never to a stale copy
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.stale_frames);
    // The replica repeats its notice while client frames come (it may be lost), rate-limited.
    pair.replica.flushReports();
    try testing.expectEqual(@as(usize, 0), pair.r_rec.count(.conn_stale));
    pair.client(more, 74 + stale_notice_resend_ns);
    pair.replica.flushReports();
    try testing.expectEqual(@as(usize, 1), pair.r_rec.count(.conn_stale));
    pair.deliverPeers(75 + stale_notice_resend_ns);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.divergences_reported); // once per replica
}

test "divergence after a per-connection migration: the owner sends the digests, a member that differs tells the owner" {
    var pair: Pair = .{};
    try divergencePair(&pair);
    defer pair.deinit();
    const syn = try packet.parse(&fixtures.syn);
    pair.primary.requestConnMigrate(2, syn.source_ip, syn.source_port, 62);
    try testing.expectEqual(.handed, pair.primary.conn_request.result);
    pair.deliverPeers(63);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.conn_migrations_in);
    pair.p_rec.clear();
    pair.r_rec.clear();
    const end = output_checkpoint_bytes + 1000;
    // The owner (a replica by role) digests its output for the members.
    nfWrites(pair.replica, 0, end, 1400, .{ .shift = dv_shift, .ts_shift = dv_ts_shift }, null, 70);
    pair.replica.flushReports();
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.digests_sent);
    try testing.expectEqual(@as(u64, 0), pair.primary.counters.digests_sent);
    pair.deliverPeers(71);
    // The primary, a member of it now, compares and finds its own copy differs.
    nfWrites(pair.primary, 0, end, 1400, .{ .corrupt_at = 30_000 }, null, 72);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.digests_compared);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.divergences);
    try testing.expect(pair.primary.divergence().list[0].here);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_client.items.len); // no reset: not its to serve
    // Its notice goes to the owner, which stops holding the client's bytes for it.
    pair.primary.flushReports();
    try testing.expectEqual(@as(usize, 1), pair.p_rec.count(.conn_stale));
    pair.deliverPeers(73);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.divergences_reported);
    try testing.expectEqual(@as(u16, 1) << 1, pair.replica.divergence().list[0].reported_by);
    // Nor can the connection be migrated back to a stale copy.
    pair.replica.requestConnMigrate(1, syn.source_ip, syn.source_port, 74);
    try testing.expectEqual(.bad_target, pair.replica.conn_request.result);
}

test "divergence: retransmitted and overlapping segments hash only their new bytes" {
    var pair: Pair = .{};
    try divergencePair(&pair);
    defer pair.deinit();
    const end = output_checkpoint_bytes + 500;
    nfWrites(pair.primary, 0, end, 1400, .{}, null, 70);
    // The replica's NF cuts its stream differently, resends old bytes, and
    // sends segments that straddle the hashed end. Bytes already hashed are
    // garbage in the resent copies: hashing any of them would change the digest.
    const o: SegmentOptions = .{ .shift = dv_shift, .ts_shift = dv_ts_shift };
    var buf: [frame_bytes_max]u8 = undefined;
    var at: u32 = 0;
    while (at < end) {
        const len: u16 = @intCast(@min(1000, end - at));
        pair.replica.innerFrame(outputSegment(&buf, at, len, o), 70);
        at += len;
        if (at >= 2000 and at < end) {
            var resent = o;
            resent.garbage_to = at;
            // A plain retransmission, then a straddling one.
            pair.replica.innerFrame(outputSegment(&buf, at - 2000, 1500, resent), 70);
            const straddle: u16 = @intCast(@min(700, end - (at - 300)));
            pair.replica.innerFrame(outputSegment(&buf, at - 300, straddle, resent), 70);
            at = at - 300 + straddle;
        }
    }
    pair.primary.flushReports();
    pair.deliverPeers(80);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.digests_compared);
    try testing.expectEqual(@as(u64, 0), pair.replica.counters.divergences);
    try testing.expectEqual(@as(u64, 0), pair.replica.counters.digest_gaps);
}

test "divergence: a frame the agent missed costs one window's comparison, not the rest" {
    var pair: Pair = .{};
    try divergencePair(&pair);
    defer pair.deinit();
    const end = 3 * output_checkpoint_bytes;
    nfWrites(pair.primary, 0, end, 1024, .{}, null, 70);
    nfWrites(pair.replica, 0, end, 1024, .{ .shift = dv_shift, .ts_shift = dv_ts_shift }, 10 * 1024, 70);
    pair.primary.flushReports();
    pair.deliverPeers(80);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.digest_gaps);
    try testing.expectEqual(@as(u64, 3), pair.replica.counters.digests_received);
    try testing.expectEqual(@as(u64, 2), pair.replica.counters.digests_compared);
    try testing.expectEqual(@as(u64, 0), pair.replica.counters.divergences);
}

test "divergence: a stale connection is reset towards the client at takeover, never served" {
    var pair: Pair = .{};
    try divergencePair(&pair);
    defer pair.deinit();
    const end = output_checkpoint_bytes;
    nfWrites(pair.primary, 0, end, 1400, .{}, null, 70);
    nfWrites(pair.replica, 0, end, 1400, .{ .shift = dv_shift, .ts_shift = dv_ts_shift, .corrupt_at = 5 }, null, 70);
    pair.primary.flushReports();
    pair.deliverPeers(80);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.divergences);
    // The primary serves on; the client acknowledges 500 more bytes of its output.
    var acked: [frame_bytes_max]u8 = undefined;
    const ack_frame = copyFrame(&acked, &fixtures.data);
    packet.translate(ack_frame, try packet.parse(ack_frame), .{ .ack_delta = 500 });
    pair.client(ack_frame, 85);
    pair.r_rec.clear();
    pair.replica.promote(90, 0, false);
    try testing.expectEqual(Role.primary, pair.replica.role);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.stale_resets);
    try testing.expectEqual(@as(u64, 0), pair.replica.counters.kicks);
    try testing.expectEqual(@as(u64, 0), pair.replica.counters.replayed);
    // GARP, then a RST at the last byte the client acknowledged, in the old primary's space.
    try testing.expectEqual(@as(usize, 2), pair.r_rec.to_client.items.len);
    const out = pair.r_rec.to_client.items[1];
    const r = try packet.parse(out);
    const data = try packet.parse(&fixtures.data);
    try testing.expectEqual(packet.flag_rst, r.flags);
    try testing.expectEqual(data.ack +% 500, r.seq);
    try testing.expectEqual(data.destination_ip, r.source_ip);
    try testing.expectEqual(data.source_ip, r.destination_ip);
    try testing.expectEqual(data.source_port, r.destination_port);
    try testing.expectEqual(data.destination_port, r.source_port);
    try testing.expect(packet.checksumsValid(out, r));
    try testing.expectEqualSlices(u8, fixtures.data[6..12], out[0..6]);
    try testing.expectEqualSlices(u8, &pair.replica.config.virtual_mac, out[6..12]);
    // A late client segment draws another RST, at its own ack; its NF gets nothing.
    var buf: [frame_bytes_max]u8 = undefined;
    const late = copyFrame(&buf, &fixtures.data);
    packet.translate(late, data, .{ .ack_delta = 1000 });
    pair.r_rec.clear();
    pair.replica.outerFrame(late, 95);
    try testing.expectEqual(@as(usize, 0), pair.r_rec.to_nf.items.len);
    try testing.expectEqual(@as(usize, 1), pair.r_rec.to_client.items.len);
    const again = try packet.parse(pair.r_rec.to_client.items[0]);
    try testing.expectEqual(packet.flag_rst, again.flags);
    try testing.expectEqual(data.ack +% 1000, again.seq);
    // Its NF's late output goes nowhere either.
    nfWrites(pair.replica, end, end + 1400, 1400, .{ .shift = dv_shift, .ts_shift = dv_ts_shift }, null, 96);
    try testing.expectEqual(@as(usize, 1), pair.r_rec.to_client.items.len);
}

test "divergence: a new primary still checks the old primary's last digests" {
    var pair: Pair = .{};
    try divergencePair(&pair);
    defer pair.deinit();
    const end = output_checkpoint_bytes;
    nfWrites(pair.primary, 0, end, 1400, .{}, null, 70);
    pair.primary.flushReports();
    pair.deliverPeers(71); // the replica has not reached that window yet
    pair.replica.promote(72, 0, false);
    try testing.expectEqual(@as(u64, 0), pair.replica.counters.stale_resets);
    pair.r_rec.clear();
    // Its NF then writes that window differently: reset, not served on.
    nfWrites(pair.replica, 0, end, 1400, .{ .shift = dv_shift, .ts_shift = dv_ts_shift, .corrupt_at = end - 1 }, null, 73);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.divergences);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.stale_resets);
    const last = try packet.parse(pair.r_rec.to_client.items[pair.r_rec.to_client.items.len - 1]);
    try testing.expectEqual(packet.flag_rst, last.flags);
}

test "divergence: CRC-32C streams: pieces hash as the whole" {
    var bytes: [5000]u8 = undefined;
    for (&bytes, 0..) |*b, i| b.* = patternByte(@intCast(i));
    var crc: OutputCrc = .init();
    crc.update(bytes[0..1]);
    crc.update(bytes[1..1449]);
    crc.update(bytes[1449..]);
    try testing.expectEqual(OutputCrc.hash(&bytes), crc.final());
    try testing.expect(OutputCrc.hash(bytes[0..4999]) != crc.final());
}

test "per-connection migration: the primary hands one connection to a replica, which serves it" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    pair.primary.tick(2 * std.time.ns_per_ms);
    pair.deliverPeers(2 * std.time.ns_per_ms);
    try pair.handshake(0x5000, 7);
    pair.client(&fixtures.data, 55); // the client's first data (the replica's agent keeps its header)
    pair.p_rec.clear();
    pair.r_rec.clear();
    const syn = try packet.parse(&fixtures.syn);
    // A client address the primary has no connection from: not found.
    pair.primary.requestConnMigrate(2, syn.source_ip +% 1, syn.source_port, 60);
    try testing.expectEqual(.not_found, pair.primary.conn_request.result);
    // A target that is no live peer: refused.
    pair.primary.requestConnMigrate(9, syn.source_ip, syn.source_port, 61);
    try testing.expectEqual(.bad_target, pair.primary.conn_request.result);
    pair.primary.requestConnMigrate(2, syn.source_ip, syn.source_port, 62);
    try testing.expectEqual(.handed, pair.primary.conn_request.result);
    try testing.expectEqual(@as(u16, 1), pair.primary.conn_request.matched);
    try testing.expectEqual(Role.primary, pair.primary.role); // the node stays primary
    try testing.expectEqual(@as(usize, 1), pair.p_rec.count(.conn_owner));
    try testing.expectEqual(@as(usize, 1), pair.p_rec.count(.rcv_report));
    // The replica serves it once the old owner's report is in: the notice and the report came together.
    pair.deliverPeers(63);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.conn_migrations_in);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.kicks);
    try testing.expectEqual(Role.replica, pair.replica.role);
    // Asked again, on the node that no longer serves it: it says who does.
    pair.primary.requestConnMigrate(2, syn.source_ip, syn.source_port, 64);
    try testing.expectEqual(.not_served_here, pair.primary.conn_request.result);
    try testing.expectEqual(@as(u8, 2), pair.primary.conn_request.owner);
    // Client data: the new owner holds it for the old one, which feeds its NF at once.
    pair.p_rec.clear();
    pair.r_rec.clear();
    pair.client(&fixtures.data, 70);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.to_nf.items.len);
    try testing.expectEqual(@as(usize, 0), pair.r_rec.to_nf.items.len);
    // The old owner's NF acknowledges: its report releases the new owner's hold.
    var buf: [frame_bytes_max]u8 = undefined;
    const ack_frame = copyFrame(&buf, &fixtures.syn_ack);
    const q = try packet.parse(ack_frame);
    packet.translate(ack_frame, q, .{ .seq_delta = 1, .ack_delta = 13 });
    ack_frame[q.tcp_offset + 13] = packet.flag_ack;
    packet.tcpChecksumRecompute(ack_frame, q);
    pair.primary.innerFrame(ack_frame, 71);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_client.items.len); // not its to emit
    pair.primary.flushReports();
    pair.deliverPeers(72);
    try testing.expectEqual(@as(usize, 1), pair.r_rec.to_nf.items.len);
    // The new owner's NF output reaches the client, in the primary's space.
    var out_buf: [frame_bytes_max]u8 = undefined;
    const out = buildServerData(&out_buf, 40);
    const o = try packet.parse(out);
    packet.translate(out, o, .{ .seq_delta = 0x5000, .tsval_delta = 7 });
    pair.replica.innerFrame(out, 73);
    const sent = pair.r_rec.to_client.items[pair.r_rec.to_client.items.len - 1];
    const r = try packet.parse(sent);
    try testing.expectEqual(@as(u16, 40), r.payload_len);
    try testing.expectEqual((try packet.parse(&fixtures.syn_ack)).seq +% 1, r.seq);
}

test "a primary cut off from peers and clients at once passes nothing until it hears a peer" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    try pair.handshake(0x10, 1);
    pair.p_rec.clear();
    const silence = pair.primary.silenceNs();
    // Peers and client fall silent together (its link went down).
    var now: u64 = 50 + silence + silence / 2;
    pair.primary.tick(now);
    try testing.expect(pair.primary.isolated);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.isolations);
    // The link is back: the client's retransmission reaches neither its NF...
    var buf: [frame_bytes_max]u8 = undefined;
    now += 1000;
    pair.primary.outerFrame(copyFrame(&buf, &fixtures.data), now);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_nf.items.len);
    // ...nor does its NF's output reach the client.
    pair.primary.innerFrame(buildServerData(&buf, 10), now);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_client.items.len);
    try testing.expectEqual(@as(u64, 2), pair.primary.counters.isolated_drops);
    // A peer's heartbeat ends it (and would fence it, were that a newer primary).
    var hb: [wire.heartbeat_bytes]u8 = undefined;
    wire.writeHeader(&hb, .{ .kind = .heartbeat, .sender = 2, .role = .replica, .primary = 1, .count = 0, .epoch = pair.primary.epoch });
    wire.writeGroup(&hb, 0);
    pair.primary.controlDatagram(0, &hb, now);
    try testing.expect(!pair.primary.isolated);
}

test "an isolated primary whose client keeps coming for a silence with no peer serves alone" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    try pair.handshake(0x10, 1);
    const silence = pair.primary.silenceNs();
    var now: u64 = 50 + silence + silence / 2;
    pair.primary.tick(now);
    try testing.expect(pair.primary.isolated);
    var buf: [frame_bytes_max]u8 = undefined;
    while (now < 50 + 3 * silence) : (now += silence / 10) {
        pair.primary.outerFrame(copyFrame(&buf, &fixtures.data), now);
    }
    try testing.expect(!pair.primary.isolated);
    // Long after, with the peer dead for good, idle clients do not isolate it again.
    pair.primary.tick(now + 10 * silence);
    try testing.expect(!pair.primary.isolated);
}

test "a segment lost on the replica's port only: the replica reports the hole, the primary draws a fast retransmit" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    const shift: u32 = 0x300;
    try pair.handshake(shift, 2);
    pair.p_rec.clear();
    pair.r_rec.clear();
    // S reaches the primary only; S2, right after it, reaches both.
    var s_buf: [frame_bytes_max]u8 = undefined;
    pair.primary.outerFrame(copyFrame(&s_buf, &fixtures.data), 60);
    var s2_buf: [frame_bytes_max]u8 = undefined;
    const s2 = copyFrame(&s2_buf, &fixtures.data);
    const d = try packet.parse(s2);
    packet.translate(s2, d, .{ .seq_delta = d.payload_len });
    pair.client(s2, 61);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_nf.items.len); // both held
    // The replica's NF answers S2 with a duplicate ACK carrying a SACK block.
    const synack = try packet.parse(&fixtures.syn_ack);
    var ack_buf: [repair_frame_bytes]u8 = undefined;
    const hole_ack = buildRepairAck(&ack_buf, .{
        .to = .{
            .destination_mac = fixtures.syn[6..12].*,
            .source_mac = pair.replica.config.nf_mac,
            .source_ip = synack.source_ip,
            .destination_ip = synack.destination_ip,
            .source_port = synack.source_port,
            .destination_port = synack.destination_port,
            .seq = synack.seq +% 1 +% shift,
        },
        .ack = d.seq,
        .window = 500,
        .tsval = 1,
        .tsecr = 1,
        .sack = .{ d.seq +% d.payload_len, d.seq +% 2 * d.payload_len },
    });
    pair.replica.innerFrame(hole_ack, 62);
    try testing.expectEqual(@as(usize, 1), pair.r_rec.count(.rcv_hole));
    pair.replica.flushReports();
    pair.deliverPeers(63);
    // Three duplicate ACKs to the client, SACKing what the primary holds past the hole.
    try testing.expectEqual(@as(u64, 3), pair.primary.counters.repair_acks);
    try testing.expectEqual(@as(usize, 3), pair.p_rec.to_client.items.len);
    const sent = pair.p_rec.to_client.items[0];
    const r = try packet.parse(sent);
    try testing.expect(packet.checksumsValid(sent, r));
    try testing.expectEqual(@as(u16, 0), r.payload_len);
    try testing.expectEqual(d.seq, r.ack); // what the client got acknowledged: the hole
    try testing.expectEqual(@as(u8, 1), r.options.sack_blocks);
    const sack = r.options.sack_offset.?;
    try testing.expectEqual(d.seq +% d.payload_len, std.mem.readInt(u32, sent[sack..][0..4], .big));
    try testing.expectEqual(d.seq +% 2 * d.payload_len, std.mem.readInt(u32, sent[sack + 4 ..][0..4], .big));
    try testing.expect(r.options.timestamp_offset != null);
    // At most once per interval.
    pair.replica.innerFrame(hole_ack, 2 * std.time.ns_per_ms);
    pair.deliverPeers(2 * std.time.ns_per_ms);
    try testing.expectEqual(@as(u64, 3), pair.primary.counters.repair_acks);
}

test "a lost report: the primary's repeated conn_open makes the replica report again" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    try pair.handshake(0x20, 3);
    pair.client(&fixtures.data, 60);
    // The replica's NF acks the data, but its report is lost.
    var buf: [frame_bytes_max]u8 = undefined;
    const ack_frame = copyFrame(&buf, &fixtures.syn_ack);
    const q = try packet.parse(ack_frame);
    packet.translate(ack_frame, q, .{ .seq_delta = 0x20 +% 1, .ack_delta = 13, .tsval_delta = 3 });
    ack_frame[q.tcp_offset + 13] = packet.flag_ack;
    packet.tcpChecksumRecompute(ack_frame, q);
    pair.replica.innerFrame(ack_frame, 70);
    pair.replica.flushReports();
    for (pair.r_rec.to_peer.items) |dg| testing.allocator.free(dg);
    pair.r_rec.to_peer.clearRetainingCapacity();
    pair.p_rec.clear();
    // 5 ms on, the primary still holds the data and repeats conn_open.
    const later = 6 * std.time.ns_per_ms;
    pair.primary.tick(later);
    try testing.expect(pair.p_rec.count(.conn_open) >= 1);
    pair.deliverPeers(later);
    pair.replica.flushReports();
    pair.deliverPeers(later);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.to_nf.items.len); // released
}

/// Delivers the datagrams one recorder holds to `to`, and frees them.
fn deliverFrom(rec: *Recorder, to: *Datapath, now: u64) void {
    var taken = rec.to_peer;
    rec.to_peer = .empty;
    defer {
        for (taken.items) |d| testing.allocator.free(d);
        taken.deinit(testing.allocator);
    }
    for (taken.items) |d| to.controlDatagram(0, d, now);
}

/// The NF on `dp` acknowledges `acked` client bytes (its own space shifted).
fn nfAck(dp: *Datapath, shift: u32, ts_shift: u32, acked: u32, now: u64) void {
    var buf: [frame_bytes_max]u8 = undefined;
    const frame = copyFrame(&buf, &fixtures.syn_ack);
    const q = packet.parse(frame) catch unreachable;
    packet.translate(frame, q, .{ .seq_delta = shift +% 1, .ack_delta = acked, .tsval_delta = ts_shift });
    frame[q.tcp_offset + 13] = packet.flag_ack;
    packet.tcpChecksumRecompute(frame, q);
    dp.innerFrame(frame, now);
}

/// A pair whose connection carried the client's first data, then a replica
/// restarted (a new agent knowing no connection) and heard again at `t`:
/// the primary names its connections, the replica says which it lacks, and
/// the primary's catchup_open waits in its recorder.
fn restartedReplica(pair: *Pair, t: u64) !void {
    try pair.init();
    try pair.handshake(0x300, 2);
    const len = (try packet.parse(&fixtures.data)).payload_len;
    pair.client(&fixtures.data, 60);
    nfAck(pair.replica, 0x300, 2, len, 61);
    pair.replica.flushReports();
    pair.deliverPeers(62);
    nfAck(pair.primary, 0, 0, len, 63); // the primary's NF has the bytes
    pair.replica.deinit(testing.allocator);
    pair.r_rec.clear();
    pair.p_rec.clear();
    pair.replica = try Datapath.init(testing.allocator, testConfig(2, false, .{ 10, 77, 0, 11 }), pair.r_rec.sink(), 0);
    pair.primary.tick(t);
    pair.replica.tick(t);
    deliverFrom(&pair.p_rec, pair.replica, t); // it follows the primary
    deliverFrom(&pair.r_rec, pair.primary, t); // heard again: the primary names its connections
    try testing.expectEqual(@as(usize, 1), pair.p_rec.count(.conn_open));
    deliverFrom(&pair.p_rec, pair.replica, t);
    try testing.expectEqual(@as(usize, 1), pair.r_rec.count(.conn_missing));
    deliverFrom(&pair.r_rec, pair.primary, t);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.catchups_started);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.count(.catchup_open));
}

test "catch-up: a restarted replica gets the connection replayed to its NF and is a member again" {
    var pair: Pair = .{};
    const t: u64 = std.time.ns_per_s; // long enough for the primary to count it dead
    try restartedReplica(&pair, t);
    defer pair.deinit();
    const d = try packet.parse(&fixtures.data);
    const len: u32 = d.payload_len;
    // The replica's NF gets the client's SYN, answers it, and gets the handshake's ACK.
    deliverFrom(&pair.p_rec, pair.replica, t + 1);
    try testing.expectEqual(@as(usize, 1), pair.r_rec.to_nf.items.len);
    const syn = try packet.parse(pair.r_rec.to_nf.items[0]);
    try testing.expectEqual(packet.flag_syn, syn.flags);
    try testing.expectEqual((try packet.parse(&fixtures.syn)).seq, syn.seq);
    const shift: u32 = 0x9000;
    var buf: [frame_bytes_max]u8 = undefined;
    pair.replica.innerFrame(synAckWith(&buf, shift, 5), t + 2);
    try testing.expectEqual(@as(usize, 2), pair.r_rec.to_nf.items.len);
    const hs_frame = pair.r_rec.to_nf.items[1];
    const hs = try packet.parse(hs_frame);
    try testing.expectEqual(packet.flag_ack, hs.flags);
    try testing.expectEqual(syn.seq +% 1, hs.seq);
    try testing.expectEqual((try packet.parse(&fixtures.syn_ack)).seq +% shift +% 1, hs.ack);
    try testing.expect(packet.checksumsValid(hs_frame, hs));
    // Then the client's bytes, as a client segment, from the primary's log.
    pair.primary.tick(t + 3);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.count(.catchup_data));
    deliverFrom(&pair.p_rec, pair.replica, t + 4);
    try testing.expectEqual(@as(usize, 3), pair.r_rec.to_nf.items.len);
    const seg_frame = pair.r_rec.to_nf.items[2];
    const seg = try packet.parse(seg_frame);
    try testing.expectEqual(d.seq, seg.seq);
    try testing.expectEqual(d.payload_len, seg.payload_len);
    try testing.expect(packet.checksumsValid(seg_frame, seg));
    try testing.expectEqualSlices(
        u8,
        fixtures.data[d.tcp_offset + d.tcp_header_len ..][0..len],
        seg_frame[seg.tcp_offset + seg.tcp_header_len ..][0..len],
    );
    // Its NF acknowledges them: caught up, a member again.
    nfAck(pair.replica, shift, 5, len, t + 5);
    pair.replica.flushReports();
    deliverFrom(&pair.r_rec, pair.primary, t + 6);
    pair.primary.tick(t + 7);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.catchups_done);
    deliverFrom(&pair.p_rec, pair.replica, t + 8);
    // Said again a little later (it may be lost), and not at once.
    pair.primary.tick(t + 9);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.count(.catchup_data));
    pair.primary.tick(t + 7 + catchup_confirm_interval_ns);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.count(.catchup_data));
    pair.p_rec.clear();
    pair.r_rec.clear();
    // The client's next bytes wait for the replica again.
    var more_buf: [frame_bytes_max]u8 = undefined;
    const more = copyFrame(&more_buf, &fixtures.data);
    packet.translate(more, d, .{ .seq_delta = len });
    pair.client(more, t + 9);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_nf.items.len);
    try testing.expectEqual(@as(usize, 1), pair.r_rec.to_nf.items.len);
    nfAck(pair.replica, shift, 5, 2 * len, t + 10);
    pair.replica.flushReports();
    deliverFrom(&pair.r_rec, pair.primary, t + 11);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.to_nf.items.len);
}

test "catch-up: a restarted replica that takes over before its catch-up finished resets that connection" {
    var pair: Pair = .{};
    const t: u64 = std.time.ns_per_s;
    try restartedReplica(&pair, t);
    defer pair.deinit();
    deliverFrom(&pair.p_rec, pair.replica, t + 1); // catchup_open: SYN to its NF
    var buf: [frame_bytes_max]u8 = undefined;
    pair.replica.innerFrame(synAckWith(&buf, 0x9000, 5), t + 2);
    pair.p_rec.clear(); // the primary dies before sending the bytes
    pair.r_rec.clear();
    const later = t + std.time.ns_per_s;
    pair.replica.tick(later);
    try testing.expectEqual(Role.primary, pair.replica.role);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.catchup_resets);
    // The client gets a RST (besides the gratuitous ARP), never a
    // connection whose NF lacks its bytes.
    var resets: usize = 0;
    for (pair.r_rec.to_client.items) |frame| {
        const q = packet.parse(frame) catch continue;
        if (q.flags & packet.flag_rst != 0) resets += 1;
    }
    try testing.expectEqual(@as(usize, 1), resets);
}

/// The fixtures' SYN-ACK turned into our NF's SYN to a backend (the
/// fixtures' client) from `port`, its ISN and TSval shifted.
fn nfSyn(buf: []u8, port: u16, shift: u32, ts_shift: u32) []u8 {
    const frame = synAckWith(buf, shift, ts_shift);
    const p = packet.parse(frame) catch unreachable;
    frame[p.tcp_offset + 13] = packet.flag_syn;
    std.mem.writeInt(u32, frame[p.tcp_offset + 8 ..][0..4], 0, .big);
    packet.setPort(frame, p, .source, port);
    packet.tcpChecksumRecompute(frame, p);
    return frame;
}

test "outgoing: the primary's NF connects to a backend, a replica's copy pairs with it and takes it over" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    const backend = try packet.parse(&fixtures.syn); // the backend plays the fixtures' client
    // The replica's NF connects first (it got the client's request first), from a port of its own.
    var r_buf: [frame_bytes_max]u8 = undefined;
    pair.replica.innerFrame(nfSyn(&r_buf, 40002, 0x5000, 9), 10);
    try testing.expectEqual(@as(usize, 0), pair.r_rec.to_client.items.len); // kept back
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.outgoing_opened);
    // The primary's: the backend's MAC is unknown, so it asks, and announces the connection.
    var p_buf: [frame_bytes_max]u8 = undefined;
    pair.primary.innerFrame(nfSyn(&p_buf, 40001, 0, 0), 11);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.arp_requests);
    try testing.expectEqual(@as(u64, 1), pair.primary.counters.no_mac_drops);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.count(.out_open));
    var reply: [42]u8 = undefined;
    @memcpy(reply[0..6], &pair.primary.config.virtual_mac);
    @memcpy(reply[6..12], fixtures.syn[6..12]);
    fillArp(&reply, 2, fixtures.syn[6..12].*, fixtures.syn[26..30].*, pair.primary.config.virtual_mac, pair.primary.config.vip);
    pair.primary.outerFrame(&reply, 12);
    for (pair.p_rec.to_client.items) |f| testing.allocator.free(f);
    pair.p_rec.to_client.clearRetainingCapacity();
    // The NF's retransmitted SYN goes out to the backend's MAC.
    pair.primary.innerFrame(nfSyn(&p_buf, 40001, 0, 0), 13);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.to_client.items.len);
    const syn_out = pair.p_rec.to_client.items[0];
    try testing.expectEqualSlices(u8, fixtures.syn[6..12], syn_out[0..6]);
    try testing.expectEqual(@as(u16, 40001), (try packet.parse(syn_out)).source_port);
    pair.deliverPeers(14);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.outgoing_paired);
    // The backend's SYN-ACK reaches both: the primary holds it, the replica's NF gets it on its own port.
    const nf_isn = (try packet.parse(syn_out)).seq;
    var s_buf: [frame_bytes_max]u8 = undefined;
    const syn_ack = copyFrame(&s_buf, &fixtures.syn);
    syn_ack[backend.tcp_offset + 13] = packet.flag_syn | packet.flag_ack;
    std.mem.writeInt(u32, syn_ack[backend.tcp_offset + 8 ..][0..4], nf_isn +% 1, .big);
    packet.setPort(syn_ack, backend, .destination, 40001);
    packet.tcpChecksumRecompute(syn_ack, backend);
    pair.p_rec.clear();
    pair.r_rec.clear();
    pair.client(syn_ack, 15);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_nf.items.len);
    try testing.expectEqual(@as(usize, 1), pair.r_rec.to_nf.items.len);
    const r_in = pair.r_rec.to_nf.items[0];
    const ri = try packet.parse(r_in);
    try testing.expectEqual(@as(u16, 40002), ri.destination_port);
    try testing.expectEqual(nf_isn +% 0x5000 +% 1, ri.ack); // in the replica NF's space
    try testing.expect(packet.checksumsValid(r_in, ri));
    // The replica's NF acknowledges it: the primary releases it to its own NF.
    var a_buf: [frame_bytes_max]u8 = undefined;
    const r_ack = nfSyn(&a_buf, 40002, 0x5000 +% 1, 9);
    const ra = try packet.parse(r_ack);
    r_ack[ra.tcp_offset + 13] = packet.flag_ack;
    std.mem.writeInt(u32, r_ack[ra.tcp_offset + 8 ..][0..4], backend.seq +% 1, .big);
    packet.tcpChecksumRecompute(r_ack, ra);
    pair.replica.innerFrame(r_ack, 16);
    pair.replica.flushReports();
    pair.deliverPeers(17);
    try testing.expectEqual(@as(usize, 1), pair.p_rec.to_nf.items.len);
    // The primary dies: the replica's NF's next segment leaves on the primary's port, in its space.
    pair.r_rec.clear();
    pair.replica.tick(std.time.ns_per_s);
    try testing.expectEqual(Role.primary, pair.replica.role);
    var d_buf: [frame_bytes_max]u8 = undefined;
    const data = buildServerData(&d_buf, 20);
    const dp = try packet.parse(data);
    packet.translate(data, dp, .{ .seq_delta = 0x5000, .tsval_delta = 9, .ack_delta = backend.seq +% 1 -% dp.ack });
    packet.setPort(data, dp, .source, 40002);
    pair.replica.innerFrame(data, std.time.ns_per_s + 1);
    var sent: ?[]u8 = null;
    for (pair.r_rec.to_client.items) |f| {
        const q = packet.parse(f) catch continue;
        if (q.payload_len == 20) sent = f;
    }
    const out = try packet.parse(sent.?);
    try testing.expectEqual(@as(u16, 40001), out.source_port);
    try testing.expectEqual(nf_isn +% 1, out.seq);
    try testing.expect(packet.checksumsValid(sent.?, out));
}

test "outgoing: a backend's SYN-ACK ahead of the replica's NF's own SYN is kept and fed with its ack" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    const backend = try packet.parse(&fixtures.syn);
    // The primary's NF connects first; its SYN goes out (the backend's MAC is known from its ARP).
    var reply: [42]u8 = undefined;
    @memcpy(reply[0..6], &pair.primary.config.virtual_mac);
    @memcpy(reply[6..12], fixtures.syn[6..12]);
    fillArp(&reply, 2, fixtures.syn[6..12].*, fixtures.syn[26..30].*, pair.primary.config.virtual_mac, pair.primary.config.vip);
    pair.primary.outerFrame(&reply, 9);
    var p_buf: [frame_bytes_max]u8 = undefined;
    pair.primary.innerFrame(nfSyn(&p_buf, 40001, 0, 0), 10);
    const nf_isn = (try packet.parse(&p_buf)).seq;
    pair.deliverPeers(11); // the out_open waits on the replica
    // The backend answers before the replica's NF has connected: kept there.
    var s_buf: [frame_bytes_max]u8 = undefined;
    const syn_ack = copyFrame(&s_buf, &fixtures.syn);
    syn_ack[backend.tcp_offset + 13] = packet.flag_syn | packet.flag_ack;
    std.mem.writeInt(u32, syn_ack[backend.tcp_offset + 8 ..][0..4], nf_isn +% 1, .big);
    packet.setPort(syn_ack, backend, .destination, 40001);
    packet.tcpChecksumRecompute(syn_ack, backend);
    pair.client(syn_ack, 12);
    try testing.expectEqual(@as(usize, 0), pair.r_rec.to_nf.items.len);
    // The replica's NF connects from the port the primary's NF used (ports
    // come from the same range): it pairs, and gets the SYN-ACK, acking its SYN.
    var r_buf: [frame_bytes_max]u8 = undefined;
    pair.replica.innerFrame(nfSyn(&r_buf, 40001, 0x7000, 3), 13);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.outgoing_paired);
    try testing.expectEqual(@as(usize, 1), pair.r_rec.to_nf.items.len);
    const fed = try packet.parse(pair.r_rec.to_nf.items[0]);
    try testing.expectEqual(nf_isn +% 0x7000 +% 1, fed.ack);
    try testing.expectEqual(@as(u16, 40001), fed.destination_port);
}

test "held segments reach the NF with the client's newest TSval" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    try pair.handshake(0x20, 3);
    pair.p_rec.clear();
    pair.client(&fixtures.data, 60);
    // The next segment, sent 1000 ticks later; both held until the replica acks them.
    var s2_buf: [frame_bytes_max]u8 = undefined;
    const s2 = copyFrame(&s2_buf, &fixtures.data);
    const d = try packet.parse(s2);
    packet.translate(s2, d, .{ .seq_delta = d.payload_len });
    const ts = d.options.timestamp_offset.?;
    const newer = std.mem.readInt(u32, s2[ts..][0..4], .big) +% 1000;
    std.mem.writeInt(u32, s2[ts..][0..4], newer, .big);
    packet.tcpChecksumRecompute(s2, d);
    pair.client(s2, 61);
    try testing.expectEqual(@as(usize, 0), pair.p_rec.to_nf.items.len);
    var buf: [frame_bytes_max]u8 = undefined;
    const ack_frame = copyFrame(&buf, &fixtures.syn_ack);
    const q = try packet.parse(ack_frame);
    packet.translate(ack_frame, q, .{ .seq_delta = 0x20 +% 1, .ack_delta = 2 * @as(u32, d.payload_len), .tsval_delta = 3 });
    ack_frame[q.tcp_offset + 13] = packet.flag_ack;
    packet.tcpChecksumRecompute(ack_frame, q);
    pair.replica.innerFrame(ack_frame, 70);
    pair.replica.flushReports();
    pair.deliverPeers(71);
    try testing.expectEqual(@as(usize, 2), pair.p_rec.to_nf.items.len);
    for (pair.p_rec.to_nf.items) |released| {
        const r = try packet.parse(released);
        try testing.expectEqual(newer, std.mem.readInt(u32, released[r.options.timestamp_offset.?..][0..4], .big));
        try testing.expect(packet.checksumsValid(released, r));
    }
}

test "synthetic ACKs carry the client's newest TSval, also when that came with its FIN" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    try pair.handshake(0x40, 5);
    pair.client(&fixtures.data, 60); // the template: this segment's header
    // The client's FIN, with a newer TSval (the template skips FINs).
    var fin_buf: [frame_bytes_max]u8 = undefined;
    const fin = copyFrame(&fin_buf, &fixtures.data);
    const f = try packet.parse(fin);
    packet.translate(fin, f, .{ .seq_delta = f.payload_len });
    const ts = f.options.timestamp_offset.?;
    const newer = std.mem.readInt(u32, fin[ts..][0..4], .big) +% 1000;
    std.mem.writeInt(u32, fin[ts..][0..4], newer, .big);
    fin[f.tcp_offset + 13] |= packet.flag_fin;
    packet.tcpChecksumRecompute(fin, f);
    pair.client(fin, 61);
    pair.r_rec.clear();
    // The client acks 100 bytes of output the replica's NF then sends: a synthetic ACK follows.
    var buf: [frame_bytes_max]u8 = undefined;
    const frame = copyFrame(&buf, &fixtures.data);
    const p = try packet.parse(frame);
    packet.translate(frame, p, .{ .ack_delta = 100, .seq_delta = f.payload_len + 1 });
    pair.replica.outerFrame(frame, 62);
    var out_buf: [frame_bytes_max]u8 = undefined;
    const out = buildServerData(&out_buf, 100);
    const o = try packet.parse(out);
    packet.translate(out, o, .{ .seq_delta = 0x40, .tsval_delta = 5 });
    pair.replica.innerFrame(out, 63);
    const synthetic = pair.r_rec.to_nf.items[pair.r_rec.to_nf.items.len - 1];
    const q = try packet.parse(synthetic);
    try testing.expectEqual(@as(u16, 0), q.payload_len);
    try testing.expect(std.mem.readInt(u32, synthetic[q.options.timestamp_offset.?..][0..4], .big) == newer);
    try testing.expect(packet.checksumsValid(synthetic, q));
    // Addressed to the NF's own MAC: its stack drops frames for another.
    try testing.expectEqualSlices(u8, &pair.replica.config.nf_mac, synthetic[0..6]);
    try testing.expectEqualSlices(u8, &pair.replica.config.inner_mac, synthetic[6..12]);
}

test "a client segment past the NF's receive window also brings its ACK alone, at the NF's rcv_nxt" {
    var pair: Pair = .{};
    try pair.init();
    defer pair.deinit();
    const shift: u32 = 0x10;
    try pair.handshake(shift, 1);
    // The replica's NF advertises a zero window (its application stopped reading).
    var buf: [frame_bytes_max]u8 = undefined;
    pair.replica.innerFrame(try nfWindowAck(&buf, shift, 0), 40);
    pair.r_rec.clear();
    // Client data past that window: the NF would drop it, ACK field and all.
    // Its ACK goes alone; the segment waits for the window (a hole otherwise).
    pair.client(&fixtures.data, 50);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.beyond_window_acks);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.waited_for_window);
    try testing.expectEqual(@as(usize, 1), pair.r_rec.to_nf.items.len);
    const alone = try packet.parse(pair.r_rec.to_nf.items[0]);
    try testing.expectEqual(@as(u16, 0), alone.payload_len);
    try testing.expectEqual((try packet.parse(&fixtures.syn)).seq +% 1, alone.seq); // the NF's rcv_nxt
    try testing.expect(packet.checksumsValid(pair.r_rec.to_nf.items[0], alone));
    // A bare client ACK past that window (after those 13 bytes) goes alone,
    // at the NF's rcv_nxt, and not as well as itself: the NF would drop it.
    var bare_buf: [frame_bytes_max]u8 = undefined;
    const bare = bareClientAck(&bare_buf, 13);
    pair.client(bare, 55);
    try testing.expectEqual(@as(u64, 2), pair.replica.counters.beyond_window_acks);
    try testing.expectEqual(@as(usize, 2), pair.r_rec.to_nf.items.len);
    try testing.expectEqual(alone.seq, (try packet.parse(pair.r_rec.to_nf.items[1])).seq);
    // The NF's window opens: the segment goes in.
    pair.replica.innerFrame(try nfWindowAck(&buf, shift, 100), 60);
    try testing.expectEqual(@as(usize, 3), pair.r_rec.to_nf.items.len);
    try testing.expectEqual(@as(u16, 13), (try packet.parse(pair.r_rec.to_nf.items[2])).payload_len);
    // Inside an open window: no extra ACK, no wait.
    pair.client(&fixtures.data, 70);
    try testing.expectEqual(@as(u64, 2), pair.replica.counters.beyond_window_acks);
    try testing.expectEqual(@as(u64, 1), pair.replica.counters.waited_for_window);
}
