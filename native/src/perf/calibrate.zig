//! Calibration micro-benchmarks: one repetition of one measurement per call,
//! returning one number. lib/perf/calibrate.ts repeats each about ten times
//! and keeps the median and the coefficient of variation, so noise is
//! measured rather than hidden, and no loop ever crosses the FFI per event.
//!
//! Each call allocates its buffer from the allocator it is given and frees
//! it before returning; nothing allocates inside a timed loop. All sizes and
//! counts are bounded by common/constants.zig.
const std = @import("std");
const builtin = @import("builtin");
const linux = std.os.linux;
const constants = @import("../common/constants.zig");
const error_text = @import("../common/error_text.zig");

/// Measurement kinds; the numbers cross the ABI (lib/perf/calibrate.ts).
pub const Kind = enum(u32) {
    /// Dependent integer adds per ns: GHz if the core retires one add per cycle.
    clock = 0,
    /// ns per load, chasing pointers through a random cycle over a large buffer.
    memory_latency = 1,
    /// GB/s of a sequential read sum over a large buffer.
    memory_bandwidth = 2,
    /// ns per getppid system call.
    syscall = 3,
    /// Smallest nonzero difference of two consecutive CLOCK_MONOTONIC reads, ns.
    timer_resolution = 4,
};

pub const kind_count: u32 = @typeInfo(Kind).@"enum".field_names.len;

/// Self-sized options (libbpf style): `size` says how many bytes the caller
/// filled, so fields can be appended. Zero means "the default for the kind".
pub const Options = extern struct {
    size: u32 = @sizeOf(Options),
    reserved: u32 = 0,
    /// Adds (clock), loads (latency), passes (bandwidth), calls (syscall) or
    /// clock reads (timer resolution).
    iterations: u64 = 0,
    /// Buffer bytes (memory kinds).
    bytes: u64 = 0,
    /// Seed of the pointer-chase permutation.
    seed: u64 = 0,
};

comptime {
    std.debug.assert(@sizeOf(Options) == 32);
    std.debug.assert(@alignOf(Options) == 8);
}

pub const Error = error{ InvalidArgument, OutOfMemory, NotSupported };

/// Defaults, timed on the 2-core KVM guest this was written on: a clock,
/// syscall or timer repetition takes 2–10 ms; a memory repetition ~120 ms
/// (latency) and ~80 ms (bandwidth), most of it the page faults of a fresh
/// 64 MiB buffer (~45 ms). 64 MiB is larger than the last-level cache of most
/// machines (latency here: ~170 ns at 64 MiB, ~220 ns at 256 MiB; not every
/// EPYC or Xeon host is covered, which is why the size is an option).
const defaults = struct {
    const clock_adds: u64 = 16 << 20;
    const memory_bytes: u64 = 64 << 20;
    const latency_loads: u64 = 1 << 17;
    const bandwidth_passes: u64 = 3;
    const syscalls: u64 = 20_000;
    const timer_reads: u64 = 20_000;
    const seed: u64 = 0x5eed_ca11b;
};

/// Adds per round of the unrolled clock loop.
const clock_unroll: u64 = 64;
/// Bytes of one pointer-chase slot: two cache lines, because Intel's spatial
/// prefetcher fetches lines in 128-byte pairs and would otherwise bring in a
/// neighbour slot for free. Half as many slots also halves the shuffle.
const slot_bytes: u64 = 128;
/// Smallest buffer a memory kind accepts (a few pages).
const memory_bytes_min: u64 = 1 << 16;

/// Runs one repetition of `kind`. `gpa` provides the memory kinds' buffer,
/// freed before return. On failure the reason goes to `err_buf`.
pub fn run(
    gpa: std.mem.Allocator,
    kind: Kind,
    options: Options,
    err_buf: ?[*]u8,
    err_len: u32,
) Error!f64 {
    if (options.iterations > constants.calibrate_iterations_max) {
        error_text.write(
            err_buf,
            err_len,
            "iterations {d} exceed the limit {d}",
            .{ options.iterations, constants.calibrate_iterations_max },
        );
        return error.InvalidArgument;
    }
    const bytes_valid = options.bytes >= memory_bytes_min and
        options.bytes <= constants.calibrate_bytes_max;
    if (options.bytes != 0 and !bytes_valid) {
        error_text.write(
            err_buf,
            err_len,
            "buffer of {d} bytes is outside {d}..{d}",
            .{ options.bytes, memory_bytes_min, constants.calibrate_bytes_max },
        );
        return error.InvalidArgument;
    }
    const iterations = options.iterations;
    const bytes = if (options.bytes == 0) defaults.memory_bytes else options.bytes;
    const result = switch (kind) {
        .clock => try clockGhz(orDefault(iterations, defaults.clock_adds), err_buf, err_len),
        .memory_latency => try memoryLatencyNs(gpa, .{
            .bytes = bytes,
            .loads = orDefault(iterations, defaults.latency_loads),
            .seed = orDefault(options.seed, defaults.seed),
        }, err_buf, err_len),
        .memory_bandwidth => try memoryBandwidthGBps(gpa, .{
            .bytes = bytes,
            .passes = orDefault(iterations, defaults.bandwidth_passes),
        }, err_buf, err_len),
        .syscall => syscallNs(orDefault(iterations, defaults.syscalls)),
        .timer_resolution => try timerResolutionNs(
            orDefault(iterations, defaults.timer_reads),
            err_buf,
            err_len,
        ),
    };
    std.debug.assert(std.math.isFinite(result));
    std.debug.assert(result > 0);
    return result;
}

fn orDefault(value: u64, default: u64) u64 {
    return if (value == 0) default else value;
}

/// libc's clock_gettime, as the benchmarks being calibrated use: glibc finds
/// the vDSO, while std.os.linux cannot inside a shared library loaded by
/// Deno (it never sees the auxiliary vector) and falls back to a syscall.
fn nowNs() u64 {
    var ts: std.c.timespec = undefined;
    const rc = std.c.clock_gettime(.MONOTONIC, &ts);
    // CLOCK_MONOTONIC cannot fail on Linux.
    std.debug.assert(rc == 0);
    std.debug.assert(ts.sec >= 0);
    return @as(u64, @intCast(ts.sec)) * std.time.ns_per_s + @as(u64, @intCast(ts.nsec));
}

/// Elapsed ns, never zero (so callers may divide by it).
fn elapsedNs(start_ns: u64) u64 {
    const end_ns = nowNs();
    std.debug.assert(end_ns >= start_ns);
    return @max(end_ns - start_ns, 1);
}

/// A chain of dependent adds runs at one add per cycle on every x86 core
/// since the P6, so adds per ns approximate the clock the core really ran at
/// (turbo, throttling, a VM's host), which cpufreq files may not show.
fn clockGhz(adds: u64, err_buf: ?[*]u8, err_len: u32) Error!f64 {
    if (builtin.cpu.arch != .x86_64) {
        error_text.write(
            err_buf,
            err_len,
            "the clock calibration needs x86_64 (dependent add chain in assembly)",
            .{},
        );
        return error.NotSupported;
    }
    const rounds = @max(adds / clock_unroll, 1);
    const start_ns = nowNs();
    const sum = addChain(rounds);
    const ns = elapsedNs(start_ns);
    // Proves the chain ran in full.
    std.debug.assert(sum == rounds * clock_unroll);
    return @as(f64, @floatFromInt(rounds * clock_unroll)) / @as(f64, @floatFromInt(ns));
}

/// In assembly so that no compiler can fold the chain into one multiply.
fn addChain(rounds: u64) u64 {
    std.debug.assert(rounds > 0);
    var sum: u64 = 0;
    var remaining: u64 = rounds;
    asm volatile (
        \\1:
        \\.rept 64
        \\addq %[one], %[sum]
        \\.endr
        \\decq %[remaining]
        \\jnz 1b
        : [sum] "+r" (sum),
          [remaining] "+r" (remaining),
        : [one] "r" (@as(u64, 1)),
        : .{ .cc = true });
    std.debug.assert(remaining == 0);
    return sum;
}

comptime {
    // The `.rept 64` above must match.
    std.debug.assert(clock_unroll == 64);
}

/// Allocates a page-aligned buffer backed by small pages. With transparent
/// huge pages most TLB misses of the latency chase vanish, so the number
/// would depend on the THP setting, which the snapshot records on its own.
/// (Huge pages would not make setup faster on this KVM guest either: faulting
/// 64 MiB took ~45 ms in 4 KiB pages and ~80 ms in 2 MiB ones.)
const Buffer = []align(std.heap.page_size_min) u64;

fn allocBuffer(gpa: std.mem.Allocator, bytes: u64, err_buf: ?[*]u8, err_len: u32) Error!Buffer {
    std.debug.assert(bytes >= memory_bytes_min);
    std.debug.assert(bytes <= constants.calibrate_bytes_max);
    const words: usize = @intCast(bytes / @sizeOf(u64));
    const buf = gpa.alignedAlloc(u64, .fromByteUnits(std.heap.page_size_min), words) catch {
        error_text.write(
            err_buf,
            err_len,
            "cannot allocate a {d} MiB calibration buffer",
            .{bytes >> 20},
        );
        return error.OutOfMemory;
    };
    // Advice only: a kernel without THP ignores it and the numbers still hold.
    _ = linux.madvise(@ptrCast(buf.ptr), buf.len * @sizeOf(u64), linux.MADV.NOHUGEPAGE);
    return buf;
}

/// Each slot (`slot_bytes`) holds in its first word the index of the next
/// slot. Sattolo's shuffle gives a uniformly random permutation with a single
/// cycle, so the chase visits every slot before repeating, and no prefetcher
/// can guess the next address. The shuffle runs on a compact u32 array (2 MiB
/// for 64 MiB, cache-resident) and is then copied in slot order: a
/// shuffle in place would take one cache miss per swap, longer than the
/// chase itself.
const LatencyOptions = struct { bytes: u64, loads: u64, seed: u64 };

fn memoryLatencyNs(
    gpa: std.mem.Allocator,
    options: LatencyOptions,
    err_buf: ?[*]u8,
    err_len: u32,
) Error!f64 {
    const loads = options.loads;
    const buf = try allocBuffer(gpa, options.bytes, err_buf, err_len);
    defer gpa.free(buf);
    const stride: usize = slot_bytes / @sizeOf(u64);
    const next = gpa.alloc(u32, buf.len / stride) catch {
        error_text.write(err_buf, err_len, "cannot allocate the pointer-chase index", .{});
        return error.OutOfMemory;
    };
    defer gpa.free(next);
    makeCycle(next, options.seed);
    for (next, 0..) |target, slot| buf[slot * stride] = target;
    // Warm the TLB and caches the same way for every repetition: one short
    // chase that is not timed.
    var slot: u64 = chase(buf, stride, 0, @min(loads / 8, next.len));
    const start_ns = nowNs();
    slot = chase(buf, stride, slot, loads);
    const ns = elapsedNs(start_ns);
    std.mem.doNotOptimizeAway(slot);
    return @as(f64, @floatFromInt(ns)) / @as(f64, @floatFromInt(loads));
}

/// Sattolo's shuffle: afterwards following i -> next[i] from any slot visits
/// every slot once before returning.
fn makeCycle(next: []u32, seed: u64) void {
    std.debug.assert(next.len >= 2);
    std.debug.assert(next.len <= std.math.maxInt(u32));
    for (next, 0..) |*target, slot| target.* = @intCast(slot);
    var prng = std.Random.DefaultPrng.init(seed);
    const random = prng.random();
    var i: usize = next.len - 1;
    while (i > 0) : (i -= 1) {
        const j = random.uintLessThan(usize, i);
        std.mem.swap(u32, &next[i], &next[j]);
    }
}

fn chase(buf: []const u64, stride: usize, first: u64, loads: u64) u64 {
    var slot = first;
    var n: u64 = 0;
    while (n < loads) : (n += 1) slot = buf[@intCast(slot * stride)];
    return slot;
}

/// Four independent accumulators keep the adds off the critical path, so the
/// loop is limited by memory, not by the add latency.
const BandwidthOptions = struct { bytes: u64, passes: u64 };

fn memoryBandwidthGBps(
    gpa: std.mem.Allocator,
    options: BandwidthOptions,
    err_buf: ?[*]u8,
    err_len: u32,
) Error!f64 {
    const passes = options.passes;
    const buf = try allocBuffer(gpa, options.bytes, err_buf, err_len);
    defer gpa.free(buf);
    // Writing faults every page in; untouched anonymous pages would all map
    // the one shared zero page and read from cache.
    for (buf, 0..) |*word, index| word.* = index;
    const Vec = @Vector(4, u64);
    const vectors: []const Vec = @ptrCast(buf[0 .. buf.len - buf.len % 4]);
    var total: Vec = @splat(0);
    const start_ns = nowNs();
    var pass: u64 = 0;
    while (pass < passes) : (pass += 1) {
        var sums: [4]Vec = @splat(@splat(0));
        var k: usize = 0;
        while (k + 4 <= vectors.len) : (k += 4) {
            inline for (0..4) |lane| sums[lane] +%= vectors[k + lane];
        }
        total +%= sums[0] +% sums[1] +% sums[2] +% sums[3];
    }
    const ns = elapsedNs(start_ns);
    std.mem.doNotOptimizeAway(total);
    const read_bytes = passes * (vectors.len / 4) * 4 * @sizeOf(Vec);
    // Bytes per ns is GB/s (10^9 bytes per second).
    return @as(f64, @floatFromInt(read_bytes)) / @as(f64, @floatFromInt(ns));
}

/// getppid does no work in the kernel and is never cached by libc, so this
/// is the bare entry and exit cost, including any mitigations (KPTI, IBRS).
fn syscallNs(calls: u64) f64 {
    std.debug.assert(calls > 0);
    var sum: u64 = 0;
    const start_ns = nowNs();
    var n: u64 = 0;
    while (n < calls) : (n += 1) sum +%= linux.syscall0(.getppid);
    const ns = elapsedNs(start_ns);
    std.mem.doNotOptimizeAway(sum);
    return @as(f64, @floatFromInt(ns)) / @as(f64, @floatFromInt(calls));
}

/// The smallest step a benchmark can time: max(clock source granularity,
/// cost of one clock_gettime).
fn timerResolutionNs(reads: u64, err_buf: ?[*]u8, err_len: u32) Error!f64 {
    std.debug.assert(reads > 0);
    var smallest: u64 = std.math.maxInt(u64);
    var previous = nowNs();
    var n: u64 = 0;
    while (n < reads) : (n += 1) {
        const current = nowNs();
        const delta = current - previous;
        if (delta > 0 and delta < smallest) smallest = delta;
        previous = current;
    }
    if (smallest == std.math.maxInt(u64)) {
        error_text.write(
            err_buf,
            err_len,
            "CLOCK_MONOTONIC did not advance in {d} reads",
            .{reads},
        );
        return error.NotSupported;
    }
    return @floatFromInt(smallest);
}

fn expectRun(kind: Kind, options: Options, low: f64, high: f64) !f64 {
    var err: [256]u8 = @splat(0);
    const value = run(std.testing.allocator, kind, options, &err, err.len) catch |e| {
        std.debug.print("calibration {t} failed: {s}\n", .{ kind, std.mem.sliceTo(&err, 0) });
        return e;
    };
    if (!(value >= low and value <= high)) {
        std.debug.print(
            "calibration {t} gave {d}, outside {d}..{d}\n",
            .{ kind, value, low, high },
        );
        return error.TestUnexpectedResult;
    }
    return value;
}

test "effective clock is between 0.1 and 10 GHz" {
    if (builtin.cpu.arch != .x86_64) return error.SkipZigTest;
    _ = try expectRun(.clock, .{ .iterations = 1 << 20 }, 0.1, 10);
}

test "memory latency is between 0.5 and 1000 ns, and exceeds an L1-sized chase" {
    const big = try expectRun(
        .memory_latency,
        .{ .bytes = 16 << 20, .iterations = 1 << 16 },
        0.5,
        1000,
    );
    const small = try expectRun(
        .memory_latency,
        .{ .bytes = memory_bytes_min, .iterations = 1 << 16 },
        0.1,
        1000,
    );
    try std.testing.expect(big > small);
}

test "memory bandwidth is between 0.1 and 1000 GB/s" {
    _ = try expectRun(.memory_bandwidth, .{ .bytes = 16 << 20, .iterations = 1 }, 0.1, 1000);
}

test "a system call costs between 10 ns and 100 us" {
    _ = try expectRun(.syscall, .{ .iterations = 2000 }, 10, 100_000);
}

test "timer resolution is between 1 ns and 1 ms" {
    _ = try expectRun(.timer_resolution, .{ .iterations = 2000 }, 1, 1_000_000);
}

test "limits are enforced before any allocation" {
    const gpa = std.testing.allocator;
    const iterations_over = constants.calibrate_iterations_max + 1;
    var err: [256]u8 = @splat(0);
    try std.testing.expectError(
        error.InvalidArgument,
        run(gpa, .memory_latency, .{ .bytes = constants.calibrate_bytes_max + 1 }, &err, err.len),
    );
    try std.testing.expect(std.mem.sliceTo(&err, 0).len > 0);
    try std.testing.expectError(
        error.InvalidArgument,
        run(gpa, .memory_bandwidth, .{ .bytes = 4096 }, &err, err.len),
    );
    try std.testing.expectError(
        error.InvalidArgument,
        run(gpa, .syscall, .{ .iterations = iterations_over }, &err, err.len),
    );
}

test "the pointer chase permutation is a single cycle over every slot" {
    var next: [1000]u32 = undefined;
    makeCycle(&next, 42);
    // Following the pointers from slot 0 returns to 0 after exactly `len` steps.
    var slot: u32 = 0;
    for (1..next.len) |_| {
        slot = next[slot];
        try std.testing.expect(slot != 0);
    }
    try std.testing.expectEqual(@as(u32, 0), next[slot]);
}
