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

/// Frames one AF_XDP UMEM may have (ha/xsk.zig; 64 Ki frames of 4 KiB = 256 MiB).
pub const ha_xsk_frames_max: u32 = 1 << 16;
/// Entries of one AF_XDP ring at the most (fill, completion, rx, tx).
pub const ha_xsk_ring_entries_max: u32 = 1 << 15;
/// Frames one receive call hands out at the most (the forwarder's batch).
pub const ha_xsk_batch_max: u32 = 64;
/// AF_XDP forwarders one process may run at once (ha; a fixed slot table).
pub const ha_forwarders_max: u32 = 4;
/// Bytes a self-sized forwarder config may claim (room to grow).
pub const ha_forwarder_config_bytes_max: u32 = 256;
