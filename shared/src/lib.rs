//! Plain data types shared by the gateway crates: the config file schema, the
//! `ai_log` record, token usage and the OpenAI-shaped error body. No runtime here.

pub mod ai_log;
pub mod config;
pub mod env;
pub mod error;
pub mod schema;
pub mod usage;
