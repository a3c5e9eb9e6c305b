//! Writes detail text into a caller-owned buffer (NUL-terminated, truncated
//! to fit). Errors never travel by errno or thread-locals: FFI calls may run
//! on any Deno worker thread.
const std = @import("std");

pub fn write(buf: ?[*]u8, len: u32, comptime fmt: []const u8, args: anytype) void {
    const ptr = buf orelse return;
    if (len == 0) return;
    const out = ptr[0..len];
    const text = std.fmt.bufPrint(out[0 .. len - 1], fmt, args) catch out[0 .. len - 1];
    out[text.len] = 0;
}

test "error text is truncated and terminated" {
    var buf: [8]u8 = undefined;
    write(&buf, buf.len, "hello {s}", .{"world"});
    try std.testing.expectEqualStrings("hello w", std.mem.sliceTo(&buf, 0));
    write(&buf, buf.len, "ok", .{});
    try std.testing.expectEqualStrings("ok", std.mem.sliceTo(&buf, 0));
}
