//! Small raw-syscall helpers the perf probes share: errno names for reason
//! texts and reading a short text file (a sysctl, a sysfs value) into a fixed
//! buffer. Raw syscalls, not libc: no errno, which is a thread-local and
//! would be wrong on a Deno nonblocking worker thread.
const std = @import("std");
const linux = std.os.linux;

/// "ENOENT" for E.NOENT; "E?" for values this std does not name.
pub fn errnoName(e: linux.E, buf: *[24]u8) []const u8 {
    const name = std.enums.tagName(linux.E, e) orelse return "E?";
    return std.fmt.bufPrint(buf, "E{s}", .{name}) catch "E?";
}

/// Whether `path` exists (any file type; follows symlinks).
pub fn exists(path: [*:0]const u8) bool {
    const rc = linux.faccessat(linux.AT.FDCWD, path, linux.F_OK, 0);
    return linux.errno(rc) == .SUCCESS;
}

/// Reads the first line of a small text file into `buf`, without the newline.
/// Returns null when the file cannot be opened or read.
pub fn readFirstLine(path: [*:0]const u8, buf: []u8) ?[]const u8 {
    std.debug.assert(buf.len > 0);
    const open_rc = linux.open(path, .{ .ACCMODE = .RDONLY, .CLOEXEC = true }, 0);
    if (linux.errno(open_rc) != .SUCCESS) return null;
    const fd: linux.fd_t = @intCast(open_rc);
    defer _ = linux.close(fd);
    const read_rc = linux.read(fd, buf.ptr, buf.len);
    if (linux.errno(read_rc) != .SUCCESS) return null;
    std.debug.assert(read_rc <= buf.len);
    const text = buf[0..read_rc];
    const end = std.mem.indexOfScalar(u8, text, '\n') orelse text.len;
    return text[0..end];
}

test "errno names carry the E prefix" {
    var buf: [24]u8 = undefined;
    try std.testing.expectEqualStrings("ENOENT", errnoName(.NOENT, &buf));
    try std.testing.expectEqualStrings("EACCES", errnoName(.ACCES, &buf));
}

test "readFirstLine reads a proc file and refuses a missing one" {
    var buf: [64]u8 = undefined;
    const line = readFirstLine("/proc/sys/kernel/ostype", &buf) orelse
        return error.TestUnexpectedResult;
    try std.testing.expectEqualStrings("Linux", line);
    try std.testing.expect(readFirstLine("/proc/reliab-does-not-exist", &buf) == null);
    try std.testing.expect(exists("/proc/self"));
    try std.testing.expect(!exists("/proc/reliab-does-not-exist"));
}
