//! The quota and ledger scripts as the gateway sends them (`quota_lib.v3.lua`
//! prepended to each quota script), run with `EVAL` through `redis-cli`, for
//! the tests that check the scripts themselves (`tests/tests/quota_lua.rs`,
//! `quota_calendar_lua.rs`).

use super::lease::Cli;
use super::reply::{parse, Reply};
use super::RedisServer;

pub const RESERVE: &str = concat!(
    include_str!("../../../lua/quota_lib.v3.lua"),
    include_str!("../../../lua/quota_reserve.v3.lua")
);
pub const SETTLE: &str = concat!(
    include_str!("../../../lua/quota_lib.v3.lua"),
    include_str!("../../../lua/quota_settle.v3.lua")
);
pub const USAGE: &str = concat!(
    include_str!("../../../lua/quota_lib.v3.lua"),
    include_str!("../../../lua/quota_usage.v3.lua")
);
pub const LEDGER_READ: &str = include_str!("../../../lua/ledger_read.v1.lua");

/// `EVAL script` with `keys` and `args`, the answer parsed.
pub fn eval<S: AsRef<str>>(redis: &dyn Cli, script: &str, keys: &[String], args: &[S]) -> Reply {
    let n = keys.len().to_string();
    let mut argv = vec!["--no-raw", "EVAL", script, n.as_str()];
    argv.extend(keys.iter().map(String::as_str));
    argv.extend(args.iter().map(AsRef::as_ref));
    parse(&redis.cli(&argv))
}

/// Redis's own clock (`TIME`), in ms: what the scripts count with.
pub fn redis_now_ms(redis: &dyn Cli) -> i64 {
    let t = redis.cli(&["TIME"]);
    let mut parts = t.lines().map(|l| l.trim().parse::<i64>().unwrap());
    let (Some(s), Some(us)) = (parts.next(), parts.next()) else {
        panic!("TIME answered {t:?}")
    };
    s * 1000 + us / 1000
}

/// Every key on `redis` (standalone) expires: none without a TTL.
pub fn assert_every_key_expires(redis: &RedisServer) {
    let keys = redis.cli(&["KEYS", "*"]);
    for key in keys.lines() {
        let pttl: i64 = redis.cli(&["PTTL", key]).parse().unwrap();
        assert!(pttl > 0, "{key:?} has PTTL {pttl}");
    }
}
