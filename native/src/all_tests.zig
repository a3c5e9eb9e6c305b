//! Root of `zig build test`: pulls in every file that has test blocks.
test {
    _ = @import("common/status.zig");
    _ = @import("common/error_text.zig");
    _ = @import("perf/cpuid.zig");
}
