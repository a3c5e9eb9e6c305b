//! libreliab_interpose.so: the pecker recorder and replayer, loaded with
//! LD_PRELOAD. It interposes libc functions (not syscalls): the libc-level
//! event stream is the same in plain and sanitizer builds, so a trace recorded
//! with the plain build replays under ASan/UBSan/TSan/MSan (see
//! shared/design/pecker.md). Sanitizer interceptors sit above this library and
//! reach it through dlsym(RTLD_NEXT), so they still check the buffers that
//! replay fills.
//!
//! Mode comes from the environment: RELIAB_PECKER_MODE=record|replay,
//! RELIAB_PECKER_TRACE=path, RELIAB_PECKER_REPORT=path (replay divergence).
//!
//! This library exports libc names, so it never calls libc's read/write/open
//! itself: its own I/O uses raw syscalls (std.os.linux), and libc functions are
//! reached through pointers from dlsym(RTLD_NEXT).
const std = @import("std");
const linux = std.os.linux;
const format = @import("trace_format.zig");
const trace_spool = @import("trace_spool.zig");

comptime {
    // Thread creation and lock-order hooks, network hooks (their exports).
    _ = @import("interpose_threads.zig");
    _ = @import("interpose_net.zig");
}

const Kind = format.Kind;

/// Exit code of a replay that diverged from its trace (the report says where).
const divergence_exit_code: u8 = 86;
const path_max: usize = 4096;
const environ_bytes_max: usize = 1 << 20;
const arena_bytes_max: usize = 4 << 20;
const alt_stack_bytes: usize = 64 << 10;

pub const Mode = enum(u8) { uninit, initializing, off, record, replay };

pub var mode: std.atomic.Value(Mode) = .init(.uninit);
/// Per-thread state, kept together in one TLS block (see threadState).
pub const ThreadState = extern struct {
    /// libc's errno of this thread, looked up once.
    errno_location: ?*c_int = null,
    /// Logical thread id: 0 for the main thread, then in creation order.
    id: u32 = 0,
    /// Set while a hook runs: calls glibc makes for the hook are not events.
    in_hook: bool = false,
    /// Top of this thread's stack as far as the crash handler may scan it
    /// (0 for the main thread, which uses main_stack_end).
    stack_top: u64 = 0,
    /// Replay: 1 + the index of the last event this thread consumed (0: none).
    last_event: u64 = 0,
};
export threadlocal var reliab_pecker_thread: ThreadState = .{};

/// This thread's state. An LD_PRELOAD library is loaded at start-up, so its
/// TLS may use the initial-exec model (a fixed offset from %fs): two
/// instructions instead of a __tls_get_addr call per access, which was a
/// tenth of a recorded call's cost. Zig has no attribute for the TLS model,
/// hence the GOTTPOFF relocation by hand (the linker marks the library
/// STATIC_TLS).
pub inline fn threadState() *ThreadState {
    const offset = asm ("movq reliab_pecker_thread@gottpoff(%%rip), %[offset]"
        : [offset] "=r" (-> usize),
    );
    const base = asm ("movq %%fs:0, %[base]"
        : [base] "=r" (-> usize),
    );
    return @ptrFromInt(base +% offset);
}
/// The trace being recorded (record mode only; see trace_spool.zig).
pub var spool: trace_spool.Spool = .{};
pub var spool_open: bool = false;
var report_path: [path_max:0]u8 = @splat(0);

// ---------------------------------------------------------------- libc access

const FILE = opaque {};
pub const RTLD_NEXT: ?*anyopaque = @ptrFromInt(std.math.maxInt(usize));
extern "c" fn dlsym(handle: ?*anyopaque, symbol: [*:0]const u8) ?*anyopaque;
extern "c" fn __errno_location() *c_int;
extern "c" fn realloc(ptr: ?*anyopaque, size: usize) ?*anyopaque;
extern "c" fn pthread_atfork(
    prepare: ?*const fn () callconv(.c) void,
    parent: ?*const fn () callconv(.c) void,
    child: ?*const fn () callconv(.c) void,
) c_int;
extern "c" var environ: ?[*:null]?[*:0]u8;

/// The next definition of `name` after this library (libc's, normally).
pub fn real(comptime T: type, comptime name: [:0]const u8) T {
    // The struct must capture `name` and `T`: a container that captures no
    // comptime value is one type for every instantiation (one shared cache).
    const Cache = struct {
        const symbol = name;
        const Function = T;
        var pointer: std.atomic.Value(?*anyopaque) = .init(null);
    };
    var pointer = Cache.pointer.load(.acquire);
    if (pointer == null) {
        pointer = dlsym(RTLD_NEXT, name.ptr);
        if (pointer == null) fatal("reliab pecker: cannot find the real ", name);
        Cache.pointer.store(pointer, .release);
    }
    return @ptrCast(@alignCast(pointer));
}

fn errnoLocation() *c_int {
    const state = threadState();
    if (state.errno_location) |location| return location;
    const location = __errno_location();
    state.errno_location = location;
    return location;
}

pub fn errnoGet() i32 {
    return errnoLocation().*;
}

pub fn errnoSet(value: i32) void {
    errnoLocation().* = value;
}

fn rawWrite(fd: i32, bytes: []const u8) void {
    var done: usize = 0;
    var attempts: u32 = 0;
    while (done < bytes.len and attempts < 64) : (attempts += 1) {
        const rc = linux.write(fd, bytes[done..].ptr, bytes.len - done);
        if (linux.errno(rc) != .SUCCESS) return;
        done += rc;
    }
}

fn fatal(message: []const u8, detail: []const u8) noreturn {
    rawWrite(2, message);
    rawWrite(2, detail);
    rawWrite(2, "\n");
    linux.exit_group(127);
}

pub fn rawOpen(path: [*:0]const u8, flags: usize, file_mode: usize) i32 {
    const rc = linux.syscall4(.openat, @bitCast(@as(isize, linux.AT.FDCWD)), @intFromPtr(path), flags, file_mode);
    if (linux.errno(rc) != .SUCCESS) return -1;
    return @intCast(rc);
}

pub fn rawClose(fd: i32) void {
    _ = linux.syscall1(.close, @bitCast(@as(isize, fd)));
}

// ---------------------------------------------------------------- init

/// Runs before main (after libc and the sanitizer runtimes are initialised).
fn constructor() callconv(.c) void {
    _ = currentMode();
}

export const reliab_pecker_init_array linksection(".init_array") = &constructor;

pub inline fn currentMode() Mode {
    const now = mode.load(.acquire);
    if (@backingInt(now) >= @backingInt(Mode.off)) return now;
    return currentModeSlow();
}

fn currentModeSlow() Mode {
    const now = mode.load(.acquire);
    if (now != .uninit) return if (now == .initializing) .off else now;
    if (mode.cmpxchgStrong(.uninit, .initializing, .acq_rel, .acquire)) |_| {
        // Another thread initialises: wait for it, bounded.
        var spins: u32 = 0;
        while (mode.load(.acquire) == .initializing and spins < 1_000_000) : (spins += 1) {
            std.atomic.spinLoopHint();
        }
        const after = mode.load(.acquire);
        return if (after == .initializing) .off else after;
    }
    const chosen = initialise();
    mode.store(chosen, .release);
    return chosen;
}

fn envValue(name: []const u8) ?[]const u8 {
    const list = environ orelse return null;
    var index: usize = 0;
    while (list[index]) |entry| : (index += 1) {
        const text = std.mem.span(entry);
        if (text.len > name.len and text[name.len] == '=' and std.mem.eql(u8, text[0..name.len], name)) {
            return text[name.len + 1 ..];
        }
    }
    return null;
}

fn initialise() Mode {
    const mode_text = envValue("RELIAB_PECKER_MODE") orelse return .off;
    const trace_path = envValue("RELIAB_PECKER_TRACE") orelse return .off;
    if (trace_path.len == 0 or trace_path.len >= path_max) return .off;
    var path: [path_max:0]u8 = @splat(0);
    @memcpy(path[0..trace_path.len], trace_path);
    if (envValue("RELIAB_PECKER_REPORT")) |report| {
        if (report.len < path_max) @memcpy(report_path[0..report.len], report);
    }
    const chosen: Mode = if (std.mem.eql(u8, mode_text, "record"))
        .record
    else if (std.mem.eql(u8, mode_text, "replay"))
        .replay
    else
        return .off;
    // Children (a shell, llvm-symbolizer) are not this recording: hide the
    // variables from them before the program can spawn anything.
    scrubEnviron();
    _ = pthread_atfork(null, null, &forkChild);
    if (chosen == .record) {
        const flags = @as(u32, @bitCast(linux.O{
            .ACCMODE = .RDWR,
            .CREAT = true,
            .TRUNC = true,
            .CLOEXEC = true,
        }));
        const fd = rawOpen(&path, flags, 0o600);
        if (fd < 0) fatal("reliab pecker: cannot create the trace file ", trace_path);
        // Move the trace out of the way of programs that close low fds.
        const high = linux.fcntl(fd, linux.F.DUPFD_CLOEXEC, 900);
        const trace_fd: i32 = if (linux.errno(high) == .SUCCESS) @intCast(high) else fd;
        if (trace_fd != fd) rawClose(fd);
        spool.open(trace_fd, trace_spool.trace_bytes_max) catch
            fatal("reliab pecker: cannot map the trace file ", trace_path);
        spool_open = true;
        _ = spool.startHelper();
        recordMetadata();
        installCrashHandlers(.record);
    } else {
        replayLoad(&path);
        installCrashHandlers(.replay);
        registerDeathCallback();
    }
    return chosen;
}

fn forkChild() callconv(.c) void {
    // A forked child is not the recorded process: let it run untouched.
    mode.store(.off, .release);
}

fn isOurVariable(entry: []const u8) bool {
    if (std.mem.startsWith(u8, entry, "RELIAB_PECKER_")) return true;
    return std.mem.startsWith(u8, entry, "LD_PRELOAD=") and
        std.mem.indexOf(u8, entry, "libreliab_interpose") != null;
}

fn scrubEnviron() void {
    const list = environ orelse return;
    var read_index: usize = 0;
    var write_index: usize = 0;
    while (list[read_index]) |entry| : (read_index += 1) {
        if (isOurVariable(std.mem.span(entry))) continue;
        list[write_index] = entry;
        write_index += 1;
    }
    list[write_index] = null;
}

// ---------------------------------------------------------------- recording

/// Appends one event. Never changes errno (the spool makes raw syscalls
/// only), so hooks need not save it around the call.
pub fn emit(kind: Kind, arg: u64, result: i64, errno_value: i32, payload: []const u8) void {
    if (!spool_open) return;
    _ = spool.append(.{
        .kind = @backingInt(kind),
        .thread = threadState().id,
        .arg = arg,
        .result = result,
        .errno = errno_value,
        .payload = payload,
    });
}

/// errno as the call left it, or 0 when the call did not change it: replay
/// then leaves errno alone too (most calls succeed and change nothing, and
/// a zero field costs no bytes in the trace).
pub fn errnoChange(before: i32, after: i32) i32 {
    return if (after != before) after else 0;
}

var environ_buffer: [environ_bytes_max]u8 = undefined;
var metadata_buffer: [path_max * 2]u8 = undefined;

fn recordMetadata() void {
    const pid: u64 = @intCast(linux.getpid());
    var exe: [path_max]u8 = undefined;
    const exe_rc = linux.readlink("/proc/self/exe", &exe, exe.len);
    const exe_len: usize = if (linux.errno(exe_rc) == .SUCCESS) exe_rc else 0;
    const base = executableBase(exe[0..exe_len]);
    emit(.process, pid, @bitCast(base), 0, exe[0..exe_len]);

    const cmdline_fd = rawOpen("/proc/self/cmdline", 0, 0);
    var cmdline_len: usize = 0;
    if (cmdline_fd >= 0) {
        while (cmdline_len < environ_buffer.len) {
            const rc = linux.read(cmdline_fd, environ_buffer[cmdline_len..].ptr, environ_buffer.len - cmdline_len);
            if (linux.errno(rc) != .SUCCESS or rc == 0) break;
            cmdline_len += rc;
        }
        rawClose(cmdline_fd);
    }
    emit(.argv, 0, 0, 0, environ_buffer[0..cmdline_len]);

    emit(.environ, 0, 0, 0, environ_buffer[0..environSnapshot(&environ_buffer)]);

    const cwd_rc = linux.getcwd(&metadata_buffer, metadata_buffer.len);
    const cwd_len: usize = if (linux.errno(cwd_rc) == .SUCCESS and cwd_rc > 0) cwd_rc - 1 else 0;
    emit(.cwd, 0, 0, 0, metadata_buffer[0..cwd_len]);
}

/// NAME=VALUE\0 for each variable, secret-looking values redacted.
fn environSnapshot(out: []u8) usize {
    const list = environ orelse return 0;
    var used: usize = 0;
    var index: usize = 0;
    while (list[index]) |entry| : (index += 1) {
        const text = std.mem.span(entry);
        const equals = std.mem.indexOfScalar(u8, text, '=') orelse text.len;
        const name = text[0..equals];
        const redacted = "=<redacted>";
        const value = if (format.isSecretName(name)) redacted else text[equals..];
        if (used + name.len + value.len + 1 > out.len) break;
        @memcpy(out[used..][0..name.len], name);
        used += name.len;
        @memcpy(out[used..][0..value.len], value);
        used += value.len;
        out[used] = 0;
        used += 1;
    }
    return used;
}

var maps_buffer: [64 << 10]u8 = undefined;

/// Load address of the main executable, from /proc/self/maps, so that the
/// reader can symbolize crash addresses offline (addr2line -e exe).
fn executableBase(exe: []const u8) u64 {
    if (exe.len == 0) return 0;
    const fd = rawOpen("/proc/self/maps", 0, 0);
    if (fd < 0) return 0;
    defer rawClose(fd);
    var used: usize = 0;
    while (used < maps_buffer.len) {
        const rc = linux.read(fd, maps_buffer[used..].ptr, maps_buffer.len - used);
        if (linux.errno(rc) != .SUCCESS or rc == 0) break;
        used += rc;
    }
    var base: u64 = 0;
    var lines = std.mem.splitScalar(u8, maps_buffer[0..used], '\n');
    while (lines.next()) |line| {
        if (std.mem.endsWith(u8, line, "[stack]")) {
            const dash = std.mem.indexOfScalar(u8, line, '-') orelse continue;
            const space = std.mem.indexOfScalar(u8, line, ' ') orelse continue;
            if (space <= dash) continue;
            main_stack_end = std.fmt.parseInt(u64, line[dash + 1 .. space], 16) catch 0;
            continue;
        }
        if (!std.mem.endsWith(u8, line, exe)) continue;
        // start-end perms offset dev inode path
        var fields = std.mem.tokenizeScalar(u8, line, ' ');
        const range = fields.next() orelse continue;
        _ = fields.next() orelse continue;
        const offset_text = fields.next() orelse continue;
        const dash = std.mem.indexOfScalar(u8, range, '-') orelse continue;
        const start = std.fmt.parseInt(u64, range[0..dash], 16) catch continue;
        const end = std.fmt.parseInt(u64, range[dash + 1 ..], 16) catch continue;
        const offset = std.fmt.parseInt(u64, offset_text, 16) catch continue;
        if (base == 0) base = start - offset;
        const permissions = line[range.len + 1 ..];
        if (permissions.len > 3 and permissions[2] == 'x') {
            exe_text_start = start;
            exe_text_end = end;
        }
    }
    return base;
}

// ---------------------------------------------------------------- crashes

const fatal_signals = [_]linux.SIG{ .SEGV, .BUS, .FPE, .ILL, .ABRT };
var crash_frames: [format.crash_frames_max]u64 = undefined;

pub fn installAltStack() void {
    const rc = linux.mmap(null, alt_stack_bytes, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (linux.errno(rc) != .SUCCESS) return;
    const stack: linux.stack_t = .{ .sp = @ptrFromInt(rc), .flags = 0, .size = alt_stack_bytes };
    _ = linux.sigaltstack(&stack, null);
}

// libc's sigaction, not the raw syscall: glibc's signal trampoline carries
// the unwind info that lets backtrace() cross the signal frame.
fn setAction(signal: linux.SIG, handler: ?std.c.Sigaction.sigaction_fn, flags: c_uint) void {
    var action: std.c.Sigaction = .{
        .handler = .{ .sigaction = handler },
        .mask = std.mem.zeroes(std.c.sigset_t),
        .flags = flags,
    };
    _ = std.c.sigaction(signal, &action, null);
}

fn installCrashHandlers(chosen: Mode) void {
    installAltStack();
    for (fatal_signals) |signal| {
        var old: std.c.Sigaction = undefined;
        _ = std.c.sigaction(signal, null, &old);
        // On replay a sanitizer runtime may own the signal: leave it alone.
        if (chosen == .replay and old.handler.handler != std.c.SIG.DFL) continue;
        setAction(signal, &crashHandler, std.c.SA.SIGINFO | std.c.SA.ONSTACK);
    }
}

fn crashHandler(signal: linux.SIG, info: *const linux.siginfo_t, context: ?*anyopaque) callconv(.c) void {
    if (mode.load(.acquire) == .record) {
        const info_bytes: [*]const u8 = @ptrCast(info);
        const fault_address = std.mem.readInt(u64, info_bytes[16..24], .little);
        const count = backtraceFrames(context);
        emit(.crash, @backingInt(signal), @bitCast(fault_address), 0, std.mem.sliceAsBytes(crash_frames[0..count]));
    } else {
        reportPosition();
    }
    // Die of the same signal: default action, and the signal is re-sent
    // (blocked until this handler returns; a fault also re-executes).
    setAction(signal, null, 0);
    _ = linux.tgkill(linux.getpid(), linux.gettid(), signal);
}

/// Range of the main executable's code and the main thread's stack top, from
/// /proc/self/maps at start: the handler may not allocate or open files.
var exe_text_start: u64 = 0;
var exe_text_end: u64 = 0;
var main_stack_end: u64 = 0;
/// Bytes of stack scanned above sp when frame pointers give out.
const stack_scan_bytes_max: u64 = 64 << 10;

fn inExeText(address: u64) bool {
    return address >= exe_text_start and address < exe_text_end;
}

/// Return addresses from the interrupted context. The frame-pointer walk
/// works in the program's code; when the fault is inside libc (abort, raise,
/// glibc heap checks: no frame pointers there), the stack is scanned for
/// words that point into the executable's code instead. No unwinder: it
/// would allocate (dlopen of libgcc_s), which changes the heap layout the
/// recording is meant to observe and can deadlock when malloc crashed.
fn backtraceFrames(context: ?*anyopaque) usize {
    const bytes: [*]const u8 = @ptrCast(context orelse return 0);
    // x86_64 ucontext_t: gregs start at 40; REG_RBP 10, REG_RSP 15, REG_RIP 16.
    const gregs: [*]align(1) const u64 = @ptrCast(bytes + 40);
    const rip = gregs[16];
    const rsp = gregs[15];
    crash_frames[0] = rip;
    if (inExeText(rip)) return framePointerWalk(rsp, gregs[10]);
    return stackScan(rsp);
}

/// True when the code before `address` ends in a call instruction: a
/// return address, not a function pointer or other stale word on the stack.
fn followsCall(address: u64) bool {
    if (address < exe_text_start + 7) return false;
    const code: [*]const u8 = @ptrFromInt(address - 7);
    // call rel32 (E8), call [rip+disp32] / [reg+disp32] (FF /2, mod 10 or 00+rip)
    if (code[2] == 0xe8) return true;
    if (code[1] == 0xff and (code[2] & 0x38) == 0x10) return true;
    // call [reg+disp8] (FF /2 mod 01), call reg (FF D0+r, with REX.B for r8-r15)
    if (code[4] == 0xff and (code[5] & 0x38) == 0x10 and (code[5] & 0xc0) == 0x40) return true;
    if (code[5] == 0xff and (code[6] & 0xf8) == 0xd0) return true;
    return false;
}

fn stackScan(rsp: u64) usize {
    var count: usize = 1;
    // A thread's stack ends above its start routine's frame: scanning past
    // it would read the next thread's stack (stale frames) or a guard page.
    const thread_top = threadState().stack_top;
    const top = if (thread_top > rsp) thread_top else main_stack_end;
    const limit = if (top > rsp and top - rsp < (8 << 20))
        @min(top, rsp + stack_scan_bytes_max)
    else
        rsp + 16 * 1024;
    var at = rsp & ~@as(u64, 7);
    while (at + 8 <= limit and count < crash_frames.len) : (at += 8) {
        const word = @as(*const u64, @ptrFromInt(at)).*;
        if (!inExeText(word) or !followsCall(word)) continue;
        crash_frames[count] = word;
        count += 1;
    }
    return count;
}

/// Bounded by the stack: a frame pointer outside [sp, sp + 8 MiB) ends the walk.
fn framePointerWalk(rsp: u64, rbp_start: u64) usize {
    var rbp = rbp_start;
    var count: usize = 1;
    while (count < crash_frames.len) {
        if (rbp == 0 or rbp % 8 != 0 or rbp < rsp or rbp > rsp + (8 << 20)) break;
        const frame: [*]const u64 = @ptrFromInt(rbp);
        const return_address = frame[1];
        if (return_address == 0) break;
        crash_frames[count] = return_address;
        count += 1;
        const next = frame[0];
        if (next <= rbp) break;
        rbp = next;
    }
    return count;
}

// ---------------------------------------------------------------- replay

const Slot = struct { offset: u64, index: u64 };

var replay_bytes: []const u8 = &.{};
var replay_slots: []Slot = &.{};
var thread_first: [format.threads_max + 1]u32 = @splat(0);
var thread_cursor: [format.threads_max]u32 = @splat(0);
pub var position: std.atomic.Value(u64) = .init(0);

fn mapAnonymous(bytes: usize) ?[*]u8 {
    const rc = linux.mmap(null, bytes, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (linux.errno(rc) != .SUCCESS) return null;
    return @ptrFromInt(rc);
}

fn replayLoad(path: [*:0]const u8) void {
    const fd = rawOpen(path, 0, 0);
    if (fd < 0) fatal("reliab pecker: cannot open the trace ", std.mem.span(path));
    defer rawClose(fd);
    const size = linux.lseek(fd, 0, linux.SEEK.END);
    if (size == 0 or size > (1 << 40)) fatal("reliab pecker: trace is empty or too large: ", std.mem.span(path));
    const rc = linux.mmap(null, size, .{ .READ = true }, .{ .TYPE = .PRIVATE }, fd, 0);
    if (linux.errno(rc) != .SUCCESS) fatal("reliab pecker: cannot map the trace ", std.mem.span(path));
    replay_bytes = @as([*]const u8, @ptrFromInt(rc))[0..size];
    const first = format.decodeHeader(replay_bytes) catch fatal("reliab pecker: not a trace: ", std.mem.span(path));

    // Two passes: count events per thread, then lay them out thread by thread.
    var counts: [format.threads_max]u32 = @splat(0);
    var offset = first;
    var total: u32 = 0;
    while (format.decodeEvent(replay_bytes, offset)) |event| : (offset = event.next) {
        counts[event.thread] += 1;
        total += 1;
    } else |_| {}
    var sum: u32 = 0;
    for (counts, 0..) |count, thread| {
        thread_first[thread] = sum;
        sum += count;
    }
    thread_first[format.threads_max] = sum;
    const memory = mapAnonymous(@max(1, total) * @sizeOf(Slot)) orelse fatal("reliab pecker: out of memory", "");
    replay_slots = @as([*]Slot, @ptrCast(@alignCast(memory)))[0..total];
    var fill: [format.threads_max]u32 = thread_first[0..format.threads_max].*;
    offset = first;
    var index: u64 = 0;
    while (format.decodeEvent(replay_bytes, offset)) |event| : (offset = event.next) {
        replay_slots[fill[event.thread]] = .{ .offset = offset, .index = index };
        fill[event.thread] += 1;
        index += 1;
    } else |_| {}
}

fn kindNumber(kind: Kind) u64 {
    return @backingInt(kind);
}

/// Writes the divergence report and ends the process: never a hang.
pub fn diverge(expected: ?format.Event, expected_index: u64, actual: Kind, actual_arg: u64, reason: []const u8) noreturn {
    var buffer: [512]u8 = undefined;
    const expected_kind: u64 = if (expected) |event| event.kind else 0;
    const expected_arg: u64 = if (expected) |event| event.arg else 0;
    const text = std.fmt.bufPrint(&buffer, "diverged thread={d} event={d} expected_kind={d} expected_arg={d} actual_kind={d} actual_arg={d} reason={s}\n", .{
        threadState().id, expected_index, expected_kind, expected_arg, kindNumber(actual), actual_arg, reason,
    }) catch buffer[0..0];
    if (report_path[0] != 0) {
        const fd = rawOpen(&report_path, @as(u32, @bitCast(linux.O{ .ACCMODE = .WRONLY, .CREAT = true, .TRUNC = true, .CLOEXEC = true })), 0o600);
        if (fd >= 0) {
            rawWrite(fd, text);
            rawClose(fd);
        }
    }
    rawWrite(2, "==reliab-pecker== ");
    rawWrite(2, text);
    linux.exit_group(divergence_exit_code);
}

/// The next recorded call of this thread; diverges unless it is `kind` (and,
/// with `check_arg`, has the same argument).
pub fn expect(kind: Kind, arg: u64, check_arg: bool) format.Event {
    const thread = threadState().id;
    const cursor = thread_cursor[thread];
    var slot_index = thread_first[thread] + cursor;
    const end = thread_first[thread + 1];
    // Metadata events are not calls: step over them.
    while (slot_index < end) : (slot_index += 1) {
        const event = format.decodeEvent(replay_bytes, replay_slots[slot_index].offset) catch unreachable;
        if (Kind.isCall(@fromBackingInt(event.kind))) break;
    }
    if (slot_index >= end) traceEnded(kind, arg);
    const slot = replay_slots[slot_index];
    const event = format.decodeEvent(replay_bytes, slot.offset) catch unreachable;
    if (event.kind != @backingInt(kind)) diverge(event, slot.index, kind, arg, "call");
    if (check_arg and event.arg != arg) diverge(event, slot.index, kind, arg, "argument");
    thread_cursor[thread] = slot_index - thread_first[thread] + 1;
    position.store(slot.index, .release);
    threadState().last_event = slot.index + 1;
    return event;
}

extern "c" var __libc_single_threaded: u8;
/// How long a thread that ran out of recorded events waits for the process
/// to end before that counts as divergence.
const trace_end_park_ns_max: u64 = 3 * std.time.ns_per_s;

/// This thread has no recorded events left. With other threads alive that
/// is normal near the end: the recording stopped when another thread
/// crashed or called exit, and so will the replay, so wait for that (bounded)
/// instead of reporting divergence first.
fn traceEnded(kind: Kind, arg: u64) noreturn {
    const last_index: u64 = if (replay_slots.len == 0) 0 else replay_slots[replay_slots.len - 1].index + 1;
    if (__libc_single_threaded == 0) {
        const deadline = trace_spool.monotonicNs() + trace_end_park_ns_max;
        const pause: linux.timespec = .{ .sec = 0, .nsec = 10 * std.time.ns_per_ms };
        while (trace_spool.monotonicNs() < deadline) _ = linux.nanosleep(&pause, null);
    }
    diverge(null, last_index, kind, arg, "trace-ended");
}

/// Sets errno from the event and returns its result.
pub fn finish(event: format.Event) i64 {
    if (event.flags.errno) errnoSet(event.errno);
    return event.result;
}

pub fn copyPayload(destination: ?*anyopaque, event: format.Event) void {
    if (event.payload.len == 0) return;
    const bytes: [*]u8 = @ptrCast(destination orelse return);
    @memcpy(bytes[0..event.payload.len], event.payload);
}

/// Says which event the replay had reached when a report fired: the
/// reporting thread's own last event (the global position also moves with
/// other threads, in whatever order they run), or the global one when this
/// thread has none.
fn reportPosition() void {
    var buffer: [96]u8 = undefined;
    const own = threadState().last_event;
    const event = if (own != 0) own - 1 else position.load(.acquire);
    const text = std.fmt.bufPrint(&buffer, "==reliab-pecker== replay position: event {d}\n", .{event}) catch return;
    rawWrite(2, text);
}

fn deathCallback() callconv(.c) void {
    reportPosition();
}

fn registerDeathCallback() void {
    const pointer = dlsym(null, "__sanitizer_set_death_callback") orelse return;
    const set: *const fn (*const fn () callconv(.c) void) callconv(.c) void = @ptrCast(pointer);
    set(&deathCallback);
}

var arena: ?[*]u8 = null;
var arena_used: std.atomic.Value(usize) = .init(0);

/// NUL-terminated copy that lives as long as the process (getenv results).
fn arenaString(bytes: []const u8) ?[*:0]u8 {
    if (arena == null) arena = mapAnonymous(arena_bytes_max);
    const base = arena orelse return null;
    const start = arena_used.fetchAdd(bytes.len + 1, .acq_rel);
    if (start + bytes.len + 1 > arena_bytes_max) return null;
    @memcpy(base[start..][0..bytes.len], bytes);
    base[start + bytes.len] = 0;
    return @ptrCast(base + start);
}

/// A descriptor numbered `wanted` that reads as empty, for replayed opens and
/// accepts whose file or peer is gone.
pub fn placeholderDescriptor(wanted: i64) void {
    if (wanted < 0) return;
    const target: i32 = @intCast(wanted);
    const in_use = linux.fcntl(target, linux.F.GETFD, 0);
    if (linux.errno(in_use) == .SUCCESS) return;
    const fd = rawOpen("/dev/null", 2, 0);
    if (fd < 0 or fd == target) return;
    _ = linux.dup2(fd, target);
    rawClose(fd);
}

// ---------------------------------------------------------------- hooks

const DlInfo = extern struct {
    file_name: ?[*:0]const u8,
    file_base: ?*anyopaque,
    symbol_name: ?[*:0]const u8,
    symbol_address: ?*anyopaque,
};
extern "c" fn dladdr(address: *const anyopaque, info: *DlInfo) c_int;

/// The sanitizer interceptor of `name` (clang and gcc runtimes export it as
/// __interceptor_<name>), or null in a build without one.
fn interceptorOf(comptime name: [:0]const u8) ?*anyopaque {
    const Cache = struct {
        const symbol = "__interceptor_" ++ name;
        var looked: std.atomic.Value(bool) = .init(false);
        var pointer: ?*anyopaque = null;
    };
    if (!Cache.looked.load(.acquire)) {
        Cache.pointer = dlsym(null, Cache.symbol);
        Cache.looked.store(true, .release);
    }
    return Cache.pointer;
}

/// True for calls a sanitizer runtime makes itself (its clock for the
/// allocator, its helper threads): they are not program events. When the
/// runtime intercepts `name`, every program call comes through that
/// interceptor, so a call from anywhere else is the runtime's own.
inline fn fromRuntime(comptime name: [:0]const u8, return_address: usize) bool {
    const interceptor = interceptorOf(name) orelse return false;
    var info: DlInfo = undefined;
    if (return_address == 0) return false;
    if (dladdr(@ptrFromInt(return_address), &info) == 0) return true;
    return info.symbol_address != interceptor;
}

/// Mode for this call; `.off` inside another hook (calls glibc makes for us)
/// and for the sanitizer runtime's own calls.
pub inline fn enter(comptime name: [:0]const u8, return_address: usize) Mode {
    const state = threadState();
    if (state.in_hook) return .off;
    const now = currentMode();
    if (now != .record and now != .replay) return now;
    if (fromRuntime(name, return_address)) return .off;
    state.in_hook = true;
    return now;
}

/// `enter` for calls no sanitizer runtime makes for itself (pthread
/// synchronization, sockets, poll): the runtime check would misjudge them,
/// since ASan's mutex interceptor tail-calls the real function (the return
/// address is the program's) and TSan's condition wait calls it from a
/// cancellation wrapper.
pub inline fn enterProgramCall() Mode {
    const state = threadState();
    if (state.in_hook) return .off;
    const now = currentMode();
    if (now != .record and now != .replay) return now;
    state.in_hook = true;
    return now;
}

pub inline fn leave(now: Mode) void {
    if (now == .record or now == .replay) threadState().in_hook = false;
}

pub fn sliceOf(pointer: ?*anyopaque, length: i64) []const u8 {
    if (length <= 0) return &.{};
    const bytes: [*]const u8 = @ptrCast(pointer orelse return &.{});
    return bytes[0..@intCast(length)];
}

pub fn fdArg(fd: c_int) u64 {
    return @bitCast(@as(i64, fd));
}

const ReadFn = *const fn (c_int, ?*anyopaque, usize) callconv(.c) isize;
export fn read(fd: c_int, buffer: ?*anyopaque, count: usize) isize {
    const now = enter("read", @returnAddress());
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(ReadFn, "read")(fd, buffer, count);
            const saved = errnoGet();
            emit(.read, fdArg(fd), result, errnoChange(before, saved), sliceOf(buffer, result));
            return result;
        },
        .replay => {
            const event = expect(.read, fdArg(fd), true);
            copyPayload(buffer, event);
            return @intCast(finish(event));
        },
        else => return real(ReadFn, "read")(fd, buffer, count),
    }
}

const RecvFn = *const fn (c_int, ?*anyopaque, usize, c_int) callconv(.c) isize;
export fn recv(fd: c_int, buffer: ?*anyopaque, count: usize, flags: c_int) isize {
    const now = enter("recv", @returnAddress());
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(RecvFn, "recv")(fd, buffer, count, flags);
            const saved = errnoGet();
            emit(.recv, fdArg(fd), result, errnoChange(before, saved), sliceOf(buffer, result));
            return result;
        },
        .replay => {
            const event = expect(.recv, fdArg(fd), true);
            copyPayload(buffer, event);
            return @intCast(finish(event));
        },
        else => return real(RecvFn, "recv")(fd, buffer, count, flags),
    }
}

const RecvfromFn = *const fn (c_int, ?*anyopaque, usize, c_int, ?*anyopaque, ?*u32) callconv(.c) isize;
export fn recvfrom(fd: c_int, buffer: ?*anyopaque, count: usize, flags: c_int, address: ?*anyopaque, length: ?*u32) isize {
    const now = enter("recvfrom", @returnAddress());
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(RecvfromFn, "recvfrom")(fd, buffer, count, flags, address, length);
            const saved = errnoGet();
            emit(.recvfrom, fdArg(fd), result, errnoChange(before, saved), sliceOf(buffer, result));
            return result;
        },
        .replay => {
            const event = expect(.recvfrom, fdArg(fd), true);
            copyPayload(buffer, event);
            if (length) |size| size.* = 0;
            return @intCast(finish(event));
        },
        else => return real(RecvfromFn, "recvfrom")(fd, buffer, count, flags, address, length),
    }
}

const GetrandomFn = *const fn (?*anyopaque, usize, c_uint) callconv(.c) isize;
export fn getrandom(buffer: ?*anyopaque, count: usize, flags: c_uint) isize {
    const now = enter("getrandom", @returnAddress());
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(GetrandomFn, "getrandom")(buffer, count, flags);
            const saved = errnoGet();
            emit(.getrandom, 0, result, errnoChange(before, saved), sliceOf(buffer, result));
            return result;
        },
        .replay => {
            const event = expect(.getrandom, 0, false);
            copyPayload(buffer, event);
            return @intCast(finish(event));
        },
        else => return real(GetrandomFn, "getrandom")(buffer, count, flags),
    }
}

const TimeFn = *const fn (?*i64) callconv(.c) i64;
export fn time(out: ?*i64) i64 {
    const now = enter("time", @returnAddress());
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(TimeFn, "time")(out);
            emit(.time, 0, result, errnoChange(before, errnoGet()), &.{});
            return result;
        },
        .replay => {
            const result = finish(expect(.time, 0, false));
            if (out) |pointer| pointer.* = result;
            return result;
        },
        else => return real(TimeFn, "time")(out),
    }
}

const GettimeofdayFn = *const fn (?*anyopaque, ?*anyopaque) callconv(.c) c_int;
export fn gettimeofday(value: ?*anyopaque, zone: ?*anyopaque) c_int {
    const now = enter("gettimeofday", @returnAddress());
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(GettimeofdayFn, "gettimeofday")(value, zone);
            emit(.gettimeofday, 0, result, errnoChange(before, errnoGet()), sliceOf(value, if (result == 0) 16 else 0));
            return result;
        },
        .replay => {
            const event = expect(.gettimeofday, 0, false);
            copyPayload(value, event);
            return @intCast(finish(event));
        },
        else => return real(GettimeofdayFn, "gettimeofday")(value, zone),
    }
}

const ClockGettimeFn = *const fn (c_int, ?*anyopaque) callconv(.c) c_int;
export fn clock_gettime(clock: c_int, value: ?*anyopaque) c_int {
    const now = enter("clock_gettime", @returnAddress());
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(ClockGettimeFn, "clock_gettime")(clock, value);
            emit(.clock_gettime, fdArg(clock), result, errnoChange(before, errnoGet()), sliceOf(value, if (result == 0) 16 else 0));
            return result;
        },
        .replay => {
            const event = expect(.clock_gettime, fdArg(clock), true);
            copyPayload(value, event);
            return @intCast(finish(event));
        },
        else => return real(ClockGettimeFn, "clock_gettime")(clock, value),
    }
}

const GetpidFn = *const fn () callconv(.c) c_int;
export fn getpid() c_int {
    const now = enter("getpid", @returnAddress());
    defer leave(now);
    switch (now) {
        .record => {
            const result = real(GetpidFn, "getpid")();
            emit(.getpid, 0, result, 0, &.{});
            return result;
        },
        .replay => return @intCast(finish(expect(.getpid, 0, false))),
        else => return real(GetpidFn, "getpid")(),
    }
}

const GetenvFn = *const fn ([*:0]const u8) callconv(.c) ?[*:0]u8;
export fn getenv(name: [*:0]const u8) ?[*:0]u8 {
    const now = enter("getenv", @returnAddress());
    defer leave(now);
    const name_text = std.mem.span(name);
    const hash = format.nameHash(name_text);
    switch (now) {
        .record => {
            const result = real(GetenvFn, "getenv")(name);
            const value: []const u8 = if (result) |text| std.mem.span(text) else &.{};
            if (format.isSecretName(name_text)) {
                // Keep the length (programs may branch on it), not the secret.
                var masked: [256]u8 = @splat('x');
                emit(.getenv, hash, @intFromBool(result != null), 0, masked[0..@min(value.len, masked.len)]);
            } else {
                emit(.getenv, hash, @intFromBool(result != null), 0, value);
            }
            return result;
        },
        .replay => {
            const event = expect(.getenv, hash, true);
            if (event.result == 0) return null;
            return arenaString(event.payload);
        },
        else => return real(GetenvFn, "getenv")(name),
    }
}

fn openReplay(hash: u64) c_int {
    const event = expect(.open, hash, true);
    placeholderDescriptor(event.result);
    return @intCast(finish(event));
}

const OpenFn = *const fn ([*:0]const u8, c_int, c_uint) callconv(.c) c_int;
// open is variadic in C; on x86_64 reading the absent mode register is harmless.
export fn open(path: [*:0]const u8, flags: c_int, file_mode: c_uint) c_int {
    return openImpl(path, flags, file_mode, @returnAddress());
}

fn openImpl(path: [*:0]const u8, flags: c_int, file_mode: c_uint, return_address: usize) c_int {
    const now = enter("open", return_address);
    defer leave(now);
    const hash = format.nameHash(std.mem.span(path));
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(OpenFn, "open")(path, flags, file_mode);
            const saved = errnoGet();
            emit(.open, hash, result, errnoChange(before, saved), std.mem.span(path));
            return result;
        },
        .replay => return openReplay(hash),
        else => return real(OpenFn, "open")(path, flags, file_mode),
    }
}

export fn open64(path: [*:0]const u8, flags: c_int, file_mode: c_uint) c_int {
    return openImpl(path, flags, file_mode, @returnAddress());
}

const OpenatFn = *const fn (c_int, [*:0]const u8, c_int, c_uint) callconv(.c) c_int;
export fn openat(directory: c_int, path: [*:0]const u8, flags: c_int, file_mode: c_uint) c_int {
    const now = enter("openat", @returnAddress());
    defer leave(now);
    const hash = format.nameHash(std.mem.span(path));
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(OpenatFn, "openat")(directory, path, flags, file_mode);
            const saved = errnoGet();
            emit(.open, hash, result, errnoChange(before, saved), std.mem.span(path));
            return result;
        },
        .replay => return openReplay(hash),
        else => return real(OpenatFn, "openat")(directory, path, flags, file_mode),
    }
}

const FopenFn = *const fn ([*:0]const u8, [*:0]const u8) callconv(.c) ?*FILE;
export fn fopen(path: [*:0]const u8, open_mode: [*:0]const u8) ?*FILE {
    return fopenImpl(path, open_mode, @returnAddress());
}

fn fopenImpl(path: [*:0]const u8, open_mode: [*:0]const u8, return_address: usize) ?*FILE {
    const now = enter("fopen", return_address);
    defer leave(now);
    const hash = format.nameHash(std.mem.span(path));
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(FopenFn, "fopen")(path, open_mode);
            const saved = errnoGet();
            emit(.fopen, hash, @intFromBool(result != null), errnoChange(before, saved), std.mem.span(path));
            return result;
        },
        .replay => {
            const event = expect(.fopen, hash, true);
            // The file may be gone: reads from this stream are replayed anyway.
            if (event.result == 0) {
                _ = finish(event);
                return null;
            }
            return real(FopenFn, "fopen")("/dev/null", "r+");
        },
        else => return real(FopenFn, "fopen")(path, open_mode),
    }
}

export fn fopen64(path: [*:0]const u8, open_mode: [*:0]const u8) ?*FILE {
    return fopenImpl(path, open_mode, @returnAddress());
}

const FgetsFn = *const fn (?[*]u8, c_int, ?*FILE) callconv(.c) ?[*]u8;
export fn fgets(buffer: ?[*]u8, size: c_int, stream: ?*FILE) ?[*]u8 {
    const now = enter("fgets", @returnAddress());
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(FgetsFn, "fgets")(buffer, size, stream);
            const saved = errnoGet();
            const length: usize = if (result) |text| std.mem.len(@as([*:0]u8, @ptrCast(text))) + 1 else 0;
            emit(.fgets, 0, @intFromBool(result != null), errnoChange(before, saved), if (result) |text| text[0..length] else &.{});
            return result;
        },
        .replay => {
            const event = expect(.fgets, 0, false);
            if (event.result == 0) {
                _ = finish(event);
                return null;
            }
            copyPayload(buffer, event);
            return buffer;
        },
        else => return real(FgetsFn, "fgets")(buffer, size, stream),
    }
}

const FreadFn = *const fn (?*anyopaque, usize, usize, ?*FILE) callconv(.c) usize;
export fn fread(buffer: ?*anyopaque, size: usize, count: usize, stream: ?*FILE) usize {
    const now = enter("fread", @returnAddress());
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(FreadFn, "fread")(buffer, size, count, stream);
            const saved = errnoGet();
            emit(.fread, size, @intCast(result), errnoChange(before, saved), sliceOf(buffer, @intCast(result * size)));
            return result;
        },
        .replay => {
            const event = expect(.fread, size, true);
            copyPayload(buffer, event);
            return @intCast(finish(event));
        },
        else => return real(FreadFn, "fread")(buffer, size, count, stream),
    }
}

const FgetcFn = *const fn (?*FILE) callconv(.c) c_int;
fn fgetcLike(comptime name: [:0]const u8, stream: ?*FILE, return_address: usize) c_int {
    const now = enter(name, return_address);
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(FgetcFn, name)(stream);
            emit(.fgetc, 0, result, errnoChange(before, errnoGet()), &.{});
            return result;
        },
        .replay => return @intCast(finish(expect(.fgetc, 0, false))),
        else => return real(FgetcFn, name)(stream),
    }
}

export fn fgetc(stream: ?*FILE) c_int {
    return fgetcLike("fgetc", stream, @returnAddress());
}

export fn getc(stream: ?*FILE) c_int {
    return fgetcLike("getc", stream, @returnAddress());
}

const GetcharFn = *const fn () callconv(.c) c_int;
export fn getchar() c_int {
    const now = enter("getchar", @returnAddress());
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(GetcharFn, "getchar")();
            emit(.fgetc, 0, result, errnoChange(before, errnoGet()), &.{});
            return result;
        },
        .replay => return @intCast(finish(expect(.fgetc, 0, false))),
        else => return real(GetcharFn, "getchar")(),
    }
}

const GetlineFn = *const fn (*?[*]u8, *usize, ?*FILE) callconv(.c) isize;
export fn getline(line: *?[*]u8, capacity: *usize, stream: ?*FILE) isize {
    const now = enter("getline", @returnAddress());
    defer leave(now);
    switch (now) {
        .record => {
            const before = errnoGet();
            const result = real(GetlineFn, "getline")(line, capacity, stream);
            const saved = errnoGet();
            emit(.getline, 0, result, errnoChange(before, saved), sliceOf(line.*, if (result >= 0) result + 1 else 0));
            return result;
        },
        .replay => {
            const event = expect(.getline, 0, false);
            if (event.result >= 0) {
                // Grow with the program's own allocator (the sanitizer's, on replay).
                if (line.* == null or capacity.* < event.payload.len) {
                    const grown = realloc(line.*, event.payload.len) orelse {
                        errnoSet(12);
                        return -1;
                    };
                    line.* = @ptrCast(grown);
                    capacity.* = event.payload.len;
                }
                copyPayload(line.*, event);
            }
            return @intCast(finish(event));
        },
        else => return real(GetlineFn, "getline")(line, capacity, stream),
    }
}
