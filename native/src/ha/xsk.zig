//! One AF_XDP socket with its own UMEM, in copy mode (veth has no zero-copy)
//! and with XDP_USE_NEED_WAKEUP. No libxdp: the four rings are mmapped and
//! driven here with acquire/release on their shared indices.
//!
//! The UMEM is split in two halves. RX frames (the lower half) circulate
//! between the fill ring, the kernel, the rx ring and the caller. TX frames
//! (the upper half) sit on a free stack until `send` copies a frame into one,
//! and come back from the completion ring. The halves never mix, so a busy
//! receive side can never starve `send` of frames, and `send` never waits.
//!
//! Sizing makes overflow impossible rather than handled. The kernel
//! publishes its consumer index of the fill and tx rings lazily: it reads a
//! window of entries into a private cache and stores the index only when
//! that window runs out (net/xdp/xsk_queue.h, xskq_cons_get_entries). Slots
//! it has already read can therefore look occupied for up to a whole
//! window, at most the frames that exist. So the two rings we produce into
//! get twice the entries of their frames: recycling an RX frame always
//! finds room in the fill ring, a free TX frame always finds room in the tx
//! ring. (With equal sizes, measured under load in generic mode: recycle
//! found the fill ring looking full, where an assertion stood then.) The rx
//! and completion rings, which the kernel produces and we consume eagerly,
//! need only one entry per frame. Should the kernel ever lag more, recycle
//! defers frames instead of losing them (Receiver.deferred, counted).
//!
//! A frame the kernel has to drop because every RX frame is in the rx ring
//! or with the caller (rx_fill_ring_empty_descs) is another matter: that is
//! a burst larger than the RX half, and only more frames fix it.
const std = @import("std");
const linux = std.os.linux;
const assert = std.debug.assert;
const constants = @import("../common/constants.zig");

pub const Error = error{
    PermissionDenied,
    NotSupported,
    InterfaceNotFound,
    Busy,
    SystemResources,
    RingFull,
    Unexpected,
};

/// One received frame: its address in the UMEM and its length.
pub const Frame = struct { addr: u64, len: u32 };

pub const Options = struct {
    /// UMEM chunk bytes: a power of two, 2048 or 4096 (aligned mode).
    frame_size: u32 = 2048,
    /// UMEM frames, half for RX and half for TX.
    frame_count: u32 = 4096,
    /// Entries of the rx and completion rings (power of two, at least
    /// frame_count / 2); the fill and tx rings get twice as many.
    ring_size: u32 = 2048,
    queue: u32 = 0,
};

/// XDP_RING_NEED_WAKEUP from <linux/if_xdp.h> (not in Zig's std).
pub const ring_need_wakeup: u32 = 1 << 0;
/// Bytes the kernel reserves in front of a received frame in copy mode
/// (XDP_PACKET_HEADROOM, <linux/bpf.h>): a frame holds at most
/// frame_size - 256 bytes on receive.
pub const xdp_packet_headroom: u32 = 256;

/// struct xdp_umem_reg from <linux/if_xdp.h> with tx_metadata_len (Linux
/// 6.8). Zig's std version stops at `flags`, and its tail padding would be
/// read by the kernel as tx_metadata_len: spell the field out so it is 0.
const UmemReg = extern struct {
    addr: u64,
    len: u64,
    chunk_size: u32,
    headroom: u32,
    flags: u32,
    tx_metadata_len: u32,
};

comptime {
    assert(@sizeOf(UmemReg) == 32);
    assert(@sizeOf(linux.xdp_desc) == 16);
    assert(@sizeOf(linux.xdp_mmap_offsets) == 128);
}

/// Whether `open` accepts `options` (shims check this and return
/// invalid_argument; `open` asserts it).
pub fn optionsValid(options: Options) bool {
    if (options.frame_size != 2048 and options.frame_size != 4096) return false;
    if (options.frame_count < 2 or options.frame_count % 2 != 0) return false;
    if (options.frame_count > constants.ha_xsk_frames_max) return false;
    if (!std.math.isPowerOfTwo(options.ring_size)) return false;
    if (options.ring_size * 2 > constants.ha_xsk_ring_entries_max) return false;
    if (options.frame_count / 2 > options.ring_size) return false;
    return true;
}

/// A single-producer single-consumer ring shared with the kernel. Indices
/// run freely and wrap at 2^32; `mask` picks the slot. We own one index
/// (the producer of fill/tx, the consumer of rx/completion) and cache the
/// kernel's, re-reading it with acquire only when the cache says "not enough".
pub fn Ring(comptime Entry: type) type {
    return struct {
        const Self = @This();

        producer: *u32,
        consumer: *u32,
        flags: *u32,
        entries: [*]Entry,
        size: u32,
        mask: u32,
        cached_producer: u32,
        cached_consumer: u32,

        pub fn init(producer: *u32, consumer: *u32, flags: *u32, entries: [*]Entry, size: u32) Self {
            assert(std.math.isPowerOfTwo(size));
            return .{
                .producer = producer,
                .consumer = consumer,
                .flags = flags,
                .entries = entries,
                .size = size,
                .mask = size - 1,
                .cached_producer = @atomicLoad(u32, producer, .acquire),
                .cached_consumer = @atomicLoad(u32, consumer, .acquire),
            };
        }

        pub fn entry(self: *const Self, index: u32) *Entry {
            return &self.entries[index & self.mask];
        }

        // -- producer side (fill, tx) --

        /// Slots free for us to produce into; re-reads the consumer when
        /// fewer than `wanted` look free.
        pub fn free(self: *Self, wanted: u32) u32 {
            var used = self.cached_producer -% self.cached_consumer;
            assert(used <= self.size);
            if (self.size - used >= wanted) return self.size - used;
            // Acquire: the kernel's reads of the slots it released happen before we overwrite them.
            self.cached_consumer = @atomicLoad(u32, self.consumer, .acquire);
            used = self.cached_producer -% self.cached_consumer;
            assert(used <= self.size);
            return self.size - used;
        }

        /// Appends one entry (the caller checked `free`); visible after `submit`.
        pub fn push(self: *Self, value: Entry) void {
            assert(self.cached_producer -% self.cached_consumer < self.size);
            self.entry(self.cached_producer).* = value;
            self.cached_producer +%= 1;
        }

        /// Publishes every pushed entry.
        pub fn submit(self: *Self) void {
            // Release: the entries are written before the kernel can see the new producer.
            @atomicStore(u32, self.producer, self.cached_producer, .release);
        }

        /// Entries published but not yet taken by the kernel.
        pub fn outstanding(self: *Self) u32 {
            const published = self.producer.*; // we are its only writer
            self.cached_consumer = @atomicLoad(u32, self.consumer, .acquire);
            const pending = published -% self.cached_consumer;
            assert(pending <= self.size);
            return pending;
        }

        // -- consumer side (rx, completion) --

        /// Entries ready for us, at most `wanted`; re-reads the producer when
        /// fewer than `wanted` are known.
        pub fn available(self: *Self, wanted: u32) u32 {
            var ready = self.cached_producer -% self.cached_consumer;
            assert(ready <= self.size);
            if (ready < wanted) {
                // Acquire: the kernel's writes of the entries happen before we read them.
                self.cached_producer = @atomicLoad(u32, self.producer, .acquire);
                ready = self.cached_producer -% self.cached_consumer;
                assert(ready <= self.size);
            }
            return @min(ready, wanted);
        }

        /// Hands `count` consumed entries back to the kernel.
        pub fn release(self: *Self, count: u32) void {
            assert(count <= self.cached_producer -% self.cached_consumer);
            self.cached_consumer +%= count;
            // Release: our reads of the entries happen before the kernel may reuse them.
            @atomicStore(u32, self.consumer, self.cached_consumer, .release);
        }

        pub fn needsWakeup(self: *const Self) bool {
            return @atomicLoad(u32, self.flags, .monotonic) & ring_need_wakeup != 0;
        }
    };
}

/// Free TX frame addresses, last in first out (the most recently completed
/// frame is the one most likely still in cache).
pub const FrameStack = struct {
    addrs: []u64,
    len: u32,

    pub fn push(self: *FrameStack, addr: u64) void {
        assert(self.len < self.addrs.len);
        self.addrs[self.len] = addr;
        self.len += 1;
    }

    pub fn pop(self: *FrameStack) ?u64 {
        if (self.len == 0) return null;
        self.len -= 1;
        return self.addrs[self.len];
    }
};

/// The UMEM geometry: which addresses are RX frames and which TX frames.
pub const Layout = struct {
    frame_size: u32,
    frame_count: u32,

    pub fn rxFrames(self: Layout) u32 {
        return self.frame_count / 2;
    }

    /// First byte of the TX half.
    pub fn txBase(self: Layout) u64 {
        return @as(u64, self.rxFrames()) * self.frame_size;
    }

    pub fn umemBytes(self: Layout) u64 {
        return @as(u64, self.frame_count) * self.frame_size;
    }

    /// Start of the frame holding `addr` (received addresses carry headroom).
    pub fn frameBase(self: Layout, addr: u64) u64 {
        return addr - addr % self.frame_size;
    }

    pub fn isRx(self: Layout, addr: u64) bool {
        return addr < self.txBase();
    }

    pub fn isTx(self: Layout, addr: u64) bool {
        return addr >= self.txBase() and addr < self.umemBytes();
    }
};

/// The TX side without the socket: frames from the free stack into the tx
/// ring, completions back onto the stack. Separate so tests drive it with
/// plain memory standing in for the kernel.
pub const Transmitter = struct {
    tx: Ring(linux.xdp_desc),
    completion: Ring(u64),
    free_frames: FrameStack,
    layout: Layout,
    /// Pushed to the tx ring but not yet published.
    queued: u32 = 0,

    /// Copies `bytes` into a free TX frame and queues it. RingFull when
    /// every TX frame is in flight even after reclaiming completions.
    pub fn enqueue(self: *Transmitter, umem: []u8, bytes: []const u8) Error!void {
        assert(bytes.len > 0);
        assert(bytes.len <= self.layout.frame_size);
        const addr = self.free_frames.pop() orelse blk: {
            _ = self.reclaim();
            break :blk self.free_frames.pop() orelse return error.RingFull;
        };
        assert(self.layout.isTx(addr));
        assert(addr % self.layout.frame_size == 0);
        @memcpy(umem[@intCast(addr)..][0..bytes.len], bytes);
        // Room by sizing (twice the TX frames); checked all the same.
        if (self.tx.free(1) == 0) {
            self.free_frames.push(addr);
            return error.RingFull;
        }
        self.tx.push(.{ .addr = addr, .len = @intCast(bytes.len), .options = 0 });
        self.queued += 1;
    }

    /// Makes queued frames visible to the kernel.
    pub fn publish(self: *Transmitter) void {
        if (self.queued == 0) return;
        self.tx.submit();
        self.queued = 0;
    }

    /// Moves completed frames back onto the free stack; returns how many.
    pub fn reclaim(self: *Transmitter) u32 {
        const count = self.completion.available(self.layout.frame_count - self.layout.rxFrames());
        var i: u32 = 0;
        while (i < count) : (i += 1) {
            const addr = self.completion.entry(self.completion.cached_consumer +% i).*;
            assert(self.layout.isTx(addr));
            self.free_frames.push(self.layout.frameBase(addr));
        }
        if (count > 0) self.completion.release(count);
        return count;
    }
};

/// The RX side without the socket (see Transmitter).
pub const Receiver = struct {
    rx: Ring(linux.xdp_desc),
    fill: Ring(u64),
    layout: Layout,
    /// Frames that found no room in the fill ring. Sizing says this never
    /// happens; if the kernel ever publishes later than we assume, frames
    /// wait here (and are counted) instead of being lost or crashing.
    deferred: FrameStack,
    deferred_total: u64 = 0,

    pub fn receive(self: *Receiver, out: []Frame) u32 {
        if (self.deferred.len > 0) self.refillDeferred();
        const wanted: u32 = @intCast(@min(out.len, self.rx.size));
        const count = self.rx.available(wanted);
        var i: u32 = 0;
        while (i < count) : (i += 1) {
            const desc = self.rx.entry(self.rx.cached_consumer +% i).*;
            assert(self.layout.isRx(desc.addr));
            assert(desc.addr % self.layout.frame_size + desc.len <= self.layout.frame_size);
            out[i] = .{ .addr = desc.addr, .len = desc.len };
        }
        if (count > 0) self.rx.release(count);
        return count;
    }

    pub fn recycle(self: *Receiver, frames: []const Frame) void {
        if (frames.len == 0) return;
        const room = self.fill.free(@intCast(frames.len));
        for (frames, 0..) |frame, i| {
            assert(self.layout.isRx(frame.addr));
            const base = self.layout.frameBase(frame.addr);
            if (i < room) {
                self.fill.push(base);
            } else {
                self.deferred.push(base);
                self.deferred_total += 1;
            }
        }
        self.fill.submit();
    }

    fn refillDeferred(self: *Receiver) void {
        var room = self.fill.free(self.deferred.len);
        while (room > 0) : (room -= 1) {
            self.fill.push(self.deferred.pop() orelse break);
        }
        self.fill.submit();
    }
};

/// One mmapped region, kept for munmap.
const Mapping = []align(std.heap.page_size_min) u8;

pub const Socket = struct {
    socket_fd: linux.fd_t,
    umem: Mapping,
    /// Backing store of the TX free stack.
    stack_memory: Mapping,
    ring_maps: [4]Mapping,
    receiver: Receiver,
    transmitter: Transmitter,
    /// sendto calls made to kick TX (copy mode transmits only inside a syscall).
    kicks: u64 = 0,

    /// Opens the socket bound to `ifindex` queue `options.queue` in copy mode
    /// with need_wakeup, its UMEM mapped and its fill ring full.
    pub fn open(ifindex: u32, options: Options) Error!Socket {
        assert(ifindex > 0);
        assert(optionsValid(options));
        const layout = Layout{ .frame_size = options.frame_size, .frame_count = options.frame_count };
        const created = try syscallResult(linux.socket(linux.AF.XDP, linux.SOCK.RAW | linux.SOCK.CLOEXEC, 0));
        const socket_fd: linux.fd_t = @intCast(created);
        errdefer _ = linux.close(socket_fd);

        const umem = try mapAnonymous(@intCast(layout.umemBytes()));
        errdefer _ = linux.munmap(umem.ptr, umem.len);
        const tx_frames = options.frame_count - layout.rxFrames();
        // The TX free stack, then the deferred-recycle stack (one u64 per frame in all).
        const stack_memory = try mapAnonymous(@as(usize, options.frame_count) * @sizeOf(u64));
        errdefer _ = linux.munmap(stack_memory.ptr, stack_memory.len);

        const reg = UmemReg{
            .addr = @intFromPtr(umem.ptr),
            .len = umem.len,
            .chunk_size = options.frame_size,
            .headroom = 0,
            .flags = 0,
            .tx_metadata_len = 0,
        };
        try setOption(socket_fd, linux.XDP.UMEM_REG, std.mem.asBytes(&reg));
        const size = options.ring_size;
        const producer_size = options.ring_size * 2; // fill and tx: see the file comment
        try setOption(socket_fd, linux.XDP.UMEM_FILL_RING, std.mem.asBytes(&producer_size));
        try setOption(socket_fd, linux.XDP.UMEM_COMPLETION_RING, std.mem.asBytes(&size));
        try setOption(socket_fd, linux.XDP.RX_RING, std.mem.asBytes(&size));
        try setOption(socket_fd, linux.XDP.TX_RING, std.mem.asBytes(&producer_size));
        var offsets: linux.xdp_mmap_offsets = undefined;
        var offsets_len: linux.socklen_t = @sizeOf(linux.xdp_mmap_offsets);
        _ = try syscallResult(linux.getsockopt(socket_fd, linux.SOL.XDP, linux.XDP.MMAP_OFFSETS, std.mem.asBytes(&offsets), &offsets_len));
        if (offsets_len != @sizeOf(linux.xdp_mmap_offsets)) return error.NotSupported; // pre-5.4 kernel

        const fill_map = try mapRing(socket_fd, offsets.fr, producer_size, u64, linux.XDP.UMEM_PGOFF_FILL_RING);
        errdefer _ = linux.munmap(fill_map.ptr, fill_map.len);
        const completion_map = try mapRing(socket_fd, offsets.cr, size, u64, linux.XDP.UMEM_PGOFF_COMPLETION_RING);
        errdefer _ = linux.munmap(completion_map.ptr, completion_map.len);
        const rx_map = try mapRing(socket_fd, offsets.rx, size, linux.xdp_desc, linux.XDP.PGOFF_RX_RING);
        errdefer _ = linux.munmap(rx_map.ptr, rx_map.len);
        const tx_map = try mapRing(socket_fd, offsets.tx, producer_size, linux.xdp_desc, linux.XDP.PGOFF_TX_RING);
        errdefer _ = linux.munmap(tx_map.ptr, tx_map.len);

        const stack_addrs: []u64 = std.mem.bytesAsSlice(u64, stack_memory);
        var self = Socket{
            .socket_fd = socket_fd,
            .umem = umem,
            .stack_memory = stack_memory,
            .ring_maps = .{ fill_map, completion_map, rx_map, tx_map },
            .receiver = .{
                .rx = ringAt(linux.xdp_desc, rx_map, offsets.rx, size),
                .fill = ringAt(u64, fill_map, offsets.fr, producer_size),
                .layout = layout,
                .deferred = .{ .addrs = stack_addrs[tx_frames..], .len = 0 },
            },
            .transmitter = .{
                .tx = ringAt(linux.xdp_desc, tx_map, offsets.tx, producer_size),
                .completion = ringAt(u64, completion_map, offsets.cr, size),
                .free_frames = .{ .addrs = stack_addrs[0..tx_frames], .len = 0 },
                .layout = layout,
            },
        };
        var frame: u32 = 0;
        while (frame < layout.rxFrames()) : (frame += 1) {
            self.receiver.fill.push(@as(u64, frame) * options.frame_size);
        }
        self.receiver.fill.submit();
        while (frame < options.frame_count) : (frame += 1) {
            self.transmitter.free_frames.push(@as(u64, frame) * options.frame_size);
        }
        assert(self.transmitter.free_frames.len == tx_frames);

        var address = linux.sockaddr.xdp{
            .flags = linux.XDP.COPY | linux.XDP.USE_NEED_WAKEUP,
            .ifindex = ifindex,
            .queue_id = options.queue,
            .shared_umem_fd = 0,
        };
        const rc = linux.bind(socket_fd, @ptrCast(&address), @sizeOf(linux.sockaddr.xdp));
        switch (linux.errno(rc)) {
            .SUCCESS => {},
            .NODEV, .NXIO => return error.InterfaceNotFound,
            // EINVAL: queue out of range for the device.
            .INVAL, .OPNOTSUPP => return error.NotSupported,
            else => |errno| return errnoError(errno),
        }
        return self;
    }

    pub fn fd(self: *const Socket) linux.fd_t {
        assert(self.socket_fd >= 0);
        return self.socket_fd;
    }

    /// Takes up to `out.len` received frames (non-blocking). They stay the
    /// caller's, readable and writable through `frameBytes`, until `recycle`.
    pub fn receive(self: *Socket, out: []Frame) u32 {
        const count = self.receiver.receive(out);
        // Only zero-copy drivers set need_wakeup on the fill ring; in copy
        // mode this never fires, but it keeps the socket correct on a NIC.
        if (count == 0 and self.receiver.fill.needsWakeup()) {
            var none: [1]u8 = undefined;
            _ = linux.recvfrom(self.socket_fd, &none, 0, linux.MSG.DONTWAIT, null, null);
        }
        return count;
    }

    pub fn frameBytes(self: *Socket, frame: Frame) []u8 {
        assert(frame.addr + frame.len <= self.umem.len);
        assert(frame.len <= self.receiver.layout.frame_size);
        return self.umem[@intCast(frame.addr)..][0..frame.len];
    }

    /// Gives received frames back to the kernel through the fill ring.
    pub fn recycle(self: *Socket, frames: []const Frame) void {
        self.receiver.recycle(frames);
    }

    /// Copies `bytes` (one whole Ethernet frame) into a free TX frame and
    /// queues it; `flush` publishes. RingFull when no TX frame is free.
    pub fn send(self: *Socket, bytes: []const u8) Error!void {
        return self.transmitter.enqueue(self.umem, bytes);
    }

    /// Publishes queued frames, kicks the kernel with sendto while it asks
    /// (copy mode always asks, and sends only a batch per call) and reclaims
    /// completed frames. Bounded: what is left goes out on the next flush or
    /// poll (poll drives copy-mode TX too).
    pub fn flush(self: *Socket) void {
        self.transmitter.publish();
        // At most flush_rounds_max kicks: in copy mode each sendto also runs
        // the receiver's stack (a veth peer's TCP) in this thread, and one
        // flush of a deep ring could keep the caller away from its other work
        // for 100 ms. What is left goes out on the next flush.
        const rounds_max = @min(self.transmitter.tx.size / tx_batch_min + 2, flush_rounds_max);
        var round: u32 = 0;
        while (round < rounds_max) : (round += 1) {
            if (self.transmitter.tx.outstanding() == 0) break;
            if (!self.transmitter.tx.needsWakeup()) break;
            var none: [1]u8 = undefined;
            const rc = linux.sendto(self.socket_fd, &none, 0, linux.MSG.DONTWAIT, null, 0);
            self.kicks += 1;
            _ = self.transmitter.reclaim();
            switch (linux.errno(rc)) {
                // EAGAIN: the kernel's per-call budget ran out, or the completion ring was full.
                .SUCCESS, .AGAIN, .BUSY, .NOBUFS => {},
                // ENETDOWN, ENXIO...: nothing more goes out now; frames complete or stay queued.
                else => break,
            }
        }
        _ = self.transmitter.reclaim();
    }

    /// Frames published to the tx ring that the kernel has not taken yet.
    pub fn txPending(self: *Socket) u32 {
        return self.transmitter.tx.outstanding();
    }

    /// TX frames on the free stack.
    pub fn txFree(self: *const Socket) u32 {
        return self.transmitter.free_frames.len;
    }

    /// The kernel's drop counters (XDP_STATISTICS).
    pub fn statistics(self: *const Socket) Error!linux.xdp_statistics {
        var stats: linux.xdp_statistics = std.mem.zeroes(linux.xdp_statistics);
        var len: linux.socklen_t = @sizeOf(linux.xdp_statistics);
        _ = try syscallResult(linux.getsockopt(self.socket_fd, linux.SOL.XDP, linux.XDP.STATISTICS, std.mem.asBytes(&stats), &len));
        return stats;
    }

    /// Unmaps the rings and the UMEM and closes the socket (which also takes
    /// it out of any XSKMAP).
    pub fn close(self: *Socket) void {
        assert(self.socket_fd >= 0);
        for (self.ring_maps) |map| _ = linux.munmap(map.ptr, map.len);
        _ = linux.close(self.socket_fd);
        _ = linux.munmap(self.umem.ptr, self.umem.len);
        _ = linux.munmap(self.stack_memory.ptr, self.stack_memory.len);
        self.socket_fd = -1;
    }
};

/// Frames the kernel sends per sendto in copy mode (TX_BATCH_SIZE in
/// net/xdp/xsk.c), used only to bound flush's loop.
const tx_batch_min: u32 = 32;
const flush_rounds_max: u32 = 16;

fn ringAt(comptime Entry: type, map: Mapping, offset: linux.xdp_ring_offset, size: u32) Ring(Entry) {
    const base = @intFromPtr(map.ptr);
    return Ring(Entry).init(
        @ptrFromInt(base + offset.producer),
        @ptrFromInt(base + offset.consumer),
        @ptrFromInt(base + offset.flags),
        @ptrFromInt(base + offset.desc),
        size,
    );
}

fn mapRing(socket_fd: linux.fd_t, offset: linux.xdp_ring_offset, size: u32, comptime Entry: type, page_offset: u64) Error!Mapping {
    const len: usize = @intCast(offset.desc + @as(u64, size) * @sizeOf(Entry));
    const rc = linux.mmap(null, len, .{ .READ = true, .WRITE = true }, .{ .TYPE = .SHARED, .POPULATE = true }, socket_fd, @intCast(page_offset));
    const addr = try syscallResult(rc);
    return @as([*]align(std.heap.page_size_min) u8, @ptrFromInt(addr))[0..len];
}

fn mapAnonymous(len: usize) Error!Mapping {
    const rc = linux.mmap(null, len, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .POPULATE = true }, -1, 0);
    const addr = try syscallResult(rc);
    return @as([*]align(std.heap.page_size_min) u8, @ptrFromInt(addr))[0..len];
}

fn setOption(socket_fd: linux.fd_t, name: u32, value: []const u8) Error!void {
    _ = try syscallResult(linux.setsockopt(socket_fd, linux.SOL.XDP, name, value.ptr, @intCast(value.len)));
}

fn syscallResult(rc: usize) Error!usize {
    return switch (linux.errno(rc)) {
        .SUCCESS => rc,
        else => |errno| errnoError(errno),
    };
}

fn errnoError(errno: linux.E) Error {
    return switch (errno) {
        .PERM, .ACCES => error.PermissionDenied,
        .AFNOSUPPORT, .OPNOTSUPP, .NOPROTOOPT, .PROTONOSUPPORT => error.NotSupported,
        .NODEV, .NXIO => error.InterfaceNotFound,
        .BUSY => error.Busy,
        .NOMEM, .NOBUFS, .MFILE, .NFILE => error.SystemResources,
        else => error.Unexpected,
    };
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

/// Ring memory a test plays the kernel on.
fn TestRing(comptime Entry: type, comptime size: u32) type {
    return struct {
        producer: u32,
        consumer: u32,
        flags: u32 = 0,
        entries: [size]Entry = undefined,

        fn ring(self: *@This()) Ring(Entry) {
            return Ring(Entry).init(&self.producer, &self.consumer, &self.flags, &self.entries, size);
        }
    };
}

test "ring indices wrap at 2^32 and the mask picks the slot" {
    const start: u32 = std.math.maxInt(u32) - 2;
    var memory = TestRing(u64, 4){ .producer = start, .consumer = start };
    var ring = memory.ring();
    try testing.expectEqual(@as(u32, 4), ring.free(1));
    for (0..4) |i| ring.push(100 + i);
    try testing.expectEqual(@as(u32, 0), ring.free(1));
    // Not visible before submit.
    try testing.expectEqual(start, memory.producer);
    ring.submit();
    try testing.expectEqual(start +% 4, memory.producer);
    try testing.expectEqual(@as(u32, 1), memory.producer); // wrapped
    // Slots follow index & mask: start = 0xFFFF_FFFD -> slot 1.
    try testing.expectEqual(@as(u64, 100), memory.entries[1]);
    try testing.expectEqual(@as(u64, 103), memory.entries[0]);
    try testing.expectEqual(@as(u32, 4), ring.outstanding());
    // The kernel consumes three: the cache is refreshed only when asked for more.
    memory.consumer = start +% 3;
    try testing.expectEqual(@as(u32, 3), ring.free(2));
    try testing.expectEqual(@as(u32, 1), ring.outstanding());
}

test "a consumer ring sees only published entries and releases what it took" {
    const start: u32 = std.math.maxInt(u32);
    var memory = TestRing(u64, 8){ .producer = start, .consumer = start };
    var ring = memory.ring();
    try testing.expectEqual(@as(u32, 0), ring.available(8));
    // The kernel produces five entries across the wrap.
    for (0..5) |i| memory.entries[(start +% @as(u32, @intCast(i))) & 7] = 10 + i;
    memory.producer = start +% 5;
    try testing.expectEqual(@as(u32, 3), ring.available(3));
    try testing.expectEqual(@as(u64, 10), ring.entry(ring.cached_consumer).*);
    ring.release(3);
    try testing.expectEqual(start +% 3, memory.consumer);
    try testing.expectEqual(@as(u32, 2), ring.available(8));
    try testing.expectEqual(@as(u64, 13), ring.entry(ring.cached_consumer).*);
    ring.release(2);
    try testing.expectEqual(@as(u32, 0), ring.available(8));
    try testing.expectEqual(@as(u32, 4), memory.consumer);
}

test "need_wakeup is read from the ring flags" {
    var memory = TestRing(u64, 4){ .producer = 0, .consumer = 0 };
    const ring = memory.ring();
    try testing.expect(!ring.needsWakeup());
    memory.flags = ring_need_wakeup;
    try testing.expect(ring.needsWakeup());
}

test "the TX free stack is last in, first out and empties to null" {
    var backing: [3]u64 = undefined;
    var stack = FrameStack{ .addrs = &backing, .len = 0 };
    try testing.expectEqual(@as(?u64, null), stack.pop());
    stack.push(4096);
    stack.push(6144);
    stack.push(8192);
    try testing.expectEqual(@as(?u64, 8192), stack.pop());
    try testing.expectEqual(@as(?u64, 6144), stack.pop());
    stack.push(10240);
    try testing.expectEqual(@as(?u64, 10240), stack.pop());
    try testing.expectEqual(@as(?u64, 4096), stack.pop());
    try testing.expectEqual(@as(?u64, null), stack.pop());
}

test "TX frames cycle free stack -> tx ring -> completion -> free stack; RingFull when all are in flight" {
    const layout = Layout{ .frame_size = 2048, .frame_count = 8 }; // TX frames 4..7
    var umem: [8 * 2048]u8 = @splat(0);
    var tx_memory = TestRing(linux.xdp_desc, 4){ .producer = 0, .consumer = 0 };
    var completion_memory = TestRing(u64, 4){ .producer = 0, .consumer = 0 };
    var backing: [4]u64 = undefined;
    var transmitter = Transmitter{
        .tx = tx_memory.ring(),
        .completion = completion_memory.ring(),
        .free_frames = .{ .addrs = &backing, .len = 0 },
        .layout = layout,
    };
    for (4..8) |frame| transmitter.free_frames.push(frame * 2048);

    for (0..4) |i| try transmitter.enqueue(&umem, &[_]u8{ @intCast(i), 0xAA, 0xBB });
    try testing.expectError(error.RingFull, transmitter.enqueue(&umem, "x"));
    try testing.expectEqual(@as(u32, 0), tx_memory.producer);
    transmitter.publish();
    try testing.expectEqual(@as(u32, 4), tx_memory.producer);
    // Frames came off the stack top first: 7, 6, 5, 4; the bytes are in the UMEM.
    const first = tx_memory.entries[0];
    try testing.expectEqual(@as(u64, 7 * 2048), first.addr);
    try testing.expectEqual(@as(u32, 3), first.len);
    try testing.expectEqualSlices(u8, &.{ 0, 0xAA, 0xBB }, umem[7 * 2048 ..][0..3]);
    try testing.expect(layout.isTx(first.addr) and !layout.isRx(first.addr));

    // The kernel sends two and completes them.
    tx_memory.consumer = 2;
    completion_memory.entries[0] = tx_memory.entries[0].addr;
    completion_memory.entries[1] = tx_memory.entries[1].addr;
    completion_memory.producer = 2;
    // enqueue reclaims by itself when the stack is empty.
    try transmitter.enqueue(&umem, "hello");
    try testing.expectEqual(@as(u32, 1), transmitter.free_frames.len);
    try testing.expectEqual(@as(u32, 2), completion_memory.consumer);
    try testing.expectEqualStrings("hello", umem[6 * 2048 ..][0..5]);
    transmitter.publish();
    try testing.expectEqual(@as(u32, 5), tx_memory.producer);
    try testing.expectEqual(@as(u64, 6 * 2048), tx_memory.entries[0].addr); // slot 4 & 3 = 0
}

test "received frames are handed out and recycled to the fill ring at their frame base" {
    const layout = Layout{ .frame_size = 2048, .frame_count = 8 }; // RX frames 0..3
    var rx_memory = TestRing(linux.xdp_desc, 4){ .producer = 0, .consumer = 0 };
    var fill_memory = TestRing(u64, 4){ .producer = 0, .consumer = 0 };
    var deferred_backing: [4]u64 = undefined;
    var receiver = Receiver{
        .rx = rx_memory.ring(),
        .fill = fill_memory.ring(),
        .layout = layout,
        .deferred = .{ .addrs = &deferred_backing, .len = 0 },
    };
    for (0..4) |frame| receiver.fill.push(frame * 2048);
    receiver.fill.submit();
    try testing.expectEqual(@as(u32, 4), fill_memory.producer);

    var out: [8]Frame = undefined;
    try testing.expectEqual(@as(u32, 0), receiver.receive(&out));
    // The kernel takes all four fill entries and delivers two frames (copy
    // mode puts the data 256 bytes into the frame).
    fill_memory.consumer = 4;
    rx_memory.entries[0] = .{ .addr = 2048 + xdp_packet_headroom, .len = 60, .options = 0 };
    rx_memory.entries[1] = .{ .addr = 0 + xdp_packet_headroom, .len = 1514, .options = 0 };
    rx_memory.producer = 2;
    try testing.expectEqual(@as(u32, 1), receiver.receive(out[0..1]));
    try testing.expectEqual(@as(u64, 2048 + 256), out[0].addr);
    try testing.expectEqual(@as(u32, 1), receiver.receive(out[1..]));
    try testing.expectEqual(@as(u32, 1514), out[1].len);
    try testing.expectEqual(@as(u32, 2), rx_memory.consumer);
    receiver.recycle(out[0..2]);
    try testing.expectEqual(@as(u32, 6), fill_memory.producer);
    try testing.expectEqual(@as(u64, 2048), fill_memory.entries[4 & 3]);
    try testing.expectEqual(@as(u64, 0), fill_memory.entries[5 & 3]);
}

test "a fill ring that looks full (the kernel publishes its consumer late) defers, never loses, a frame" {
    const layout = Layout{ .frame_size = 2048, .frame_count = 8 }; // RX frames 0..3
    var rx_memory = TestRing(linux.xdp_desc, 4){ .producer = 0, .consumer = 0 };
    var fill_memory = TestRing(u64, 4){ .producer = 0, .consumer = 0 }; // deliberately 1x, not 2x
    var deferred_backing: [4]u64 = undefined;
    var receiver = Receiver{
        .rx = rx_memory.ring(),
        .fill = fill_memory.ring(),
        .layout = layout,
        .deferred = .{ .addrs = &deferred_backing, .len = 0 },
    };
    for (0..4) |frame| receiver.fill.push(frame * 2048);
    receiver.fill.submit();
    // The kernel has read all four entries and delivered two frames, but has
    // not stored its consumer index yet.
    rx_memory.entries[0] = .{ .addr = 0 + 256, .len = 100, .options = 0 };
    rx_memory.entries[1] = .{ .addr = 2048 + 256, .len = 100, .options = 0 };
    rx_memory.producer = 2;
    var out: [4]Frame = undefined;
    try testing.expectEqual(@as(u32, 2), receiver.receive(&out));
    receiver.recycle(out[0..2]);
    try testing.expectEqual(@as(u32, 4), fill_memory.producer); // nothing fitted
    try testing.expectEqual(@as(u32, 2), receiver.deferred.len);
    try testing.expectEqual(@as(u64, 2), receiver.deferred_total);
    // The kernel publishes its consumer; the next receive hands the frames back.
    fill_memory.consumer = 4;
    try testing.expectEqual(@as(u32, 0), receiver.receive(&out));
    try testing.expectEqual(@as(u32, 0), receiver.deferred.len);
    try testing.expectEqual(@as(u32, 6), fill_memory.producer);
    const returned = [2]u64{ fill_memory.entries[0], fill_memory.entries[1] };
    try testing.expect(std.mem.indexOfScalar(u64, &returned, 0) != null);
    try testing.expect(std.mem.indexOfScalar(u64, &returned, 2048) != null);
}

test "a tx ring that looks full gives RingFull and keeps the frame free" {
    const layout = Layout{ .frame_size = 2048, .frame_count = 8 };
    var umem: [8 * 2048]u8 = @splat(0);
    var tx_memory = TestRing(linux.xdp_desc, 2){ .producer = 0, .consumer = 0 };
    var completion_memory = TestRing(u64, 4){ .producer = 0, .consumer = 0 };
    var backing: [4]u64 = undefined;
    var transmitter = Transmitter{
        .tx = tx_memory.ring(),
        .completion = completion_memory.ring(),
        .free_frames = .{ .addrs = &backing, .len = 0 },
        .layout = layout,
    };
    for (4..8) |frame| transmitter.free_frames.push(frame * 2048);
    try transmitter.enqueue(&umem, "a");
    try transmitter.enqueue(&umem, "b");
    try testing.expectError(error.RingFull, transmitter.enqueue(&umem, "c"));
    try testing.expectEqual(@as(u32, 2), transmitter.free_frames.len);
}

test "options: frame sizes the kernel takes, halves that fit the rings" {
    try testing.expect(optionsValid(.{}));
    try testing.expect(optionsValid(.{ .frame_size = 4096, .frame_count = 64, .ring_size = 32 }));
    try testing.expect(!optionsValid(.{ .frame_size = 1024 }));
    try testing.expect(!optionsValid(.{ .frame_size = 3000 }));
    try testing.expect(!optionsValid(.{ .frame_count = 4097 }));
    try testing.expect(!optionsValid(.{ .ring_size = 1000 }));
    // Half the frames (2048) would not fit a 1024-entry fill ring.
    try testing.expect(!optionsValid(.{ .ring_size = 1024 }));
    try testing.expect(!optionsValid(.{ .frame_count = 0 }));
    // The fill and tx rings get twice ring_size entries, within the limit.
    try testing.expect(optionsValid(.{ .frame_count = 16384, .ring_size = 16384 }));
    try testing.expect(!optionsValid(.{ .frame_count = 16384, .ring_size = 1 << 15 }));
}

test "every declaration compiles" {
    testing.refAllDecls(@This());
    testing.refAllDecls(Socket);
}
