//! Integration-test support for the gateway: typed configs ([`config`]), a mock
//! upstream of several APIs ([`mock_upstream`]), a harness that builds and starts real gateway processes
//! ([`harness`]), a real OTLP collector ([`collector`]), small HTTP/SSE client
//! helpers ([`client`]), raw HTTP/1 and HTTP/2 for hostile input ([`hostile`]),
//! a TCP load balancer following readiness ([`balancer`]), real Redis servers
//! ([`redis`]) with their quota leases ([`redis::lease`]), a `/metrics` reader
//! ([`metrics`]), the usage report read back and summed from access logs
//! ([`report`]), the Python scripts of `tests/python` ([`python`]), a config
//! broken in several ways at once ([`config_problems`]), calendar boundaries
//! placed near now through the gateway's clock-shift test hook ([`calendar`]),
//! a receiver of webhook POSTs ([`webhook`]), the Grafana dashboard's queries
//! ([`dashboard`]), Redis Cluster failovers under load measured ([`failover`]),
//! a real Prometheus with `promtool` ([`prometheus`]),
//! headless Chromium through `chromedriver` ([`browser`]), a TCP proxy that
//! injects network faults ([`netfault`]) and the chaos runs ([`chaos`]).
//!
//! The tests themselves live in `tests/tests/*.rs`, one file per capability.

pub mod balancer;
pub mod browser;
pub mod calendar;
pub mod chaos;
pub mod client;
pub mod collector;
pub mod config;
pub mod config_problems;
pub mod dashboard;
pub mod failover;
pub mod harness;
pub mod hostile;
pub mod metrics;
pub mod mock_upstream;
pub mod netfault;
pub mod prometheus;
pub mod python;
pub mod redis;
pub mod report;
pub mod webhook;
