//! Named limits of the native core. Every loop, buffer and count is bounded
//! by one of these, so that a bad argument cannot make the core run away.

/// ABI version: bump on any change to an exported signature, struct or status.
pub const abi_version: u32 = 1;

/// Longest detail text an error buffer holds.
pub const error_text_max: u32 = 256;
/// CPUs a mask may describe (matches the kernel's CONFIG_NR_CPUS upper range).
pub const cpus_max: u32 = 8192;
/// Iterations of a calibration loop at the most.
pub const calibrate_iterations_max: u64 = 1 << 32;
/// Bytes a calibration buffer may have.
pub const calibrate_bytes_max: u64 = 1 << 30;
/// Bytes a self-sized calibration options struct may claim (room to grow).
pub const calibrate_options_bytes_max: u32 = 256;

/// XDP frame counters one process may hold at once (ha; a fixed slot table).
pub const ha_xdp_counters_max: u32 = 16;
