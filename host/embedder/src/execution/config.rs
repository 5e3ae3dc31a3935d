//! How messages execute: limits and tracking.

use memory_tracker::TrackingMode;

/// How messages execute. The defaults are the IC's limits.
#[derive(Clone, Debug)]
pub struct ExecutionConfig {
    /// How faults on canister memory are served.
    pub tracking: TrackingMode,
    /// Longest run of pages one fault may map.
    pub prefetch_pages: usize,
    /// Instructions an update, timer or heartbeat may execute.
    pub update_instruction_limit: u64,
    /// Instructions a query or inspect_message may execute.
    pub query_instruction_limit: u64,
    /// Instructions an install or upgrade hook may execute.
    pub install_instruction_limit: u64,
    /// Instructions a message may run in one round (the IC's slice): a
    /// longer update, timer or heartbeat runs a slice per round.
    pub slice_instructions: u64,
    /// `memory.grow` of a 32-bit memory beyond this returns -1.
    pub heap_limit_bytes: u64,
    /// `memory.grow` of a 64-bit memory (wasm64) beyond this returns -1; at
    /// most 18 GiB (the address space reserved for a 64-bit memory).
    pub wasm64_heap_limit_bytes: u64,
    /// `stable_grow` beyond this returns -1.
    pub stable_limit_bytes: u64,
    /// Largest module accepted for install.
    pub max_module_bytes: usize,
    /// Keep a canister's instance between updates (see the module docs).
    pub reuse_instances: bool,
    /// What `ic0.canister_cycle_balance` reports: this host has no cycles
    /// accounting.
    pub cycle_balance: u128,
}

impl ExecutionConfig {
    /// The heap limit for a module whose memory is 64-bit if `wide`.
    pub fn heap_limit(&self, wide: bool) -> u64 {
        if wide { self.wasm64_heap_limit_bytes } else { self.heap_limit_bytes }
    }
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        ExecutionConfig {
            tracking: TrackingMode::default(),
            prefetch_pages: 128,
            update_instruction_limit: 40_000_000_000,
            query_instruction_limit: 5_000_000_000,
            install_instruction_limit: 300_000_000_000,
            slice_instructions: 2_000_000_000,
            heap_limit_bytes: 4 << 30,
            // The IC's published wasm64 heap limit.
            wasm64_heap_limit_bytes: 6 << 30,
            stable_limit_bytes: 4 << 30,
            max_module_bytes: 100 << 20,
            reuse_instances: true,
            cycle_balance: 100_000_000_000_000,
        }
    }
}
