//! The agent's configuration, as lib/ha/agent sends it: one JSON object
//! (extensible without an ABI change), parsed and checked here once, so the
//! packet loop only ever sees valid addresses.
const std = @import("std");
const assert = std.debug.assert;

/// Most peers of one node: HA/TCP's limit of 8 replicas plus a primary, with room.
pub const peers_max = 15;
/// The replication channel's UDP port when the caller gives none.
pub const control_port_default: u16 = 7447;
/// Heartbeats (1 ms apart by default) missed before a replica takes over.
/// Measured on the 2-core lab VM under full load: heartbeats are sent on
/// time (a real-time thread) but delivery through veth and the bridge waits
/// for ksoftirqd, a normal-priority thread, and gaps of 25–100 ms occurred
/// with a live primary. 50 keeps false takeovers rare there; a quiet host or
/// a dedicated replication link can use far less (`--miss`). A false takeover
/// loses nothing (the old primary is fenced), it only costs a node.
pub const miss_threshold_default: u32 = 50;

pub const Ip4 = [4]u8;
pub const Mac = [6]u8;

pub const XdpMode = enum { native, generic };

pub const Config = struct {
    id: u8,
    vip: Ip4,
    virtual_mac: Mac,
    node_addr: Ip4,
    outer_ifindex: u32,
    inner_ifindex: u32,
    /// MAC of the agent's end of the veth pair (source of frames into the NF).
    inner_mac: Mac,
    /// MAC of the NF's end (destination of frames into the NF).
    nf_mac: Mac,
    peers: [peers_max]Ip4 = undefined,
    peer_count: u8 = 0,
    primary: bool,
    control_port: u16 = control_port_default,
    heartbeat_us: u32 = 1000,
    miss_threshold: u32 = miss_threshold_default,
    xdp_mode: XdpMode = .native,

    pub fn peerSlice(self: *const Config) []const Ip4 {
        return self.peers[0..self.peer_count];
    }
};

/// What the JSON holds, before checking.
const Raw = struct {
    id: u32,
    vip: []const u8,
    virtual_mac: []const u8,
    node_addr: []const u8,
    outer_ifindex: u32,
    inner_ifindex: u32,
    inner_mac: []const u8,
    nf_mac: []const u8,
    peers: []const []const u8,
    primary: bool,
    control_port: u16 = control_port_default,
    heartbeat_us: u32 = 1000,
    miss_threshold: u32 = miss_threshold_default,
    xdp_mode: XdpMode = .native,
};

pub const ParseError = error{InvalidConfig};

/// Parses and checks `json`; `why` receives a one-line reason on failure.
pub fn parse(json: []const u8, why: *[]const u8) ParseError!Config {
    var buffer: [16 * 1024]u8 = undefined;
    var fixed = std.heap.FixedBufferAllocator.init(&buffer);
    const raw = std.json.parseFromSliceLeaky(Raw, fixed.allocator(), json, .{}) catch {
        why.* = "config is not the expected JSON object";
        return error.InvalidConfig;
    };
    if (raw.id == 0 or raw.id > peers_max) return fail(why, "id must be 1..15");
    if (raw.outer_ifindex == 0 or raw.inner_ifindex == 0) return fail(why, "interface index is 0");
    if (raw.outer_ifindex == raw.inner_ifindex) return fail(why, "outer and inner interfaces are the same");
    if (raw.peers.len > peers_max) return fail(why, "too many peers (at most 15)");
    if (raw.heartbeat_us < 100 or raw.heartbeat_us > 1_000_000) return fail(why, "heartbeat_us must be 100..1000000");
    if (raw.miss_threshold < 2 or raw.miss_threshold > 1000) return fail(why, "miss_threshold must be 2..1000");
    if (raw.control_port == 0) return fail(why, "control_port is 0");
    var config: Config = .{
        .id = @intCast(raw.id),
        .vip = ip4(raw.vip) orelse return fail(why, "vip is not an IPv4 address"),
        .virtual_mac = mac(raw.virtual_mac) orelse return fail(why, "virtual_mac is not a MAC address"),
        .node_addr = ip4(raw.node_addr) orelse return fail(why, "node_addr is not an IPv4 address"),
        .outer_ifindex = raw.outer_ifindex,
        .inner_ifindex = raw.inner_ifindex,
        .inner_mac = mac(raw.inner_mac) orelse return fail(why, "inner_mac is not a MAC address"),
        .nf_mac = mac(raw.nf_mac) orelse return fail(why, "nf_mac is not a MAC address"),
        .primary = raw.primary,
        .control_port = raw.control_port,
        .heartbeat_us = raw.heartbeat_us,
        .miss_threshold = raw.miss_threshold,
        .xdp_mode = raw.xdp_mode,
    };
    for (raw.peers) |text| {
        const addr = ip4(text) orelse return fail(why, "a peer is not an IPv4 address");
        if (std.mem.eql(u8, &addr, &config.node_addr)) return fail(why, "a peer is this node's own address");
        config.peers[config.peer_count] = addr;
        config.peer_count += 1;
    }
    return config;
}

fn fail(why: *[]const u8, reason: []const u8) ParseError {
    why.* = reason;
    return error.InvalidConfig;
}

/// Dotted quad to bytes; null when it is not one.
pub fn ip4(text: []const u8) ?Ip4 {
    var out: Ip4 = undefined;
    var parts = std.mem.splitScalar(u8, text, '.');
    var i: usize = 0;
    while (parts.next()) |part| : (i += 1) {
        if (i == 4 or part.len == 0 or part.len > 3) return null;
        out[i] = std.fmt.parseInt(u8, part, 10) catch return null;
    }
    return if (i == 4) out else null;
}

/// aa:bb:cc:dd:ee:ff to bytes; null when it is not one.
pub fn mac(text: []const u8) ?Mac {
    var out: Mac = undefined;
    var parts = std.mem.splitScalar(u8, text, ':');
    var i: usize = 0;
    while (parts.next()) |part| : (i += 1) {
        if (i == 6 or part.len != 2) return null;
        out[i] = std.fmt.parseInt(u8, part, 16) catch return null;
    }
    return if (i == 6) out else null;
}

test "a full config parses; bad fields are named" {
    const good =
        \\{"id":1,"vip":"10.77.0.1","virtual_mac":"02:72:6c:0a:4d:01","node_addr":"10.77.0.11",
        \\ "outer_ifindex":2,"inner_ifindex":5,"inner_mac":"aa:bb:cc:dd:ee:01","nf_mac":"aa:bb:cc:dd:ee:02",
        \\ "peers":["10.77.0.12","10.77.0.13"],"primary":true,"heartbeat_us":500}
    ;
    var why: []const u8 = "";
    const config = try parse(good, &why);
    try std.testing.expectEqual(@as(u8, 1), config.id);
    try std.testing.expectEqualSlices(u8, &.{ 10, 77, 0, 1 }, &config.vip);
    try std.testing.expectEqual(@as(u8, 2), config.peer_count);
    try std.testing.expectEqual(@as(u32, 500), config.heartbeat_us);
    try std.testing.expectEqual(control_port_default, config.control_port);
    const bad = std.mem.replaceOwned(u8, std.testing.allocator, good, "10.77.0.12", "10.77.0.300") catch unreachable;
    defer std.testing.allocator.free(bad);
    try std.testing.expectError(error.InvalidConfig, parse(bad, &why));
    try std.testing.expectEqualStrings("a peer is not an IPv4 address", why);
    try std.testing.expectError(error.InvalidConfig, parse("{}", &why));
}

test "address parsers reject near misses" {
    try std.testing.expect(ip4("1.2.3") == null);
    try std.testing.expect(ip4("1.2.3.4.5") == null);
    try std.testing.expect(ip4("1..3.4") == null);
    try std.testing.expect(mac("aa:bb:cc:dd:ee") == null);
    try std.testing.expect(mac("aa:bb:cc:dd:ee:fg") == null);
    try std.testing.expectEqualSlices(u8, &.{ 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff }, &(mac("aa:bb:cc:dd:ee:ff").?));
    comptime assert(peers_max < 16);
}
