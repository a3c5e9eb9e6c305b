//! Model-specific register reads through the msr driver (/dev/cpu/N/msr,
//! pread at offset = register). Without the driver every read is
//! unavailable, and the reason says which file is missing and why, so a
//! snapshot records "unknown: no msr driver" instead of a guessed value.
const std = @import("std");
const linux = std.os.linux;
const constants = @import("../common/constants.zig");
const error_text = @import("../common/error_text.zig");
const linux_io = @import("linux_io.zig");

pub const Error = error{ NotFound, NotSupported, PermissionDenied, Unexpected };

/// Reads MSR `register` on CPU `cpu`. On failure the reason goes to `err_buf`.
pub fn read(cpu: u32, register: u32, err_buf: ?[*]u8, err_len: u32) Error!u64 {
    std.debug.assert(cpu < constants.cpus_max);
    var path_buf: [48]u8 = undefined;
    const path = std.mem.printSentinel(&path_buf, "/dev/cpu/{d}/msr", .{cpu}, 0) catch unreachable;
    var errno_buf: [24]u8 = undefined;
    const open_rc = linux.open(path, .{ .ACCMODE = .RDONLY, .CLOEXEC = true }, 0);
    const open_errno = linux.errno(open_rc);
    switch (open_errno) {
        .SUCCESS => {},
        .NOENT, .NODEV, .NXIO => {
            describeMissing(cpu, path, err_buf, err_len);
            return error.NotFound;
        },
        .ACCES, .PERM => {
            error_text.write(err_buf, err_len, "permission denied opening {s} ({s}): " ++
                "needs root with CAP_SYS_RAWIO", .{
                path,
                linux_io.errnoName(open_errno, &errno_buf),
            });
            return error.PermissionDenied;
        },
        else => {
            error_text.write(
                err_buf,
                err_len,
                "cannot open {s} ({s})",
                .{ path, linux_io.errnoName(open_errno, &errno_buf) },
            );
            return error.Unexpected;
        },
    }
    const fd: linux.fd_t = @intCast(open_rc);
    defer _ = linux.close(fd);
    var value: u64 = 0;
    const rc = linux.pread(fd, @ptrCast(&value), @sizeOf(u64), @intCast(register));
    const e = linux.errno(rc);
    if (e == .SUCCESS and rc == @sizeOf(u64)) return value;
    // The driver turns a faulting RDMSR (register not implemented, or hidden
    // by the hypervisor) into EIO.
    if (e == .IO) {
        error_text.write(
            err_buf,
            err_len,
            "MSR 0x{x} is not implemented on cpu {d} (EIO from {s})",
            .{ register, cpu, path },
        );
        return error.NotSupported;
    }
    error_text.write(
        err_buf,
        err_len,
        "cannot read MSR 0x{x} from {s} ({s})",
        .{ register, path, linux_io.errnoName(e, &errno_buf) },
    );
    return error.Unexpected;
}

/// Says which part is missing: the CPU, or the driver.
fn describeMissing(cpu: u32, path: []const u8, err_buf: ?[*]u8, err_len: u32) void {
    var dir_buf: [48]u8 = undefined;
    const cpu_dir_format = "/sys/devices/system/cpu/cpu{d}";
    const cpu_dir = std.mem.printSentinel(&dir_buf, cpu_dir_format, .{cpu}, 0) catch unreachable;
    if (!linux_io.exists(cpu_dir)) {
        error_text.write(
            err_buf,
            err_len,
            "{s} does not exist: there is no cpu {d}",
            .{ path, cpu },
        );
    } else if (linux_io.exists("/sys/module/msr")) {
        error_text.write(
            err_buf,
            err_len,
            "{s} does not exist: the msr driver is loaded but cpu {d} has no device node " ++
                "(offline, or no udev/devtmpfs)",
            .{ path, cpu },
        );
    } else {
        error_text.write(
            err_buf,
            err_len,
            "{s} does not exist: the kernel has no msr driver (modprobe msr)",
            .{path},
        );
    }
}

test "MSR 0x10 (TSC) on cpu 0 is nonzero, or unavailable with a reason" {
    var err: [256]u8 = @splat(0);
    if (read(0, 0x10, &err, err.len)) |tsc| {
        try std.testing.expect(tsc != 0);
    } else |e| {
        const text = std.mem.sliceTo(&err, 0);
        try std.testing.expect(text.len > 0);
        if (!linux_io.exists("/dev/cpu/0/msr")) {
            try std.testing.expectEqual(error.NotFound, e);
            try std.testing.expect(std.mem.startsWith(u8, text, "/dev/cpu/0/msr does not exist: "));
        }
    }
}

test "a CPU that does not exist is named in the reason" {
    var err: [256]u8 = @splat(0);
    try std.testing.expectError(error.NotFound, read(constants.cpus_max - 1, 0x10, &err, err.len));
    const text = std.mem.sliceTo(&err, 0);
    try std.testing.expect(std.mem.indexOf(u8, text, "no cpu 8191") != null);
}
