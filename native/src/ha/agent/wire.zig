//! The replication channel between agents: UDP datagrams on the nodes'
//! own addresses. No reliability of its own, on purpose: a lost report only
//! delays a release (the next report is cumulative), a lost heartbeat is one
//! of `miss_threshold`, and a lost conn_open is repeated while the replica's
//! reports for that connection say it is still unmapped.
const std = @import("std");
const assert = std.debug.assert;

pub const magic: u16 = 0x5248; // "RH"
pub const version: u8 = 1;
/// Largest datagram we send: stays below any lab or LAN MTU.
pub const datagram_bytes_max = 1400;

pub const Kind = enum(u8) { heartbeat = 1, conn_open = 2, rcv_report = 3, fail_request = 4, handover = 5, migrate_request = 6, output_digest = 7, conn_stale = 8, conn_owner = 9, rcv_hole = 10, conn_missing = 11, catchup_open = 12, catchup_data = 13, out_open = 14, _ };
pub const Role = enum(u8) { replica = 0, primary = 1, failed = 2, fenced = 3, _ };

pub const Header = struct {
    kind: Kind,
    sender: u8,
    role: Role,
    primary: u8,
    count: u8,
    epoch: u32,
};
pub const header_bytes = 12;

/// A connection's identity as every node sees it: the client's address and
/// port and the VIP's port (the VIP itself is the same everywhere).
pub const Key = u64;

pub fn key(client_ip: u32, client_port: u16, vip_port: u16) Key {
    return @as(u64, client_ip) << 32 | @as(u64, client_port) << 16 | vip_port;
}

/// Primary -> replicas: the primary's initial sequence number and TSval for a
/// connection, so replicas translate their NF's sequence space into it.
pub const ConnOpen = struct { conn: Key, isn: u32, tsval: u32, has_ts: bool };
pub const conn_open_bytes = 20;

/// A heartbeat carries the sender's group: bit N set = node N is a member
/// (a primary lists the replicas it holds client bytes for).
pub const group_bytes = 2;
pub const heartbeat_bytes = header_bytes + group_bytes;

/// Bit 0 (no node has id 0) in a replica's heartbeat: "the primary dropped
/// me from its group; I never serve, do not wait for me".
pub const group_dropped: u16 = 1;

pub fn writeGroup(out: []u8, group: u16) void {
    std.mem.writeInt(u16, out[header_bytes..][0..2], group, .big);
}

pub fn readGroup(datagram: []const u8) u16 {
    return std.mem.readInt(u16, datagram[header_bytes..][0..2], .big);
}

/// A planned migration names its target node: `handover` (old primary ->
/// everyone: "I stopped emitting, node T serves from now on") and
/// `migrate_request` (a replica asks the primary to hand over to T).
pub const target_bytes = 1;

pub fn writeTarget(out: []u8, target: u8) void {
    out[header_bytes] = target;
}

/// A handover also carries when the old primary took the command (its
/// monotonic clock): on one host (the lab) the target measures command to
/// serving; across hosts the figure means nothing and is not reported.
pub const handover_bytes = target_bytes + 8;

pub fn writeStarted(out: []u8, started_ns: u64) void {
    std.mem.writeInt(u64, out[header_bytes + target_bytes ..][0..8], started_ns, .big);
}

pub fn readStarted(datagram: []const u8) u64 {
    return std.mem.readInt(u64, datagram[header_bytes + target_bytes ..][0..8], .big);
}

pub fn readTarget(datagram: []const u8) u8 {
    return datagram[header_bytes];
}

/// One connection migrated on its own (`ha migrate --conn`): the node that
/// serves it from now on. Sent by the node that served it, to every peer.
pub const Owner = struct { conn: Key, owner: u8 };
pub const owner_bytes = 9;

pub fn writeOwner(out: []u8, index: usize, item: Owner) void {
    const slot = out[header_bytes + index * owner_bytes ..][0..owner_bytes];
    std.mem.writeInt(u64, slot[0..8], item.conn, .big);
    slot[8] = item.owner;
}

pub fn readOwner(datagram: []const u8, index: usize) Owner {
    const slot = datagram[header_bytes + index * owner_bytes ..][0..owner_bytes];
    return .{ .conn = std.mem.readInt(u64, slot[0..8], .big), .owner = slot[8] };
}

/// Replica -> primary: how far its NF's stack acknowledged the client's bytes.
/// `rcv_hole` has the same items: the NF's ACKs carry SACK blocks, so it holds
/// client bytes past a hole at rcv_nxt (the primary draws a fast retransmit).
/// `conn_missing` has them too (rcv_nxt 0): "I lack this connection" (a
/// member that restarted), answering a conn_open.
pub const Report = struct { conn: Key, rcv_nxt: u32 };
pub const report_bytes = 12;
pub const reports_max = (datagram_bytes_max - header_bytes) / report_bytes;
pub const conn_opens_max = (datagram_bytes_max - header_bytes) / conn_open_bytes;

/// Primary -> replicas: the CRC-32C of its NF's output bytes in the window
/// that ends at `offset` (bytes counted from the NF's first data byte, so the
/// same on every node). See datapath.zig, "Divergence".
pub const Digest = struct { conn: Key, offset: u32, digest: u32 };
pub const digest_bytes = 16;
pub const digests_max = (datagram_bytes_max - header_bytes) / digest_bytes;

/// Replica -> primary: "my NF's output for this connection differed from
/// yours at the checkpoint `offset`; I no longer hold it, do not wait for me".
pub const Stale = struct { conn: Key, offset: u32 };
pub const stale_bytes = 12;
pub const stales_max = (datagram_bytes_max - header_bytes) / stale_bytes;

/// Primary -> replicas: a connection its NF opened (to a backend), keyed by
/// the backend's address and port and the primary NF's own port, with the
/// NF's ISN and TSval, and `order`: how many connections its NF had opened
/// to that backend before. A replica's NF, deterministic, opens the same
/// connection as its `order`-th to that backend, from a port of its own;
/// the agent pairs the two (see datapath.zig, "Outgoing connections").
pub const OutOpen = struct { open: ConnOpen, order: u32 };
pub const out_open_bytes = conn_open_bytes + 4;
pub const out_opens_max = (datagram_bytes_max - header_bytes) / out_open_bytes;

pub fn writeOutOpen(out: []u8, index: usize, item: OutOpen) void {
    var slot: [conn_open_bytes]u8 = undefined;
    var scratch: [header_bytes + conn_open_bytes]u8 = undefined;
    writeConnOpen(&scratch, 0, item.open);
    @memcpy(&slot, scratch[header_bytes..]);
    const at = out[header_bytes + index * out_open_bytes ..][0..out_open_bytes];
    @memcpy(at[0..conn_open_bytes], &slot);
    std.mem.writeInt(u32, at[conn_open_bytes..][0..4], item.order, .big);
}

pub fn readOutOpen(datagram: []const u8, index: usize) OutOpen {
    const at = datagram[header_bytes + index * out_open_bytes ..][0..out_open_bytes];
    var scratch: [header_bytes + conn_open_bytes]u8 = undefined;
    @memcpy(scratch[header_bytes..], at[0..conn_open_bytes]);
    return .{ .open = readConnOpen(&scratch, 0), .order = std.mem.readInt(u32, at[conn_open_bytes..][0..4], .big) };
}

/// The node serving a connection -> a member that lacks it: the client's SYN
/// as it arrived (`count` is its length) and the serving space's ISN and
/// TSval, so the member's NF opens the same connection (see datapath.zig,
/// "Catch-up").
pub const CatchupOpen = struct { conn: Key, isn: u32, tsval: u32, has_ts: bool, syn: []const u8 };
pub const catchup_open_bytes = 17;
pub const syn_bytes_max = 128;

/// Then the client's bytes from `offset` (stream offset, from its first data
/// byte), with `out_acked`: how much of the NF's output the client has
/// acknowledged (an output stream offset), which the member's NF may have
/// acknowledged too. An empty one says "caught up: you are a member".
pub const CatchupData = struct { conn: Key, offset: u32, out_acked: u32, data: []const u8 };
pub const catchup_data_bytes = 18;
pub const catchup_payload_max = datagram_bytes_max - header_bytes - catchup_data_bytes;

pub fn writeCatchupOpen(out: []u8, item: CatchupOpen) usize {
    assert(item.syn.len <= syn_bytes_max);
    const slot = out[header_bytes..][0 .. catchup_open_bytes + item.syn.len];
    std.mem.writeInt(u64, slot[0..8], item.conn, .big);
    std.mem.writeInt(u32, slot[8..12], item.isn, .big);
    std.mem.writeInt(u32, slot[12..16], item.tsval, .big);
    slot[16] = @intFromBool(item.has_ts);
    @memcpy(slot[catchup_open_bytes..], item.syn);
    return header_bytes + slot.len;
}

/// The header's count is the SYN's length (readHeader checked it is there).
pub fn readCatchupOpen(datagram: []const u8, syn_len: u8) CatchupOpen {
    const slot = datagram[header_bytes..][0 .. catchup_open_bytes + @as(usize, syn_len)];
    return .{
        .conn = std.mem.readInt(u64, slot[0..8], .big),
        .isn = std.mem.readInt(u32, slot[8..12], .big),
        .tsval = std.mem.readInt(u32, slot[12..16], .big),
        .has_ts = slot[16] != 0,
        .syn = slot[catchup_open_bytes..],
    };
}

pub fn writeCatchupData(out: []u8, item: CatchupData) usize {
    assert(item.data.len <= catchup_payload_max);
    const slot = out[header_bytes..][0 .. catchup_data_bytes + item.data.len];
    std.mem.writeInt(u64, slot[0..8], item.conn, .big);
    std.mem.writeInt(u32, slot[8..12], item.offset, .big);
    std.mem.writeInt(u32, slot[12..16], item.out_acked, .big);
    std.mem.writeInt(u16, slot[16..18], @intCast(item.data.len), .big);
    @memcpy(slot[catchup_data_bytes..], item.data);
    return header_bytes + slot.len;
}

pub fn readCatchupData(datagram: []const u8) DecodeError!CatchupData {
    const fixed = datagram[header_bytes..][0..catchup_data_bytes];
    const len = std.mem.readInt(u16, fixed[16..18], .big);
    if (datagram.len < header_bytes + catchup_data_bytes + @as(usize, len)) return error.TooShort;
    return .{
        .conn = std.mem.readInt(u64, fixed[0..8], .big),
        .offset = std.mem.readInt(u32, fixed[8..12], .big),
        .out_acked = std.mem.readInt(u32, fixed[12..16], .big),
        .data = datagram[header_bytes + catchup_data_bytes ..][0..len],
    };
}

pub fn writeHeader(out: []u8, header: Header) void {
    assert(out.len >= header_bytes);
    std.mem.writeInt(u16, out[0..2], magic, .big);
    out[2] = version;
    out[3] = @backingInt(header.kind);
    out[4] = header.sender;
    out[5] = @backingInt(header.role);
    out[6] = header.primary;
    out[7] = header.count;
    std.mem.writeInt(u32, out[8..12], header.epoch, .big);
}

pub const DecodeError = error{ TooShort, NotOurs, UnknownKind };

pub fn readHeader(datagram: []const u8) DecodeError!Header {
    if (datagram.len < header_bytes) return error.TooShort;
    if (std.mem.readInt(u16, datagram[0..2], .big) != magic or datagram[2] != version) return error.NotOurs;
    const header = Header{
        .kind = @fromBackingInt(datagram[3]),
        .sender = datagram[4],
        .role = @fromBackingInt(datagram[5]),
        .primary = datagram[6],
        .count = datagram[7],
        .epoch = std.mem.readInt(u32, datagram[8..12], .big),
    };
    const body: usize = switch (header.kind) {
        .heartbeat => group_bytes,
        .fail_request => 0,
        .handover => handover_bytes,
        .migrate_request => target_bytes,
        .conn_open => @as(usize, header.count) * conn_open_bytes,
        .rcv_report, .rcv_hole, .conn_missing => @as(usize, header.count) * report_bytes,
        .catchup_open => catchup_open_bytes + @as(usize, header.count),
        .catchup_data => catchup_data_bytes,
        .out_open => @as(usize, header.count) * out_open_bytes,
        .output_digest => @as(usize, header.count) * digest_bytes,
        .conn_stale => @as(usize, header.count) * stale_bytes,
        .conn_owner => @as(usize, header.count) * owner_bytes,
        _ => return error.UnknownKind,
    };
    if (datagram.len < header_bytes + body) return error.TooShort;
    return header;
}

pub fn writeConnOpen(out: []u8, index: usize, item: ConnOpen) void {
    const at = header_bytes + index * conn_open_bytes;
    const slot = out[at..][0..conn_open_bytes];
    std.mem.writeInt(u64, slot[0..8], item.conn, .big);
    std.mem.writeInt(u32, slot[8..12], item.isn, .big);
    std.mem.writeInt(u32, slot[12..16], item.tsval, .big);
    slot[16] = @intFromBool(item.has_ts);
    @memset(slot[17..20], 0);
}

pub fn readConnOpen(datagram: []const u8, index: usize) ConnOpen {
    const slot = datagram[header_bytes + index * conn_open_bytes ..][0..conn_open_bytes];
    return .{
        .conn = std.mem.readInt(u64, slot[0..8], .big),
        .isn = std.mem.readInt(u32, slot[8..12], .big),
        .tsval = std.mem.readInt(u32, slot[12..16], .big),
        .has_ts = slot[16] != 0,
    };
}

pub fn writeReport(out: []u8, index: usize, item: Report) void {
    const slot = out[header_bytes + index * report_bytes ..][0..report_bytes];
    std.mem.writeInt(u64, slot[0..8], item.conn, .big);
    std.mem.writeInt(u32, slot[8..12], item.rcv_nxt, .big);
}

pub fn readReport(datagram: []const u8, index: usize) Report {
    const slot = datagram[header_bytes + index * report_bytes ..][0..report_bytes];
    return .{ .conn = std.mem.readInt(u64, slot[0..8], .big), .rcv_nxt = std.mem.readInt(u32, slot[8..12], .big) };
}

pub fn writeDigest(out: []u8, index: usize, item: Digest) void {
    const slot = out[header_bytes + index * digest_bytes ..][0..digest_bytes];
    std.mem.writeInt(u64, slot[0..8], item.conn, .big);
    std.mem.writeInt(u32, slot[8..12], item.offset, .big);
    std.mem.writeInt(u32, slot[12..16], item.digest, .big);
}

pub fn readDigest(datagram: []const u8, index: usize) Digest {
    const slot = datagram[header_bytes + index * digest_bytes ..][0..digest_bytes];
    return .{
        .conn = std.mem.readInt(u64, slot[0..8], .big),
        .offset = std.mem.readInt(u32, slot[8..12], .big),
        .digest = std.mem.readInt(u32, slot[12..16], .big),
    };
}

pub fn writeStale(out: []u8, index: usize, item: Stale) void {
    const slot = out[header_bytes + index * stale_bytes ..][0..stale_bytes];
    std.mem.writeInt(u64, slot[0..8], item.conn, .big);
    std.mem.writeInt(u32, slot[8..12], item.offset, .big);
}

pub fn readStale(datagram: []const u8, index: usize) Stale {
    const slot = datagram[header_bytes + index * stale_bytes ..][0..stale_bytes];
    return .{ .conn = std.mem.readInt(u64, slot[0..8], .big), .offset = std.mem.readInt(u32, slot[8..12], .big) };
}

test "out_open round-trips and is length-checked" {
    var buf: [datagram_bytes_max]u8 = undefined;
    const k = key(0x0a4d0002, 9000, 40123);
    writeHeader(&buf, .{ .kind = .out_open, .sender = 1, .role = .primary, .primary = 1, .count = 2, .epoch = 17 });
    writeOutOpen(&buf, 0, .{ .open = .{ .conn = k, .isn = 5, .tsval = 6, .has_ts = true }, .order = 3 });
    writeOutOpen(&buf, 1, .{ .open = .{ .conn = k + 1, .isn = 7, .tsval = 8, .has_ts = false }, .order = 4 });
    _ = try readHeader(buf[0 .. header_bytes + 2 * out_open_bytes]);
    try std.testing.expectError(error.TooShort, readHeader(buf[0 .. header_bytes + 2 * out_open_bytes - 1]));
    const second = readOutOpen(&buf, 1);
    try std.testing.expectEqual(k + 1, second.open.conn);
    try std.testing.expectEqual(@as(u32, 4), second.order);
    try std.testing.expect(!second.open.has_ts);
    try std.testing.expectEqual(@as(u32, 3), readOutOpen(&buf, 0).order);
}

test "catch-up messages round-trip and are length-checked" {
    var buf: [datagram_bytes_max]u8 = undefined;
    const k = key(0x0a4e0001, 39714, 7000);
    const syn = [_]u8{ 1, 2, 3, 4, 5, 6, 7 };
    writeHeader(&buf, .{ .kind = .catchup_open, .sender = 1, .role = .primary, .primary = 1, .count = syn.len, .epoch = 17 });
    const open_len = writeCatchupOpen(&buf, .{ .conn = k, .isn = 7, .tsval = 9, .has_ts = true, .syn = &syn });
    const h = try readHeader(buf[0..open_len]);
    const open = readCatchupOpen(&buf, h.count);
    try std.testing.expectEqual(k, open.conn);
    try std.testing.expectEqual(@as(u32, 9), open.tsval);
    try std.testing.expectEqualSlices(u8, &syn, open.syn);
    try std.testing.expectError(error.TooShort, readHeader(buf[0 .. open_len - 1]));
    writeHeader(&buf, .{ .kind = .catchup_data, .sender = 1, .role = .primary, .primary = 1, .count = 0, .epoch = 17 });
    var payload: [catchup_payload_max]u8 = undefined;
    for (&payload, 0..) |*b, i| b.* = @truncate(i);
    const data_len = writeCatchupData(&buf, .{ .conn = k, .offset = 1 << 20, .out_acked = 5, .data = &payload });
    try std.testing.expectEqual(@as(usize, datagram_bytes_max), data_len);
    _ = try readHeader(buf[0..data_len]);
    const data = try readCatchupData(buf[0..data_len]);
    try std.testing.expectEqual(@as(u32, 1 << 20), data.offset);
    try std.testing.expectEqualSlices(u8, &payload, data.data);
    try std.testing.expectError(error.TooShort, readCatchupData(buf[0 .. data_len - 1]));
}

test "output digests and stale notices round-trip and are length-checked" {
    var buf: [datagram_bytes_max]u8 = undefined;
    const k = key(0x0a4e0001, 39714, 7000);
    writeHeader(&buf, .{ .kind = .output_digest, .sender = 1, .role = .primary, .primary = 1, .count = 2, .epoch = 17 });
    writeDigest(&buf, 0, .{ .conn = k, .offset = 65536, .digest = 0xdeadbeef });
    writeDigest(&buf, 1, .{ .conn = k + 1, .offset = 0, .digest = 7 });
    const header = try readHeader(buf[0 .. header_bytes + 2 * digest_bytes]);
    try std.testing.expectEqual(Kind.output_digest, header.kind);
    try std.testing.expectEqual(@as(u32, 0xdeadbeef), readDigest(&buf, 0).digest);
    try std.testing.expectEqual(@as(u32, 65536), readDigest(&buf, 0).offset);
    try std.testing.expectEqual(k + 1, readDigest(&buf, 1).conn);
    try std.testing.expectError(error.TooShort, readHeader(buf[0 .. header_bytes + digest_bytes]));
    writeHeader(&buf, .{ .kind = .conn_stale, .sender = 2, .role = .replica, .primary = 1, .count = 1, .epoch = 17 });
    writeStale(&buf, 0, .{ .conn = k, .offset = 131072 });
    try std.testing.expectEqual(Kind.conn_stale, (try readHeader(buf[0 .. header_bytes + stale_bytes])).kind);
    try std.testing.expectEqual(Stale{ .conn = k, .offset = 131072 }, readStale(&buf, 0));
    try std.testing.expectError(error.TooShort, readHeader(buf[0 .. header_bytes + stale_bytes - 1]));
    // A full batch fits a datagram, and the count fits the header's byte.
    try std.testing.expect(header_bytes + digests_max * digest_bytes <= datagram_bytes_max);
    try std.testing.expect(digests_max <= 255 and stales_max <= 255);
}

test "messages round-trip; short, foreign and unknown datagrams are refused" {
    var buf: [datagram_bytes_max]u8 = undefined;
    writeHeader(&buf, .{ .kind = .rcv_report, .sender = 2, .role = .replica, .primary = 1, .count = 2, .epoch = 33 });
    const k = key(0x0a4d0002, 40000, 7000);
    writeReport(&buf, 0, .{ .conn = k, .rcv_nxt = 0xfffffff0 });
    writeReport(&buf, 1, .{ .conn = k + 1, .rcv_nxt = 5 });
    const header = try readHeader(buf[0 .. header_bytes + 2 * report_bytes]);
    try std.testing.expectEqual(Kind.rcv_report, header.kind);
    try std.testing.expectEqual(@as(u32, 33), header.epoch);
    try std.testing.expectEqual(@as(u32, 0xfffffff0), readReport(&buf, 0).rcv_nxt);
    try std.testing.expectEqual(k + 1, readReport(&buf, 1).conn);
    try std.testing.expectError(error.TooShort, readHeader(buf[0 .. header_bytes + report_bytes]));
    writeHeader(&buf, .{ .kind = .conn_open, .sender = 1, .role = .primary, .primary = 1, .count = 1, .epoch = 17 });
    writeConnOpen(&buf, 0, .{ .conn = k, .isn = 12345, .tsval = 999, .has_ts = true });
    const open = readConnOpen(&buf, 0);
    try std.testing.expectEqual(@as(u32, 12345), open.isn);
    try std.testing.expect(open.has_ts);
    buf[0] = 'X';
    try std.testing.expectError(error.NotOurs, readHeader(&buf));
    writeHeader(&buf, .{ .kind = @fromBackingInt(99), .sender = 1, .role = .primary, .primary = 1, .count = 0, .epoch = 1 });
    try std.testing.expectError(error.UnknownKind, readHeader(&buf));
    try std.testing.expect(reports_max >= 100);
    writeHeader(&buf, .{ .kind = .handover, .sender = 1, .role = .replica, .primary = 3, .count = 0, .epoch = 17 });
    writeTarget(&buf, 3);
    writeStarted(&buf, 123456789);
    try std.testing.expectEqual(Kind.handover, (try readHeader(buf[0 .. header_bytes + handover_bytes])).kind);
    try std.testing.expectEqual(@as(u64, 123456789), readStarted(&buf));
    try std.testing.expectError(error.TooShort, readHeader(buf[0 .. header_bytes + target_bytes]));
    try std.testing.expectEqual(@as(u8, 3), readTarget(&buf));
    try std.testing.expectError(error.TooShort, readHeader(buf[0..header_bytes]));
    writeHeader(&buf, .{ .kind = .conn_owner, .sender = 1, .role = .primary, .primary = 1, .count = 1, .epoch = 17 });
    writeOwner(&buf, 0, .{ .conn = k, .owner = 3 });
    _ = try readHeader(buf[0 .. header_bytes + owner_bytes]);
    try std.testing.expectEqual(Owner{ .conn = k, .owner = 3 }, readOwner(&buf, 0));
}
