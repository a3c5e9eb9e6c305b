//! The recorder's trace writer. The trace file is mapped MAP_SHARED and
//! events are appended into the mapping, not written with one syscall each:
//! a thread reserves an event's bytes with one atomic add on the write
//! offset, fills them, and stores the event's commit word with release order
//! (format in trace_format.zig). The page cache keeps a MAP_SHARED file's
//! pages when the process dies, so even after SIGKILL the file holds every
//! event committed before it.
//!
//! The file grows in chunks (ftruncate; the mapping is reserved once at its
//! largest size, so it never moves). On this VM the first touch of a page
//! costs 2-4 us, more than a whole recorded read(): a helper thread, started
//! with a raw clone so that the program's heap and thread list do not change,
//! grows the file ahead of the writers and faults its pages in
//! (MADV_POPULATE_WRITE), so that writers normally make no syscall and take
//! no page fault. A writer that gets ahead of it grows the file itself.
//!
//! Everything here is async-signal-safe (the crash handler appends) and
//! touches no thread-local state (the helper thread has none of its own).
const std = @import("std");
const linux = std.os.linux;
const format = @import("trace_format.zig");

/// Growth step of the trace file, and how far ahead of the writers the
/// helper keeps it.
pub const chunk_bytes: u64 = 1 << 20;
/// Largest trace: the size of the one mapping (virtual, MAP_NORESERVE).
pub const trace_bytes_max: u64 = 16 << 30;
/// How long a writer waits for another thread's growth before it gives up
/// (the event is dropped and the trace ends there: never a hang).
const grow_wait_ns_max: u64 = 5 * std.time.ns_per_s;
const helper_stack_bytes: usize = 64 << 10;
/// MADV_POPULATE_WRITE (Linux 5.14), absent from std.os.linux.MADV.
const madv_populate_write: u32 = 23;
const page_bytes: u64 = 4096;

pub const OpenError = error{ Truncate, Map };

pub const Spool = extern struct {
    // Every append reads or writes this first cache line, and only appends
    // write it (the helper reads `reserved` once a round).
    /// Next free byte: an append reserves [reserved, reserved + size).
    reserved: std.atomic.Value(u64) align(64) = .init(0),
    /// Bytes of the file that exist (ftruncated): safe to write below.
    ready: std.atomic.Value(u64) = .init(0),
    base: [*]u8 = undefined,
    limit: u64 = 0,
    fd: i32 = -1,
    /// Set when the trace hit `limit` or growing failed: appends stop.
    full: std.atomic.Value(bool) = .init(false),
    helper_running: std.atomic.Value(bool) = .init(false),

    // Growth: written by the helper, rarely by appends.
    /// Held while the file length changes.
    grow_lock: std.atomic.Value(u32) align(64) = .init(0),
    /// Futex word: 1 while the helper is asked to grow the file.
    request: std.atomic.Value(u32) = .init(0),
    /// Bytes the helper has faulted in (helper-private).
    populated: u64 = 0,

    comptime {
        std.debug.assert(@offsetOf(Spool, "helper_running") < 64);
        std.debug.assert(@offsetOf(Spool, "grow_lock") == 64);
    }

    /// Maps `fd` (open read-write, empty) and writes the file header.
    pub fn open(spool: *Spool, fd: i32, limit: u64) OpenError!void {
        std.debug.assert(fd >= 0);
        std.debug.assert(limit >= chunk_bytes and limit % page_bytes == 0);
        if (linux.errno(linux.ftruncate(fd, @intCast(chunk_bytes))) != .SUCCESS) return error.Truncate;
        // Address space only (NORESERVE), but a ulimit -v can still refuse
        // it: settle for a smaller trace then.
        var size = limit;
        const rc = while (true) {
            const attempt = linux.mmap(null, size, .{ .READ = true, .WRITE = true }, .{
                .TYPE = .SHARED,
                .NORESERVE = true,
            }, fd, 0);
            if (linux.errno(attempt) == .SUCCESS) break attempt;
            if (size / 4 < chunk_bytes) return error.Map;
            size /= 4;
        };
        spool.base = @ptrFromInt(rc);
        spool.fd = fd;
        spool.limit = size;
        const head = format.headerInit();
        @memcpy(spool.base[0..format.header_size], std.mem.asBytes(&head));
        spool.reserved.store(format.header_size, .release);
        spool.ready.store(chunk_bytes, .release);
    }

    /// Appends one event (payload cut to payload_max). Returns false when
    /// the event could not be stored (trace full or growth failed).
    pub fn append(spool: *Spool, event: format.Event) bool {
        std.debug.assert(event.kind != 0);
        std.debug.assert(event.thread < format.threads_max);
        if (spool.full.load(.monotonic)) return false;
        const length = @min(event.payload.len, format.payload_max);
        var stored = event;
        stored.payload = event.payload[0..length];
        const flags = format.flagsOf(stored, length < event.payload.len);
        const size = format.eventSize(flags, length);
        const start = reserve(&spool.reserved, size);
        const end = start + size;
        if (end > spool.limit) {
            spool.full.store(true, .monotonic);
            return false;
        }
        const ready = spool.ready.load(.acquire);
        if (end > ready) {
            if (!spool.growTo(end)) {
                spool.full.store(true, .monotonic);
                return false;
            }
        } else if (ready - end < chunk_bytes) spool.requestGrowth();
        const out = spool.base[start..end];
        const word = format.encodeBody(out, stored, flags);
        // Commit: everything above becomes visible before the word does.
        @atomicStore(u64, @as(*u64, @ptrCast(@alignCast(out.ptr))), word, .release);
        return true;
    }

    /// Asks the helper for more file, at most once per round (one futex wake).
    fn requestGrowth(spool: *Spool) void {
        if (!spool.helper_running.load(.monotonic)) return;
        if (spool.request.load(.monotonic) != 0) return;
        if (spool.request.cmpxchgStrong(0, 1, .acq_rel, .monotonic) != null) return;
        _ = linux.futex_3arg(&spool.request.raw, .{ .cmd = .WAKE, .private = true }, 1);
    }

    /// Grows the file to hold `end` bytes now; waits (bounded) for a grower.
    fn growTo(spool: *Spool, end: u64) bool {
        std.debug.assert(end <= spool.limit);
        const deadline = monotonicNs() + grow_wait_ns_max;
        while (spool.grow_lock.cmpxchgWeak(0, 1, .acquire, .monotonic) != null) {
            if (spool.ready.load(.acquire) >= end) return true;
            if (monotonicNs() > deadline) return false;
            _ = linux.sched_yield();
        }
        defer spool.grow_lock.store(0, .release);
        return spool.extendLocked(std.mem.alignForward(u64, end, chunk_bytes) + chunk_bytes);
    }

    fn extendLocked(spool: *Spool, target: u64) bool {
        std.debug.assert(spool.grow_lock.load(.monotonic) == 1);
        const current = spool.ready.load(.monotonic);
        const capped = @min(target, spool.limit);
        if (capped <= current) return true;
        if (linux.errno(linux.ftruncate(spool.fd, @intCast(capped))) != .SUCCESS) return false;
        spool.ready.store(capped, .release);
        return true;
    }

    /// Starts the helper thread; without it, writers grow the file themselves.
    pub fn startHelper(spool: *Spool) bool {
        std.debug.assert(!spool.helper_running.load(.monotonic));
        const stack_rc = linux.mmap(null, helper_stack_bytes, .{ .READ = true, .WRITE = true }, .{
            .TYPE = .PRIVATE,
            .ANONYMOUS = true,
        }, -1, 0);
        if (linux.errno(stack_rc) != .SUCCESS) return false;
        // The helper blocks every signal (it inherits this mask): signals
        // meant for the program must reach the program's own threads.
        const all = linux.sigfillset();
        var old: linux.sigset_t = undefined;
        _ = linux.sigprocmask(linux.SIG.BLOCK, &all, &old);
        defer _ = linux.sigprocmask(linux.SIG.SETMASK, &old, null);
        // Asked for a first round: fault in the first chunk and grow ahead.
        spool.request.store(1, .release);
        spool.helper_running.store(true, .release);
        const flags = linux.CLONE.VM | linux.CLONE.FS | linux.CLONE.FILES | linux.CLONE.SIGHAND |
            linux.CLONE.THREAD | linux.CLONE.SYSVSEM;
        const stack_top = std.mem.alignBackward(usize, stack_rc + helper_stack_bytes, 16);
        const rc = linux.clone(&helperMain, stack_top, flags, @intFromPtr(spool), null, 0, null);
        if (linux.errno(rc) != .SUCCESS) {
            spool.helper_running.store(false, .release);
            spool.request.store(0, .release);
            _ = linux.munmap(@ptrFromInt(stack_rc), helper_stack_bytes);
            return false;
        }
        return true;
    }

    /// Stops the helper and waits for it (tests; a recorder's helper dies
    /// with the process). Appends stop too.
    pub fn stopHelper(spool: *Spool) void {
        spool.full.store(true, .release);
        spool.request.store(1, .release);
        _ = linux.futex_3arg(&spool.request.raw, .{ .cmd = .WAKE, .private = true }, 1);
        const deadline = monotonicNs() + grow_wait_ns_max;
        while (spool.helper_running.load(.acquire) and monotonicNs() < deadline) {
            _ = linux.sched_yield();
        }
    }

    /// One round of the helper: keep the file two chunks ahead of the
    /// writers, then fault the new pages in. Populating never changes page
    /// contents, so it may overlap pages that writers are filling.
    fn helperRound(spool: *Spool) void {
        const wanted = spool.reserved.load(.monotonic) + 2 * chunk_bytes;
        const target = @min(std.mem.alignForward(u64, wanted, chunk_bytes), spool.limit);
        if (spool.ready.load(.acquire) < target) {
            while (spool.grow_lock.cmpxchgWeak(0, 1, .acquire, .monotonic) != null) {
                _ = linux.sched_yield();
            }
            if (!spool.extendLocked(target)) spool.full.store(true, .monotonic);
            spool.grow_lock.store(0, .release);
        }
        const ready = spool.ready.load(.acquire);
        if (ready > spool.populated) {
            populate(spool.base + spool.populated, ready - spool.populated);
            spool.populated = ready;
        }
    }
};

/// glibc's own flag (2.32+): true until the process creates a thread
/// through glibc. Null with an older libc: then appends always lock.
extern "c" var __libc_single_threaded: u8;

/// Takes `size` bytes at the write offset. While the process has one
/// thread, an xadd without the lock prefix does it: one instruction, so a
/// signal handler that appends in between cannot split it, and it spares
/// the locked operation's store-buffer drain (half of an append's cost on
/// this VM). The helper thread only reads the offset.
fn reserve(counter: *std.atomic.Value(u64), size: u64) u64 {
    if (__libc_single_threaded == 0) return counter.fetchAdd(size, .monotonic);
    return asm volatile ("xaddq %[value], (%[counter])"
        : [value] "=r" (-> u64),
        : [counter] "r" (&counter.raw),
          [size] "0" (size),
        : .{ .memory = true });
}

fn populate(start: [*]u8, length: u64) void {
    std.debug.assert(@intFromPtr(start) % page_bytes == 0);
    _ = linux.madvise(start, length, madv_populate_write);
}

/// The helper thread. It has no TLS of its own (raw clone): it makes raw
/// syscalls only, never libc calls.
fn helperMain(argument: usize) callconv(.c) u8 {
    const spool: *Spool = @ptrFromInt(argument);
    while (!spool.full.load(.monotonic)) {
        if (spool.request.load(.acquire) == 0) {
            _ = linux.futex_4arg(&spool.request.raw, .{ .cmd = .WAIT, .private = true }, 0, null);
            continue;
        }
        spool.helperRound();
        spool.request.store(0, .release);
    }
    spool.helper_running.store(false, .release);
    return 0;
}

pub fn monotonicNs() u64 {
    var now: linux.timespec = undefined;
    _ = linux.clock_gettime(.MONOTONIC, &now);
    return @as(u64, @intCast(now.sec)) * std.time.ns_per_s + @as(u64, @intCast(now.nsec));
}

// ---------------------------------------------------------------- tests

fn testFile(name: [*:0]const u8) i32 {
    const flags: linux.O = .{ .ACCMODE = .RDWR, .CREAT = true, .TRUNC = true, .CLOEXEC = true };
    const rc = linux.openat(linux.AT.FDCWD, name, flags, 0o600);
    std.debug.assert(linux.errno(rc) == .SUCCESS);
    return @intCast(rc);
}

fn fileBytes(fd: i32, buffer: []u8) []u8 {
    var done: usize = 0;
    while (done < buffer.len) {
        const rc = linux.pread(fd, buffer[done..].ptr, buffer.len - done, @intCast(done));
        if (linux.errno(rc) != .SUCCESS or rc == 0) break;
        done += rc;
    }
    return buffer[0..done];
}

const Writer = struct {
    spool: *Spool,
    thread: u32,
    count: u32,

    fn run(writer: Writer) void {
        var payload: [24]u8 = undefined;
        var index: u32 = 0;
        while (index < writer.count) : (index += 1) {
            std.mem.writeInt(u32, payload[0..4], index, .little);
            const length = 4 + index % 20;
            std.debug.assert(writer.spool.append(.{
                .kind = @backingInt(format.Kind.read),
                .thread = writer.thread,
                .arg = index,
                .result = @intCast(length),
                .payload = payload[0..length],
            }));
        }
    }
};

test "threads append through the mapping; readers see every event in thread order" {
    const name = "/tmp/reliab-spool-test.trace";
    const fd = testFile(name);
    defer _ = linux.close(fd);
    defer _ = linux.unlink(name);
    var spool: Spool = .{};
    try spool.open(fd, 64 << 20);
    try std.testing.expect(spool.startHelper());
    const per_thread: u32 = 40_000;
    var threads: [3]std.Thread = undefined;
    for (&threads, 0..) |*thread, index| {
        thread.* = try std.Thread.spawn(.{}, Writer.run, .{Writer{ .spool = &spool, .thread = @intCast(index + 1), .count = per_thread }});
    }
    for (threads) |thread| thread.join();
    spool.stopHelper();
    try std.testing.expect(!spool.helper_running.load(.acquire));

    const size = spool.ready.load(.acquire);
    try std.testing.expect(size >= spool.reserved.load(.acquire));
    const buffer = try std.testing.allocator.alloc(u8, size);
    defer std.testing.allocator.free(buffer);
    const bytes = fileBytes(fd, buffer);
    try std.testing.expectEqual(size, bytes.len);
    var next: [4]u32 = @splat(0);
    var offset = try format.decodeHeader(bytes);
    var total: u32 = 0;
    while (format.decodeEvent(bytes, offset)) |event| : (offset = event.next) {
        try std.testing.expectEqual(@as(u64, next[event.thread]), event.arg);
        try std.testing.expectEqual(@as(u32, @intCast(event.arg)), std.mem.readInt(u32, event.payload[0..4], .little));
        next[event.thread] += 1;
        total += 1;
    } else |err| try std.testing.expectEqual(error.Uncommitted, err);
    try std.testing.expectEqual(3 * per_thread, total);
    try std.testing.expectEqual(spool.reserved.load(.acquire), offset);
    // Past the last event there are only zeros.
    for (bytes[offset..]) |byte| try std.testing.expectEqual(@as(u8, 0), byte);
}

test "a full trace drops events instead of growing past its limit" {
    const name = "/tmp/reliab-spool-full.trace";
    const fd = testFile(name);
    defer _ = linux.close(fd);
    defer _ = linux.unlink(name);
    var spool: Spool = .{};
    try spool.open(fd, chunk_bytes);
    const payload: [4000]u8 = @splat(7);
    var stored: u32 = 0;
    while (spool.append(.{ .kind = 16, .thread = 0, .payload = &payload })) stored += 1;
    // 1 MiB holds 261 events of 4008 bytes after the 16-byte header.
    try std.testing.expectEqual(@as(u32, (chunk_bytes - 16) / 4008), stored);
    try std.testing.expect(!spool.append(.{ .kind = 20, .thread = 0 }));
    try std.testing.expect(spool.full.load(.acquire));
}
