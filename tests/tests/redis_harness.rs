//! Self-test of the redis harness: a standalone server that really loses its
//! data (and Lua scripts) on restart, a 3-node cluster reachable through
//! `redis-cli -c`, and stopping / starting servers again, also in parallel.

use gateway_tests::redis::{RedisCluster, RedisServer};
use std::thread;

#[test]
fn standalone_set_get_and_restart_loses_data() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/0"));
    assert_eq!(redis.cli(&["ping"]), "PONG");
    assert_eq!(redis.cli(&["SET", "greeting", "hello world"]), "OK");
    assert_eq!(redis.cli(&["GET", "greeting"]), "hello world");
    let sha = redis.cli(&["SCRIPT", "LOAD", "return 1"]);
    assert_eq!(
        sha.len(),
        40,
        "SCRIPT LOAD should return a sha1, got {sha:?}"
    );
    assert_eq!(redis.cli(&["SCRIPT", "EXISTS", &sha]), "1");
    let pid_before = redis.pid();

    redis.restart();

    assert_eq!(redis.port(), port, "restart keeps the port");
    assert_ne!(redis.pid(), pid_before, "restart runs a new process");
    assert_eq!(redis.cli(&["GET", "greeting"]), "", "data survived restart");
    assert_eq!(redis.cli(&["DBSIZE"]), "0");
    assert_eq!(
        redis.cli(&["SCRIPT", "EXISTS", &sha]),
        "0",
        "Lua script survived restart"
    );
    // and the restarted server works normally
    assert_eq!(redis.cli(&["SET", "again", "1"]), "OK");
    assert_eq!(redis.cli(&["GET", "again"]), "1");
}

#[test]
fn cluster_routes_hash_tagged_keys() {
    let cluster = RedisCluster::start();
    let ports = cluster.ports();
    assert_eq!(ports.len(), 3);
    assert_eq!(
        cluster.nodes(),
        ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
    );

    let info = cluster.cli(&["CLUSTER", "INFO"]);
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
    assert!(info.contains("cluster_known_nodes:3"), "{info}");

    let keys = [("{a}x", "1"), ("{b}y", "2"), ("{c}z", "3")];
    for (k, v) in keys {
        assert_eq!(cluster.cli(&["SET", k, v]), "OK", "SET {k}");
    }
    for (k, v) in keys {
        assert_eq!(cluster.cli(&["GET", k]), v, "GET {k}");
    }
    // the keys really are spread over the nodes (a, b and c hash to slots
    // owned by three different masters), and each is stored exactly once
    let sizes: Vec<u64> = (0..3)
        .map(|i| cluster.node_cli(i, &["DBSIZE"]).parse().unwrap())
        .collect();
    assert_eq!(sizes.iter().sum::<u64>(), 3, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n == 1), "{sizes:?}");
}

#[test]
fn stop_then_start_again() {
    let mut redis = RedisServer::start();
    assert_eq!(redis.cli(&["SET", "k", "v"]), "OK");
    redis.stop();
    assert!(!redis.is_running());
    assert!(
        redis.try_cli(&["ping"]).is_err(),
        "a stopped server must refuse connections"
    );
    redis.stop(); // idempotent

    redis.restart();
    assert!(redis.is_running());
    assert_eq!(redis.cli(&["ping"]), "PONG");
    assert_eq!(redis.cli(&["GET", "k"]), "");

    // several servers started at once (as parallel tests do) all come up on
    // distinct ports and are independent
    let servers: Vec<RedisServer> = (0..4)
        .map(|_| thread::spawn(RedisServer::start))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let mut ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    ports.push(redis.port());
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 5, "ports must be distinct: {ports:?}");
    for (i, s) in servers.iter().enumerate() {
        assert_eq!(s.cli(&["SET", "id", &i.to_string()]), "OK");
    }
    for (i, s) in servers.iter().enumerate() {
        assert_eq!(s.cli(&["GET", "id"]), i.to_string());
    }

    // a dropped server is gone (ports are never handed out twice, so nothing
    // else of ours can be listening there)
    let port = servers[0].port();
    drop(servers);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "127.0.0.1:{port} still accepts connections after drop"
    );
}
