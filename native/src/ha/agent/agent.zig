//! The `ha` agent of one node: placeholder until the packet loop lands.
const std = @import("std");
const config_mod = @import("config.zig");

pub const Error = error{ NotSupported, InvalidConfig, PermissionDenied, InterfaceNotFound, Busy, SystemResources, Unexpected };

pub const Agent = struct {
    config: config_mod.Config,

    pub fn start(config: config_mod.Config, why: *[]const u8) Error!*Agent {
        _ = config;
        why.* = "the agent's packet loop is not built yet";
        return error.NotSupported;
    }

    /// Writes the status JSON object into `out`; returns its length.
    pub fn status(self: *Agent, out: []u8) error{BufferTooSmall}!usize {
        _ = self;
        _ = out;
        return error.BufferTooSmall;
    }

    pub fn fail(self: *Agent) void {
        _ = self;
    }

    pub fn stop(self: *Agent) void {
        _ = self;
    }
};
