//! Integration-test support for the gateway: a mock OpenAI upstream
//! ([`mock_upstream`]), a harness that builds and starts real gateway processes
//! ([`harness`]), a real OTLP collector ([`collector`]), small HTTP/SSE client
//! helpers ([`client`]), raw HTTP/1 and HTTP/2 for hostile input ([`hostile`]),
//! a TCP load balancer following readiness ([`balancer`]), real Redis servers
//! ([`redis`]), the Python scripts of `tests/python` ([`python`]) and a config
//! broken in several ways at once ([`config_problems`]).
//!
//! The tests themselves live in `tests/tests/*.rs`, one file per capability.

// This whole crate is test-support code: failing loudly (unwrap/expect/panic with a
// message) is the right behaviour in a test harness, so the workspace's deny of
// these lints is lifted here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod balancer;
pub mod client;
pub mod collector;
pub mod config_problems;
pub mod harness;
pub mod hostile;
pub mod mock_upstream;
pub mod python;
pub mod redis;
