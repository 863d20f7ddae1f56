//! Wire types of the provider APIs that more than one crate reads or writes:
//! the gateway's protocol seam, and the tests' mock upstreams.

pub mod anthropic;
pub mod openai;
