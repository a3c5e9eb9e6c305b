//! The only file that exports symbols: thin shims over the areas. Names are
//! reliab_<area>_<noun>_<verb>; lib/native.ts mirrors this table and a unit
//! test (tests/unit/native_symbols_test.ts) fails if the two differ.
const std = @import("std");
const constants = @import("common/constants.zig");
const status = @import("common/status.zig");
const error_text = @import("common/error_text.zig");
const cpuid = @import("perf/cpuid.zig");
const perf_counter = @import("perf/counter.zig");
const perf_msr = @import("perf/msr.zig");
const perf_affinity = @import("perf/affinity.zig");
const perf_calibrate = @import("perf/calibrate.zig");
const bpf_loader = @import("ha/bpf_loader.zig");
const ha_forwarder = @import("ha/forwarder.zig");
const ha_agent = @import("ha/agent/agent.zig");
const ha_config = @import("ha/agent/config.zig");

const Status = status.Status;

/// Sizes of the structs that cross the ABI, in a fixed order that
/// lib/native.ts checks against its own decoders at load time.
pub const Layout = extern struct {
    size: u32, // of this struct, so fields can be appended
    cpuid_registers: u32,
    perf_calibrate_options: u32,
    ha_forwarder_config: u32,
    ha_forwarder_stats: u32,
};

export fn reliab_abi_version() u32 {
    return constants.abi_version;
}

export fn reliab_abi_layout(out: ?*Layout) i32 {
    const layout = out orelse return Status.invalid_argument.code();
    layout.* = .{
        .size = @sizeOf(Layout),
        .cpuid_registers = @sizeOf(cpuid.Registers),
        .perf_calibrate_options = @sizeOf(perf_calibrate.Options),
        .ha_forwarder_config = @sizeOf(ha_forwarder.ExternConfig),
        .ha_forwarder_stats = @sizeOf(ha_forwarder.Stats),
    };
    return Status.ok.code();
}

/// CPUID leaf/subleaf into out (16 bytes: eax, ebx, ecx, edx).
export fn reliab_perf_cpuid_query(leaf: u32, subleaf: u32, out: ?*cpuid.Registers) i32 {
    const registers = out orelse return Status.invalid_argument.code();
    if (!cpuid.supported) return Status.not_supported.code();
    registers.* = cpuid.query(leaf, subleaf);
    return Status.ok.code();
}

/// Opens perf counter `kind` (perf/counter.zig Kind) on the calling thread,
/// runs a small fixed workload and stores the count in `out`. A counter this
/// machine lacks returns not_supported (permission_denied under
/// perf_event_paranoid) with the reason in `err_buf`.
export fn reliab_perf_counter_probe(kind: u32, out: ?*u64, err_buf: ?[*]u8, err_len: u32) i32 {
    const count = out orelse return Status.invalid_argument.code();
    if (kind >= perf_counter.kind_count) return Status.invalid_argument.code();
    count.* = perf_counter.probe(@fromBackingInt(@intCast(kind)), err_buf, err_len) catch |err| {
        return switch (err) {
            error.NotSupported => Status.not_supported.code(),
            error.PermissionDenied => Status.permission_denied.code(),
            error.Busy => Status.busy.code(),
            error.SystemResources => Status.out_of_memory.code(),
            error.Unexpected => Status.io_error.code(),
        };
    };
    return Status.ok.code();
}

/// Reads MSR `register` of CPU `cpu` through /dev/cpu/N/msr into `out`.
/// Without the msr driver (or the CPU) it returns not_found with the reason.
export fn reliab_perf_msr_read(
    cpu: u32,
    register: u32,
    out: ?*u64,
    err_buf: ?[*]u8,
    err_len: u32,
) i32 {
    const value = out orelse return Status.invalid_argument.code();
    if (cpu >= constants.cpus_max) return Status.invalid_argument.code();
    value.* = perf_msr.read(cpu, register, err_buf, err_len) catch |err| {
        return switch (err) {
            error.NotFound => Status.not_found.code(),
            error.NotSupported => Status.not_supported.code(),
            error.PermissionDenied => Status.permission_denied.code(),
            error.Unexpected => Status.io_error.code(),
        };
    };
    return Status.ok.code();
}

/// Affinity bitmask of `pid` (0 = calling thread) into `mask_buf`; `out_len`
/// receives the bytes the kernel wrote. `mask_len` must be a multiple of 8
/// and at most cpus_max / 8; a mask too short for the kernel's returns
/// buffer_too_small.
export fn reliab_perf_affinity_get(pid: i32, mask_buf: ?[*]u8, mask_len: u32, out_len: ?*u32) i32 {
    const mask = mask_buf orelse return Status.invalid_argument.code();
    const written = out_len orelse return Status.invalid_argument.code();
    if (pid < 0 or mask_len > perf_affinity.mask_bytes_max) return Status.invalid_argument.code();
    written.* = perf_affinity.get(pid, mask[0..mask_len]) catch |err| {
        return switch (err) {
            error.BufferTooSmall => Status.buffer_too_small.code(),
            error.NotFound => Status.not_found.code(),
            error.PermissionDenied => Status.permission_denied.code(),
            error.Unexpected => Status.io_error.code(),
        };
    };
    return Status.ok.code();
}

/// Runs one repetition of calibration `kind` (perf/calibrate.zig Kind) and
/// stores its one number in `out`. `options` is self-sized (its first u32 is
/// the bytes the caller filled; null = defaults). Takes 1–50 ms, so
/// lib/native.ts declares it nonblocking; the memory kinds allocate their
/// buffer here and free it before returning.
export fn reliab_perf_calibrate_run(
    kind: u32,
    options: ?[*]const u8,
    out: ?*f64,
    err_buf: ?[*]u8,
    err_len: u32,
) i32 {
    const value = out orelse return Status.invalid_argument.code();
    if (kind >= perf_calibrate.kind_count) return Status.invalid_argument.code();
    var resolved: perf_calibrate.Options = .{};
    if (options) |bytes| {
        const size = std.mem.readInt(u32, bytes[0..4], .little);
        if (size < 4) return Status.invalid_argument.code();
        if (size > constants.calibrate_options_bytes_max) return Status.invalid_argument.code();
        const filled = @min(size, @sizeOf(perf_calibrate.Options));
        @memcpy(std.mem.asBytes(&resolved)[0..filled], bytes[0..filled]);
    }
    // page_allocator: each memory repetition maps and unmaps its own 64 MiB.
    const gpa = std.heap.page_allocator;
    value.* = perf_calibrate.run(gpa, @fromBackingInt(@intCast(kind)), resolved, err_buf, err_len) catch |err| {
        return switch (err) {
            error.InvalidArgument => Status.invalid_argument.code(),
            error.OutOfMemory => Status.out_of_memory.code(),
            error.NotSupported => Status.not_supported.code(),
        };
    };
    return Status.ok.code();
}

// ---------------------------------------------------------------- ha

/// The error name and the verifier's first words (from `log`) into
/// `err_buf`, and the status for an XDP or AF_XDP setup failure.
fn xdpFailure(err: anyerror, log: []const u8, err_buf: ?[*]u8, err_len: u32) i32 {
    const detail = std.mem.sliceTo(log, 0);
    error_text.write(err_buf, err_len, "{s}{s}{s}", .{
        @errorName(err),
        if (detail.len > 0) ": " else "",
        detail[0..@min(detail.len, 160)],
    });
    return switch (err) {
        error.PermissionDenied => Status.permission_denied.code(),
        error.NotSupported, error.ProgramRejected => Status.not_supported.code(),
        error.InterfaceNotFound => Status.not_found.code(),
        error.Busy => Status.busy.code(),
        error.SystemResources => Status.out_of_memory.code(),
        error.RingFull => Status.internal.code(),
        else => Status.io_error.code(),
    };
}

/// XDP counters live in a fixed table and cross the ABI as slot numbers, not
/// pointers: Deno's path-scoped --allow-ffi forbids making pointers from
/// numbers, and a slot can be range-checked where a pointer cannot.
var xdp_counters: [constants.ha_xdp_counters_max]bpf_loader.XDPCounter = undefined;
var xdp_counter_used: [constants.ha_xdp_counters_max]std.atomic.Value(bool) =
    @splat(std.atomic.Value(bool).init(false));

fn xdpCounterSlot(slot: u32) ?*bpf_loader.XDPCounter {
    if (slot >= constants.ha_xdp_counters_max) return null;
    if (!xdp_counter_used[slot].load(.acquire)) return null;
    return &xdp_counters[slot];
}

/// Loads the XDP frame counter and attaches it to `ifindex` of the calling
/// thread's network namespace (mode 0 generic, 1 native). On success `out`
/// receives the slot for _read and _destroy; destroying it detaches.
export fn reliab_ha_xdpcounter_create(
    ifindex: u32,
    mode: u32,
    out: ?*u32,
    err_buf: ?[*]u8,
    err_len: u32,
) i32 {
    const slot_out = out orelse return Status.invalid_argument.code();
    if (ifindex == 0 or mode > 1) return Status.invalid_argument.code();
    const slot: u32 = for (&xdp_counter_used, 0..) |*used, i| {
        if (used.cmpxchgStrong(false, true, .acquire, .monotonic) == null) break @intCast(i);
    } else {
        error_text.write(err_buf, err_len, "all {d} XDP counter slots in use", .{constants.ha_xdp_counters_max});
        return Status.busy.code();
    };
    var log: [1024]u8 = @splat(0);
    xdp_counters[slot] = bpf_loader.XDPCounter.attach(ifindex, @fromBackingInt(@intCast(mode)), &log) catch |err| {
        xdp_counter_used[slot].store(false, .release);
        return xdpFailure(err, &log, err_buf, err_len);
    };
    slot_out.* = slot;
    return Status.ok.code();
}

/// Frames the counter in `slot` saw since it was attached.
export fn reliab_ha_xdpcounter_read(slot: u32, out: ?*u64) i32 {
    const counter = xdpCounterSlot(slot) orelse return Status.invalid_argument.code();
    const packets = out orelse return Status.invalid_argument.code();
    packets.* = counter.packets() catch return Status.io_error.code();
    return Status.ok.code();
}

/// Detaches the counter in `slot` and frees the slot.
export fn reliab_ha_xdpcounter_destroy(slot: u32) i32 {
    const counter = xdpCounterSlot(slot) orelse return Status.invalid_argument.code();
    counter.detach();
    xdp_counter_used[slot].store(false, .release);
    return Status.ok.code();
}

// ---------------------------------------------------------------- ha forwarder

/// AF_XDP forwarders by slot (slots, not pointers: see the XDP counters).
/// A slot is free, busy (starting or stopping, on a Deno worker thread) or
/// running; only a running slot answers _stats and _stop.
var forwarders: [constants.ha_forwarders_max]ha_forwarder.Forwarder = undefined;
var forwarder_states: [constants.ha_forwarders_max]std.atomic.Value(ForwarderState) =
    @splat(std.atomic.Value(ForwarderState).init(.free));
const ForwarderState = enum(u8) { free, busy, running };

/// Starts an AF_XDP forwarder between two interfaces of the calling thread's
/// network namespace. `config` is a self-sized ha/forwarder.zig ExternConfig
/// (its first u32 is the bytes the caller filled). Takes milliseconds (UMEM
/// mapping, two program loads), so lib/native.ts declares it nonblocking. On
/// success `out` receives the slot for _stats and _stop.
export fn reliab_ha_forwarder_start(
    config: ?[*]const u8,
    out: ?*u32,
    err_buf: ?[*]u8,
    err_len: u32,
) i32 {
    const bytes = config orelse return Status.invalid_argument.code();
    const slot_out = out orelse return Status.invalid_argument.code();
    const size = std.mem.readInt(u32, bytes[0..4], .little);
    if (size < 4 or size > constants.ha_forwarder_config_bytes_max) return Status.invalid_argument.code();
    var raw = std.mem.zeroes(ha_forwarder.ExternConfig);
    const filled = @min(size, @sizeOf(ha_forwarder.ExternConfig));
    @memcpy(std.mem.asBytes(&raw)[0..filled], bytes[0..filled]);
    const resolved = raw.resolve() orelse {
        error_text.write(err_buf, err_len, "invalid forwarder configuration", .{});
        return Status.invalid_argument.code();
    };
    const slot: u32 = for (&forwarder_states, 0..) |*state, i| {
        if (state.cmpxchgStrong(.free, .busy, .acquire, .monotonic) == null) break @intCast(i);
    } else {
        error_text.write(err_buf, err_len, "all {d} forwarder slots in use", .{constants.ha_forwarders_max});
        return Status.busy.code();
    };
    var log: [1024]u8 = @splat(0);
    forwarders[slot].start(resolved, &log) catch |err| {
        forwarder_states[slot].store(.free, .release);
        return xdpFailure(err, &log, err_buf, err_len);
    };
    forwarder_states[slot].store(.running, .release);
    slot_out.* = slot;
    return Status.ok.code();
}

/// Copies the counters of the forwarder in `slot` into `out` (ha/forwarder.zig Stats).
export fn reliab_ha_forwarder_stats(slot: u32, out: ?*ha_forwarder.Stats) i32 {
    const stats = out orelse return Status.invalid_argument.code();
    if (slot >= constants.ha_forwarders_max) return Status.invalid_argument.code();
    if (forwarder_states[slot].load(.acquire) != .running) return Status.invalid_argument.code();
    stats.* = forwarders[slot].stats();
    return Status.ok.code();
}

/// Stops the forwarder in `slot`: joins its thread, detaches both XDP
/// programs, closes both sockets, frees the slot. Nonblocking in native.ts.
export fn reliab_ha_forwarder_stop(slot: u32) i32 {
    if (slot >= constants.ha_forwarders_max) return Status.invalid_argument.code();
    if (forwarder_states[slot].cmpxchgStrong(.running, .busy, .acquire, .monotonic) != null) {
        return Status.invalid_argument.code();
    }
    forwarders[slot].stop();
    forwarder_states[slot].store(.free, .release);
    return Status.ok.code();
}

// ---------------------------------------------------------------- ha agent

/// Running agents, by slot (one per `reliab ha up` process in practice).
var agents: [4]?*ha_agent.Agent = @splat(null);

fn agentSlot(slot: u32) ?*ha_agent.Agent {
    if (slot >= agents.len) return null;
    return agents[slot];
}

/// Starts the agent described by the JSON `config` (native/src/ha/agent/config.zig):
/// attaches its XDP programs, opens its AF_XDP and control sockets and starts
/// its packet thread. On success `out` receives the slot.
export fn reliab_ha_agent_start(
    config_json: ?[*]const u8,
    config_len: u32,
    out: ?*u32,
    err_buf: ?[*]u8,
    err_len: u32,
) i32 {
    const json = config_json orelse return Status.invalid_argument.code();
    const slot_out = out orelse return Status.invalid_argument.code();
    const slot: u32 = for (agents, 0..) |agent, i| {
        if (agent == null) break @intCast(i);
    } else {
        error_text.write(err_buf, err_len, "all {d} agent slots in use", .{agents.len});
        return Status.busy.code();
    };
    var why: []const u8 = "";
    const config = ha_config.parse(json[0..config_len], &why) catch {
        error_text.write(err_buf, err_len, "{s}", .{why});
        return Status.invalid_argument.code();
    };
    const agent = ha_agent.Agent.start(config, &why) catch |err| {
        error_text.write(err_buf, err_len, "{s}", .{why});
        return switch (err) {
            error.InvalidConfig => Status.invalid_argument.code(),
            error.PermissionDenied => Status.permission_denied.code(),
            error.NotSupported => Status.not_supported.code(),
            error.InterfaceNotFound => Status.not_found.code(),
            error.Busy => Status.busy.code(),
            error.SystemResources => Status.out_of_memory.code(),
            error.Unexpected => Status.io_error.code(),
        };
    };
    agents[slot] = agent;
    slot_out.* = slot;
    return Status.ok.code();
}

/// Writes the agent's status (one JSON object) into `out_buf`; `out_len`
/// receives its length.
export fn reliab_ha_agent_status(slot: u32, out_buf: ?[*]u8, out_cap: u32, out_len: ?*u32) i32 {
    const agent = agentSlot(slot) orelse return Status.invalid_argument.code();
    const buf = out_buf orelse return Status.invalid_argument.code();
    const len = out_len orelse return Status.invalid_argument.code();
    len.* = @intCast(agent.status(buf[0..out_cap]) catch return Status.buffer_too_small.code());
    return Status.ok.code();
}

/// Makes the agent fail now, as if its node died (the `ha fail` test hook).
export fn reliab_ha_agent_fail(slot: u32) i32 {
    const agent = agentSlot(slot) orelse return Status.invalid_argument.code();
    agent.fail();
    return Status.ok.code();
}

/// Hands every connection over to node `to` (`ha migrate --to`): a primary
/// does it, a replica asks its primary to. The datapath refuses (and
/// counts) a target that is not a live replica of the group.
export fn reliab_ha_agent_migrate(slot: u32, to: u32) i32 {
    const agent = agentSlot(slot) orelse return Status.invalid_argument.code();
    if (to == 0 or to > 255) return Status.invalid_argument.code();
    agent.migrate(@intCast(to));
    return Status.ok.code();
}

/// Hands the connection from `client_ip`:`client_port` (host order; any VIP
/// port) alone to node `to` (`ha migrate --to --conn`). The outcome shows in
/// the status (`conn_migration`): only the node serving it can hand it.
export fn reliab_ha_agent_migrate_conn(slot: u32, to: u32, client_ip: u32, client_port: u32) i32 {
    const agent = agentSlot(slot) orelse return Status.invalid_argument.code();
    if (to == 0 or to > 255 or client_port == 0 or client_port > 65535) return Status.invalid_argument.code();
    agent.migrateConn(@intCast(to), client_ip, @intCast(client_port));
    return Status.ok.code();
}

/// Stops the agent: joins its thread, detaches its XDP programs, closes everything.
export fn reliab_ha_agent_stop(slot: u32) i32 {
    const agent = agentSlot(slot) orelse return Status.invalid_argument.code();
    agent.stop();
    agents[slot] = null;
    return Status.ok.code();
}
