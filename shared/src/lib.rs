//! Plain data types shared by the gateway crates: the config file schema, the
//! `ai_log` record, token usage, the provider APIs' wire types the protocol seam
//! and the mock upstreams share, and the OpenAI-shaped error body. No runtime here.

pub mod ai_log;
pub mod config;
pub mod env;
pub mod error;
pub mod ledger;
pub mod money;
pub mod schema;
pub mod usage;
pub mod wire;
