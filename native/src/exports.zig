//! The only file that exports symbols: thin shims over the areas. Names are
//! reliab_<area>_<noun>_<verb>; lib/native.ts mirrors this table and a unit
//! test (tests/unit/native_symbols_test.ts) fails if the two differ.
const std = @import("std");
const constants = @import("common/constants.zig");
const status = @import("common/status.zig");
const error_text = @import("common/error_text.zig");
const cpuid = @import("perf/cpuid.zig");

const Status = status.Status;

/// Sizes of the structs that cross the ABI, in a fixed order that
/// lib/native.ts checks against its own decoders at load time.
pub const Layout = extern struct {
    size: u32, // of this struct, so fields can be appended
    cpuid_registers: u32,
};

export fn reliab_abi_version() u32 {
    return constants.abi_version;
}

export fn reliab_abi_layout(out: ?*Layout) i32 {
    const layout = out orelse return Status.invalid_argument.code();
    layout.* = .{ .size = @sizeOf(Layout), .cpuid_registers = @sizeOf(cpuid.Registers) };
    return Status.ok.code();
}

/// CPUID leaf/subleaf into out (16 bytes: eax, ebx, ecx, edx).
export fn reliab_perf_cpuid_query(leaf: u32, subleaf: u32, out: ?*cpuid.Registers) i32 {
    const registers = out orelse return Status.invalid_argument.code();
    if (!cpuid.supported) return Status.not_supported.code();
    registers.* = cpuid.query(leaf, subleaf);
    return Status.ok.code();
}
