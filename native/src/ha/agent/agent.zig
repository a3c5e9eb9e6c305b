//! The `ha` agent of one node: two AF_XDP sockets (the node's outer
//! interface, where the client's frames for the VIP arrive, and the agent's
//! end of the NF's veth), the replication channel (UDP on the node's own
//! address) and one native thread that feeds all of it to the datapath.
//!
//! Why one thread: the datapath's tables then need no locks, and on a small
//! machine a second packet thread would only compete with the NF it serves.
//! The thread sleeps in ppoll (need_wakeup, no busy loop) with a timeout of
//! half a heartbeat interval, which is also the resolution of failure
//! detection. TypeScript reads a status snapshot the thread publishes under
//! a spin lock every few milliseconds; it never touches the datapath.
const std = @import("std");
const linux = std.os.linux;
const assert = std.debug.assert;
const config_mod = @import("config.zig");
const datapath_mod = @import("datapath.zig");
const wire = @import("wire.zig");
const xsk = @import("../xsk.zig");
const xdp_redirect = @import("../xdp_redirect.zig");
const bpf_loader = @import("../bpf_loader.zig");

pub const Error = error{ NotSupported, InvalidConfig, PermissionDenied, InterfaceNotFound, Busy, SystemResources, Unexpected };

const batch_max = 64;
const batches_max = 16;
/// Low among real-time priorities: above every normal task, below the kernel's own RT threads.
const rt_priority = 10;
const snapshot_interval_ns: u64 = 20 * std.time.ns_per_ms;

const Snapshot = struct {
    role: wire.Role = .replica,
    epoch: u32 = 0,
    primary_id: u8 = 0,
    peers: [config_mod.peers_max]datapath_mod.Peer = undefined,
    connections: u32 = 0,
    held: u32 = 0,
    counters: datapath_mod.Counters = .{},
    takeover_unix_ms: f64 = 0,
    takeover_detect_ms: f64 = 0,
    takeover_planned: bool = false,
    takeover_conns: u32 = 0,
    takeover_resumed: u32 = 0,
    takeover_resume_ms: f64 = 0,
    takeover_handover_ms: f64 = -1,
    conn_request: datapath_mod.ConnRequest = .{},
    conn_resume_ms: f64 = 0,
    uptime_ms: f64 = 0,
    loop_errno: u32 = 0,
    realtime: bool = false,
    loop_max_ns: u64 = 0,
    health: datapath_mod.Datapath.Health = .{},
    alive_mask: u16 = 0,
    dropped: bool = false,
    divergence: datapath_mod.Datapath.Divergence = .{},
    tx_drops: u64 = 0,
    kernel_drops: u64 = 0,
};

pub const Agent = struct {
    config: config_mod.Config,
    outer: xsk.Socket,
    inner: xsk.Socket,
    outer_redirect: xdp_redirect.Redirect,
    inner_redirect: xdp_redirect.Redirect,
    udp_fd: linux.fd_t,
    wake_fd: linux.fd_t,
    thread: std.Thread,
    stop_requested: std.atomic.Value(bool) = .init(false),
    fail_requested: std.atomic.Value(bool) = .init(false),
    /// `ha migrate --to N`: N, taken by the packet thread (0 = none).
    migrate_to: std.atomic.Value(u8) = .init(0),
    /// `ha migrate --conn`: target << 48 | client ip << 16 | client port (0 = none).
    migrate_conn: std.atomic.Value(u64) = .init(0),
    dp: *datapath_mod.Datapath,
    lock: std.atomic.Mutex = .unlocked,
    snapshot: Snapshot = .{},
    tx_drops: u64 = 0,
    loop_errno: u32 = 0,
    realtime: bool = false,
    /// Longest single loop iteration: a long one delays heartbeats.
    loop_max_ns: u64 = 0,
    hb_thread: std.Thread = undefined,
    hb_state: std.atomic.Value(u64) = .init(0),
    hb_sent: std.atomic.Value(u64) = .init(0),
    loop_done: std.atomic.Value(bool) = .init(false),

    /// Opens everything and starts the packet thread. `why` names what failed.
    pub fn start(config: config_mod.Config, why: *[]const u8) Error!*Agent {
        const allocator = std.heap.page_allocator;
        const self = allocator.create(Agent) catch return error.SystemResources;
        errdefer allocator.destroy(self);
        self.* = .{
            .config = config,
            .outer = undefined,
            .inner = undefined,
            .outer_redirect = undefined,
            .inner_redirect = undefined,
            .udp_fd = -1,
            .wake_fd = -1,
            .thread = undefined,
            .dp = undefined,
        };
        // Deep rings: on a small machine the packet thread can be off the CPU
        // for a few ms while a burst arrives, and a full RX ring is a drop
        // that costs the client a retransmission (200 ms if it is an RTO).
        // Rings twice the RX frames: the kernel publishes its fill-ring
        // consumer index lazily, so a ring exactly as deep as the frames can
        // look full when a frame comes back to it.
        // 16384 RX frames: at 64 streams the primary's RX ring overflowed
        // with 8192 (about 10 000 drops per 128 MiB run, each a client
        // retransmission) while its thread waited for a CPU; none with 16384.
        const options = xsk.Options{ .frame_count = 32768, .ring_size = 16384 };
        self.outer = xsk.Socket.open(config.outer_ifindex, options) catch |err| {
            why.* = "cannot open the AF_XDP socket on the outer interface";
            return xskError(err);
        };
        errdefer self.outer.close();
        self.inner = xsk.Socket.open(config.inner_ifindex, options) catch |err| {
            why.* = "cannot open the AF_XDP socket on the NF's veth";
            return xskError(err);
        };
        errdefer self.inner.close();
        const mode: bpf_loader.AttachMode = switch (config.xdp_mode) {
            .native => .native,
            .generic => .generic,
        };
        const vip_be = std.mem.readInt(u32, &config.vip, .native);
        var log: [512]u8 = @splat(0);
        self.outer_redirect = xdp_redirect.Redirect.attach(config.outer_ifindex, mode, .to_vip, vip_be, self.outer.fd(), &log) catch |err| {
            why.* = "cannot attach the XDP program to the outer interface";
            return loaderError(err);
        };
        errdefer self.outer_redirect.detach();
        self.inner_redirect = xdp_redirect.Redirect.attach(config.inner_ifindex, mode, .from_vip, vip_be, self.inner.fd(), &log) catch |err| {
            why.* = "cannot attach the XDP program to the NF's veth";
            return loaderError(err);
        };
        errdefer self.inner_redirect.detach();
        self.udp_fd = openControlSocket(config, why) catch |err| return err;
        errdefer _ = linux.close(self.udp_fd);
        const efd = linux.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK);
        if (linux.errno(efd) != .SUCCESS) {
            why.* = "cannot create an eventfd";
            return error.SystemResources;
        }
        self.wake_fd = @intCast(efd);
        errdefer _ = linux.close(self.wake_fd);
        self.dp = datapath_mod.Datapath.init(allocator, config, self.sink(), monotonicNs()) catch {
            why.* = "cannot allocate the connection table";
            return error.SystemResources;
        };
        errdefer self.dp.deinit(allocator);
        self.dp.heartbeats_external = true;
        self.hb_state.store(packState(self.dp), .release);
        self.publish(monotonicNs());
        self.thread = std.Thread.spawn(.{ .stack_size = 1024 * 1024 }, run, .{self}) catch {
            why.* = "cannot start the packet thread";
            return error.SystemResources;
        };
        self.hb_thread = std.Thread.spawn(.{ .stack_size = 64 * 1024 }, heartbeatRun, .{self}) catch {
            self.stop_requested.store(true, .release);
            self.wake();
            self.thread.join();
            why.* = "cannot start the heartbeat thread";
            return error.SystemResources;
        };
        return self;
    }

    /// Stops the thread, detaches the programs, closes and frees everything.
    pub fn stop(self: *Agent) void {
        self.stop_requested.store(true, .release);
        self.wake();
        self.thread.join();
        self.hb_thread.join();
        // Programs first: from here on the kernel gets every frame again.
        self.outer_redirect.detach();
        self.inner_redirect.detach();
        self.outer.close();
        self.inner.close();
        _ = linux.close(self.udp_fd);
        _ = linux.close(self.wake_fd);
        self.dp.deinit(std.heap.page_allocator);
        std.heap.page_allocator.destroy(self);
    }

    /// `ha fail`: a primary fails itself; a replica asks its primary to.
    pub fn fail(self: *Agent) void {
        self.fail_requested.store(true, .release);
        self.wake();
    }

    /// `ha migrate --to`: hand every connection over to node `to`.
    pub fn migrate(self: *Agent, to: u8) void {
        self.migrate_to.store(to, .release);
        self.wake();
    }

    /// `ha migrate --to --conn`: hand the client's connection alone to node `to`.
    pub fn migrateConn(self: *Agent, to: u8, client_ip: u32, client_port: u16) void {
        self.migrate_conn.store(@as(u64, to) << 48 | @as(u64, client_ip) << 16 | client_port, .release);
        self.wake();
    }

    fn wake(self: *Agent) void {
        const one: u64 = 1;
        _ = linux.write(self.wake_fd, std.mem.asBytes(&one), @sizeOf(u64));
    }

    fn sink(self: *Agent) datapath_mod.Sink {
        return .{ .ctx = self, .to_nf = toNf, .to_client = toClient, .to_peer = toPeer };
    }

    fn toNf(ctx: *anyopaque, frame: []const u8) void {
        const self: *Agent = @ptrCast(@alignCast(ctx));
        sendFrame(self, &self.inner, frame);
    }

    fn toClient(ctx: *anyopaque, frame: []const u8) void {
        const self: *Agent = @ptrCast(@alignCast(ctx));
        sendFrame(self, &self.outer, frame);
    }

    fn sendFrame(self: *Agent, socket: *xsk.Socket, frame: []const u8) void {
        socket.send(frame) catch {
            socket.flush();
            socket.send(frame) catch {
                self.tx_drops += 1;
            };
        };
    }

    fn toPeer(ctx: *anyopaque, peer: u8, datagram: []const u8) void {
        const self: *Agent = @ptrCast(@alignCast(ctx));
        var address = linux.sockaddr.in{
            .port = std.mem.nativeToBig(u16, self.config.control_port),
            .addr = std.mem.readInt(u32, &self.config.peers[peer], .native),
        };
        _ = linux.sendto(self.udp_fd, datagram.ptr, datagram.len, linux.MSG.DONTWAIT, @ptrCast(&address), @sizeOf(linux.sockaddr.in));
    }

    /// Copies the datapath's state for `status` (called on the packet thread).
    fn publish(self: *Agent, now: u64) void {
        const dp = self.dp;
        var s: Snapshot = .{
            .role = dp.role,
            .epoch = dp.epoch,
            .primary_id = dp.primary_id,
            .peers = dp.peers,
            .connections = dp.connectionCount(),
            .held = dp.heldCount(),
            .counters = counters: {
                var c = dp.counters;
                c.heartbeats_sent += self.hb_sent.load(.monotonic);
                break :counters c;
            },
            .uptime_ms = nsToMs(now -% dp.started_ns),
            .loop_errno = self.loop_errno,
            .realtime = self.realtime,
            .loop_max_ns = self.loop_max_ns,
            .health = dp.health(now),
            .alive_mask = dp.aliveMaskPublic(),
            .dropped = dp.dropped,
            .divergence = dp.divergence(),
            .tx_drops = self.tx_drops,
            .kernel_drops = kernelDrops(&self.outer) + kernelDrops(&self.inner),
        };
        if (dp.takeover_at_ns != 0) {
            s.takeover_unix_ms = nsToMs(realtimeNs() -% (now -% dp.takeover_at_ns));
            s.takeover_detect_ms = nsToMs(dp.takeover_detect_ns);
            s.takeover_planned = dp.takeover_planned;
            s.takeover_conns = dp.takeover_conns;
            s.takeover_resumed = dp.takeover_resumed;
            s.takeover_resume_ms = nsToMs(dp.takeover_resumed_ns -% dp.takeover_at_ns);
            // Same host only (one monotonic clock): the old primary's command time.
            const origin = dp.takeover_origin_ns;
            // Plausible only if it came less than a second before the takeover:
            // two hosts' monotonic clocks differ by far more than that.
            const plausible = origin != 0 and origin <= dp.takeover_at_ns and dp.takeover_at_ns - origin < std.time.ns_per_s;
            s.takeover_handover_ms = if (plausible and dp.takeover_resumed_ns >= origin) nsToMs(dp.takeover_resumed_ns - origin) else -1;
        }
        s.conn_request = dp.conn_request;
        s.conn_resume_ms = nsToMs(dp.conn_resume_ns);
        while (!self.lock.tryLock()) std.atomic.spinLoopHint();
        self.snapshot = s;
        self.lock.unlock();
    }

    /// Writes the status JSON object into `out`; returns its length.
    pub fn status(self: *Agent, out: []u8) error{BufferTooSmall}!usize {
        while (!self.lock.tryLock()) std.atomic.spinLoopHint();
        const s = self.snapshot;
        self.lock.unlock();
        var w = Writer{ .out = out };
        w.print("{{\"id\":{d},\"role\":\"{s}\",\"epoch\":{d},\"primary_id\":{d},\"uptime_ms\":{d:.1},\"peers\":[", .{
            self.config.id, roleName(s.role), s.epoch, s.primary_id, s.uptime_ms,
        });
        const now = monotonicNs();
        for (s.peers[0..self.config.peer_count], 0..) |p, i| {
            const a = p.addr;
            w.print("{s}{{\"id\":{d},\"addr\":\"{d}.{d}.{d}.{d}\",\"alive\":{},\"heard\":{},\"last_heard_ms\":{d:.3},\"role\":\"{s}\",\"epoch\":{d},\"gap_max_ms\":{d:.3}}}", .{
                if (i == 0) "" else ",",                               p.id,             a[0],    a[1],                 a[2], a[3], p.alive, p.heard,
                if (p.heard) nsToMs(now -% p.last_heard_ns) else -1.0, roleName(p.role), p.epoch, nsToMs(p.gap_max_ns),
            });
        }
        w.print("],\"connections\":{d},\"held_segments\":{d},\"connections_unmapped\":{d},\"connections_holding\":{d},\"oldest_held_ms\":{d:.3},\"pending_segments\":{d},\"takeover\":", .{
            s.connections, s.held, s.health.unmapped, s.health.holding, nsToMs(s.health.oldest_held_ns), s.health.pending,
        });
        if (s.takeover_unix_ms != 0) {
            w.print("{{\"at_unix_ms\":{d:.3},\"detect_ms\":{d:.3},\"kind\":\"{s}\",\"connections\":{d},\"resumed\":{d},\"resume_ms\":{d:.3}", .{
                s.takeover_unix_ms, s.takeover_detect_ms, if (s.takeover_planned) "migration" else "failover", s.takeover_conns, s.takeover_resumed, s.takeover_resume_ms,
            });
            // From the old primary's command to the last connection resumed
            // here; only when both clocks are one (the same host).
            if (s.takeover_handover_ms >= 0) w.print(",\"command_to_resume_ms\":{d:.3}", .{s.takeover_handover_ms});
            w.print("}}", .{});
        } else w.print("null", .{});
        w.print(",\"conn_migration\":{{\"request\":{d},\"result\":\"{s}\",\"owner\":{d},\"matched\":{d},\"last_resume_ms\":{d:.3}}}", .{
            s.conn_request.seq, @tagName(s.conn_request.result), s.conn_request.owner, s.conn_request.matched, s.conn_resume_ms,
        });
        w.print(",\"waiting\":[", .{});
        for (s.health.stuck[0..s.health.stuck_len], 0..) |k, i| {
            w.print("{s}{{\"client_port\":{d},\"held\":{d},\"pending\":{d},\"mapped\":{},\"members\":{d},\"reported\":{d},\"need\":{d},\"first_end\":{d},\"rcv_nxt\":{d},\"snd_nxt\":{d},\"ack_max\":{d},\"acked_to_nf\":{d},\"kick_pending\":{},\"fins\":{d},\"idle_ms\":{d},\"alive\":{d},\"local_isn\":{d},\"client_isn\":{d},\"client_tsval\":{d},\"later\":{d},\"later_first_end\":{d},\"nf_right\":{d},\"nf_idle_ms\":{d}}}", .{
                if (i == 0) "" else ",", (k.key >> 16) & 0xffff, k.held,        k.pending,      k.mapped, k.members, k.reported,   k.need,      k.first_end,  k.rcv_nxt,
                k.snd_nxt,               k.ack_max,              k.acked_to_nf, k.kick_pending, k.fins,   k.idle_ms, s.alive_mask, k.local_isn, k.client_isn, k.client_tsval,
                k.later,                 k.later_first_end,      k.nf_right,    k.nf_idle_ms,
            });
        }
        w.print("]", .{});
        w.print(",\"dropped_from_group\":{}", .{s.dropped});
        writeDiverged(&w, s.divergence);
        w.print(",\"loop_errno\":{d},\"realtime\":{},\"loop_max_ms\":{d:.3},\"counters\":{{", .{ s.loop_errno, s.realtime, nsToMs(s.loop_max_ns) });
        inline for (@typeInfo(datapath_mod.Counters).@"struct".field_names, 0..) |name, i| {
            w.print("{s}\"{s}\":{d}", .{ if (i == 0) "" else ",", name, @field(s.counters, name) });
        }
        w.print(",\"tx_drops\":{d},\"kernel_drops\":{d}}}}}", .{ s.tx_drops, s.kernel_drops });
        if (w.overflow) return error.BufferTooSmall;
        return w.len;
    }
};

const Writer = struct {
    out: []u8,
    len: usize = 0,
    overflow: bool = false,

    fn print(self: *Writer, comptime format: []const u8, args: anytype) void {
        if (self.overflow) return;
        const written = std.fmt.bufPrint(self.out[self.len..], format, args) catch {
            self.overflow = true;
            return;
        };
        self.len += written.len;
    }
};

/// Connections whose copy diverged (here, or on a replica that said so):
/// `connections_stale` counts them all, `diverged` lists the first few.
fn writeDiverged(w: *Writer, d: datapath_mod.Datapath.Divergence) void {
    w.print(",\"connections_stale\":{d},\"diverged\":[", .{d.connections});
    for (d.list[0..d.len], 0..) |k, i| {
        const ip: u32 = @truncate(k.key >> 32);
        w.print("{s}{{\"client\":\"{d}.{d}.{d}.{d}:{d}\",\"port\":{d},\"offset\":{d},\"here\":{},\"closed\":{},\"reported_by\":[", .{
            if (i == 0) "" else ",", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff, (k.key >> 16) & 0xffff, k.key & 0xffff, k.offset, k.here, k.closed,
        });
        var first = true;
        for (0..16) |id| {
            if (k.reported_by & (@as(u16, 1) << @intCast(id)) == 0) continue;
            w.print("{s}{d}", .{ if (first) "" else ",", id });
            first = false;
        }
        w.print("]}}", .{});
    }
    w.print("]", .{});
}

fn roleName(role: wire.Role) []const u8 {
    return switch (role) {
        .replica => "replica",
        .primary => "primary",
        .failed => "failed",
        .fenced => "fenced",
        _ => "unknown",
    };
}

/// Real-time priority for the packet thread, as keepalived gives its VRRP
/// process: on a busy machine a heartbeat that waits 10 ms for a CPU reads
/// as a dead primary and causes a false failover. The thread sleeps in ppoll
/// when idle, and the kernel's RT throttling keeps 5 % for everything else.
/// Without the privilege the thread stays at normal priority (status says so).
fn raisePriority(self: *Agent) void {
    if (std.c.getenv("RELIAB_HA_NO_RT") != null) return;
    const param = linux.sched_param{ .priority = rt_priority };
    const rc = linux.sched_setscheduler(0, .{ .mode = .FIFO }, &param);
    self.realtime = linux.errno(rc) == .SUCCESS;
}

/// Role, primary and epoch as the heartbeat thread reads them.
fn packState(dp: *datapath_mod.Datapath) u64 {
    return @as(u64, dp.groupMask()) << 48 | @as(u64, @backingInt(dp.role)) << 40 | @as(u64, dp.primary_id) << 32 | dp.epoch;
}

/// Sends heartbeats on time even while the packet thread works through a
/// burst: a loop iteration that moves a few thousand frames through copy-mode
/// TX (the NF's TCP runs inside those sendto calls) can take 100 ms on a busy
/// 2-core machine, and a primary that is merely busy must not be declared
/// dead. Real-time priority for the same reason; it sleeps between sends and
/// costs microseconds per interval. It stops when the packet thread stops, so
/// a node whose loop died falls silent and is failed over.
fn heartbeatRun(self: *Agent) void {
    raisePriority(self);
    const interval_ns = @as(u64, self.config.heartbeat_us) * std.time.ns_per_us;
    var buf: [wire.heartbeat_bytes]u8 = undefined;
    while (!self.stop_requested.load(.acquire) and !self.loop_done.load(.acquire)) {
        const state = self.hb_state.load(.acquire);
        const role: wire.Role = @fromBackingInt(@as(u8, @truncate(state >> 40)));
        if (role != .failed) {
            wire.writeHeader(&buf, .{
                .kind = .heartbeat,
                .sender = self.config.id,
                .role = role,
                .primary = @truncate(state >> 32),
                .count = 0,
                .epoch = @truncate(state),
            });
            wire.writeGroup(&buf, @truncate(state >> 48));
            for (0..self.config.peer_count) |i| Agent.toPeer(self, @intCast(i), &buf);
            _ = self.hb_sent.fetchAdd(self.config.peer_count, .monotonic);
        }
        var ts = linux.timespec{ .sec = 0, .nsec = @intCast(interval_ns) };
        _ = linux.nanosleep(&ts, null);
    }
}

fn run(self: *Agent) void {
    defer self.loop_done.store(true, .release);
    var frames: [batch_max]xsk.Frame = undefined;
    var fds = [4]linux.pollfd{
        .{ .fd = self.outer.fd(), .events = linux.POLL.IN, .revents = 0 },
        .{ .fd = self.inner.fd(), .events = linux.POLL.IN, .revents = 0 },
        .{ .fd = self.udp_fd, .events = linux.POLL.IN, .revents = 0 },
        .{ .fd = self.wake_fd, .events = linux.POLL.IN, .revents = 0 },
    };
    const half_interval_ns = @as(u64, self.config.heartbeat_us) * std.time.ns_per_us / 2;
    var last_publish: u64 = 0;
    var last_link_check: u64 = 0;
    while (!self.stop_requested.load(.acquire)) {
        const backlog = self.outer.txPending() > 0 or self.inner.txPending() > 0;
        var timeout = linux.timespec{ .sec = 0, .nsec = if (backlog) 0 else @intCast(half_interval_ns) };
        const rc = linux.ppoll(&fds, fds.len, &timeout, null);
        switch (linux.errno(rc)) {
            .SUCCESS => {},
            .INTR => continue,
            else => |errno| {
                self.loop_errno = @backingInt(errno);
                break;
            },
        }
        for (fds[0..3]) |pfd| {
            if (pfd.revents & (linux.POLL.ERR | linux.POLL.HUP | linux.POLL.NVAL) != 0) {
                // An interface went away: stop rather than spin; status says why.
                self.loop_errno = @backingInt(linux.E.NETDOWN);
            }
        }
        if (self.loop_errno != 0) break;
        if (fds[3].revents & linux.POLL.IN != 0) {
            var value: u64 = 0;
            _ = linux.read(self.wake_fd, std.mem.asBytes(&value), @sizeOf(u64));
        }
        const now = monotonicNs();
        if (now -% last_link_check >= link_check_interval_ns) {
            last_link_check = now;
            // A removed interface does not always wake ppoll with an error,
            // and TX queued to it would keep this loop spinning.
            if (!interfaceExists(self.udp_fd, self.config.outer_ifindex) or !interfaceExists(self.udp_fd, self.config.inner_ifindex)) {
                self.loop_errno = @backingInt(linux.E.NODEV);
                break;
            }
        }
        defer {
            const took = monotonicNs() -% now;
            if (took > self.loop_max_ns) self.loop_max_ns = took;
        }
        if (self.fail_requested.swap(false, .acq_rel)) self.dp.requestFail();
        const migrate_to = self.migrate_to.swap(0, .acq_rel);
        if (migrate_to != 0) self.dp.requestMigrate(migrate_to, now);
        const conn_request = self.migrate_conn.swap(0, .acq_rel);
        if (conn_request != 0) {
            self.dp.requestConnMigrate(@truncate(conn_request >> 48), @truncate(conn_request >> 16), @truncate(conn_request), now);
        }
        receiveFrames(self, &self.outer, &frames, .outer, now);
        receiveFrames(self, &self.inner, &frames, .inner, now);
        // A fresh clock for datagrams (and the tick after them, so time never
        // goes back for the datapath): the frames above may have taken long,
        // and a handover's resume time is measured from here.
        const later = monotonicNs();
        receiveDatagrams(self, later);
        self.dp.tick(later);
        self.dp.flushReports();
        self.hb_state.store(packState(self.dp), .release);
        self.outer.flush();
        self.inner.flush();
        if (now -% last_publish >= snapshot_interval_ns) {
            last_publish = now;
            self.publish(now);
        }
    }
    self.publish(monotonicNs());
}

const Side = enum { outer, inner };

/// Drains up to `batches_max` batches, so a backlog empties before the
/// next sleep but one side cannot starve the other for long.
fn receiveFrames(self: *Agent, socket: *xsk.Socket, frames: *[batch_max]xsk.Frame, side: Side, now: u64) void {
    var batch: u32 = 0;
    while (batch < batches_max) : (batch += 1) {
        const count = socket.receive(frames);
        if (count == 0) return;
        for (frames[0..count]) |frame| {
            const bytes = socket.frameBytes(frame);
            switch (side) {
                .outer => self.dp.outerFrame(bytes, now),
                .inner => self.dp.innerFrame(bytes, now),
            }
        }
        socket.recycle(frames[0..count]);
        // Copy-mode TX moves only inside a syscall: keep the output flowing.
        self.outer.flush();
        self.inner.flush();
        if (count < batch_max) return;
    }
}

fn receiveDatagrams(self: *Agent, now: u64) void {
    var buf: [2048]u8 = undefined;
    var round: u32 = 0;
    while (round < 256) : (round += 1) {
        var from: linux.sockaddr.in = undefined;
        var from_len: linux.socklen_t = @sizeOf(linux.sockaddr.in);
        const rc = linux.recvfrom(self.udp_fd, &buf, buf.len, linux.MSG.DONTWAIT, @ptrCast(&from), &from_len);
        if (linux.errno(rc) != .SUCCESS) return;
        const addr: [4]u8 = @bitCast(from.addr);
        const peer = for (self.config.peerSlice(), 0..) |p, i| {
            if (std.mem.eql(u8, &p, &addr)) break i;
        } else continue; // not a configured peer: ignore
        self.dp.controlDatagram(@intCast(peer), buf[0..rc], now);
    }
}

fn openControlSocket(config: config_mod.Config, why: *[]const u8) Error!linux.fd_t {
    const rc = linux.socket(linux.AF.INET, linux.SOCK.DGRAM | linux.SOCK.CLOEXEC | linux.SOCK.NONBLOCK, 0);
    if (linux.errno(rc) != .SUCCESS) {
        why.* = "cannot open the replication socket";
        return error.SystemResources;
    }
    const fd: linux.fd_t = @intCast(rc);
    errdefer _ = linux.close(fd);
    // Heartbeats must not wait behind a burst of reports: keep room.
    const buffer_bytes: u32 = 4 * 1024 * 1024;
    _ = linux.setsockopt(fd, linux.SOL.SOCKET, linux.SO.RCVBUF, std.mem.asBytes(&buffer_bytes), 4);
    // The highest priority band of the default qdisc, for the same reason.
    const priority: u32 = 6;
    _ = linux.setsockopt(fd, linux.SOL.SOCKET, linux.SO.PRIORITY, std.mem.asBytes(&priority), 4);
    var address = linux.sockaddr.in{
        .port = std.mem.nativeToBig(u16, config.control_port),
        .addr = std.mem.readInt(u32, &config.node_addr, .native),
    };
    const bound = linux.bind(fd, @ptrCast(&address), @sizeOf(linux.sockaddr.in));
    switch (linux.errno(bound)) {
        .SUCCESS => return fd,
        .ADDRINUSE => {
            why.* = "the replication port is in use on this node (another agent runs here?)";
            return error.Busy;
        },
        .ADDRNOTAVAIL => {
            why.* = "the node address is not on any interface of this namespace";
            return error.InvalidConfig;
        },
        .ACCES, .PERM => {
            why.* = "cannot bind the replication port";
            return error.PermissionDenied;
        },
        else => {
            why.* = "cannot bind the replication socket";
            return error.Unexpected;
        },
    }
}

const link_check_interval_ns: u64 = 200 * std.time.ns_per_ms;

fn interfaceExists(fd: linux.fd_t, ifindex: u32) bool {
    var request = std.mem.zeroes(linux.ifreq);
    request.ifru.ivalue = @intCast(ifindex);
    const rc = linux.ioctl(fd, linux.SIOCGIFNAME, @intFromPtr(&request));
    return linux.errno(rc) != .NODEV;
}

fn kernelDrops(socket: *const xsk.Socket) u64 {
    const s = socket.statistics() catch return 0;
    // rx_dropped already counts fill-ring-empty drops.
    return s.rx_dropped + s.rx_ring_full;
}

fn xskError(err: xsk.Error) Error {
    return switch (err) {
        error.PermissionDenied => error.PermissionDenied,
        error.NotSupported => error.NotSupported,
        error.InterfaceNotFound => error.InterfaceNotFound,
        error.Busy => error.Busy,
        error.SystemResources => error.SystemResources,
        else => error.Unexpected,
    };
}

fn loaderError(err: bpf_loader.Error) Error {
    return switch (err) {
        error.PermissionDenied => error.PermissionDenied,
        error.NotSupported, error.ProgramRejected => error.NotSupported,
        error.InterfaceNotFound => error.InterfaceNotFound,
        error.Busy => error.Busy,
        error.SystemResources => error.SystemResources,
        error.Unexpected => error.Unexpected,
    };
}

fn monotonicNs() u64 {
    var ts: linux.timespec = undefined;
    _ = linux.clock_gettime(.MONOTONIC, &ts);
    return @as(u64, @intCast(ts.sec)) * std.time.ns_per_s + @as(u64, @intCast(ts.nsec));
}

fn realtimeNs() u64 {
    var ts: linux.timespec = undefined;
    _ = linux.clock_gettime(.REALTIME, &ts);
    return @as(u64, @intCast(ts.sec)) * std.time.ns_per_s + @as(u64, @intCast(ts.nsec));
}

fn nsToMs(ns: u64) f64 {
    return @as(f64, @floatFromInt(ns)) / std.time.ns_per_ms;
}

test "every declaration compiles" {
    std.testing.refAllDecls(Agent);
}
