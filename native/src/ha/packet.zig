//! Ethernet/IPv4/TCP parsing and the in-place rewrite the `ha` agent needs on
//! a replica's path: a replica's TCP socket has its own ISN and timestamp
//! clock, so the agent shifts seq, ack, SACK edges, TSval and TSecr by fixed
//! deltas and patches the TCP checksum incrementally (RFC 1624, eqn. 3)
//! instead of summing the whole segment again: cost per packet stays constant
//! however large the payload.
//!
//! Input is untrusted bytes from the wire: every length is checked against
//! the frame before it is used, and parse errors are values, never panics.
//! IPv4 only (as the reference); no VLAN tags; IP fragments are refused (the
//! TCP header may not be in the first fragment, and the lab's MTU is uniform).
const std = @import("std");
const assert = std.debug.assert;

pub const ethernet_header_len: u16 = 14;
pub const ethertype_ipv4: u16 = 0x0800;
pub const ip_protocol_tcp: u8 = 6;
/// The TCP header is at most 60 bytes, so options at most 40.
pub const tcp_options_len_max: u16 = 40;
/// A SACK option carries at most 4 blocks (34 bytes).
pub const sack_blocks_max: u8 = 4;

pub const option_eol: u8 = 0;
pub const option_nop: u8 = 1;
pub const option_mss: u8 = 2;
pub const option_window_scale: u8 = 3;
pub const option_sack_permitted: u8 = 4;
pub const option_sack: u8 = 5;
pub const option_timestamp: u8 = 8;

pub const flag_fin: u8 = 0x01;
pub const flag_syn: u8 = 0x02;
pub const flag_rst: u8 = 0x04;
pub const flag_ack: u8 = 0x10;

pub const ParseError = error{
    TooShort,
    NotIPv4,
    BadIPHeader,
    Fragment,
    NotTCP,
    BadTCPHeader,
    BadOption,
};

/// TCP options the agent cares about; offsets are from the start of the frame.
pub const Options = struct {
    mss: ?u16 = null,
    window_scale: ?u8 = null,
    sack_permitted: bool = false,
    /// Offset of the TS option's TSval (TSecr follows 4 bytes later).
    timestamp_offset: ?u16 = null,
    /// Offset of the first SACK block's left edge.
    sack_offset: ?u16 = null,
    sack_blocks: u8 = 0,
};

/// Where the headers of a parsed frame are, and their main fields.
pub const Packet = struct {
    ip_offset: u16,
    ip_header_len: u16,
    /// IPv4 total length: the frame may be longer (Ethernet padding).
    ip_total_len: u16,
    tcp_offset: u16,
    tcp_header_len: u16,
    payload_len: u16,
    source_ip: u32,
    destination_ip: u32,
    source_port: u16,
    destination_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: Options,

    /// Length of the TCP segment (header and payload).
    pub fn segmentLen(self: Packet) u16 {
        return self.tcp_header_len + self.payload_len;
    }
};

fn read16(frame: []const u8, offset: usize) u16 {
    return std.mem.readInt(u16, frame[offset..][0..2], .big);
}

fn read32(frame: []const u8, offset: usize) u32 {
    return std.mem.readInt(u32, frame[offset..][0..4], .big);
}

/// Parses an Ethernet frame carrying IPv4/TCP. Checksums are not checked here
/// (see `checksumsValid`): the agent forwards what the kernel accepted.
pub fn parse(frame: []const u8) ParseError!Packet {
    if (frame.len < ethernet_header_len + 20) return error.TooShort;
    if (read16(frame, 12) != ethertype_ipv4) return error.NotIPv4;
    const ip = ethernet_header_len;
    if (frame[ip] >> 4 != 4) return error.NotIPv4;
    const ip_header_len: u16 = @as(u16, frame[ip] & 0x0f) * 4;
    if (ip_header_len < 20) return error.BadIPHeader;
    const ip_total_len = read16(frame, ip + 2);
    if (ip_total_len < ip_header_len) return error.BadIPHeader;
    if (ip_total_len > frame.len - ip) return error.TooShort;
    const fragment = read16(frame, ip + 6);
    // More-fragments set, or a non-zero fragment offset.
    if (fragment & 0x2000 != 0 or fragment & 0x1fff != 0) return error.Fragment;
    if (frame[ip + 9] != ip_protocol_tcp) return error.NotTCP;
    const tcp = ip + ip_header_len;
    const segment_len = ip_total_len - ip_header_len;
    if (segment_len < 20) return error.BadTCPHeader;
    const tcp_header_len: u16 = @as(u16, frame[tcp + 12] >> 4) * 4;
    if (tcp_header_len < 20 or tcp_header_len > segment_len) return error.BadTCPHeader;
    const packet = Packet{
        .ip_offset = ip,
        .ip_header_len = ip_header_len,
        .ip_total_len = ip_total_len,
        .tcp_offset = tcp,
        .tcp_header_len = tcp_header_len,
        .payload_len = segment_len - tcp_header_len,
        .source_ip = read32(frame, ip + 12),
        .destination_ip = read32(frame, ip + 16),
        .source_port = read16(frame, tcp),
        .destination_port = read16(frame, tcp + 2),
        .seq = read32(frame, tcp + 4),
        .ack = read32(frame, tcp + 8),
        .flags = frame[tcp + 13],
        .window = read16(frame, tcp + 14),
        .options = try parseOptions(frame[0 .. tcp + tcp_header_len], tcp + 20),
    };
    assert(packet.tcp_offset + packet.segmentLen() == ip + ip_total_len);
    assert(packet.tcp_offset + packet.tcp_header_len <= frame.len);
    return packet;
}

/// Parses TCP options in `header[start..]` (`header` ends with the TCP header).
fn parseOptions(header: []const u8, start: u16) ParseError!Options {
    assert(header.len >= start);
    assert(header.len - start <= tcp_options_len_max);
    var options = Options{};
    var at: usize = start;
    // Each pass consumes at least one byte, so this ends within 40 passes.
    while (at < header.len) {
        const kind = header[at];
        if (kind == option_eol) break;
        if (kind == option_nop) {
            at += 1;
            continue;
        }
        if (at + 2 > header.len) return error.BadOption;
        const len = header[at + 1];
        if (len < 2 or at + len > header.len) return error.BadOption;
        switch (kind) {
            option_mss => {
                if (len != 4) return error.BadOption;
                options.mss = read16(header, at + 2);
            },
            option_window_scale => {
                if (len != 3) return error.BadOption;
                options.window_scale = header[at + 2];
            },
            option_sack_permitted => {
                if (len != 2) return error.BadOption;
                options.sack_permitted = true;
            },
            option_sack => {
                if ((len - 2) % 8 != 0 or len == 2 or (len - 2) / 8 > sack_blocks_max) {
                    return error.BadOption;
                }
                options.sack_offset = @intCast(at + 2);
                options.sack_blocks = @intCast((len - 2) / 8);
            },
            option_timestamp => {
                if (len != 10) return error.BadOption;
                options.timestamp_offset = @intCast(at + 2);
            },
            else => {}, // Unknown options are skipped by their length, as TCP does.
        }
        at += len;
    }
    return options;
}

/// Adds `bytes` as big-endian 16-bit words to a ones' complement sum; an odd
/// last byte is padded with zero (RFC 1071).
pub fn sumWords(sum_initial: u64, bytes: []const u8) u64 {
    var sum = sum_initial;
    var at: usize = 0;
    while (at + 1 < bytes.len) : (at += 2) sum += read16(bytes, at);
    if (at < bytes.len) sum += @as(u64, bytes[at]) << 8;
    return sum;
}

/// Folds a sum into 16 bits with end-around carry.
pub fn fold(sum_initial: u64) u16 {
    var sum = sum_initial;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
    return @intCast(sum);
}

/// The ones' complement sum of the IPv4 pseudo-header and the TCP segment.
fn tcpSum(frame: []const u8, packet: Packet) u64 {
    const ip = packet.ip_offset;
    var sum: u64 = sumWords(0, frame[ip + 12 .. ip + 20]);
    sum += ip_protocol_tcp;
    sum += packet.segmentLen();
    return sumWords(sum, frame[packet.tcp_offset..][0..packet.segmentLen()]);
}

/// Whether the IPv4 header and TCP checksums of a parsed frame are right,
/// computed from scratch over every byte.
pub fn checksumsValid(frame: []const u8, packet: Packet) bool {
    const ip_ok = fold(sumWords(0, frame[packet.ip_offset..][0..packet.ip_header_len])) == 0xffff;
    const tcp_ok = fold(tcpSum(frame, packet)) == 0xffff;
    return ip_ok and tcp_ok;
}

/// Computes the TCP checksum from scratch and stores it (the slow path, and
/// the reference the incremental update is tested against).
pub fn tcpChecksumRecompute(frame: []u8, packet: Packet) void {
    const field = packet.tcp_offset + 16;
    std.mem.writeInt(u16, frame[field..][0..2], 0, .big);
    std.mem.writeInt(u16, frame[field..][0..2], ~fold(tcpSum(frame, packet)), .big);
    assert(checksumsValidTcp(frame, packet));
}

fn checksumsValidTcp(frame: []const u8, packet: Packet) bool {
    return fold(tcpSum(frame, packet)) == 0xffff;
}

/// Deltas added (mod 2^32) to the fields of a segment. SACK edges move with
/// `ack`: in either direction they name bytes of the same sequence space as
/// the packet's acknowledgement number.
pub const Translation = struct {
    seq_delta: u32 = 0,
    ack_delta: u32 = 0,
    tsval_delta: u32 = 0,
    tsecr_delta: u32 = 0,

    /// The translation that undoes this one.
    pub fn inverse(self: Translation) Translation {
        return .{
            .seq_delta = 0 -% self.seq_delta,
            .ack_delta = 0 -% self.ack_delta,
            .tsval_delta = 0 -% self.tsval_delta,
            .tsecr_delta = 0 -% self.tsecr_delta,
        };
    }
};

/// Rewrites seq, ack (only if ACK is set), SACK edges, TSval and TSecr in
/// place and patches the TCP checksum incrementally. The IP header does not
/// change, so its checksum stays right.
pub fn translate(frame: []u8, packet: Packet, translation: Translation) void {
    assert(packet.tcp_offset + packet.tcp_header_len <= frame.len);
    const tcp = packet.tcp_offset;
    add32(frame, packet, tcp + 4, translation.seq_delta);
    // Without ACK the field is not an acknowledgement (a SYN's is zero): leave it.
    if (packet.flags & flag_ack != 0) add32(frame, packet, tcp + 8, translation.ack_delta);
    if (packet.options.sack_offset) |sack| {
        assert(packet.options.sack_blocks >= 1);
        assert(packet.options.sack_blocks <= sack_blocks_max);
        var edge: u16 = 0;
        while (edge < packet.options.sack_blocks * 2) : (edge += 1) {
            add32(frame, packet, sack + edge * 4, translation.ack_delta);
        }
    }
    if (packet.options.timestamp_offset) |ts| {
        add32(frame, packet, ts, translation.tsval_delta);
        // A SYN's TSecr is zero until the peer's TSval was seen: keep it zero.
        if (packet.flags & flag_ack != 0) add32(frame, packet, ts + 4, translation.tsecr_delta);
    }
}

/// Adds `delta` to the 32-bit field at `offset` and updates the checksum.
fn add32(frame: []u8, packet: Packet, offset: usize, delta: u32) void {
    if (delta == 0) return;
    const old = read32(frame, offset);
    var new_bytes: [4]u8 = undefined;
    std.mem.writeInt(u32, &new_bytes, old +% delta, .big);
    checksumReplace(frame, packet, offset, &new_bytes);
}

/// Rewrites the TCP source or destination port, checksum updated: a
/// replica's NF picks its own ephemeral port for an outgoing connection,
/// which the agent maps onto the primary's.
pub fn setPort(frame: []u8, packet: Packet, which: enum { source, destination }, port: u16) void {
    var bytes: [2]u8 = undefined;
    std.mem.writeInt(u16, &bytes, port, .big);
    const offset: usize = packet.tcp_offset + @as(usize, if (which == .source) 0 else 2);
    checksumReplace(frame, packet, offset, &bytes);
}

/// Writes `new_bytes` at `offset` inside the TCP segment and updates the TCP
/// checksum with RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), where m and m' are
/// the sums of the 16-bit words the change touches. The words are aligned to
/// the segment start (pseudo-header and segment are summed as one), so a field
/// at an odd offset is widened by one byte on each side.
pub fn checksumReplace(frame: []u8, packet: Packet, offset: usize, new_bytes: []const u8) void {
    const tcp: usize = packet.tcp_offset;
    const checksum_field = tcp + 16;
    assert(offset >= tcp);
    assert(offset + new_bytes.len <= tcp + packet.segmentLen());
    assert(new_bytes.len <= 4);
    const window_start = tcp + ((offset - tcp) & ~@as(usize, 1));
    const window_end = @min(tcp + packet.segmentLen(), tcp + ((offset + new_bytes.len - tcp + 1) & ~@as(usize, 1)));
    // The window never covers the checksum itself.
    assert(window_end <= checksum_field or window_start >= checksum_field + 2);
    const sum_old = fold(sumWords(0, frame[window_start..window_end]));
    @memcpy(frame[offset..][0..new_bytes.len], new_bytes);
    const sum_new = fold(sumWords(0, frame[window_start..window_end]));
    const checksum_old = read16(frame, checksum_field);
    const checksum_new = ~fold(@as(u64, ~checksum_old) + @as(u64, ~sum_old) + sum_new);
    std.mem.writeInt(u16, frame[checksum_field..][0..2], checksum_new, .big);
}

// ---------------------------------------------------------------- tests

const testing = std.testing;
const fixtures = @import("packet_fixtures.zig");
const all_fixtures = [_][]const u8{
    &fixtures.syn,          &fixtures.syn_ack,  &fixtures.data, &fixtures.fin,
    &fixtures.sack_aligned, &fixtures.sack_odd,
};

test "captured SYN parses with the options Linux sent" {
    const p = try parse(&fixtures.syn);
    try testing.expectEqual(@as(u32, 0x0a4e0001), p.source_ip);
    try testing.expectEqual(@as(u32, 0x0a4e0002), p.destination_ip);
    try testing.expectEqual(@as(u16, 39714), p.source_port);
    try testing.expectEqual(@as(u16, 7000), p.destination_port);
    try testing.expectEqual(@as(u32, 0x563c8a7f), p.seq);
    try testing.expectEqual(flag_syn, p.flags);
    try testing.expectEqual(@as(?u16, 1460), p.options.mss);
    try testing.expectEqual(@as(?u8, 10), p.options.window_scale);
    try testing.expect(p.options.sack_permitted);
    try testing.expectEqual(@as(?u16, 14 + 20 + 20 + 6 + 2), p.options.timestamp_offset);
    try testing.expectEqual(@as(?u16, null), p.options.sack_offset);
    try testing.expectEqual(@as(u16, 0), p.payload_len);
}

test "captured data segment: payload, timestamps, no handshake options" {
    const p = try parse(&fixtures.data);
    try testing.expectEqual(@as(u16, 13), p.payload_len);
    try testing.expectEqualStrings("hello reliab\n", fixtures.data[p.tcp_offset + p.tcp_header_len ..]);
    try testing.expectEqual(@as(?u16, null), p.options.mss);
    try testing.expect(!p.options.sack_permitted);
    try testing.expect(p.options.timestamp_offset != null);
    // The SYN-ACK's ISN + 1 is what the data segment acknowledges.
    const syn_ack = try parse(&fixtures.syn_ack);
    try testing.expectEqual(syn_ack.seq +% 1, p.ack);
    try testing.expectEqual(read32(&fixtures.syn_ack, syn_ack.options.timestamp_offset.?), read32(&fixtures.data, p.options.timestamp_offset.? + 4));
}

test "hand-built SACK frames: blocks found at aligned and odd offsets" {
    const aligned = try parse(&fixtures.sack_aligned);
    try testing.expectEqual(@as(u8, 2), aligned.options.sack_blocks);
    try testing.expectEqual(aligned.ack +% 1000, read32(&fixtures.sack_aligned, aligned.options.sack_offset.?));
    const odd = try parse(&fixtures.sack_odd);
    try testing.expectEqual(@as(u8, 2), odd.options.sack_blocks);
    try testing.expect(odd.options.sack_offset.? % 2 == 1);
    try testing.expect(odd.options.timestamp_offset.? % 2 == 1);
    try testing.expectEqual(@as(u16, 5), odd.payload_len);
    try testing.expectEqual(@as(u32, 0xfffffff0), read32(&fixtures.sack_odd, odd.options.sack_offset.? + 8));
}

test "every fixture's checksums are valid, and a flipped bit is caught" {
    for (all_fixtures) |fixture| {
        const p = try parse(fixture);
        try testing.expect(checksumsValid(fixture, p));
        var copy: [128]u8 = undefined;
        @memcpy(copy[0..fixture.len], fixture);
        copy[p.tcp_offset + 5] ^= 0x04;
        try testing.expect(!checksumsValid(copy[0..fixture.len], p));
    }
}

test "translate moves every field, keeps checksums valid, and its inverse restores the bytes" {
    const cases = [_]Translation{
        .{ .seq_delta = 1, .ack_delta = 2, .tsval_delta = 3, .tsecr_delta = 4 },
        .{ .seq_delta = 0x80000000, .ack_delta = 0xffffffff, .tsval_delta = 0x12345678, .tsecr_delta = 0xfedcba98 },
        .{ .ack_delta = 0x10 }, // wraps the 0xfffffff0 SACK edge of sack_odd
    };
    for (all_fixtures) |fixture| {
        for (cases) |t| {
            const p = try parse(fixture);
            var copy: [128]u8 = undefined;
            const frame = copy[0..fixture.len];
            @memcpy(frame, fixture);
            translate(frame, p, t);
            try testing.expect(checksumsValid(frame, p));
            const q = try parse(frame);
            try testing.expectEqual(p.seq +% t.seq_delta, q.seq);
            const ack_moves = p.flags & flag_ack != 0;
            try testing.expectEqual(if (ack_moves) p.ack +% t.ack_delta else p.ack, q.ack);
            if (p.options.sack_offset) |sack| {
                for (0..p.options.sack_blocks * 2) |edge| {
                    try testing.expectEqual(read32(fixture, sack + edge * 4) +% t.ack_delta, read32(frame, sack + edge * 4));
                }
            }
            if (p.options.timestamp_offset) |ts| {
                try testing.expectEqual(read32(fixture, ts) +% t.tsval_delta, read32(frame, ts));
            }
            // The incremental checksum equals the one computed from scratch.
            var scratch: [128]u8 = undefined;
            @memcpy(scratch[0..frame.len], frame);
            tcpChecksumRecompute(scratch[0..frame.len], q);
            try testing.expectEqualSlices(u8, scratch[0..frame.len], frame);
            translate(frame, q, t.inverse());
            try testing.expectEqualSlices(u8, fixture, frame);
        }
    }
}

test "random deltas: incremental checksum always matches a full recomputation" {
    var prng = std.Random.DefaultPrng.init(0x7e11ab);
    const random = prng.random();
    for (0..2000) |_| {
        const fixture = all_fixtures[random.uintLessThan(usize, all_fixtures.len)];
        const p = try parse(fixture);
        var copy: [128]u8 = undefined;
        const frame = copy[0..fixture.len];
        @memcpy(frame, fixture);
        translate(frame, p, .{
            .seq_delta = random.int(u32),
            .ack_delta = random.int(u32),
            .tsval_delta = random.int(u32),
            .tsecr_delta = random.int(u32),
        });
        const stored = read16(frame, p.tcp_offset + 16);
        tcpChecksumRecompute(frame, p);
        try testing.expectEqual(read16(frame, p.tcp_offset + 16), stored);
    }
}

test "truncated frames are errors at every length, never a crash" {
    for (all_fixtures) |fixture| {
        const p = try parse(fixture);
        const whole = p.ip_offset + p.ip_total_len;
        for (0..whole) |len| {
            try testing.expect(std.meta.isError(parse(fixture[0..len])));
        }
    }
}

test "malformed headers and options are refused with the right error" {
    var frame: [fixtures.syn.len]u8 = fixtures.syn;
    frame[12] = 0x86; // IPv6 ethertype
    try testing.expectError(error.NotIPv4, parse(&frame));
    frame = fixtures.syn;
    frame[14] = 0x44; // IHL 4
    try testing.expectError(error.BadIPHeader, parse(&frame));
    frame = fixtures.syn;
    frame[14 + 6] |= 0x20; // more fragments
    try testing.expectError(error.Fragment, parse(&frame));
    frame = fixtures.syn;
    frame[14 + 9] = 17; // UDP
    try testing.expectError(error.NotTCP, parse(&frame));
    frame = fixtures.syn;
    frame[14 + 20 + 12] = 0xf0; // data offset 60 > segment
    try testing.expectError(error.BadTCPHeader, parse(&frame));
    frame = fixtures.syn;
    frame[14 + 20 + 21] = 5; // MSS with length 5
    try testing.expectError(error.BadOption, parse(&frame));
    frame = fixtures.syn;
    frame[14 + 20 + 21] = 0; // option length 0 would loop forever
    try testing.expectError(error.BadOption, parse(&frame));
    frame = fixtures.syn;
    frame[14 + 20 + 27] = 200; // TS length runs past the header
    try testing.expectError(error.BadOption, parse(&frame));
    frame = fixtures.syn;
    frame[14 + 20 + 26] = 0x42; // unknown kind 0x42 with length 10: skipped
    const p = try parse(&frame);
    try testing.expectEqual(@as(?u16, null), p.options.timestamp_offset);
}

test "random mutations of fixtures parse or fail cleanly" {
    var prng = std.Random.DefaultPrng.init(0xbadc0de);
    const random = prng.random();
    for (0..20000) |_| {
        const fixture = all_fixtures[random.uintLessThan(usize, all_fixtures.len)];
        var copy: [128]u8 = undefined;
        const frame = copy[0..fixture.len];
        @memcpy(frame, fixture);
        for (0..1 + random.uintLessThan(usize, 4)) |_| {
            frame[random.uintLessThan(usize, frame.len)] = random.int(u8);
        }
        const p = parse(frame) catch continue;
        // Whatever parses must describe bytes inside the frame.
        try testing.expect(p.tcp_offset + p.segmentLen() <= frame.len);
        if (p.options.sack_offset) |s| try testing.expect(s + p.options.sack_blocks * 8 <= p.tcp_offset + p.tcp_header_len);
        if (p.options.timestamp_offset) |t| try testing.expect(t + 8 <= p.tcp_offset + p.tcp_header_len);
        translate(frame, p, .{ .seq_delta = 7, .ack_delta = 9, .tsval_delta = 11, .tsecr_delta = 13 });
    }
}

test "setPort rewrites either port and keeps the checksum valid" {
    var frame = fixtures.data;
    const p = try parse(&frame);
    setPort(&frame, p, .source, 40001);
    setPort(&frame, p, .destination, 9000);
    const q = try parse(&frame);
    try testing.expectEqual(@as(u16, 40001), q.source_port);
    try testing.expectEqual(@as(u16, 9000), q.destination_port);
    try testing.expect(checksumsValid(&frame, q));
}
