//! Status codes of the C ABI. Fallible exports return 0 or one of these
//! negative values. Codes are never renumbered or reused: lib/native.ts maps
//! them to typed errors, and a stale library must not change their meaning.
const std = @import("std");

pub const Status = enum(i32) {
    ok = 0,
    invalid_argument = -1,
    buffer_too_small = -2,
    not_supported = -3,
    permission_denied = -4,
    not_found = -5,
    io_error = -6,
    out_of_memory = -7,
    busy = -8,
    timeout = -9,
    internal = -10,

    pub fn code(status: Status) i32 {
        return @backingInt(status);
    }
};

/// Maps a Linux errno (positive) to the nearest status.
pub fn from_errno(errno: usize) Status {
    const E = std.os.linux.E;
    const e: E = @fromBackingInt(@intCast(errno));
    return switch (e) {
        .SUCCESS => .ok,
        .INVAL, .BADF, .FAULT => .invalid_argument,
        .PERM, .ACCES => .permission_denied,
        .NOENT, .NODEV, .NXIO, .SRCH => .not_found,
        .NOSYS, .OPNOTSUPP, .AFNOSUPPORT => .not_supported,
        .NOMEM => .out_of_memory,
        .BUSY, .AGAIN => .busy,
        .TIMEDOUT => .timeout,
        else => .io_error,
    };
}

test "status codes are stable" {
    try std.testing.expectEqual(@as(i32, 0), Status.ok.code());
    try std.testing.expectEqual(@as(i32, -3), Status.not_supported.code());
    try std.testing.expectEqual(@as(i32, -10), Status.internal.code());
    try std.testing.expectEqual(Status.permission_denied, from_errno(@backingInt(std.os.linux.E.PERM)));
    try std.testing.expectEqual(Status.not_found, from_errno(@backingInt(std.os.linux.E.NOENT)));
}
