//! The pecker trace format, shared by the interposer (which writes it) and
//! lib/pecker/trace_file.ts (which reads it). Little-endian, no padding:
//!
//!   Header  (16 bytes): magic "RLBTRACE", version u32, header_size u32
//!   Event   (32 bytes): kind u16, flags u16, thread u32, arg u64, result i64,
//!                       errno i32, payload_len u32, then payload_len bytes
//!
//! Each event is written with one writev(2) as it happens, so a trace is valid
//! up to its last complete event even when the program is SIGKILLed. The
//! reader treats a torn last event as "recording died", not as corruption.
const std = @import("std");
const builtin = @import("builtin");

comptime {
    // The on-disk format is little-endian and the structs are written raw.
    std.debug.assert(builtin.cpu.arch.endian() == .little);
}

pub const magic: [8]u8 = "RLBTRACE".*;
pub const version: u32 = 1;
/// Largest payload one event may carry (a single read() of more is split).
pub const payload_max: u32 = 16 << 20;
/// Logical threads a trace may hold.
pub const threads_max: u32 = 256;
/// Return addresses a crash record holds at the most.
pub const crash_frames_max: u32 = 64;

pub const Header = extern struct {
    magic: [8]u8,
    version: u32,
    header_size: u32,
};

pub const EventHeader = extern struct {
    kind: u16,
    flags: u16,
    thread: u32,
    /// The call's identifying argument: fd, clock id, name hash, lock epoch, signal.
    arg: u64,
    result: i64,
    errno: i32,
    payload_len: u32,
};

comptime {
    std.debug.assert(@sizeOf(Header) == 16);
    std.debug.assert(@sizeOf(EventHeader) == 32);
    std.debug.assert(@alignOf(EventHeader) == 8);
}

/// Event kinds. Numbers are stable: lib/pecker/trace_file.ts mirrors them.
/// Kinds below `first_call` are metadata, never matched against calls on replay.
pub const Kind = enum(u16) {
    /// arg = pid, result = load base of the main executable, payload = exe path.
    process = 1,
    /// payload = argv, each string NUL-terminated.
    argv = 2,
    /// payload = NAME=VALUE strings, NUL-terminated, secrets redacted.
    environ = 3,
    /// payload = working directory.
    cwd = 4,
    /// arg = signal, result = fault address, payload = u64 return addresses.
    crash = 5,
    /// Written by the supervisor after the program ended: arg = exit code
    /// (or 128 + signal), result = signal or 0.
    exit = 6,
    read = 16,
    recv = 17,
    recvfrom = 18,
    getrandom = 19,
    time = 20,
    gettimeofday = 21,
    clock_gettime = 22,
    getpid = 23,
    getenv = 24,
    open = 25,
    fopen = 26,
    fgets = 27,
    fread = 28,
    fgetc = 29,
    getline = 30,
    accept = 31,
    connect = 32,
    pthread_create = 33,
    mutex_lock = 34,
    _,

    pub const first_call: u16 = 16;

    pub fn isCall(kind: Kind) bool {
        return @backingInt(kind) >= first_call;
    }
};

pub fn headerInit() Header {
    return .{ .magic = magic, .version = version, .header_size = @sizeOf(Header) };
}

pub const DecodeError = error{ BadMagic, BadVersion, Truncated, PayloadTooLarge, BadThread };

/// Checks the file header; returns the offset of the first event.
pub fn decodeHeader(bytes: []const u8) DecodeError!usize {
    if (bytes.len < @sizeOf(Header)) return error.Truncated;
    if (!std.mem.eql(u8, bytes[0..8], &magic)) return error.BadMagic;
    const file_version = std.mem.readInt(u32, bytes[8..12], .little);
    if (file_version != version) return error.BadVersion;
    const header_size = std.mem.readInt(u32, bytes[12..16], .little);
    if (header_size < @sizeOf(Header) or header_size > bytes.len) return error.Truncated;
    return header_size;
}

pub const Event = struct {
    header: EventHeader,
    payload: []const u8,
    /// Offset of the next event.
    next: usize,
};

/// Decodes the event at `offset`. A short tail gives error.Truncated.
pub fn decodeEvent(bytes: []const u8, offset: usize) DecodeError!Event {
    std.debug.assert(offset <= bytes.len);
    if (bytes.len - offset < @sizeOf(EventHeader)) return error.Truncated;
    var header: EventHeader = undefined;
    @memcpy(std.mem.asBytes(&header), bytes[offset..][0..@sizeOf(EventHeader)]);
    if (header.payload_len > payload_max) return error.PayloadTooLarge;
    if (header.thread >= threads_max) return error.BadThread;
    const start = offset + @sizeOf(EventHeader);
    if (bytes.len - start < header.payload_len) return error.Truncated;
    const end = start + header.payload_len;
    return .{ .header = header, .payload = bytes[start..end], .next = end };
}

/// Encodes one event into `out` (tests and tools; the interposer uses writev).
pub fn encodeEvent(out: []u8, header: EventHeader, payload: []const u8) usize {
    std.debug.assert(header.payload_len == payload.len);
    std.debug.assert(payload.len <= payload_max);
    const size = @sizeOf(EventHeader) + payload.len;
    std.debug.assert(out.len >= size);
    @memcpy(out[0..@sizeOf(EventHeader)], std.mem.asBytes(&header));
    @memcpy(out[@sizeOf(EventHeader)..size], payload);
    return size;
}

/// FNV-1a of a name, used to check getenv/open arguments on replay without
/// storing them twice.
pub fn nameHash(name: []const u8) u64 {
    var hash: u64 = 0xcbf29ce484222325;
    for (name) |byte| {
        hash ^= byte;
        hash *%= 0x100000001b3;
    }
    return hash;
}

/// Environment names whose values a trace must not keep.
pub fn isSecretName(name: []const u8) bool {
    const words = [_][]const u8{ "KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "AUTH", "CREDENTIAL" };
    for (words) |word| {
        if (word.len > name.len) continue;
        var index: usize = 0;
        while (index + word.len <= name.len) : (index += 1) {
            if (std.ascii.eqlIgnoreCase(name[index..][0..word.len], word)) return true;
        }
    }
    return false;
}

test "encode then decode round-trips header and payload" {
    var buffer: [256]u8 = undefined;
    const head = headerInit();
    @memcpy(buffer[0..16], std.mem.asBytes(&head));
    const payload = "hello";
    const event: EventHeader = .{
        .kind = @backingInt(Kind.read),
        .flags = 0,
        .thread = 3,
        .arg = 0,
        .result = 5,
        .errno = 0,
        .payload_len = payload.len,
    };
    const size = encodeEvent(buffer[16..], event, payload);
    const bytes = buffer[0 .. 16 + size];
    const first = try decodeHeader(bytes);
    try std.testing.expectEqual(@as(usize, 16), first);
    const decoded = try decodeEvent(bytes, first);
    try std.testing.expectEqual(@as(u16, 16), decoded.header.kind);
    try std.testing.expectEqual(@as(u32, 3), decoded.header.thread);
    try std.testing.expectEqual(@as(i64, 5), decoded.header.result);
    try std.testing.expectEqualStrings("hello", decoded.payload);
    try std.testing.expectEqual(bytes.len, decoded.next);
}

test "decode rejects foreign, future and torn traces" {
    var buffer: [64]u8 = undefined;
    const head = headerInit();
    @memcpy(buffer[0..16], std.mem.asBytes(&head));
    try std.testing.expectError(error.Truncated, decodeHeader(buffer[0..10]));
    var foreign = buffer;
    foreign[0] = 'X';
    try std.testing.expectError(error.BadMagic, decodeHeader(foreign[0..16]));
    var future = buffer;
    future[8] = 2;
    try std.testing.expectError(error.BadVersion, decodeHeader(future[0..16]));
    const event: EventHeader = .{
        .kind = 20,
        .flags = 0,
        .thread = 0,
        .arg = 0,
        .result = 1,
        .errno = 0,
        .payload_len = 4,
    };
    const size = encodeEvent(buffer[16..], event, "abcd");
    try std.testing.expectError(error.Truncated, decodeEvent(buffer[0 .. 16 + size - 1], 16));
    var big = buffer;
    std.mem.writeInt(u32, big[16 + 28 ..][0..4], payload_max + 1, .little);
    try std.testing.expectError(error.PayloadTooLarge, decodeEvent(big[0 .. 16 + size], 16));
}

test "secret names are redacted and others are not" {
    try std.testing.expect(isSecretName("AWS_SECRET_ACCESS_KEY"));
    try std.testing.expect(isSecretName("github_token"));
    try std.testing.expect(!isSecretName("HOME"));
    try std.testing.expect(!isSecretName("PATH"));
    try std.testing.expect(nameHash("a") != nameHash("b"));
}
