//! A bump in the wire made of two AF_XDP sockets: frames for the VIP that
//! arrive on interface A go out of B, frames from the VIP that arrive on B
//! go out of A, with only their Ethernet addresses rewritten. Everything
//! else passes to the kernel untouched. It is the test vehicle of xsk.zig
//! and xdp_redirect.zig, and a measuring stick for the `ha` agent: the
//! agent's data path is this plus replication.
//!
//! One native thread runs the loop. It sleeps in ppoll on both sockets and
//! an eventfd (need_wakeup: no busy loop), and stops when the eventfd fires.
const std = @import("std");
const linux = std.os.linux;
const assert = std.debug.assert;
const constants = @import("../common/constants.zig");
const bpf_loader = @import("bpf_loader.zig");
const xdp_redirect = @import("xdp_redirect.zig");
const xsk = @import("xsk.zig");

pub const Error = xsk.Error || bpf_loader.Error;

/// Ethernet addresses written into every frame sent out of one side.
pub const Macs = struct { dst: [6]u8, src: [6]u8 };

pub const Config = struct {
    /// Client side: its frames to the VIP are taken (Match.to_vip).
    a_ifindex: u32,
    /// VIP side: its frames from the VIP are taken (Match.from_vip).
    b_ifindex: u32,
    mode: bpf_loader.AttachMode,
    /// The VIP's bytes as in the packet, read as a native u32.
    vip_be: u32,
    /// Addresses of frames forwarded out of B (toward the VIP's host) and out of A.
    to_b: Macs,
    to_a: Macs,
    xsk: xsk.Options = xsk_defaults,
};

/// Larger than xsk.Options' defaults: 16 TCP connections with 256 KiB in
/// flight each burst ~2900 frames into a socket while this thread waits for
/// a CPU; with 2048 RX frames the kernel found the fill ring empty and
/// dropped (measured: ~150-650 drops and retransmissions per 128 MiB
/// echoed), with 8192 none. 32 MiB of UMEM per socket.
pub const xsk_defaults = xsk.Options{ .frame_count = 16384, .ring_size = 8192 };

/// Counters, written by the loop thread only and read by anyone.
const Counters = struct {
    a_to_b_frames: std.atomic.Value(u64) = .init(0),
    a_to_b_bytes: std.atomic.Value(u64) = .init(0),
    b_to_a_frames: std.atomic.Value(u64) = .init(0),
    b_to_a_bytes: std.atomic.Value(u64) = .init(0),
    tx_full_drops: std.atomic.Value(u64) = .init(0),
    runt_drops: std.atomic.Value(u64) = .init(0),
    polls: std.atomic.Value(u64) = .init(0),
    kicks: std.atomic.Value(u64) = .init(0),
    /// errno that ended the loop early (0 while it runs or after a clean stop).
    loop_errno: std.atomic.Value(u64) = .init(0),
    deferred_recycles: std.atomic.Value(u64) = .init(0),
};

/// What `stats` returns; also the ABI struct (exports.zig), so fields are
/// only ever appended.
pub const Stats = extern struct {
    a_to_b_frames: u64,
    a_to_b_bytes: u64,
    b_to_a_frames: u64,
    b_to_a_bytes: u64,
    /// Frames dropped because the other side had no free TX frame.
    tx_full_drops: u64,
    /// Frames shorter than an Ethernet header (dropped).
    runt_drops: u64,
    /// Frames the kernel dropped before they reached a socket: rx_dropped +
    /// rx_ring_full of XDP_STATISTICS. (rx_dropped already counts each
    /// fill-ring-empty drop: measured, it was always twice
    /// rx_fill_ring_empty_descs when only those happened.)
    a_kernel_drops: u64,
    b_kernel_drops: u64,
    polls: u64,
    /// sendto calls that kicked copy-mode TX.
    kicks: u64,
    /// errno that ended the loop on its own (0: running, or stopped cleanly).
    loop_errno: u64,
    /// Parts of the kernel drops: the rx ring was full (the loop fell
    /// behind), the fill ring was empty (no RX frame to copy into).
    a_rx_ring_full: u64,
    a_fill_ring_empty: u64,
    b_rx_ring_full: u64,
    b_fill_ring_empty: u64,
    /// RX frames that found the fill ring looking full (0 by the ring
    /// sizing in xsk.zig; nonzero would mean the kernel lags more than assumed).
    deferred_recycles: u64,
};

comptime {
    assert(@sizeOf(Stats) == 128);
}

/// Frames one direction takes per round.
const batch_max = constants.ha_xsk_batch_max;
const ethernet_header_len = 14;
/// Batches per direction taken after one wakeup before polling again.
const drain_rounds_max = 16;
/// ppoll's timeout when idle: only a safety net, the eventfd ends the wait.
const idle_timeout_ns = 500 * std.time.ns_per_ms;
/// Rounds a tx backlog may stay the same size before ppoll sleeps again, and how long.
const stuck_rounds_max = 64;
const stuck_timeout_ns = std.time.ns_per_ms;

pub const Forwarder = struct {
    config: Config,
    a: xsk.Socket,
    b: xsk.Socket,
    a_redirect: xdp_redirect.Redirect,
    b_redirect: xdp_redirect.Redirect,
    wake_fd: linux.fd_t,
    stop_requested: std.atomic.Value(bool),
    thread: std.Thread,
    counters: Counters,

    /// Opens both sockets, attaches both programs and starts the loop
    /// thread. `self` must stay put until `stop` (the thread points at it).
    /// `log` receives the verifier's text if a program is rejected.
    pub fn start(self: *Forwarder, config: Config, log: []u8) Error!void {
        assert(config.a_ifindex > 0 and config.b_ifindex > 0);
        assert(config.a_ifindex != config.b_ifindex);
        assert(xsk.optionsValid(config.xsk));
        self.config = config;
        self.counters = .{};
        self.stop_requested = .init(false);
        self.a = try xsk.Socket.open(config.a_ifindex, config.xsk);
        errdefer self.a.close();
        self.b = try xsk.Socket.open(config.b_ifindex, config.xsk);
        errdefer self.b.close();
        self.a_redirect = try xdp_redirect.Redirect.attach(config.a_ifindex, config.mode, .to_vip, config.vip_be, self.a.fd(), log);
        errdefer self.a_redirect.detach();
        self.b_redirect = try xdp_redirect.Redirect.attach(config.b_ifindex, config.mode, .from_vip, config.vip_be, self.b.fd(), log);
        errdefer self.b_redirect.detach();
        const efd = linux.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK);
        if (linux.errno(efd) != .SUCCESS) return error.SystemResources;
        self.wake_fd = @intCast(efd);
        errdefer _ = linux.close(self.wake_fd);
        // A small stack: the loop keeps two batches of frames and nothing else.
        self.thread = std.Thread.spawn(.{ .stack_size = 256 * 1024 }, run, .{self}) catch {
            return error.SystemResources;
        };
    }

    /// Stops the loop, joins it, detaches both programs and closes everything.
    pub fn stop(self: *Forwarder) void {
        self.stop_requested.store(true, .release);
        const one: u64 = 1;
        _ = linux.write(self.wake_fd, std.mem.asBytes(&one), @sizeOf(u64));
        self.thread.join();
        // Programs first: from here on the kernel gets every frame.
        self.a_redirect.detach();
        self.b_redirect.detach();
        self.a.close();
        self.b.close();
        _ = linux.close(self.wake_fd);
        self.wake_fd = -1;
    }

    pub fn stats(self: *const Forwarder) Stats {
        const c = &self.counters;
        const a = kernelStatistics(&self.a);
        const b = kernelStatistics(&self.b);
        return .{
            .a_to_b_frames = c.a_to_b_frames.load(.monotonic),
            .a_to_b_bytes = c.a_to_b_bytes.load(.monotonic),
            .b_to_a_frames = c.b_to_a_frames.load(.monotonic),
            .b_to_a_bytes = c.b_to_a_bytes.load(.monotonic),
            .tx_full_drops = c.tx_full_drops.load(.monotonic),
            .runt_drops = c.runt_drops.load(.monotonic),
            .a_kernel_drops = a.rx_dropped + a.rx_ring_full,
            .b_kernel_drops = b.rx_dropped + b.rx_ring_full,
            .polls = c.polls.load(.monotonic),
            .kicks = c.kicks.load(.monotonic),
            .loop_errno = c.loop_errno.load(.monotonic),
            .a_rx_ring_full = a.rx_ring_full,
            .a_fill_ring_empty = a.rx_fill_ring_empty_descs,
            .b_rx_ring_full = b.rx_ring_full,
            .b_fill_ring_empty = b.rx_fill_ring_empty_descs,
            .deferred_recycles = c.deferred_recycles.load(.monotonic),
        };
    }
};

/// XDP_STATISTICS, or zeros if the kernel will not say (never on a bound socket).
fn kernelStatistics(socket: *const xsk.Socket) linux.xdp_statistics {
    return socket.statistics() catch std.mem.zeroes(linux.xdp_statistics);
}

fn run(self: *Forwarder) void {
    var frames: [batch_max]xsk.Frame = undefined;
    var fds = [3]linux.pollfd{
        .{ .fd = self.a.fd(), .events = linux.POLL.IN },
        .{ .fd = self.b.fd(), .events = linux.POLL.IN },
        .{ .fd = self.wake_fd, .events = linux.POLL.IN },
    };
    var pending_before: u32 = 0;
    var stuck_rounds: u32 = 0;
    while (!self.stop_requested.load(.acquire)) {
        // Frames still in a tx ring go out only inside a syscall: if any are
        // left, poll without sleeping (poll itself drives copy-mode TX).
        const backlog = self.a.txPending() > 0 or self.b.txPending() > 0;
        // A backlog that does not shrink (an interface down: sendto fails)
        // must not become a busy loop: after a few rounds, wait a little.
        stuck_rounds = if (backlog and pending_before == self.a.txPending() + self.b.txPending()) stuck_rounds + 1 else 0;
        pending_before = self.a.txPending() + self.b.txPending();
        const nsec: isize = if (!backlog) idle_timeout_ns else if (stuck_rounds < stuck_rounds_max) 0 else stuck_timeout_ns;
        var timeout = linux.timespec{ .sec = 0, .nsec = nsec };
        const rc = linux.ppoll(&fds, fds.len, &timeout, null);
        bump(&self.counters.polls, 1);
        switch (linux.errno(rc)) {
            .SUCCESS => {},
            .INTR => continue,
            else => |errno| {
                self.counters.loop_errno.store(@backingInt(errno), .monotonic);
                return;
            },
        }
        for (fds[0..2]) |pfd| {
            if (pfd.revents & (linux.POLL.ERR | linux.POLL.HUP | linux.POLL.NVAL) != 0) {
                // The interface went away (or down): stop rather than spin.
                self.counters.loop_errno.store(@backingInt(linux.E.NETDOWN), .monotonic);
                return;
            }
        }
        // Drain before sleeping again: a full batch means more may be waiting.
        var round: u32 = 0;
        while (round < drain_rounds_max) : (round += 1) {
            const moved = forward(&self.a, &self.b, self.config.to_b, &frames, &self.counters, .a_to_b) +
                forward(&self.b, &self.a, self.config.to_a, &frames, &self.counters, .b_to_a);
            if (moved < batch_max) break;
        }
    }
}

const Direction = enum { a_to_b, b_to_a };

/// Moves one batch from `from` to `to`: rewrite the MACs in place, copy
/// into a TX frame of `to`, give the RX frame back, kick `to`. Returns the
/// frames received.
fn forward(
    from: *xsk.Socket,
    to: *xsk.Socket,
    macs: Macs,
    frames: *[batch_max]xsk.Frame,
    counters: *Counters,
    direction: Direction,
) u32 {
    const count = from.receive(frames);
    if (count == 0) {
        // Still push out what an earlier round left in the tx ring.
        if (to.txPending() > 0) flushCounted(to, counters);
        return 0;
    }
    var sent_frames: u64 = 0;
    var sent_bytes: u64 = 0;
    for (frames[0..count]) |frame| {
        const bytes = from.frameBytes(frame);
        if (bytes.len < ethernet_header_len) {
            bump(&counters.runt_drops, 1);
            continue;
        }
        bytes[0..6].* = macs.dst;
        bytes[6..12].* = macs.src;
        to.send(bytes) catch {
            // Every TX frame in flight: push them out, reclaim, try once more.
            flushCounted(to, counters);
            to.send(bytes) catch {
                bump(&counters.tx_full_drops, 1);
                continue;
            };
        };
        sent_frames += 1;
        sent_bytes += bytes.len;
    }
    const deferred_before = from.receiver.deferred_total;
    from.recycle(frames[0..count]);
    bump(&counters.deferred_recycles, from.receiver.deferred_total - deferred_before);
    flushCounted(to, counters);
    switch (direction) {
        .a_to_b => {
            bump(&counters.a_to_b_frames, sent_frames);
            bump(&counters.a_to_b_bytes, sent_bytes);
        },
        .b_to_a => {
            bump(&counters.b_to_a_frames, sent_frames);
            bump(&counters.b_to_a_bytes, sent_bytes);
        },
    }
    return count;
}

fn flushCounted(socket: *xsk.Socket, counters: *Counters) void {
    const before = socket.kicks;
    socket.flush();
    bump(&counters.kicks, socket.kicks - before);
}

/// Single writer: a plain load and store, no locked add on the data path.
fn bump(counter: *std.atomic.Value(u64), by: u64) void {
    if (by == 0) return;
    counter.store(counter.load(.monotonic) + by, .monotonic);
}

// ---------------------------------------------------------------- ABI

/// The forwarder's configuration as it crosses the C ABI (exports.zig).
/// Self-sized: `size` is the bytes the caller filled; fields are only ever
/// appended, and zero means "default" for the xsk sizes.
pub const ExternConfig = extern struct {
    size: u32,
    a_ifindex: u32,
    b_ifindex: u32,
    /// 0 generic, 1 native.
    mode: u32,
    /// The VIP as in the packet (network order bytes).
    vip: [4]u8,
    queue: u32,
    frame_size: u32,
    frame_count: u32,
    ring_size: u32,
    reserved: u32,
    to_b_dst: [6]u8,
    to_b_src: [6]u8,
    to_a_dst: [6]u8,
    to_a_src: [6]u8,

    /// The Config it describes, or null when a field is out of range.
    pub fn resolve(self: *const ExternConfig) ?Config {
        if (self.a_ifindex == 0 or self.b_ifindex == 0) return null;
        if (self.a_ifindex == self.b_ifindex) return null;
        if (self.mode > 1 or self.reserved != 0) return null;
        const defaults = xsk_defaults;
        const options = xsk.Options{
            .frame_size = if (self.frame_size == 0) defaults.frame_size else self.frame_size,
            .frame_count = if (self.frame_count == 0) defaults.frame_count else self.frame_count,
            .ring_size = if (self.ring_size == 0) defaults.ring_size else self.ring_size,
            .queue = self.queue,
        };
        if (!xsk.optionsValid(options)) return null;
        return .{
            .a_ifindex = self.a_ifindex,
            .b_ifindex = self.b_ifindex,
            .mode = @fromBackingInt(self.mode),
            .vip_be = std.mem.readInt(u32, &self.vip, .native),
            .to_b = .{ .dst = self.to_b_dst, .src = self.to_b_src },
            .to_a = .{ .dst = self.to_a_dst, .src = self.to_a_src },
            .xsk = options,
        };
    }
};

comptime {
    assert(@sizeOf(ExternConfig) == 64);
    assert(@offsetOf(ExternConfig, "to_b_dst") == 40);
    assert(@offsetOf(ExternConfig, "to_a_src") == 58);
}

const testing = std.testing;

test "an extern config resolves to defaults, and out-of-range fields are refused" {
    var raw = std.mem.zeroes(ExternConfig);
    raw.size = @sizeOf(ExternConfig);
    raw.a_ifindex = 3;
    raw.b_ifindex = 4;
    raw.mode = 1;
    raw.vip = .{ 10, 88, 0, 1 };
    raw.to_b_dst = .{ 2, 0, 0, 0, 0, 1 };
    raw.to_a_src = .{ 2, 0, 0, 0, 0, 0xa };
    const config = raw.resolve().?;
    try testing.expectEqual(bpf_loader.AttachMode.native, config.mode);
    try testing.expectEqual(std.mem.readInt(u32, &[4]u8{ 10, 88, 0, 1 }, .native), config.vip_be);
    try testing.expectEqual(@as(u32, 2048), config.xsk.frame_size);
    try testing.expectEqual(@as(u32, 16384), config.xsk.frame_count);
    try testing.expectEqual(@as(u8, 0xa), config.to_a.src[5]);
    try testing.expectEqual(@as(u8, 1), config.to_b.dst[5]);

    var bad = raw;
    bad.mode = 2;
    try testing.expectEqual(@as(?Config, null), bad.resolve());
    bad = raw;
    bad.b_ifindex = 3;
    try testing.expectEqual(@as(?Config, null), bad.resolve());
    bad = raw;
    bad.frame_size = 1000;
    try testing.expectEqual(@as(?Config, null), bad.resolve());
    bad = raw;
    bad.ring_size = 512; // too small for 2048 RX frames
    try testing.expectEqual(@as(?Config, null), bad.resolve());
}

test "every declaration compiles" {
    testing.refAllDecls(@This());
    testing.refAllDecls(Forwarder);
}
