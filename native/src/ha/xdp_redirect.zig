//! The XDP program that hands a VIP's frames to an AF_XDP socket: raw BPF
//! instructions (no ELF, no libbpf), an XSKMAP with one entry, loaded and
//! attached through bpf_loader.zig's BPF link, so it detaches when the
//! process dies.
//!
//! Matching frames go to the socket with bpf_redirect_map(map, queue,
//! XDP_PASS); everything else, and every frame when the socket is gone (the
//! kernel drops a closed socket from the map), passes to the kernel. The key
//! is the frame's rx queue: the one entry is queue 0's, so frames of any
//! other queue miss the map and pass instead of being redirected to a socket
//! bound elsewhere (which would drop them). veth has one real queue unless
//! it is made with more.
//!
//! Untagged Ethernet only (no 802.1Q), IPv4 only, as packet.zig.
const std = @import("std");
const linux = std.os.linux;
const BPF = linux.BPF;
const Insn = BPF.Insn;
const assert = std.debug.assert;
const bpf_loader = @import("bpf_loader.zig");

/// Which frames the program redirects.
/// to_vip: IPv4 TCP with dst == vip, or an Ethernet/IPv4 ARP packet whose
/// target protocol address == vip (requests for the VIP reach the agent).
/// from_vip: IPv4 TCP with src == vip.
pub const Match = enum { to_vip, from_vip };

/// struct xdp_md offsets (<linux/bpf.h>).
const md_data: i16 = 0;
const md_data_end: i16 = 4;
const md_rx_queue_index: i16 = 16;

/// Frame offsets: Ethernet header, then IPv4 or ARP.
const eth_type: i16 = 12;
const ipv4_version_ihl: i16 = 14;
const ipv4_protocol: i16 = 23;
const ipv4_src: i16 = 26;
const ipv4_dst: i16 = 30;
const ipv4_end: i32 = 34; // Ethernet + the smallest IPv4 header
const arp_ptype: i16 = 16;
const arp_hlen_plen: i16 = 18;
const arp_tpa: i16 = 38;
const arp_end: i32 = 42; // Ethernet + ARP for Ethernet/IPv4

/// Wire values as a native-endian load sees them (BPF loads are native).
fn wire16(bytes: [2]u8) i32 {
    return std.mem.readInt(u16, &bytes, .native);
}
const ethertype_ipv4 = wire16(.{ 0x08, 0x00 });
const ethertype_arp = wire16(.{ 0x08, 0x06 });
const arp_hlen6_plen4 = wire16(.{ 6, 4 });

pub const program_len_max = 40;

const Label = enum { ipv4, redirect, pass };

/// A straight-line assembler with forward labels, so jump offsets are
/// computed, never counted by hand.
const Builder = struct {
    insns: [program_len_max]Insn = undefined,
    len: u32 = 0,
    fixups: [program_len_max]struct { at: u32, target: Label } = undefined,
    fixup_count: u32 = 0,
    labels: std.enums.EnumArray(Label, ?u32) = .initFill(null),

    fn emit(self: *Builder, insn: Insn) void {
        assert(self.len < program_len_max);
        self.insns[self.len] = insn;
        self.len += 1;
    }

    /// Emits a jump (its `off` is patched to reach `target`).
    fn jump(self: *Builder, insn: Insn, target: Label) void {
        self.fixups[self.fixup_count] = .{ .at = self.len, .target = target };
        self.fixup_count += 1;
        self.emit(insn);
    }

    fn mark(self: *Builder, label: Label) void {
        assert(self.labels.get(label) == null);
        self.labels.set(label, self.len);
    }

    fn finish(self: *Builder) []const Insn {
        for (self.fixups[0..self.fixup_count]) |fixup| {
            const target = self.labels.get(fixup.target).?;
            assert(target > fixup.at); // forward only: the verifier rejects loops anyway
            self.insns[fixup.at].off = @intCast(target - fixup.at - 1);
        }
        assert(self.insns[self.len - 1].code == exit_code);
        return self.insns[0..self.len];
    }
};

const exit_code: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// r2 = data, r3 = data_end, r6 = ctx; then the match, then
/// `return bpf_redirect_map(map, ctx->rx_queue_index, XDP_PASS)` or XDP_PASS.
fn buildProgram(builder: *Builder, map_fd: linux.fd_t, match: Match, vip_be: u32) []const Insn {
    const b = builder;
    // The VIP goes through a 32-bit mov: a jump's imm is sign-extended to
    // 64 bits, so a VIP whose last byte is >= 128 would never compare equal.
    const vip_imm: i32 = @bitCast(vip_be);
    b.emit(Insn.mov(.r6, .r1));
    b.emit(Insn.ldx(.word, .r2, .r1, md_data));
    b.emit(Insn.ldx(.word, .r3, .r1, md_data_end));
    b.emit(Insn.mov(.r4, .r2));
    b.emit(Insn.add(.r4, ipv4_end));
    b.jump(Insn.jgt(.r4, .r3, 0), .pass); // shorter than Ethernet + IPv4 (and than ARP)
    b.emit(Insn.ldx(.half_word, .r5, .r2, eth_type));
    b.jump(Insn.jeq(.r5, ethertype_ipv4, 0), .ipv4);
    switch (match) {
        .to_vip => {
            b.jump(Insn.jne(.r5, ethertype_arp, 0), .pass);
            b.emit(Insn.mov(.r4, .r2));
            b.emit(Insn.add(.r4, arp_end));
            b.jump(Insn.jgt(.r4, .r3, 0), .pass);
            b.emit(Insn.ldx(.half_word, .r5, .r2, arp_ptype));
            b.jump(Insn.jne(.r5, ethertype_ipv4, 0), .pass);
            b.emit(Insn.ldx(.half_word, .r5, .r2, arp_hlen_plen));
            b.jump(Insn.jne(.r5, arp_hlen6_plen4, 0), .pass);
            b.emit(Insn.ldx(.word, .r5, .r2, arp_tpa));
            b.emit(Insn.alu(32, .mov, .r4, vip_imm));
            b.jump(Insn.jne(.r5, .r4, 0), .pass);
            b.jump(Insn.ja(0), .redirect);
        },
        .from_vip => b.jump(Insn.ja(0), .pass),
    }
    b.mark(.ipv4);
    b.emit(Insn.ldx(.byte, .r5, .r2, ipv4_version_ihl));
    b.emit(Insn.alu_and(.r5, 0xf0));
    b.jump(Insn.jne(.r5, 0x40, 0), .pass);
    b.emit(Insn.ldx(.byte, .r5, .r2, ipv4_protocol));
    b.jump(Insn.jne(.r5, 6, 0), .pass); // TCP
    b.emit(Insn.ldx(.word, .r5, .r2, switch (match) {
        .to_vip => ipv4_dst,
        .from_vip => ipv4_src,
    }));
    b.emit(Insn.alu(32, .mov, .r4, vip_imm));
    b.jump(Insn.jne(.r5, .r4, 0), .pass);
    b.mark(.redirect);
    b.emit(Insn.ldx(.word, .r2, .r6, md_rx_queue_index));
    b.emit(Insn.ld_map_fd1(.r1, map_fd));
    b.emit(Insn.ld_map_fd2(map_fd));
    b.emit(Insn.mov(.r3, bpf_loader.xdp_pass)); // what a missing entry returns
    b.emit(Insn.call(.redirect_map));
    b.emit(Insn.exit());
    b.mark(.pass);
    b.emit(Insn.mov(.r0, bpf_loader.xdp_pass));
    b.emit(Insn.exit());
    return b.finish();
}

/// A loaded and attached redirect program and its XSKMAP.
pub const Redirect = struct {
    map_fd: linux.fd_t,
    prog_fd: linux.fd_t,
    link_fd: linux.fd_t,

    /// Loads the program for `match` and `vip_be` (the VIP's 4 bytes as they
    /// appear in the packet, read as a native u32), puts the bound socket
    /// `xsk_fd` at key 0 of its XSKMAP and attaches it to `ifindex`. `log`
    /// receives the verifier's text when the program is rejected.
    pub fn attach(
        ifindex: u32,
        mode: bpf_loader.AttachMode,
        match: Match,
        vip_be: u32,
        xsk_fd: linux.fd_t,
        log: []u8,
    ) bpf_loader.Error!Redirect {
        assert(ifindex > 0);
        assert(xsk_fd >= 0);
        const map_fd = BPF.map_create(.xskmap, 4, 4, 1) catch |err| return bpf_loader.mapError(err);
        errdefer _ = linux.close(map_fd);
        try mapPut(map_fd, 0, xsk_fd);
        var builder = Builder{};
        const program = buildProgram(&builder, map_fd, match, vip_be);
        const prog_fd = try bpf_loader.progLoad(program, log);
        errdefer _ = linux.close(prog_fd);
        const link_fd = try bpf_loader.linkCreate(prog_fd, ifindex, mode);
        return .{ .map_fd = map_fd, .prog_fd = prog_fd, .link_fd = link_fd };
    }

    /// Detaches (closing the link is what detaches) and frees program and map.
    pub fn detach(self: *Redirect) void {
        assert(self.link_fd >= 0);
        _ = linux.close(self.link_fd);
        _ = linux.close(self.prog_fd);
        _ = linux.close(self.map_fd);
        self.* = .{ .map_fd = -1, .prog_fd = -1, .link_fd = -1 };
    }
};

/// map[key] = socket fd. Raw, not std's map_update_elem: that one cannot
/// tell "socket not bound" (EOPNOTSUPP) from other failures.
fn mapPut(map_fd: linux.fd_t, key: u32, xsk_fd: linux.fd_t) bpf_loader.Error!void {
    const value: u32 = @intCast(xsk_fd);
    var attr = BPF.Attr{ .map_elem = std.mem.zeroes(BPF.MapElemAttr) };
    attr.map_elem.map_fd = map_fd;
    attr.map_elem.key = @intFromPtr(&key);
    attr.map_elem.result = .{ .value = @intFromPtr(&value) };
    const rc = linux.bpf(.map_update_elem, &attr, @sizeOf(BPF.MapElemAttr));
    return switch (linux.errno(rc)) {
        .SUCCESS => {},
        .PERM, .ACCES => error.PermissionDenied,
        .OPNOTSUPP => error.NotSupported, // not an AF_XDP socket, or not bound
        .BUSY => error.Busy,
        .NOMEM => error.SystemResources,
        else => error.Unexpected,
    };
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

/// Runs `program` on `frame` with a tiny interpreter of exactly the
/// instructions it uses: proves the match logic without the kernel.
/// Returns the action, or `redirected` when it called redirect_map.
const Outcome = enum { pass, redirected };

fn interpret(program: []const Insn, frame: []const u8) !Outcome {
    var r: [11]u64 = @splat(0);
    const data: u64 = 0x1000;
    r[1] = 0x100; // ctx
    var pc: usize = 0;
    var steps: u32 = 0;
    while (steps < 200) : (steps += 1) {
        const insn = program[pc];
        pc += 1;
        const class = insn.code & 0x07;
        const src_value: u64 = if (insn.code & 0x08 != 0) r[insn.src] else @bitCast(@as(i64, insn.imm));
        switch (class) {
            0x01 => { // LDX
                const addr = r[insn.src] +% @as(u64, @bitCast(@as(i64, insn.off)));
                if (insn.src == 1 or insn.src == 6) { // ctx
                    r[insn.dst] = switch (addr - 0x100) {
                        0 => data,
                        4 => data + frame.len,
                        16 => 0, // rx_queue_index
                        else => return error.BadContextAccess,
                    };
                    continue;
                }
                const at = addr - data;
                const width: usize = switch (insn.code & 0x18) {
                    0x10 => 1,
                    0x08 => 2,
                    0x00 => 4,
                    else => return error.BadSize,
                };
                if (at + width > frame.len) return error.OutOfBounds; // the verifier would reject
                var value: u64 = 0;
                for (0..width) |i| value |= @as(u64, frame[at + i]) << @intCast(8 * i); // little endian
                r[insn.dst] = value;
            },
            0x07 => switch (insn.code & 0xf0) { // ALU64
                0xb0 => r[insn.dst] = src_value,
                0x00 => r[insn.dst] +%= src_value,
                0x50 => r[insn.dst] &= src_value,
                else => return error.Unsupported,
            },
            0x04 => switch (insn.code & 0xf0) { // ALU32
                0xb0 => r[insn.dst] = @as(u32, @truncate(src_value)),
                else => return error.Unsupported,
            },
            0x05 => switch (insn.code & 0xf0) { // JMP
                0x00 => pc += @intCast(insn.off),
                0x10 => if (r[insn.dst] == src_value) {
                    pc += @intCast(insn.off);
                },
                0x50 => if (r[insn.dst] != src_value) {
                    pc += @intCast(insn.off);
                },
                0x20 => if (r[insn.dst] > src_value) {
                    pc += @intCast(insn.off);
                },
                0x80 => {
                    if (insn.imm != @backingInt(BPF.Helper.redirect_map)) return error.Unsupported;
                    if (r[3] != @as(u64, bpf_loader.xdp_pass)) return error.BadFlags;
                    return .redirected;
                },
                0x90 => return if (r[0] == bpf_loader.xdp_pass) .pass else error.BadAction,
                else => return error.Unsupported,
            },
            0x00 => { // ld_imm64: map fd, two slots
                r[insn.dst] = 0xfeed;
                pc += 1;
            },
            else => return error.Unsupported,
        }
    }
    return error.TooManySteps;
}

fn tcpFrame(src: [4]u8, dst: [4]u8) [54]u8 {
    var frame: [54]u8 = @splat(0);
    frame[12] = 0x08;
    frame[13] = 0x00;
    frame[14] = 0x45;
    frame[23] = 6;
    frame[26..30].* = src;
    frame[30..34].* = dst;
    return frame;
}

fn arpFrame(target: [4]u8) [42]u8 {
    var frame: [42]u8 = @splat(0);
    frame[12] = 0x08;
    frame[13] = 0x06;
    frame[14..22].* = .{ 0, 1, 0x08, 0x00, 6, 4, 0, 1 };
    frame[38..42].* = target;
    return frame;
}

fn run(match: Match, vip: [4]u8, frame: []const u8) !Outcome {
    var builder = Builder{};
    const program = buildProgram(&builder, 7, match, std.mem.readInt(u32, &vip, .native));
    return interpret(program, frame);
}

test "the program ends in exit, relocates the map fd and calls redirect_map with XDP_PASS" {
    inline for (.{ Match.to_vip, Match.from_vip }) |match| {
        var builder = Builder{};
        const program = buildProgram(&builder, 9, match, 0x0100000a);
        try testing.expect(program.len <= program_len_max);
        try testing.expectEqual(exit_code, program[program.len - 1].code);
        var maps: u32 = 0;
        var calls: u32 = 0;
        for (program, 0..) |insn, i| {
            if (insn.code == 0x18 and insn.src == 1) { // ld_imm64 with BPF_PSEUDO_MAP_FD
                maps += 1;
                try testing.expectEqual(@as(i32, 9), insn.imm);
            }
            if (insn.code == 0x85) {
                calls += 1;
                try testing.expectEqual(@backingInt(BPF.Helper.redirect_map), insn.imm);
                try testing.expectEqual(exit_code, program[i + 1].code);
            }
            // Every jump lands inside the program.
            if (insn.code & 0x07 == 0x05 and insn.code != 0x85 and insn.code != exit_code) {
                try testing.expect(insn.off >= 0);
                try testing.expect(i + 1 + @as(usize, @intCast(insn.off)) < program.len);
            }
        }
        try testing.expectEqual(@as(u32, 1), maps);
        try testing.expectEqual(@as(u32, 1), calls);
    }
    // to_vip carries the ARP branch, from_vip does not.
    var to = Builder{};
    var from = Builder{};
    try testing.expect(buildProgram(&to, 1, .to_vip, 1).len > buildProgram(&from, 1, .from_vip, 1).len);
}

test "to_vip redirects TCP to the VIP and ARP for the VIP, passes the rest" {
    const vip = [4]u8{ 10, 88, 0, 1 };
    const other = [4]u8{ 10, 88, 0, 2 };
    try testing.expectEqual(Outcome.redirected, try run(.to_vip, vip, &tcpFrame(other, vip)));
    try testing.expectEqual(Outcome.pass, try run(.to_vip, vip, &tcpFrame(vip, other)));
    try testing.expectEqual(Outcome.redirected, try run(.to_vip, vip, &arpFrame(vip)));
    try testing.expectEqual(Outcome.pass, try run(.to_vip, vip, &arpFrame(other)));
    var udp = tcpFrame(other, vip);
    udp[23] = 17;
    try testing.expectEqual(Outcome.pass, try run(.to_vip, vip, &udp));
    var ipv6ish = tcpFrame(other, vip);
    ipv6ish[14] = 0x65;
    try testing.expectEqual(Outcome.pass, try run(.to_vip, vip, &ipv6ish));
    // Truncated frames pass without reading past the end.
    const tcp = tcpFrame(other, vip);
    try testing.expectEqual(Outcome.pass, try run(.to_vip, vip, tcp[0..33]));
    const arp = arpFrame(vip);
    try testing.expectEqual(Outcome.pass, try run(.to_vip, vip, arp[0..41]));
    var arp_ipv6 = arpFrame(vip);
    arp_ipv6[16] = 0x86;
    try testing.expectEqual(Outcome.pass, try run(.to_vip, vip, &arp_ipv6));
}

test "from_vip redirects TCP from the VIP only, never ARP" {
    const vip = [4]u8{ 10, 88, 0, 1 };
    const other = [4]u8{ 10, 88, 0, 2 };
    try testing.expectEqual(Outcome.redirected, try run(.from_vip, vip, &tcpFrame(vip, other)));
    try testing.expectEqual(Outcome.pass, try run(.from_vip, vip, &tcpFrame(other, vip)));
    try testing.expectEqual(Outcome.pass, try run(.from_vip, vip, &arpFrame(vip)));
}

test "a VIP with its high bit set still matches (32-bit compare, no sign extension)" {
    const vip = [4]u8{ 192, 168, 7, 200 };
    const other = [4]u8{ 192, 168, 7, 2 };
    try testing.expectEqual(Outcome.redirected, try run(.to_vip, vip, &tcpFrame(other, vip)));
    try testing.expectEqual(Outcome.redirected, try run(.from_vip, vip, &tcpFrame(vip, other)));
    try testing.expectEqual(Outcome.redirected, try run(.to_vip, vip, &arpFrame(vip)));
}

test "every declaration compiles" {
    testing.refAllDecls(@This());
    testing.refAllDecls(Redirect);
}
