//! Network hooks of libreliab_interpose.so: what a program learns from its
//! peers and from readiness calls, so that a replay needs no peer at all.
//!
//! Record keeps the results of socket, bind, listen, accept, connect, send,
//! poll, select and epoll_wait (with the ready sets and events they return)
//! and the bytes of recvmsg (read, recv and recvfrom are in interpose.zig).
//! Replay creates real but unconnected sockets with the recorded numbers
//! (so setsockopt, fcntl and epoll_ctl still work on them), never binds,
//! listens, connects or sends, and feeds back every recorded result. What a
//! program sends is checked against a hash of what it sent when recorded.
//!
//! These calls go through `enterProgramCall`: no sanitizer runtime makes
//! them for itself.
const std = @import("std");
const linux = std.os.linux;
const format = @import("trace_format.zig");
const core = @import("interpose.zig");

const Kind = format.Kind;
const enter = core.enterProgramCall;
const leave = core.leave;
const emit = core.emit;
const expect = core.expect;
const finish = core.finish;
const real = core.real;
const errnoGet = core.errnoGet;
const errnoChange = core.errnoChange;
const fdArg = core.fdArg;
const sliceOf = core.sliceOf;

/// Descriptors below this are tracked as sockets (a bit each).
const socket_fds_max: u32 = 1 << 16;
/// select() takes at most FD_SETSIZE descriptors.
const select_fds_max: c_int = 1024;
const pollfd_bytes: usize = 8;
/// struct epoll_event is packed on x86_64: u32 events, u64 data.
const epoll_event_bytes: usize = 12;
const timeval_bytes: usize = 16;

comptime {
    std.debug.assert(@import("builtin").cpu.arch == .x86_64);
}

// ---------------------------------------------------------------- socket set

/// Descriptors that are sockets of this program (from socket and accept),
/// so that write() on them is a send and close() forgets them.
var socket_fds: [socket_fds_max / 64]std.atomic.Value(u64) = @splat(.init(0));

fn markSocket(fd: i64, on: bool) void {
    if (fd < 0 or fd >= socket_fds_max) return;
    const index: usize = @intCast(fd);
    const bit = @as(u64, 1) << @intCast(index % 64);
    if (on) _ = socket_fds[index / 64].fetchOr(bit, .acq_rel) else _ = socket_fds[index / 64].fetchAnd(~bit, .acq_rel);
}

fn isSocket(fd: c_int) bool {
    if (fd < 0 or fd >= socket_fds_max) return false;
    const index: usize = @intCast(fd);
    return socket_fds[index / 64].load(.acquire) & (@as(u64, 1) << @intCast(index % 64)) != 0;
}

/// Replay: a real, unconnected socket numbered `wanted` (the recorded
/// descriptor), for a socket or an accepted connection whose peer is gone.
fn placeholderSocket(wanted: i64, domain: u32, socket_type: u32) void {
    if (wanted < 0) return;
    const target: i32 = @intCast(wanted);
    const rc = linux.socket(domain, socket_type | linux.SOCK.CLOEXEC, 0);
    if (linux.errno(rc) != .SUCCESS) {
        core.placeholderDescriptor(wanted);
    } else {
        const fd: i32 = @intCast(rc);
        if (fd != target) {
            _ = linux.dup2(fd, target);
            core.rawClose(fd);
        }
    }
    markSocket(wanted, true);
}

// ---------------------------------------------------------------- sockets

const SocketFn = *const fn (c_int, c_int, c_int) callconv(.c) c_int;
export fn socket(domain: c_int, socket_type: c_int, protocol: c_int) c_int {
    const now = enter();
    defer leave(now);
    const arg = (@as(u64, @as(u32, @bitCast(domain))) << 32) | @as(u32, @bitCast(socket_type));
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(SocketFn, "socket")(domain, socket_type, protocol);
            emit(.socket, arg, result, errnoChange(before, errnoGet()), &.{});
            markSocket(result, true);
            return result;
        },
        .replay => {
            const event = expect(.socket, arg, true);
            const without_flags = @as(u32, @bitCast(socket_type)) & ~@as(u32, linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC);
            placeholderSocket(event.result, @bitCast(domain), without_flags);
            return @intCast(finish(event));
        },
        else => return real(SocketFn, "socket")(domain, socket_type, protocol),
    }
}

const AddressFn = *const fn (c_int, ?*const anyopaque, u32) callconv(.c) c_int;

/// bind and connect: recorded results, never redone on replay.
fn addressCall(comptime kind: Kind, comptime name: [:0]const u8, fd: c_int, address: ?*const anyopaque, length: u32) c_int {
    const now = enter();
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(AddressFn, name)(fd, address, length);
            emit(kind, fdArg(fd), result, errnoChange(before, errnoGet()), &.{});
            return result;
        },
        .replay => return @intCast(finish(expect(kind, fdArg(fd), true))),
        else => return real(AddressFn, name)(fd, address, length),
    }
}

export fn connect(fd: c_int, address: ?*const anyopaque, length: u32) c_int {
    return addressCall(.connect, "connect", fd, address, length);
}

export fn bind(fd: c_int, address: ?*const anyopaque, length: u32) c_int {
    return addressCall(.bind, "bind", fd, address, length);
}

const ListenFn = *const fn (c_int, c_int) callconv(.c) c_int;
export fn listen(fd: c_int, backlog: c_int) c_int {
    const now = enter();
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(ListenFn, "listen")(fd, backlog);
            emit(.listen, fdArg(fd), result, errnoChange(before, errnoGet()), &.{});
            return result;
        },
        .replay => return @intCast(finish(expect(.listen, fdArg(fd), true))),
        else => return real(ListenFn, "listen")(fd, backlog),
    }
}

const Accept4Fn = *const fn (c_int, ?*anyopaque, ?*u32, c_int) callconv(.c) c_int;

/// accept and accept4: the new descriptor and the peer's address.
fn acceptCall(fd: c_int, address: ?*anyopaque, length: ?*u32, flags: c_int) c_int {
    const now = enter();
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(Accept4Fn, "accept4")(fd, address, length, flags);
            const saved = errnoGet();
            const size: i64 = if (result >= 0 and length != null) length.?.* else 0;
            emit(.accept, fdArg(fd), result, errnoChange(before, saved), sliceOf(address, size));
            markSocket(result, true);
            return result;
        },
        .replay => {
            const event = expect(.accept, fdArg(fd), true);
            if (address != null and length != null and length.?.* >= event.payload.len) {
                core.copyPayload(address, event);
                length.?.* = @intCast(event.payload.len);
            }
            placeholderSocket(event.result, linux.AF.INET, linux.SOCK.STREAM);
            return @intCast(finish(event));
        },
        else => return real(Accept4Fn, "accept4")(fd, address, length, flags),
    }
}

export fn accept(fd: c_int, address: ?*anyopaque, length: ?*u32) c_int {
    return acceptCall(fd, address, length, 0);
}

export fn accept4(fd: c_int, address: ?*anyopaque, length: ?*u32, flags: c_int) c_int {
    return acceptCall(fd, address, length, flags);
}

// ---------------------------------------------------------------- sending

/// FNV-1a of what a send carried, stored instead of the bytes (Castor keeps
/// only a hash of output): enough to tell a replay that sends something else.
fn sentHash(bytes: []const u8) [8]u8 {
    var out: [8]u8 = undefined;
    std.mem.writeInt(u64, &out, format.nameHash(bytes), .little);
    return out;
}

/// One send of `bytes` (the whole buffer; the first `result` bytes went out).
fn sendCall(fd: c_int, bytes: []const u8, now: core.Mode, transmit: anytype) isize {
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = transmit.call();
            const saved = errnoGet();
            const sent = if (result > 0) bytes[0..@min(bytes.len, @as(usize, @intCast(result)))] else bytes[0..0];
            const hash = sentHash(sent);
            emit(.send, fdArg(fd), result, errnoChange(before, saved), &hash);
            return result;
        },
        .replay => {
            const event = expect(.send, fdArg(fd), true);
            const sent = if (event.result > 0) bytes[0..@min(bytes.len, @as(usize, @intCast(event.result)))] else bytes[0..0];
            const hash = sentHash(sent);
            if (event.payload.len == hash.len and !std.mem.eql(u8, event.payload, &hash)) {
                core.diverge(event, core.position.load(.acquire), .send, fdArg(fd), "output");
            }
            return @intCast(finish(event));
        },
        else => return transmit.call(),
    }
}

const SendFn = *const fn (c_int, ?*const anyopaque, usize, c_int) callconv(.c) isize;
export fn send(fd: c_int, buffer: ?*const anyopaque, length: usize, flags: c_int) isize {
    const now = enter();
    defer leave(now);
    const Call = struct {
        fd: c_int,
        buffer: ?*const anyopaque,
        length: usize,
        flags: c_int,
        fn call(self: @This()) isize {
            return real(SendFn, "send")(self.fd, self.buffer, self.length, self.flags);
        }
    };
    return sendCall(fd, constSlice(buffer, length), now, Call{ .fd = fd, .buffer = buffer, .length = length, .flags = flags });
}

const SendtoFn = *const fn (c_int, ?*const anyopaque, usize, c_int, ?*const anyopaque, u32) callconv(.c) isize;
export fn sendto(fd: c_int, buffer: ?*const anyopaque, length: usize, flags: c_int, address: ?*const anyopaque, address_length: u32) isize {
    const now = enter();
    defer leave(now);
    const Call = struct {
        fd: c_int,
        buffer: ?*const anyopaque,
        length: usize,
        flags: c_int,
        address: ?*const anyopaque,
        address_length: u32,
        fn call(self: @This()) isize {
            return real(SendtoFn, "sendto")(self.fd, self.buffer, self.length, self.flags, self.address, self.address_length);
        }
    };
    return sendCall(fd, constSlice(buffer, length), now, Call{
        .fd = fd,
        .buffer = buffer,
        .length = length,
        .flags = flags,
        .address = address,
        .address_length = address_length,
    });
}

const Iovec = extern struct { base: ?[*]u8, length: usize };
const Msghdr = extern struct {
    name: ?*anyopaque,
    name_length: u32,
    iov: ?[*]Iovec,
    iov_length: usize,
    control: ?*anyopaque,
    control_length: usize,
    flags: c_int,
};

/// The first iovec of a message (the hash covers what is easy to reach
/// without copying; sendmsg of several buffers hashes the first).
fn firstIovec(message: *const Msghdr) []const u8 {
    if (message.iov_length == 0) return &.{};
    const iov = message.iov orelse return &.{};
    return constSlice(iov[0].base, iov[0].length);
}

const SendmsgFn = *const fn (c_int, *const Msghdr, c_int) callconv(.c) isize;
export fn sendmsg(fd: c_int, message: *const Msghdr, flags: c_int) isize {
    const now = enter();
    defer leave(now);
    const Call = struct {
        fd: c_int,
        message: *const Msghdr,
        flags: c_int,
        fn call(self: @This()) isize {
            return real(SendmsgFn, "sendmsg")(self.fd, self.message, self.flags);
        }
    };
    return sendCall(fd, firstIovec(message), now, Call{ .fd = fd, .message = message, .flags = flags });
}

const WriteFn = *const fn (c_int, ?*const anyopaque, usize) callconv(.c) isize;
/// write() to a socket is a send (its peer is gone on replay); other writes
/// are not events and run for real.
export fn write(fd: c_int, buffer: ?*const anyopaque, length: usize) isize {
    if (!isSocket(fd)) return real(WriteFn, "write")(fd, buffer, length);
    const now = enter();
    defer leave(now);
    const Call = struct {
        fd: c_int,
        buffer: ?*const anyopaque,
        length: usize,
        fn call(self: @This()) isize {
            return real(WriteFn, "write")(self.fd, self.buffer, self.length);
        }
    };
    return sendCall(fd, constSlice(buffer, length), now, Call{ .fd = fd, .buffer = buffer, .length = length });
}

const CloseFn = *const fn (c_int) callconv(.c) c_int;
export fn close(fd: c_int) c_int {
    // Programs that close every descriptor (daemons) must not take the
    // trace's: the recorder grows the file through it.
    if (core.spool_open and fd == core.spool.fd) return 0;
    if (isSocket(fd)) markSocket(fd, false);
    return real(CloseFn, "close")(fd);
}

fn constSlice(pointer: ?*const anyopaque, length: usize) []const u8 {
    const bytes: [*]const u8 = @ptrCast(pointer orelse return &.{});
    return bytes[0..length];
}

// ---------------------------------------------------------------- receiving

const RecvmsgFn = *const fn (c_int, *Msghdr, c_int) callconv(.c) isize;
/// Bytes of one recvmsg over several iovecs the trace keeps (gathered on
/// the stack; one iovec is stored whole).
const recvmsg_gather_bytes_max: usize = 64 << 10;

export fn recvmsg(fd: c_int, message: *Msghdr, flags: c_int) isize {
    const now = enter();
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(RecvmsgFn, "recvmsg")(fd, message, flags);
            const saved = errnoGet();
            const received: usize = if (result > 0) @intCast(result) else 0;
            if (message.iov_length == 1) {
                const whole = constSlice(message.iov.?[0].base, @min(received, message.iov.?[0].length));
                emit(.recvmsg, fdArg(fd), result, errnoChange(before, saved), whole);
                return result;
            }
            // Spread over several iovecs: one event per iovec would not
            // match one call on replay, so gather them.
            var gathered: [recvmsg_gather_bytes_max]u8 = undefined;
            const length = gather(message, received, &gathered);
            emit(.recvmsg, fdArg(fd), result, errnoChange(before, saved), gathered[0..length]);
            return result;
        },
        .replay => {
            const event = expect(.recvmsg, fdArg(fd), true);
            scatter(message, event.payload);
            message.control_length = 0;
            message.name_length = 0;
            return @intCast(finish(event));
        },
        else => return real(RecvmsgFn, "recvmsg")(fd, message, flags),
    }
}

fn gather(message: *const Msghdr, total: usize, out: []u8) usize {
    const iov = message.iov orelse return 0;
    var used: usize = 0;
    var index: usize = 0;
    while (index < message.iov_length and used < total and used < out.len) : (index += 1) {
        const part = iov[index];
        const base = part.base orelse continue;
        const take = @min(part.length, total - used, out.len - used);
        @memcpy(out[used..][0..take], base[0..take]);
        used += take;
    }
    return used;
}

fn scatter(message: *Msghdr, bytes: []const u8) void {
    const iov = message.iov orelse return;
    var used: usize = 0;
    var index: usize = 0;
    while (index < message.iov_length and used < bytes.len) : (index += 1) {
        const part = iov[index];
        const base = part.base orelse continue;
        const take = @min(part.length, bytes.len - used);
        @memcpy(base[0..take], bytes[used..][0..take]);
        used += take;
    }
}

// ---------------------------------------------------------------- readiness

/// A readiness call whose output is `bytes` (filled by the real call on
/// record, by the trace on replay). `call` makes the real call.
fn readiness(comptime kind: Kind, now: core.Mode, arg: u64, bytes: []u8, call: anytype) c_int {
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = call.call();
            const saved = errnoGet();
            const kept = if (result >= 0) call.output(bytes, result) else bytes[0..0];
            emit(kind, arg, result, errnoChange(before, saved), kept);
            return result;
        },
        .replay => {
            const event = expect(kind, arg, true);
            if (event.payload.len > bytes.len) core.diverge(event, core.position.load(.acquire), kind, arg, "argument");
            @memcpy(bytes[0..event.payload.len], event.payload);
            return @intCast(finish(event));
        },
        else => return call.call(),
    }
}

const PollFn = *const fn (?*anyopaque, u64, c_int) callconv(.c) c_int;
export fn poll(fds: ?*anyopaque, count: u64, timeout: c_int) c_int {
    const now = enter();
    defer leave(now);
    const Call = struct {
        fds: ?*anyopaque,
        count: u64,
        timeout: c_int,
        fn call(self: @This()) c_int {
            return real(PollFn, "poll")(self.fds, self.count, self.timeout);
        }
        fn output(_: @This(), bytes: []u8, _: c_int) []u8 {
            return bytes;
        }
    };
    const bytes = mutableSlice(fds, count * pollfd_bytes);
    return readiness(.poll, now, count, bytes, Call{ .fds = fds, .count = count, .timeout = timeout });
}

const PpollFn = *const fn (?*anyopaque, u64, ?*const anyopaque, ?*const anyopaque) callconv(.c) c_int;
export fn ppoll(fds: ?*anyopaque, count: u64, timeout: ?*const anyopaque, mask: ?*const anyopaque) c_int {
    const now = enter();
    defer leave(now);
    const Call = struct {
        fds: ?*anyopaque,
        count: u64,
        timeout: ?*const anyopaque,
        mask: ?*const anyopaque,
        fn call(self: @This()) c_int {
            return real(PpollFn, "ppoll")(self.fds, self.count, self.timeout, self.mask);
        }
        fn output(_: @This(), bytes: []u8, _: c_int) []u8 {
            return bytes;
        }
    };
    const bytes = mutableSlice(fds, count * pollfd_bytes);
    return readiness(.poll, now, count, bytes, Call{ .fds = fds, .count = count, .timeout = timeout, .mask = mask });
}

const EpollWaitFn = *const fn (c_int, ?*anyopaque, c_int, c_int) callconv(.c) c_int;
const EpollPwaitFn = *const fn (c_int, ?*anyopaque, c_int, c_int, ?*const anyopaque) callconv(.c) c_int;

fn epollOutput(bytes: []u8, result: c_int) []u8 {
    return bytes[0..@min(bytes.len, @as(usize, @intCast(result)) * epoll_event_bytes)];
}

export fn epoll_wait(epoll: c_int, events: ?*anyopaque, count: c_int, timeout: c_int) c_int {
    const now = enter();
    defer leave(now);
    const Call = struct {
        epoll: c_int,
        events: ?*anyopaque,
        count: c_int,
        timeout: c_int,
        fn call(self: @This()) c_int {
            return real(EpollWaitFn, "epoll_wait")(self.epoll, self.events, self.count, self.timeout);
        }
        fn output(_: @This(), bytes: []u8, result: c_int) []u8 {
            return epollOutput(bytes, result);
        }
    };
    const bytes = mutableSlice(events, @as(usize, @intCast(@max(count, 0))) * epoll_event_bytes);
    return readiness(.epoll_wait, now, fdArg(epoll), bytes, Call{ .epoll = epoll, .events = events, .count = count, .timeout = timeout });
}

export fn epoll_pwait(epoll: c_int, events: ?*anyopaque, count: c_int, timeout: c_int, mask: ?*const anyopaque) c_int {
    const now = enter();
    defer leave(now);
    const Call = struct {
        epoll: c_int,
        events: ?*anyopaque,
        count: c_int,
        timeout: c_int,
        mask: ?*const anyopaque,
        fn call(self: @This()) c_int {
            return real(EpollPwaitFn, "epoll_pwait")(self.epoll, self.events, self.count, self.timeout, self.mask);
        }
        fn output(_: @This(), bytes: []u8, result: c_int) []u8 {
            return epollOutput(bytes, result);
        }
    };
    const bytes = mutableSlice(events, @as(usize, @intCast(@max(count, 0))) * epoll_event_bytes);
    return readiness(.epoll_wait, now, fdArg(epoll), bytes, Call{ .epoll = epoll, .events = events, .count = count, .timeout = timeout, .mask = mask });
}

const SelectFn = *const fn (c_int, ?*anyopaque, ?*anyopaque, ?*anyopaque, ?*anyopaque) callconv(.c) c_int;
export fn select(count: c_int, readable: ?*anyopaque, writable: ?*anyopaque, failed: ?*anyopaque, timeout: ?*anyopaque) c_int {
    const now = enter();
    defer leave(now);
    const select_real = real(SelectFn, "select");
    if (now != .record and now != .replay) return select_real(count, readable, writable, failed, timeout);
    // The sets as select returns them, then the timeout (Linux updates it),
    // packed into one buffer: [read][write][except][timeout].
    const clamped: usize = @intCast(std.math.clamp(count, 0, select_fds_max));
    const set_bytes = (clamped + 63) / 64 * 8;
    const parts = [_]?*anyopaque{ readable, writable, failed, timeout };
    const sizes = [_]usize{ set_bytes, set_bytes, set_bytes, timeval_bytes };
    var present: u64 = 0;
    for (parts, 0..) |part, index| {
        if (part != null) present |= @as(u64, 1) << @intCast(index);
    }
    const arg = @as(u64, clamped) | (present << 32);
    var packed_bytes: [3 * 128 + timeval_bytes]u8 = undefined;
    var used: usize = 0;
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = select_real(count, readable, writable, failed, timeout);
            const saved = errnoGet();
            if (result >= 0) {
                for (parts, sizes) |part, size| {
                    const bytes = mutableSlice(part, size);
                    @memcpy(packed_bytes[used..][0..bytes.len], bytes);
                    used += bytes.len;
                }
            }
            emit(.select, arg, result, errnoChange(before, saved), packed_bytes[0..used]);
            return result;
        },
        .replay => {
            const event = expect(.select, arg, true);
            if (event.result >= 0) {
                for (parts, sizes) |part, size| {
                    const bytes = mutableSlice(part, size);
                    if (used + bytes.len > event.payload.len) break;
                    @memcpy(bytes, event.payload[used..][0..bytes.len]);
                    used += bytes.len;
                }
            }
            return @intCast(finish(event));
        },
        else => unreachable,
    }
}

fn mutableSlice(pointer: ?*anyopaque, length: usize) []u8 {
    const bytes: [*]u8 = @ptrCast(pointer orelse return &.{});
    return bytes[0..length];
}
