//! sched_getaffinity: the CPUs a thread may run on. This is the effective
//! CPU set a benchmark gets (taskset, cpuset cgroups), which can be smaller
//! than the host's CPU count.
const std = @import("std");
const linux = std.os.linux;
const constants = @import("../common/constants.zig");

pub const Error = error{ BufferTooSmall, NotFound, PermissionDenied, Unexpected };

/// Bytes of a mask that can describe every CPU up to `constants.cpus_max`.
pub const mask_bytes_max: u32 = constants.cpus_max / 8;

/// Fills `mask` with the affinity bitmask of `pid` (0 = the calling thread)
/// and returns the bytes the kernel wrote (its cpumask size, a multiple of 8).
/// The mask must be a multiple of 8 bytes long, as the kernel requires.
pub fn get(pid: i32, mask: []u8) Error!u32 {
    std.debug.assert(mask.len <= mask_bytes_max);
    if (mask.len == 0 or mask.len % @sizeOf(usize) != 0) return error.BufferTooSmall;
    // Raw syscall: std's wrapper takes a fixed 128-byte cpu_set_t and hides
    // how much the kernel wrote.
    const rc = linux.syscall3(
        .sched_getaffinity,
        @as(u32, @bitCast(pid)),
        mask.len,
        @intFromPtr(mask.ptr),
    );
    return switch (linux.errno(rc)) {
        .SUCCESS => written: {
            std.debug.assert(rc > 0);
            std.debug.assert(rc <= mask.len);
            break :written @intCast(rc);
        },
        // The kernel's cpumask is longer than the buffer.
        .INVAL => error.BufferTooSmall,
        .SRCH => error.NotFound,
        .PERM => error.PermissionDenied,
        else => error.Unexpected,
    };
}

/// Number of CPUs set in a mask.
pub fn count(mask: []const u8) u32 {
    var n: u32 = 0;
    for (mask) |byte| n += @popCount(byte);
    return n;
}

test "the calling thread may run on at least one CPU, and no more than online ones" {
    var mask: [mask_bytes_max]u8 = @splat(0);
    const written = try get(0, &mask);
    try std.testing.expect(written % 8 == 0);
    const cpus = count(mask[0..written]);
    try std.testing.expect(cpus >= 1);
    try std.testing.expect(cpus <= std.Thread.getCpuCount() catch constants.cpus_max);
    // Bytes the kernel did not write stay untouched (zero here).
    try std.testing.expectEqual(@as(u32, 0), count(mask[written..]));
}

test "a buffer that is not a whole number of words is refused" {
    var mask: [3]u8 = undefined;
    try std.testing.expectError(error.BufferTooSmall, get(0, &mask));
}

test "a pid that does not exist is not found" {
    var mask: [64]u8 = undefined;
    // pid_max is at most 2^22, so this pid cannot exist.
    try std.testing.expectError(error.NotFound, get((1 << 22) + 1, &mask));
}
