//! Root of `zig build test`: pulls in every file that has test blocks.
test {
    _ = @import("common/status.zig");
    _ = @import("common/error_text.zig");
    _ = @import("perf/cpuid.zig");
    _ = @import("perf/linux_io.zig");
    _ = @import("perf/counter.zig");
    _ = @import("perf/msr.zig");
    _ = @import("perf/affinity.zig");
    _ = @import("perf/calibrate.zig");
    _ = @import("pecker/trace_format.zig");
    _ = @import("pecker/trace_spool.zig");
    _ = @import("ha/packet.zig");
    _ = @import("ha/bpf_loader.zig");
    _ = @import("ha/xsk.zig");
    _ = @import("ha/xdp_redirect.zig");
    _ = @import("ha/forwarder.zig");
    _ = @import("ha/agent/config.zig");
    _ = @import("ha/agent/wire.zig");
    _ = @import("ha/agent/input_log.zig");
    _ = @import("ha/agent/datapath.zig");
    _ = @import("ha/agent/sim.zig");
    _ = @import("ha/agent/agent.zig");
}
