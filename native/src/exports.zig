//! The only file that exports symbols: thin shims over the areas. Names are
//! reliab_<area>_<noun>_<verb>; lib/native.ts mirrors this table and a unit
//! test (tests/unit/native_symbols_test.ts) fails if the two differ.
const std = @import("std");
const constants = @import("common/constants.zig");
const status = @import("common/status.zig");
const error_text = @import("common/error_text.zig");
const cpuid = @import("perf/cpuid.zig");
const perf_counter = @import("perf/counter.zig");
const perf_msr = @import("perf/msr.zig");
const perf_affinity = @import("perf/affinity.zig");
const perf_calibrate = @import("perf/calibrate.zig");
const bpf_loader = @import("ha/bpf_loader.zig");

const Status = status.Status;

/// Sizes of the structs that cross the ABI, in a fixed order that
/// lib/native.ts checks against its own decoders at load time.
pub const Layout = extern struct {
    size: u32, // of this struct, so fields can be appended
    cpuid_registers: u32,
    perf_calibrate_options: u32,
};

export fn reliab_abi_version() u32 {
    return constants.abi_version;
}

export fn reliab_abi_layout(out: ?*Layout) i32 {
    const layout = out orelse return Status.invalid_argument.code();
    layout.* = .{
        .size = @sizeOf(Layout),
        .cpuid_registers = @sizeOf(cpuid.Registers),
        .perf_calibrate_options = @sizeOf(perf_calibrate.Options),
    };
    return Status.ok.code();
}

/// CPUID leaf/subleaf into out (16 bytes: eax, ebx, ecx, edx).
export fn reliab_perf_cpuid_query(leaf: u32, subleaf: u32, out: ?*cpuid.Registers) i32 {
    const registers = out orelse return Status.invalid_argument.code();
    if (!cpuid.supported) return Status.not_supported.code();
    registers.* = cpuid.query(leaf, subleaf);
    return Status.ok.code();
}

/// Opens perf counter `kind` (perf/counter.zig Kind) on the calling thread,
/// runs a small fixed workload and stores the count in `out`. A counter this
/// machine lacks returns not_supported (permission_denied under
/// perf_event_paranoid) with the reason in `err_buf`.
export fn reliab_perf_counter_probe(kind: u32, out: ?*u64, err_buf: ?[*]u8, err_len: u32) i32 {
    const count = out orelse return Status.invalid_argument.code();
    if (kind >= perf_counter.kind_count) return Status.invalid_argument.code();
    count.* = perf_counter.probe(@fromBackingInt(@intCast(kind)), err_buf, err_len) catch |err| {
        return switch (err) {
            error.NotSupported => Status.not_supported.code(),
            error.PermissionDenied => Status.permission_denied.code(),
            error.Busy => Status.busy.code(),
            error.SystemResources => Status.out_of_memory.code(),
            error.Unexpected => Status.io_error.code(),
        };
    };
    return Status.ok.code();
}

/// Reads MSR `register` of CPU `cpu` through /dev/cpu/N/msr into `out`.
/// Without the msr driver (or the CPU) it returns not_found with the reason.
export fn reliab_perf_msr_read(
    cpu: u32,
    register: u32,
    out: ?*u64,
    err_buf: ?[*]u8,
    err_len: u32,
) i32 {
    const value = out orelse return Status.invalid_argument.code();
    if (cpu >= constants.cpus_max) return Status.invalid_argument.code();
    value.* = perf_msr.read(cpu, register, err_buf, err_len) catch |err| {
        return switch (err) {
            error.NotFound => Status.not_found.code(),
            error.NotSupported => Status.not_supported.code(),
            error.PermissionDenied => Status.permission_denied.code(),
            error.Unexpected => Status.io_error.code(),
        };
    };
    return Status.ok.code();
}

/// Affinity bitmask of `pid` (0 = calling thread) into `mask_buf`; `out_len`
/// receives the bytes the kernel wrote. `mask_len` must be a multiple of 8
/// and at most cpus_max / 8; a mask too short for the kernel's returns
/// buffer_too_small.
export fn reliab_perf_affinity_get(pid: i32, mask_buf: ?[*]u8, mask_len: u32, out_len: ?*u32) i32 {
    const mask = mask_buf orelse return Status.invalid_argument.code();
    const written = out_len orelse return Status.invalid_argument.code();
    if (pid < 0 or mask_len > perf_affinity.mask_bytes_max) return Status.invalid_argument.code();
    written.* = perf_affinity.get(pid, mask[0..mask_len]) catch |err| {
        return switch (err) {
            error.BufferTooSmall => Status.buffer_too_small.code(),
            error.NotFound => Status.not_found.code(),
            error.PermissionDenied => Status.permission_denied.code(),
            error.Unexpected => Status.io_error.code(),
        };
    };
    return Status.ok.code();
}

/// Runs one repetition of calibration `kind` (perf/calibrate.zig Kind) and
/// stores its one number in `out`. `options` is self-sized (its first u32 is
/// the bytes the caller filled; null = defaults). Takes 1–50 ms, so
/// lib/native.ts declares it nonblocking; the memory kinds allocate their
/// buffer here and free it before returning.
export fn reliab_perf_calibrate_run(
    kind: u32,
    options: ?[*]const u8,
    out: ?*f64,
    err_buf: ?[*]u8,
    err_len: u32,
) i32 {
    const value = out orelse return Status.invalid_argument.code();
    if (kind >= perf_calibrate.kind_count) return Status.invalid_argument.code();
    var resolved: perf_calibrate.Options = .{};
    if (options) |bytes| {
        const size = std.mem.readInt(u32, bytes[0..4], .little);
        if (size < 4) return Status.invalid_argument.code();
        if (size > constants.calibrate_options_bytes_max) return Status.invalid_argument.code();
        const filled = @min(size, @sizeOf(perf_calibrate.Options));
        @memcpy(std.mem.asBytes(&resolved)[0..filled], bytes[0..filled]);
    }
    // page_allocator: each memory repetition maps and unmaps its own 64 MiB.
    const gpa = std.heap.page_allocator;
    value.* = perf_calibrate.run(gpa, @fromBackingInt(@intCast(kind)), resolved, err_buf, err_len) catch |err| {
        return switch (err) {
            error.InvalidArgument => Status.invalid_argument.code(),
            error.OutOfMemory => Status.out_of_memory.code(),
            error.NotSupported => Status.not_supported.code(),
        };
    };
    return Status.ok.code();
}

// ---------------------------------------------------------------- ha

/// XDP counters live in a fixed table and cross the ABI as slot numbers, not
/// pointers: Deno's path-scoped --allow-ffi forbids making pointers from
/// numbers, and a slot can be range-checked where a pointer cannot.
var xdp_counters: [constants.ha_xdp_counters_max]bpf_loader.XDPCounter = undefined;
var xdp_counter_used: [constants.ha_xdp_counters_max]std.atomic.Value(bool) =
    @splat(std.atomic.Value(bool).init(false));

fn xdpCounterSlot(slot: u32) ?*bpf_loader.XDPCounter {
    if (slot >= constants.ha_xdp_counters_max) return null;
    if (!xdp_counter_used[slot].load(.acquire)) return null;
    return &xdp_counters[slot];
}

/// Loads the XDP frame counter and attaches it to `ifindex` of the calling
/// thread's network namespace (mode 0 generic, 1 native). On success `out`
/// receives the slot for _read and _destroy; destroying it detaches.
export fn reliab_ha_xdpcounter_create(
    ifindex: u32,
    mode: u32,
    out: ?*u32,
    err_buf: ?[*]u8,
    err_len: u32,
) i32 {
    const slot_out = out orelse return Status.invalid_argument.code();
    if (ifindex == 0 or mode > 1) return Status.invalid_argument.code();
    const slot: u32 = for (&xdp_counter_used, 0..) |*used, i| {
        if (used.cmpxchgStrong(false, true, .acquire, .monotonic) == null) break @intCast(i);
    } else {
        error_text.write(err_buf, err_len, "all {d} XDP counter slots in use", .{constants.ha_xdp_counters_max});
        return Status.busy.code();
    };
    var log: [1024]u8 = @splat(0);
    xdp_counters[slot] = bpf_loader.XDPCounter.attach(ifindex, @fromBackingInt(@intCast(mode)), &log) catch |err| {
        xdp_counter_used[slot].store(false, .release);
        const detail = std.mem.sliceTo(&log, 0);
        error_text.write(err_buf, err_len, "{s}{s}{s}", .{
            @errorName(err),
            if (detail.len > 0) ": " else "",
            detail[0..@min(detail.len, 160)],
        });
        return switch (err) {
            error.PermissionDenied => Status.permission_denied.code(),
            error.NotSupported, error.ProgramRejected => Status.not_supported.code(),
            error.InterfaceNotFound => Status.not_found.code(),
            error.Busy => Status.busy.code(),
            error.SystemResources => Status.out_of_memory.code(),
            error.Unexpected => Status.io_error.code(),
        };
    };
    slot_out.* = slot;
    return Status.ok.code();
}

/// Frames the counter in `slot` saw since it was attached.
export fn reliab_ha_xdpcounter_read(slot: u32, out: ?*u64) i32 {
    const counter = xdpCounterSlot(slot) orelse return Status.invalid_argument.code();
    const packets = out orelse return Status.invalid_argument.code();
    packets.* = counter.packets() catch return Status.io_error.code();
    return Status.ok.code();
}

/// Detaches the counter in `slot` and frees the slot.
export fn reliab_ha_xdpcounter_destroy(slot: u32) i32 {
    const counter = xdpCounterSlot(slot) orelse return Status.invalid_argument.code();
    counter.detach();
    xdp_counter_used[slot].store(false, .release);
    return Status.ok.code();
}
