//! Loads XDP programs given as raw BPF instructions with the bpf syscall (no
//! libbpf, no ELF) and attaches them through a BPF link. A link detaches when
//! its last fd closes, so a killed process leaves no XDP program behind — the
//! property `ha` needs ("nothing left in the kernel"), which the older
//! netlink attach (IFLA_XDP) does not give.
//!
//! The first program is the smallest useful one: it counts every frame of an
//! interface in a one-slot array map and passes it on. It proves the loading
//! path (verifier, map fd relocation, link attach in generic or native mode)
//! that the AF_XDP redirect program will take.
const std = @import("std");
const linux = std.os.linux;
const BPF = linux.BPF;
const Insn = BPF.Insn;
const assert = std.debug.assert;

/// XDP_PASS from <linux/bpf.h>.
pub const xdp_pass: i32 = 2;
/// XDP_FLAGS_SKB_MODE and XDP_FLAGS_DRV_MODE from <linux/if_link.h>.
pub const xdp_flags_skb_mode: u32 = 1 << 1;
pub const xdp_flags_drv_mode: u32 = 1 << 2;

/// Where the program runs: generic (in the stack, any device) or native (in the driver; veth has it).
pub const AttachMode = enum(u32) { generic = 0, native = 1 };

pub const Error = error{
    PermissionDenied,
    NotSupported,
    InterfaceNotFound,
    ProgramRejected,
    Busy,
    SystemResources,
    Unexpected,
};

/// `counter` program: r0 = lookup(map, 0); if r0 { *r0 += 1 }; return XDP_PASS.
fn counterProgram(map_fd: linux.fd_t) [11]Insn {
    return .{
        Insn.st(.word, .r10, -4, 0), // key = 0 on the stack
        Insn.mov(.r2, .r10),
        Insn.add(.r2, -4),
        Insn.ld_map_fd1(.r1, map_fd),
        Insn.ld_map_fd2(map_fd),
        Insn.call(.map_lookup_elem),
        Insn.jeq(.r0, 0, 2), // the verifier insists on the NULL check
        Insn.mov(.r1, 1),
        Insn.xadd(.r0, .r1), // atomic: several CPUs may run the program at once
        Insn.mov(.r0, xdp_pass),
        Insn.exit(),
    };
}

/// A loaded and attached frame counter. `detach` releases everything.
pub const XDPCounter = struct {
    map_fd: linux.fd_t,
    prog_fd: linux.fd_t,
    link_fd: linux.fd_t,

    /// Loads the counter and attaches it to `ifindex`. `log` receives the
    /// verifier's text when the program is rejected.
    pub fn attach(ifindex: u32, mode: AttachMode, log: []u8) Error!XDPCounter {
        assert(ifindex > 0);
        const map_fd = BPF.map_create(.array, 4, 8, 1) catch |err| return mapError(err);
        errdefer _ = linux.close(map_fd);
        const program = counterProgram(map_fd);
        const prog_fd = try progLoad(&program, log);
        errdefer _ = linux.close(prog_fd);
        const link_fd = try linkCreate(prog_fd, ifindex, mode);
        return .{ .map_fd = map_fd, .prog_fd = prog_fd, .link_fd = link_fd };
    }

    /// Frames seen since `attach`.
    pub fn packets(self: *const XDPCounter) Error!u64 {
        assert(self.map_fd >= 0);
        const key: [4]u8 = @splat(0);
        var value: [8]u8 = @splat(0);
        BPF.map_lookup_elem(self.map_fd, &key, &value) catch return error.Unexpected;
        return std.mem.readInt(u64, &value, .little);
    }

    /// Detaches (closing the link) and frees the program and map.
    pub fn detach(self: *XDPCounter) void {
        assert(self.link_fd >= 0);
        _ = linux.close(self.link_fd);
        _ = linux.close(self.prog_fd);
        _ = linux.close(self.map_fd);
        self.* = .{ .map_fd = -1, .prog_fd = -1, .link_fd = -1 };
    }
};

/// Loads an XDP program; `log` (may be empty) receives the verifier's text
/// when the program is rejected. Shared with xdp_redirect.zig.
pub fn progLoad(program: []const Insn, log: []u8) Error!linux.fd_t {
    // First without a log: a log that does not hold the verifier's whole
    // output fails the load with ENOSPC, even for a good program.
    return BPF.prog_load(.xdp, program, null, "GPL", 0, 0) catch |err| {
        if (log.len > 0) {
            // Again, only for the text: the rotating log keeps its tail, the reason.
            var verifier_log = BPF.Log{ .level = 1, .buf = log };
            if (BPF.prog_load(.xdp, program, &verifier_log, "GPL", 0, 0)) |fd| {
                _ = linux.close(fd);
            } else |_| {}
        }
        return switch (err) {
            error.PermissionDenied => error.PermissionDenied,
            error.UnsafeProgram, error.InvalidProgram => error.ProgramRejected,
            else => error.Unexpected,
        };
    };
}

/// Attaches `prog_fd` to `ifindex` through a BPF link (detached when the
/// link fd closes). Shared with xdp_redirect.zig.
pub fn linkCreate(prog_fd: linux.fd_t, ifindex: u32, mode: AttachMode) Error!linux.fd_t {
    var attr = BPF.Attr{ .link_create = std.mem.zeroes(BPF.LinkCreateAttr) };
    attr.link_create.prog_fd = prog_fd;
    attr.link_create.target_fd = @intCast(ifindex);
    attr.link_create.attach_type = @backingInt(BPF.AttachType.xdp);
    attr.link_create.flags = switch (mode) {
        .generic => xdp_flags_skb_mode,
        .native => xdp_flags_drv_mode,
    };
    const rc = linux.bpf(.link_create, &attr, @sizeOf(BPF.LinkCreateAttr));
    return switch (linux.errno(rc)) {
        .SUCCESS => @intCast(rc),
        .PERM, .ACCES => error.PermissionDenied,
        .NODEV => error.InterfaceNotFound,
        .OPNOTSUPP, .INVAL => error.NotSupported,
        .BUSY, .EXIST => error.Busy,
        .NOMEM => error.SystemResources,
        else => error.Unexpected,
    };
}

pub fn mapError(err: anyerror) Error {
    return switch (err) {
        error.PermissionDenied => error.PermissionDenied,
        error.SystemResources => error.SystemResources,
        else => error.Unexpected,
    };
}

test "the counter program is 11 instructions ending in exit, with the map fd relocated" {
    const program = counterProgram(7);
    try std.testing.expectEqual(@as(usize, 11), program.len);
    try std.testing.expectEqual(@as(u8, 0x95), program[10].code); // BPF_JMP | BPF_EXIT
    // ld_imm64 with src = BPF_PSEUDO_MAP_FD (1) carries the fd in imm.
    try std.testing.expectEqual(@as(u4, 1), program[3].src);
    try std.testing.expectEqual(@as(i32, 7), program[3].imm);
    comptime assert(@sizeOf(Insn) == 8);
}
