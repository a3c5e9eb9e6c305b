//! Builds libreliab.so (the native core, C ABI, loaded by lib/native.ts) and
//! its unit tests. ReleaseSafe is the default: assertions stay on in shipped
//! code, because under ReleaseFast a failed assert is undefined behaviour.
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    // Not standardOptimizeOption: plain `zig build` must give ReleaseSafe, and
    // -Doptimize=debug still works for debugging.
    const optimize = b.option(std.builtin.Optimize, "optimize", "safe (default), fast, small or debug") orelse .safe;

    const root_module = b.createModule(.{
        .root_source_file = b.path("native/src/exports.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    const lib = b.addLibrary(.{
        .linkage = .dynamic,
        .name = "reliab",
        .root_module = root_module,
    });
    b.installArtifact(lib);

    // pecker: the LD_PRELOAD recorder/replayer. A library of its own because it
    // exports libc names (read, fopen, ...) that must never be in libreliab.so.
    const interpose_module = b.createModule(.{
        .root_source_file = b.path("native/src/pecker/interpose.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    const interpose = b.addLibrary(.{
        .linkage = .dynamic,
        .name = "reliab_interpose",
        .root_module = interpose_module,
    });
    interpose.setVersionScript(b.path("native/src/pecker/interpose.map"));
    b.installArtifact(interpose);

    const test_module = b.createModule(.{
        .root_source_file = b.path("native/src/all_tests.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    const tests = b.addTest(.{ .root_module = test_module });
    const run_tests = b.addRunArtifact(tests);
    // Always run (never "cached"), so every test run reports its count.
    run_tests.has_side_effects = true;
    const test_step = b.step("test", "Run the Zig unit tests of the native core");
    test_step.dependOn(&run_tests.step);
}
