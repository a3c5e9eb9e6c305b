//! perf_event_open probe: opens one counter on the calling thread, runs a
//! small fixed workload, reads the count and closes it. A snapshot records
//! which counters exist here; when one does not, the reason names the errno
//! and what the kernel means by it, so a reader never has to guess.
const std = @import("std");
const linux = std.os.linux;
const cpuid = @import("cpuid.zig");
const linux_io = @import("linux_io.zig");
const error_text = @import("../common/error_text.zig");

/// Counter kinds; the numbers cross the ABI (lib/native.ts PERF_COUNTER_KINDS).
pub const Kind = enum(u32) {
    task_clock = 0,
    page_faults = 1,
    context_switches = 2,
    cpu_migrations = 3,
    cycles = 4,
    instructions = 5,
    cache_misses = 6,
    branch_misses = 7,

    pub fn hardware(kind: Kind) bool {
        return @backingInt(kind) >= @backingInt(Kind.cycles);
    }

    /// The name perf(1) uses.
    pub fn name(kind: Kind) []const u8 {
        return switch (kind) {
            .task_clock => "task-clock",
            .page_faults => "page-faults",
            .context_switches => "context-switches",
            .cpu_migrations => "cpu-migrations",
            .cycles => "cycles",
            .instructions => "instructions",
            .cache_misses => "cache-misses",
            .branch_misses => "branch-misses",
        };
    }

    fn config(kind: Kind) u64 {
        const HW = linux.PERF.COUNT.HW;
        const SW = linux.PERF.COUNT.SW;
        return switch (kind) {
            .task_clock => @backingInt(SW.TASK_CLOCK),
            .page_faults => @backingInt(SW.PAGE_FAULTS),
            .context_switches => @backingInt(SW.CONTEXT_SWITCHES),
            .cpu_migrations => @backingInt(SW.CPU_MIGRATIONS),
            .cycles => @backingInt(HW.CPU_CYCLES),
            .instructions => @backingInt(HW.INSTRUCTIONS),
            .cache_misses => @backingInt(HW.CACHE_MISSES),
            .branch_misses => @backingInt(HW.BRANCH_MISSES),
        };
    }
};

pub const kind_count: u32 = @typeInfo(Kind).@"enum".field_names.len;

pub const Error = error{ NotSupported, PermissionDenied, Busy, SystemResources, Unexpected };

/// Pages the workload touches (page faults) and loop iterations it runs
/// (instructions, branches): small, so a probe stays well under 1 ms.
const workload_pages: usize = 16;
const workload_iterations: u32 = 100_000;

/// Opens, enables, runs the workload, reads and closes one counter. On
/// failure the reason goes to `err_buf`.
pub fn probe(kind: Kind, err_buf: ?[*]u8, err_len: u32) Error!u64 {
    // Counting kernel work too gives page-faults and context-switches their
    // full meaning; when perf_event_paranoid forbids it, user-only counting
    // still proves the counter exists.
    var rc = open(kind, false);
    switch (linux.errno(rc)) {
        .ACCES, .PERM => rc = open(kind, true),
        else => {},
    }
    const e = linux.errno(rc);
    if (e != .SUCCESS) {
        const err = errorOf(e);
        describe(kind, err, e, err_buf, err_len);
        return err;
    }
    const fd: linux.fd_t = @intCast(rc);
    defer _ = linux.close(fd);
    const IOC = linux.PERF.EVENT_IOC;
    if (linux.errno(linux.ioctl(fd, IOC.RESET, 0)) != .SUCCESS) return error.Unexpected;
    if (linux.errno(linux.ioctl(fd, IOC.ENABLE, 0)) != .SUCCESS) return error.Unexpected;
    workload();
    _ = linux.ioctl(fd, IOC.DISABLE, 0);
    var count: u64 = 0;
    const read_rc = linux.read(fd, @ptrCast(&count), @sizeOf(u64));
    if (linux.errno(read_rc) != .SUCCESS or read_rc != @sizeOf(u64)) {
        error_text.write(
            err_buf,
            err_len,
            "cannot read counter \"{s}\": short read",
            .{kind.name()},
        );
        return error.Unexpected;
    }
    return count;
}

/// The raw perf_event_open result: an fd or a negated errno.
fn open(kind: Kind, exclude_kernel: bool) usize {
    var attr: linux.perf_event_attr = .{
        .type = if (kind.hardware()) .HARDWARE else .SOFTWARE,
        .config = kind.config(),
    };
    attr.flags.disabled = true;
    attr.flags.exclude_kernel = exclude_kernel;
    attr.flags.exclude_hv = true;
    return linux.perf_event_open(&attr, 0, -1, -1, linux.PERF.FLAG.FD_CLOEXEC);
}

/// Only called for a failed open.
fn errorOf(e: linux.E) Error {
    std.debug.assert(e != .SUCCESS);
    return switch (e) {
        // ENOENT: no PMU offers this type/config; ENODEV, EOPNOTSUPP: the PMU
        // exists but cannot count this way.
        .NOENT, .NODEV, .OPNOTSUPP, .NOSYS => error.NotSupported,
        .ACCES, .PERM => error.PermissionDenied,
        .BUSY => error.Busy,
        .MFILE, .NFILE, .NOMEM => error.SystemResources,
        else => error.Unexpected,
    };
}

fn describe(kind: Kind, err: Error, e: linux.E, err_buf: ?[*]u8, err_len: u32) void {
    var errno_buf: [24]u8 = undefined;
    const args = .{ kind.name(), linux_io.errnoName(e, &errno_buf) };
    switch (err) {
        error.NotSupported => if (kind.hardware()) {
            const guest = cpuid.supported and (cpuid.query(1, 0).ecx >> 31) & 1 == 1;
            const where = if (guest) guest_text else "";
            error_text.write(err_buf, err_len, "not supported here: " ++
                "PMU not available for \"{s}\" ({s}){s}", args ++ .{where});
        } else {
            error_text.write(err_buf, err_len, "not supported here: " ++
                "kernel has no software counter \"{s}\" ({s})", args);
        },
        error.PermissionDenied => {
            var line_buf: [16]u8 = undefined;
            const paranoid = linux_io.readFirstLine(paranoid_path, &line_buf) orelse "unreadable";
            error_text.write(err_buf, err_len, "permission denied opening \"{s}\" ({s}): " ++
                "kernel.perf_event_paranoid is {s}; " ++
                "needs CAP_PERFMON or a lower value", args ++ .{paranoid});
        },
        error.Busy => error_text.write(err_buf, err_len, "counter \"{s}\" is busy: " ++
            "another user holds the PMU ({s})", args),
        error.SystemResources => error_text.write(err_buf, err_len, "cannot open counter " ++
            "\"{s}\": out of file descriptors or memory ({s})", args),
        error.Unexpected => error_text.write(err_buf, err_len, "cannot open counter \"{s}\": " ++
            "perf_event_open failed ({s})", args),
    }
}

const paranoid_path = "/proc/sys/kernel/perf_event_paranoid";
const guest_text = "; this is a virtual machine guest (CPUID hypervisor bit)";

/// Fixed work that every counter sees: fresh pages (page faults), a
/// data-dependent branchy loop (instructions, branches, misses) and a yield
/// (a chance of a context switch). Runs on the stack and a private mapping.
fn workload() void {
    const len = workload_pages * std.heap.pageSize();
    const map_rc = linux.mmap(
        null,
        len,
        .{ .READ = true, .WRITE = true },
        .{ .TYPE = .PRIVATE, .ANONYMOUS = true },
        -1,
        0,
    );
    if (linux.errno(map_rc) == .SUCCESS) {
        const pages: [*]volatile u8 = @ptrFromInt(map_rc);
        var offset: usize = 0;
        while (offset < len) : (offset += std.heap.pageSize()) pages[offset] = 1;
        _ = linux.munmap(@ptrFromInt(map_rc), len);
    }
    var x: u32 = 0x9e3779b9;
    var sum: u64 = 0;
    for (0..workload_iterations) |_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if (x & 1 == 1) sum +%= x else sum ^= x;
    }
    std.mem.doNotOptimizeAway(sum);
    _ = linux.sched_yield();
}

test "software counter task-clock counts the workload" {
    var err: [256]u8 = @splat(0);
    const count = try probe(.task_clock, &err, err.len);
    try std.testing.expect(count > 0);
}

test "software counter page-faults sees the workload's fresh pages" {
    var err: [256]u8 = @splat(0);
    const count = try probe(.page_faults, &err, err.len);
    try std.testing.expect(count >= workload_pages);
}

test "hardware counters give a count or a reason, never neither" {
    for ([_]Kind{ .cycles, .instructions, .cache_misses, .branch_misses }) |kind| {
        var err: [256]u8 = @splat(0);
        if (probe(kind, &err, err.len)) |count| {
            if (kind == .cycles or kind == .instructions) try std.testing.expect(count > 0);
        } else |e| {
            const text = std.mem.sliceTo(&err, 0);
            try std.testing.expect(text.len > 0);
            try std.testing.expect(std.mem.indexOf(u8, text, kind.name()) != null);
            if (e == error.NotSupported) {
                try std.testing.expect(std.mem.indexOf(u8, text, "not supported here") != null);
            }
        }
    }
}

test "kind numbers are dense and hardware kinds come last" {
    try std.testing.expectEqual(@as(u32, 8), kind_count);
    try std.testing.expect(!Kind.cpu_migrations.hardware());
    try std.testing.expect(Kind.cycles.hardware());
    try std.testing.expect(Kind.branch_misses.hardware());
}
