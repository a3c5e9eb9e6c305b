//! Threads and the order of synchronization, for libreliab_interpose.so.
//!
//! Threads get logical ids in creation order (the trace stores events per
//! logical thread). Every synchronization object (mutex, condition
//! variable, rwlock) gets an epoch counter, keyed by its address: record
//! takes the next epoch while the thread holds the object (so a mutex's
//! epochs follow its acquisition order) and stores it in the event; replay
//! makes the thread wait until the object's epoch is the one before it, so
//! threads take locks in the recorded order whichever build runs (Castor's
//! scheme). The epochs come from one real execution, so waiting for them
//! cannot deadlock a replay that follows the trace; one that does not is
//! reported as divergence when no thread has made progress for a while.
//!
//! pthread_cond_wait is replayed as "unlock, wait for the recorded turn,
//! lock": a wakeup without a signal is allowed by POSIX, and the program's
//! state at that turn is what it was when the recorded wait returned.
const std = @import("std");
const linux = std.os.linux;
const format = @import("trace_format.zig");
const trace_spool = @import("trace_spool.zig");
const core = @import("interpose.zig");

const Kind = format.Kind;
const enter = core.enter;
const enterProgramCall = core.enterProgramCall;
const leave = core.leave;
const emit = core.emit;
const expect = core.expect;
const real = core.real;

/// Synchronization objects tracked at once (open addressing, never shrinks).
const objects_max: u32 = 4096;
/// Threads being started at once (a slot carries the logical id across).
const thread_slots_max: u32 = 256;
/// How long replay waits for its turn on an object while no thread makes
/// progress (no thread reaches a new event) before it reports divergence.
const turn_wait_ns_max: u64 = 5 * std.time.ns_per_s;
/// Yields before a waiting thread sleeps on the epoch's futex.
const turn_spins_max: u32 = 64;
const turn_sleep_ns: u32 = 10 * std.time.ns_per_ms;
/// How long a new thread waits, when recording, for its creator to store
/// the pthread_create event before it runs the program's start routine.
const announce_wait_ns_max: u64 = 5 * std.time.ns_per_s;

// ---------------------------------------------------------------- threads

var thread_next: std.atomic.Value(u32) = .init(1);

const StartFn = *const fn (?*anyopaque) callconv(.c) ?*anyopaque;
const ThreadSlot = struct {
    used: std.atomic.Value(bool) = .init(false),
    start: StartFn = undefined,
    argument: ?*anyopaque = null,
    logical: u32 = 0,
    /// Futex word: 1 once the creator has stored the pthread_create event
    /// (record), or when there is none to wait for (replay).
    announced: std.atomic.Value(u32) = .init(0),
};
var thread_slots: [thread_slots_max]ThreadSlot = @splat(.{});

fn trampoline(opaque_slot: ?*anyopaque) callconv(.c) ?*anyopaque {
    const slot: *ThreadSlot = @ptrCast(@alignCast(opaque_slot.?));
    const start = slot.start;
    const argument = slot.argument;
    const state = core.threadState();
    state.id = slot.logical;
    state.stack_top = @frameAddress();
    awaitAnnounced(slot);
    slot.used.store(false, .release);
    if (core.mode.load(.acquire) == .record) core.installAltStack();
    return start(argument);
}

/// Record: the creator stores the pthread_create event after the real call
/// returns, and the new thread may run (and the process crash, ending the
/// trace) before that; the trace would then hold the thread's events but
/// not its creation, and a replay's creator finds its trace ended while the
/// thread waits for a lock turn that never comes. So the new thread waits
/// here, bounded, until its creation is in the trace.
fn awaitAnnounced(slot: *ThreadSlot) void {
    if (slot.announced.load(.acquire) != 0) return;
    const deadline = trace_spool.monotonicNs() + announce_wait_ns_max;
    const pause: linux.timespec = .{ .sec = 0, .nsec = turn_sleep_ns };
    while (slot.announced.load(.acquire) == 0) {
        _ = linux.futex_4arg(&slot.announced.raw, .{ .cmd = .WAIT, .private = true }, 0, &pause);
        if (trace_spool.monotonicNs() > deadline) return;
    }
}

/// Lets the thread started from `slot` run its start routine.
fn announce(slot: *ThreadSlot) void {
    slot.announced.store(1, .release);
    _ = linux.futex_3arg(&slot.announced.raw, .{ .cmd = .WAKE, .private = true }, 1);
}

fn slotTake(start: StartFn, argument: ?*anyopaque, logical: u32, announced: bool) ?*ThreadSlot {
    for (&thread_slots) |*slot| {
        if (slot.used.cmpxchgStrong(false, true, .acq_rel, .acquire) == null) {
            slot.start = start;
            slot.argument = argument;
            slot.logical = logical;
            slot.announced.store(@intFromBool(announced), .release);
            return slot;
        }
    }
    return null;
}

const PthreadCreateFn = *const fn (*anyopaque, ?*const anyopaque, StartFn, ?*anyopaque) callconv(.c) c_int;
export fn pthread_create(handle: *anyopaque, attributes: ?*const anyopaque, start: StartFn, argument: ?*anyopaque) c_int {
    const now = enter("pthread_create", @returnAddress());
    defer leave(now);
    const create = real(PthreadCreateFn, "pthread_create");
    const logical: u32 = switch (now) {
        .record => thread_next.fetchAdd(1, .acq_rel),
        .replay => @intCast(expect(.pthread_create, 0, false).result),
        else => return create(handle, attributes, start, argument),
    };
    if (logical >= format.threads_max) return create(handle, attributes, start, argument);
    const slot = slotTake(start, argument, logical, now != .record) orelse
        return create(handle, attributes, start, argument);
    const result = create(handle, attributes, &trampoline, slot);
    if (result != 0) slot.used.store(false, .release);
    if (now == .record) {
        emit(.pthread_create, 0, logical, result, &.{});
        // After this the slot may already be free and taken again: a wake
        // then reaches the next thread early, which only rechecks its word.
        if (result == 0) announce(slot);
    }
    return result;
}

// ---------------------------------------------------------------- epochs

const Entry = struct {
    address: std.atomic.Value(usize) = .init(0),
    /// Epoch of the last operation on the object; a futex word on replay.
    epoch: std.atomic.Value(u32) = .init(0),
    /// Replay threads asleep on `epoch`.
    waiters: std.atomic.Value(u32) = .init(0),
};
var objects: [objects_max]Entry = @splat(.{});

fn objectEntry(address: usize) ?*Entry {
    return objectLookup(address, true);
}

/// The object's entry; with `insert`, a new one when it has none.
fn objectLookup(address: usize, insert: bool) ?*Entry {
    std.debug.assert(address != 0);
    var index: usize = std.hash.int(address) % objects_max;
    var probes: u32 = 0;
    while (probes < objects_max) : (probes += 1) {
        const entry = &objects[index];
        const current = entry.address.load(.acquire);
        if (current == address) return entry;
        if (current == 0) {
            if (!insert) return null;
            if (entry.address.cmpxchgStrong(0, address, .acq_rel, .acquire)) |other| {
                if (other == address) return entry;
            } else return entry;
        }
        index = (index + 1) % objects_max;
    }
    return null;
}

/// Record: the next epoch of the object (0 when the table is full: the
/// operation is then replayed without ordering).
fn nextEpoch(object: *anyopaque) u64 {
    const entry = objectEntry(@intFromPtr(object)) orelse return 0;
    return @as(u64, entry.epoch.fetchAdd(1, .acq_rel)) + 1;
}

/// A destroyed object's address may be reused for a new one: both record
/// and replay start its epochs again, at the same point of the program.
fn resetEpoch(object: *anyopaque) void {
    const now = core.currentMode();
    if (now != .record and now != .replay) return;
    const entry = objectLookup(@intFromPtr(object), false) orelse return;
    entry.epoch.store(0, .release);
}

/// Replay: waits until the object's previous recorded operation is done;
/// returns its entry (null for an unordered operation). Never forever.
fn awaitTurn(event: format.Event, object: *anyopaque) ?*Entry {
    if (event.arg == 0) return null;
    const entry = objectEntry(@intFromPtr(object)) orelse return null;
    const wanted: u32 = @truncate(event.arg - 1);
    var progress = core.position.load(.acquire);
    var deadline = trace_spool.monotonicNs() + turn_wait_ns_max;
    var spins: u32 = 0;
    while (true) {
        const current = entry.epoch.load(.acquire);
        if (current == wanted) return entry;
        if (spins < turn_spins_max) {
            spins += 1;
            _ = linux.sched_yield();
            continue;
        }
        _ = entry.waiters.fetchAdd(1, .acq_rel);
        const pause: linux.timespec = .{ .sec = 0, .nsec = turn_sleep_ns };
        _ = linux.futex_4arg(&entry.epoch.raw, .{ .cmd = .WAIT, .private = true }, current, &pause);
        _ = entry.waiters.fetchSub(1, .acq_rel);
        const now_position = core.position.load(.acquire);
        if (now_position != progress) {
            progress = now_position;
            deadline = trace_spool.monotonicNs() + turn_wait_ns_max;
        } else if (trace_spool.monotonicNs() > deadline) {
            core.diverge(event, now_position, @fromBackingInt(event.kind), event.arg, "lock-order-timeout");
        }
    }
}

/// Replay: this thread's operation is done; the next one may go.
fn takeTurn(entry: ?*Entry, event: format.Event) void {
    const done = entry orelse return;
    done.epoch.store(@truncate(event.arg), .release);
    if (done.waiters.load(.acquire) > 0) {
        _ = linux.futex_3arg(&done.epoch.raw, .{ .cmd = .WAKE, .private = true }, std.math.maxInt(i32));
    }
}

/// One acquisition (mutex or rwlock), recorded or replayed in epoch order.
/// `acquire` is the real call; `blocking` is the real call that waits, used
/// on replay when the recorded attempt succeeded (a trylock that found the
/// object free in the recording may find its previous owner still
/// releasing it in the replay).
fn acquisition(
    comptime kind: Kind,
    now: core.Mode,
    object: *anyopaque,
    acquire: anytype,
    blocking: anytype,
) c_int {
    switch (now) {
        .record => {
            const result = acquire.call();
            const epoch = if (result == 0) nextEpoch(object) else 0;
            emit(kind, epoch, result, 0, &.{});
            return result;
        },
        .replay => {
            const event = expect(kind, 0, false);
            if (event.result != 0) return @intCast(event.result);
            const entry = awaitTurn(event, object);
            _ = blocking.call();
            takeTurn(entry, event);
            return 0;
        },
        else => return acquire.call(),
    }
}

fn Call1(comptime name: [:0]const u8) type {
    return struct {
        object: *anyopaque,
        fn call(self: @This()) c_int {
            return real(*const fn (*anyopaque) callconv(.c) c_int, name)(self.object);
        }
    };
}

fn Call2(comptime name: [:0]const u8) type {
    return struct {
        object: *anyopaque,
        time: ?*const anyopaque,
        fn call(self: @This()) c_int {
            return real(*const fn (*anyopaque, ?*const anyopaque) callconv(.c) c_int, name)(self.object, self.time);
        }
    };
}

// ---------------------------------------------------------------- mutexes

export fn pthread_mutex_lock(mutex: *anyopaque) c_int {
    const now = enterProgramCall();
    defer leave(now);
    const lock: Call1("pthread_mutex_lock") = .{ .object = mutex };
    return acquisition(.mutex_lock, now, mutex, lock, lock);
}

export fn pthread_mutex_trylock(mutex: *anyopaque) c_int {
    const now = enterProgramCall();
    defer leave(now);
    const attempt: Call1("pthread_mutex_trylock") = .{ .object = mutex };
    const lock: Call1("pthread_mutex_lock") = .{ .object = mutex };
    return acquisition(.mutex_trylock, now, mutex, attempt, lock);
}

export fn pthread_mutex_timedlock(mutex: *anyopaque, deadline: ?*const anyopaque) c_int {
    const now = enterProgramCall();
    defer leave(now);
    const attempt: Call2("pthread_mutex_timedlock") = .{ .object = mutex, .time = deadline };
    const lock: Call1("pthread_mutex_lock") = .{ .object = mutex };
    return acquisition(.mutex_lock, now, mutex, attempt, lock);
}

export fn pthread_mutex_destroy(mutex: *anyopaque) c_int {
    resetEpoch(mutex);
    return real(*const fn (*anyopaque) callconv(.c) c_int, "pthread_mutex_destroy")(mutex);
}

// ---------------------------------------------------------------- rwlocks

export fn pthread_rwlock_rdlock(rwlock: *anyopaque) c_int {
    const now = enterProgramCall();
    defer leave(now);
    const lock: Call1("pthread_rwlock_rdlock") = .{ .object = rwlock };
    return acquisition(.rwlock_rdlock, now, rwlock, lock, lock);
}

export fn pthread_rwlock_wrlock(rwlock: *anyopaque) c_int {
    const now = enterProgramCall();
    defer leave(now);
    const lock: Call1("pthread_rwlock_wrlock") = .{ .object = rwlock };
    return acquisition(.rwlock_wrlock, now, rwlock, lock, lock);
}

export fn pthread_rwlock_tryrdlock(rwlock: *anyopaque) c_int {
    const now = enterProgramCall();
    defer leave(now);
    const attempt: Call1("pthread_rwlock_tryrdlock") = .{ .object = rwlock };
    const lock: Call1("pthread_rwlock_rdlock") = .{ .object = rwlock };
    return acquisition(.rwlock_tryrdlock, now, rwlock, attempt, lock);
}

export fn pthread_rwlock_trywrlock(rwlock: *anyopaque) c_int {
    const now = enterProgramCall();
    defer leave(now);
    const attempt: Call1("pthread_rwlock_trywrlock") = .{ .object = rwlock };
    const lock: Call1("pthread_rwlock_wrlock") = .{ .object = rwlock };
    return acquisition(.rwlock_trywrlock, now, rwlock, attempt, lock);
}

export fn pthread_rwlock_destroy(rwlock: *anyopaque) c_int {
    resetEpoch(rwlock);
    return real(*const fn (*anyopaque) callconv(.c) c_int, "pthread_rwlock_destroy")(rwlock);
}

// ---------------------------------------------------------------- conditions

extern "c" fn dlvsym(handle: ?*anyopaque, symbol: [*:0]const u8, version: [*:0]const u8) ?*anyopaque;

/// glibc keeps an old pthread_cond_* ABI (GLIBC_2.2.5) beside the current
/// one (GLIBC_2.3.2), and a plain dlsym may return the old one: ask for the
/// current version by name.
fn realCondition(comptime T: type, comptime name: [:0]const u8) T {
    const Cache = struct {
        const symbol = name;
        const Function = T;
        var pointer: std.atomic.Value(?*anyopaque) = .init(null);
    };
    var pointer = Cache.pointer.load(.acquire);
    if (pointer == null) {
        pointer = dlvsym(core.RTLD_NEXT, name.ptr, "GLIBC_2.3.2");
        if (pointer == null) return real(T, name);
        Cache.pointer.store(pointer, .release);
    }
    return @ptrCast(@alignCast(pointer));
}

const UnlockFn = *const fn (*anyopaque) callconv(.c) c_int;

/// A wait on `condition` that returns holding `mutex`: `wait` is the real call.
fn conditionWait(now: core.Mode, mutex: *anyopaque, wait: anytype) c_int {
    switch (now) {
        .record => {
            const result = wait.call();
            // The wait returns with the mutex held (also on ETIMEDOUT).
            const epoch = if (result == 0 or result == @backingInt(linux.E.TIMEDOUT)) nextEpoch(mutex) else 0;
            emit(.cond_wait, epoch, result, 0, &.{});
            return result;
        },
        .replay => {
            const event = expect(.cond_wait, 0, false);
            if (event.arg == 0) return @intCast(event.result);
            _ = real(UnlockFn, "pthread_mutex_unlock")(mutex);
            const entry = awaitTurn(event, mutex);
            _ = real(*const fn (*anyopaque) callconv(.c) c_int, "pthread_mutex_lock")(mutex);
            takeTurn(entry, event);
            return @intCast(event.result);
        },
        else => return wait.call(),
    }
}

const CondWait = struct {
    condition: *anyopaque,
    mutex: *anyopaque,
    fn call(self: CondWait) c_int {
        const Fn = *const fn (*anyopaque, *anyopaque) callconv(.c) c_int;
        return realCondition(Fn, "pthread_cond_wait")(self.condition, self.mutex);
    }
};

export fn pthread_cond_wait(condition: *anyopaque, mutex: *anyopaque) c_int {
    const now = enterProgramCall();
    defer leave(now);
    return conditionWait(now, mutex, CondWait{ .condition = condition, .mutex = mutex });
}

const CondTimedwait = struct {
    condition: *anyopaque,
    mutex: *anyopaque,
    deadline: ?*const anyopaque,
    fn call(self: CondTimedwait) c_int {
        const Fn = *const fn (*anyopaque, *anyopaque, ?*const anyopaque) callconv(.c) c_int;
        return realCondition(Fn, "pthread_cond_timedwait")(self.condition, self.mutex, self.deadline);
    }
};

export fn pthread_cond_timedwait(condition: *anyopaque, mutex: *anyopaque, deadline: ?*const anyopaque) c_int {
    const now = enterProgramCall();
    defer leave(now);
    return conditionWait(now, mutex, CondTimedwait{ .condition = condition, .mutex = mutex, .deadline = deadline });
}

const CondClockwait = struct {
    condition: *anyopaque,
    mutex: *anyopaque,
    clock: c_int,
    deadline: ?*const anyopaque,
    fn call(self: CondClockwait) c_int {
        // Newer than the versioned pair (glibc 2.30): one version only.
        const Fn = *const fn (*anyopaque, *anyopaque, c_int, ?*const anyopaque) callconv(.c) c_int;
        return real(Fn, "pthread_cond_clockwait")(self.condition, self.mutex, self.clock, self.deadline);
    }
};

export fn pthread_cond_clockwait(condition: *anyopaque, mutex: *anyopaque, clock: c_int, deadline: ?*const anyopaque) c_int {
    const now = enterProgramCall();
    defer leave(now);
    return conditionWait(now, mutex, CondClockwait{ .condition = condition, .mutex = mutex, .clock = clock, .deadline = deadline });
}

/// pthread_cond_signal and _broadcast: ordered among the condition's
/// operations. On replay the real call runs too (it wakes nobody: replayed
/// waits do not sleep on the condition).
fn conditionWake(comptime kind: Kind, comptime name: [:0]const u8, now: core.Mode, condition: *anyopaque) c_int {
    const Fn = *const fn (*anyopaque) callconv(.c) c_int;
    switch (now) {
        .record => {
            const result = realCondition(Fn, name)(condition);
            emit(kind, nextEpoch(condition), result, 0, &.{});
            return result;
        },
        .replay => {
            const event = expect(kind, 0, false);
            const entry = awaitTurn(event, condition);
            _ = realCondition(Fn, name)(condition);
            takeTurn(entry, event);
            return @intCast(event.result);
        },
        else => return realCondition(Fn, name)(condition),
    }
}

export fn pthread_cond_signal(condition: *anyopaque) c_int {
    const now = enterProgramCall();
    defer leave(now);
    return conditionWake(.cond_signal, "pthread_cond_signal", now, condition);
}

export fn pthread_cond_broadcast(condition: *anyopaque) c_int {
    const now = enterProgramCall();
    defer leave(now);
    return conditionWake(.cond_broadcast, "pthread_cond_broadcast", now, condition);
}

export fn pthread_cond_destroy(condition: *anyopaque) c_int {
    resetEpoch(condition);
    const Fn = *const fn (*anyopaque) callconv(.c) c_int;
    return realCondition(Fn, "pthread_cond_destroy")(condition);
}
