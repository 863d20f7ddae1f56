//! A provider's health rules as data (`providers[].passive`,
//! `providers[].checks.active`): what `providers::checks` validates and
//! `health::rules` runs.

/// Passive ejection settings of a provider (`providers[].passive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passive {
    pub failures: u32,
    pub window_ms: u64,
    pub ejection_ms: u64,
}

/// What an active probe decides with (`providers[].checks.active`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRule {
    /// successes in a row that end an ejection
    pub healthy: u32,
    /// failures in a row that eject
    pub unhealthy: u32,
    /// how long a failing probe keeps the target out (renewed by each one)
    pub hold_ms: u64,
}
