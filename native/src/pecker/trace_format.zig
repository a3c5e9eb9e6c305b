//! The pecker trace format, shared by the interposer (which writes it) and
//! lib/pecker/trace_file.ts (which reads it). Little-endian, 8-byte aligned:
//!
//!   Header (16 bytes): magic "RLBTRACE", version u32, header_size u32
//!   Event:  word u64 (the commit word: kind u8, flags u8, thread u16,
//!           payload_len u32), then arg u64 if flags.arg, result i64 if
//!           flags.result, errno i32 + 4 zero bytes if flags.errno, then the
//!           payload, zero-padded to a multiple of 8 bytes.
//!
//! Fields that are zero are left out (a mutex acquisition is 16 bytes, a
//! 16-byte read 40). The recorder writes into a MAP_SHARED mapping of the
//! file: it reserves an event's bytes with an atomic add, writes the body,
//! then stores the commit word with release order. So the file is a run of
//! committed events followed by zeros (the part of the last chunk not used
//! yet, or an event that was reserved but never committed because the
//! program was killed). Readers stop at the first zero word; the page cache
//! keeps a MAP_SHARED file's pages when the process dies, so a trace is valid
//! up to its last committed event even after SIGKILL.
const std = @import("std");
const builtin = @import("builtin");

comptime {
    // The on-disk format is little-endian and words are stored raw.
    std.debug.assert(builtin.cpu.arch.endian() == .little);
}

pub const magic: [8]u8 = "RLBTRACE".*;
pub const version: u32 = 2;
pub const header_size: u32 = 16;
/// Largest payload one event may carry (a single read() of more is cut, flags.truncated).
pub const payload_max: u32 = 16 << 20;
/// Logical threads a trace may hold.
pub const threads_max: u32 = 256;
/// Return addresses a crash record holds at the most.
pub const crash_frames_max: u32 = 64;
/// Bytes of an event without its payload, at the most.
pub const event_fixed_bytes_max: u32 = 32;
/// Bytes of one event at the most.
pub const event_bytes_max: u32 = event_fixed_bytes_max + payload_max;

pub const Header = extern struct {
    magic: [8]u8,
    version: u32,
    header_size: u32,
};

pub const Flags = packed struct(u8) {
    arg: bool = false,
    result: bool = false,
    errno: bool = false,
    /// The payload was cut to payload_max.
    truncated: bool = false,
    reserved: u4 = 0,
};

/// The first word of an event. Zero means "not committed": kind is never 0.
pub const Word = packed struct(u64) {
    kind: u8,
    flags: Flags,
    thread: u16,
    payload_len: u32,
};

comptime {
    std.debug.assert(@sizeOf(Header) == header_size);
    std.debug.assert(header_size % 8 == 0);
    std.debug.assert(@sizeOf(Word) == 8);
    std.debug.assert(threads_max <= std.math.maxInt(u16));
}

/// Event kinds. Numbers are stable: lib/pecker/trace_file.ts mirrors them.
/// Kinds below `first_call` are metadata, never matched against calls on replay.
pub const Kind = enum(u8) {
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
    /// result = the new thread's logical id, errno = pthread_create's result.
    pthread_create = 33,
    /// arg = the mutex's acquisition epoch (1, 2, ...; 0 = untracked).
    mutex_lock = 34,
    /// arg = epoch when acquired, result = 0 or EBUSY.
    mutex_trylock = 35,
    /// pthread_cond_wait and _timedwait: arg = the mutex's epoch when the
    /// wait returned with it, result = 0 or ETIMEDOUT.
    cond_wait = 36,
    /// arg = the condition's epoch.
    cond_signal = 37,
    cond_broadcast = 38,
    /// arg = the rwlock's acquisition epoch (readers and writers share it).
    rwlock_rdlock = 39,
    rwlock_wrlock = 40,
    /// arg = epoch when acquired, result = 0 or EBUSY.
    rwlock_tryrdlock = 41,
    rwlock_trywrlock = 42,
    /// poll and ppoll: arg = nfds, payload = the pollfd array as returned.
    poll = 43,
    /// arg = nfds | (sets present: 1 read, 2 write, 4 except) << 32,
    /// payload = the present fd_sets as returned, then the timeout (16 bytes).
    select = 44,
    /// epoll_wait and epoll_pwait: arg = epoll fd, payload = the events.
    epoll_wait = 45,
    /// arg = domain << 32 | type, result = the descriptor.
    socket = 46,
    /// arg = fd (not redone on replay: the port may be taken by then).
    bind = 47,
    listen = 48,
    /// send, sendto, sendmsg and write to a socket: arg = fd, payload = an
    /// FNV-1a hash of the bytes sent (8 bytes), checked on replay.
    send = 49,
    /// arg = fd, payload = the bytes received (all iovecs, in order).
    recvmsg = 50,
    _,

    pub const first_call: u8 = 16;

    pub fn isCall(kind: Kind) bool {
        return @backingInt(kind) >= first_call;
    }
};

/// One event, decoded. Fields left out of the encoding are zero.
pub const Event = struct {
    kind: u8,
    flags: Flags = .{},
    thread: u32,
    /// The call's identifying argument: fd, clock id, name hash, lock epoch, signal.
    arg: u64 = 0,
    result: i64 = 0,
    errno: i32 = 0,
    payload: []const u8 = &.{},
    /// Offset of the next event (decode only).
    next: usize = 0,
};

pub fn headerInit() Header {
    return .{ .magic = magic, .version = version, .header_size = header_size };
}

pub fn padded(length: usize) usize {
    return std.mem.alignForward(usize, length, 8);
}

/// The flags an event gets: a field is stored only when it is not zero.
pub fn flagsOf(event: Event, truncated: bool) Flags {
    return .{
        .arg = event.arg != 0,
        .result = event.result != 0,
        .errno = event.errno != 0,
        .truncated = truncated,
    };
}

/// Encoded size of an event with these flags and payload length.
pub fn eventSize(flags: Flags, payload_len: usize) usize {
    std.debug.assert(payload_len <= payload_max);
    const fixed = 8 + 8 * (@as(usize, @intFromBool(flags.arg)) +
        @intFromBool(flags.result) + @intFromBool(flags.errno));
    std.debug.assert(fixed <= event_fixed_bytes_max);
    return fixed + padded(payload_len);
}

/// Writes everything but the commit word into `out` (exactly eventSize
/// bytes, zero-filled before) and returns the word. The recorder stores the
/// word last, with release order, so that a reader never sees half an event.
pub fn encodeBody(out: []u8, event: Event, flags: Flags) u64 {
    std.debug.assert(event.kind != 0);
    std.debug.assert(event.thread < threads_max);
    std.debug.assert(out.len == eventSize(flags, event.payload.len));
    std.debug.assert(out.len % 8 == 0);
    var at: usize = 8;
    if (flags.arg) {
        std.mem.writeInt(u64, out[at..][0..8], event.arg, .little);
        at += 8;
    }
    if (flags.result) {
        std.mem.writeInt(i64, out[at..][0..8], event.result, .little);
        at += 8;
    }
    if (flags.errno) {
        std.mem.writeInt(i32, out[at..][0..4], event.errno, .little);
        at += 8;
    }
    @memcpy(out[at..][0..event.payload.len], event.payload);
    std.debug.assert(at + padded(event.payload.len) == out.len);
    const word: Word = .{
        .kind = event.kind,
        .flags = flags,
        .thread = @intCast(event.thread),
        .payload_len = @intCast(event.payload.len),
    };
    return @bitCast(word);
}

/// Encodes one event into `out` (tests and tools), returning its size.
pub fn encodeEvent(out: []u8, event: Event) usize {
    const flags = flagsOf(event, false);
    const size = eventSize(flags, event.payload.len);
    std.debug.assert(out.len >= size);
    @memset(out[0..size], 0);
    const word = encodeBody(out[0..size], event, flags);
    std.mem.writeInt(u64, out[0..8], word, .little);
    return size;
}

pub const DecodeError = error{
    BadMagic,
    BadVersion,
    Truncated,
    /// The word at this offset is zero: the end of the committed events.
    Uncommitted,
    PayloadTooLarge,
    BadThread,
    BadFlags,
};

/// Checks the file header; returns the offset of the first event.
pub fn decodeHeader(bytes: []const u8) DecodeError!usize {
    if (bytes.len < @sizeOf(Header)) return error.Truncated;
    if (!std.mem.eql(u8, bytes[0..8], &magic)) return error.BadMagic;
    const file_version = std.mem.readInt(u32, bytes[8..12], .little);
    if (file_version != version) return error.BadVersion;
    const size = std.mem.readInt(u32, bytes[12..16], .little);
    if (size < @sizeOf(Header) or size > bytes.len or size % 8 != 0) return error.Truncated;
    return size;
}

/// Decodes the event at `offset`. A zero word (or fewer than 8 bytes left)
/// is error.Uncommitted; an event cut by the end of `bytes` is error.Truncated.
pub fn decodeEvent(bytes: []const u8, offset: usize) DecodeError!Event {
    std.debug.assert(offset <= bytes.len);
    std.debug.assert(offset % 8 == 0);
    if (bytes.len - offset < 8) return error.Uncommitted;
    const raw = std.mem.readInt(u64, bytes[offset..][0..8], .little);
    if (raw == 0) return error.Uncommitted;
    const word: Word = @bitCast(raw);
    if (word.kind == 0 or word.flags.reserved != 0) return error.BadFlags;
    if (word.payload_len > payload_max) return error.PayloadTooLarge;
    if (word.thread >= threads_max) return error.BadThread;
    const size = eventSize(word.flags, word.payload_len);
    if (bytes.len - offset < size) return error.Truncated;
    var event: Event = .{ .kind = word.kind, .flags = word.flags, .thread = word.thread };
    var at = offset + 8;
    if (word.flags.arg) {
        event.arg = std.mem.readInt(u64, bytes[at..][0..8], .little);
        at += 8;
    }
    if (word.flags.result) {
        event.result = std.mem.readInt(i64, bytes[at..][0..8], .little);
        at += 8;
    }
    if (word.flags.errno) {
        event.errno = std.mem.readInt(i32, bytes[at..][0..4], .little);
        at += 8;
    }
    event.payload = bytes[at..][0..word.payload_len];
    event.next = offset + size;
    return event;
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

test "encode then decode round-trips fields and payload" {
    var buffer: [256]u8 = undefined;
    const head = headerInit();
    @memcpy(buffer[0..16], std.mem.asBytes(&head));
    const size = encodeEvent(buffer[16..], .{
        .kind = @backingInt(Kind.read),
        .thread = 3,
        .result = 5,
        .payload = "hello",
    });
    // word + result + "hello" padded to 8: arg and errno are zero, left out.
    try std.testing.expectEqual(@as(usize, 24), size);
    const bytes = buffer[0 .. 16 + size];
    const first = try decodeHeader(bytes);
    try std.testing.expectEqual(@as(usize, 16), first);
    const decoded = try decodeEvent(bytes, first);
    try std.testing.expectEqual(@as(u8, 16), decoded.kind);
    try std.testing.expectEqual(@as(u32, 3), decoded.thread);
    try std.testing.expectEqual(@as(u64, 0), decoded.arg);
    try std.testing.expectEqual(@as(i64, 5), decoded.result);
    try std.testing.expectEqual(@as(i32, 0), decoded.errno);
    try std.testing.expectEqualStrings("hello", decoded.payload);
    try std.testing.expectEqual(bytes.len, decoded.next);
    const full = encodeEvent(buffer[16..], .{ .kind = 34, .thread = 1, .arg = 7, .result = -1, .errno = 11 });
    try std.testing.expectEqual(@as(usize, 32), full);
    const again = try decodeEvent(buffer[0 .. 16 + full], 16);
    try std.testing.expectEqual(@as(u64, 7), again.arg);
    try std.testing.expectEqual(@as(i64, -1), again.result);
    try std.testing.expectEqual(@as(i32, 11), again.errno);
}

test "decode rejects foreign, future and torn traces and stops at zeros" {
    var buffer: [96]u8 = @splat(0);
    const head = headerInit();
    @memcpy(buffer[0..16], std.mem.asBytes(&head));
    try std.testing.expectError(error.Truncated, decodeHeader(buffer[0..10]));
    var foreign = buffer;
    foreign[0] = 'X';
    try std.testing.expectError(error.BadMagic, decodeHeader(foreign[0..16]));
    var future = buffer;
    future[8] = 9;
    try std.testing.expectError(error.BadVersion, decodeHeader(future[0..16]));
    const size = encodeEvent(buffer[16..], .{ .kind = 20, .thread = 0, .result = 1, .payload = "abcd" });
    try std.testing.expectError(error.Truncated, decodeEvent(buffer[0 .. 16 + size - 1], 16));
    // The zero tail after the last committed event is the end, not an error of its own.
    const event = try decodeEvent(&buffer, 16);
    try std.testing.expectError(error.Uncommitted, decodeEvent(&buffer, event.next));
    try std.testing.expectError(error.Uncommitted, decodeEvent(buffer[0 .. event.next + 4], event.next));
    var big = buffer;
    std.mem.writeInt(u32, big[16 + 4 ..][0..4], payload_max + 1, .little);
    try std.testing.expectError(error.PayloadTooLarge, decodeEvent(&big, 16));
    var bad_thread = buffer;
    std.mem.writeInt(u16, bad_thread[16 + 2 ..][0..2], threads_max, .little);
    try std.testing.expectError(error.BadThread, decodeEvent(&bad_thread, 16));
    var bad_flags = buffer;
    bad_flags[16 + 1] = 0x80;
    try std.testing.expectError(error.BadFlags, decodeEvent(&bad_flags, 16));
}

test "secret names are redacted and others are not" {
    try std.testing.expect(isSecretName("AWS_SECRET_ACCESS_KEY"));
    try std.testing.expect(isSecretName("github_token"));
    try std.testing.expect(!isSecretName("HOME"));
    try std.testing.expect(!isSecretName("PATH"));
    try std.testing.expect(nameHash("a") != nameHash("b"));
}
