//! Every client byte a node's NF was given on one connection, by stream
//! offset (bytes counted from the client's first data byte, the same on
//! every node). A member that restarted, or otherwise lacks a connection,
//! is caught up from it: the node serving the connection replays the
//! client's SYN and then these bytes to the member's own NF, which — being
//! deterministic — rebuilds the same connection state from the same input
//! (see datapath.zig, "Catch-up"). Unmodified NFs give us no other way to
//! copy their per-connection state: their sockets and their memory are
//! theirs.
//!
//! The log only grows, up to `bytes_max` per connection and the node's
//! shared budget; past either it is dropped whole (`lost`) and the
//! connection can no longer be caught up — it keeps the redundancy it
//! has, and says so in the counters.
const std = @import("std");
const assert = std.debug.assert;

/// Per connection. A connection with more input than this cannot be copied
/// to a rejoining member (its NF would have to replay it all anyway).
pub const bytes_max: u32 = 16 * 1024 * 1024;
/// The first allocation; it then doubles.
const bytes_initial: u32 = 64 * 1024;

/// Bytes the logs of one node may hold together.
pub const Budget = struct {
    limit: u64,
    used: u64 = 0,
};

pub const InputLog = struct {
    bytes: []u8 = &.{},
    /// One past the furthest byte written. Segments may come out of order,
    /// so not every byte below it need be written: the caller knows which
    /// prefix is whole (its NF acknowledged it, and every byte its NF got
    /// went through `write`).
    len: u32 = 0,
    lost: bool = false,

    /// Stores `data` at `offset`, growing the buffer; past the limits the
    /// log is dropped and stays `lost`.
    pub fn write(self: *InputLog, allocator: std.mem.Allocator, budget: *Budget, offset: u32, data: []const u8) void {
        if (self.lost or data.len == 0) return;
        const end = @as(u64, offset) + data.len;
        if (end > bytes_max) return self.lose(allocator, budget);
        if (end > self.bytes.len) {
            var capacity: u64 = @max(self.bytes.len * 2, bytes_initial);
            while (capacity < end) capacity *= 2;
            capacity = @min(capacity, bytes_max);
            const grow = capacity - self.bytes.len;
            if (budget.used + grow > budget.limit) return self.lose(allocator, budget);
            const bigger = allocator.realloc(self.bytes, @intCast(capacity)) catch return self.lose(allocator, budget);
            budget.used += grow;
            self.bytes = bigger;
        }
        @memcpy(self.bytes[offset..][0..data.len], data);
        if (end > self.len) self.len = @intCast(end);
    }

    /// The logged bytes [from, to); the caller keeps `to` within the whole prefix.
    pub fn slice(self: *const InputLog, from: u32, to: u32) []const u8 {
        assert(!self.lost and from <= to and to <= self.len);
        return self.bytes[from..to];
    }

    pub fn deinit(self: *InputLog, allocator: std.mem.Allocator, budget: *Budget) void {
        budget.used -= self.bytes.len;
        allocator.free(self.bytes);
        self.* = .{};
    }

    fn lose(self: *InputLog, allocator: std.mem.Allocator, budget: *Budget) void {
        self.deinit(allocator, budget);
        self.lost = true;
    }
};

test "the log keeps bytes by offset, out of order too, and grows" {
    var budget: Budget = .{ .limit = 1 << 30 };
    var log: InputLog = .{};
    defer log.deinit(std.testing.allocator, &budget);
    log.write(std.testing.allocator, &budget, 5, "world");
    log.write(std.testing.allocator, &budget, 0, "hello");
    try std.testing.expectEqualStrings("helloworld", log.slice(0, 10));
    // Far past the first allocation: it grows, and what was there stays.
    const at: u32 = 3 * bytes_initial + 7;
    log.write(std.testing.allocator, &budget, at, "!");
    try std.testing.expectEqual(at + 1, log.len);
    try std.testing.expectEqualStrings("hello", log.slice(0, 5));
    try std.testing.expectEqual(@as(u64, log.bytes.len), budget.used);
    // A retransmission overwrites with the same bytes.
    log.write(std.testing.allocator, &budget, 2, "llo");
    try std.testing.expectEqualStrings("helloworld", log.slice(0, 10));
}

test "past the per-connection limit or the node's budget the log is lost, and stays so" {
    var budget: Budget = .{ .limit = 2 * bytes_initial };
    var log: InputLog = .{};
    log.write(std.testing.allocator, &budget, 0, "abc");
    try std.testing.expect(!log.lost);
    log.write(std.testing.allocator, &budget, 4 * bytes_initial, "x"); // needs more than the budget
    try std.testing.expect(log.lost);
    try std.testing.expectEqual(@as(u64, 0), budget.used);
    log.write(std.testing.allocator, &budget, 0, "abc");
    try std.testing.expect(log.lost);
    var big: InputLog = .{};
    var roomy: Budget = .{ .limit = 1 << 40 };
    big.write(std.testing.allocator, &roomy, bytes_max - 1, "yz");
    try std.testing.expect(big.lost);
    try std.testing.expectEqual(@as(u64, 0), roomy.used);
}
