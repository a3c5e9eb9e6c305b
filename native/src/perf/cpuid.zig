//! CPUID, executed directly (no /dev/cpu/N/cpuid needed). Each CPUID traps to
//! the hypervisor on a KVM guest (~3.7 us measured here), so callers read each
//! leaf once.
const std = @import("std");
const builtin = @import("builtin");

pub const Registers = extern struct { eax: u32, ebx: u32, ecx: u32, edx: u32 };

comptime {
    std.debug.assert(@sizeOf(Registers) == 16);
}

pub const supported = builtin.cpu.arch == .x86_64 or builtin.cpu.arch == .x86;

pub fn query(leaf: u32, subleaf: u32) Registers {
    if (!supported) @compileError("cpuid needs x86");
    var eax: u32 = undefined;
    var ebx: u32 = undefined;
    var ecx: u32 = undefined;
    var edx: u32 = undefined;
    asm volatile ("cpuid"
        : [eax] "={eax}" (eax),
          [ebx] "={ebx}" (ebx),
          [ecx] "={ecx}" (ecx),
          [edx] "={edx}" (edx),
        : [leaf] "{eax}" (leaf),
          [subleaf] "{ecx}" (subleaf),
    );
    return .{ .eax = eax, .ebx = ebx, .ecx = ecx, .edx = edx };
}

test "cpuid leaf 0 names a vendor and a max leaf" {
    if (!supported) return error.SkipZigTest;
    const r = query(0, 0);
    try std.testing.expect(r.eax >= 1);
    var vendor: [12]u8 = undefined;
    std.mem.writeInt(u32, vendor[0..4], r.ebx, .little);
    std.mem.writeInt(u32, vendor[4..8], r.edx, .little);
    std.mem.writeInt(u32, vendor[8..12], r.ecx, .little);
    for (vendor) |c| try std.testing.expect(std.ascii.isPrint(c));
}
