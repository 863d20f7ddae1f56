//! The bundled Redis of the deploy files, started the way `deploy/k8s` and
//! `deploy/compose.yaml` start it (their command line, with a real
//! `redis-server` on loopback): it answers no client without its password,
//! keeps the password off its command line and refuses to start without one;
//! the gateway reaches it with the Redis URL of the k8s ConfigMap and stores
//! key digests keyed with `GATEWAY_KEY_PEPPER`. (scripts/check_deploy.py checks
//! that the Helm chart starts Redis the same way, and the rest of the wiring.)

use gateway_tests::client::{chat_body, TestClient};
use gateway_tests::config::{Config, Provider, Route, Server, State};
use gateway_tests::harness::{admin, free_port, workspace_dir, Gateway, ADMIN_TOKEN};
use gateway_tests::mock_upstream::MockUpstream;
use http::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const K8S_REDIS: &str = "deploy/k8s/20-redis.yaml";
const K8S_CONFIG: &str = "deploy/k8s/10-configmap.yaml";
const COMPOSE: &str = "deploy/compose.yaml";
/// What the bundled Redis is reached at in deploy/k8s (its Service, its port).
const K8S_REDIS_ADDR: &str = "ai-gateway-redis:6379";
const PASSWORD: &str = "deploy-files-redis-password-0123456789";
const PEPPER: &str = "deploy-files-pepper-0123456789abcdef";

/// Every YAML document of a file of the workspace, as JSON.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let path = workspace_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            serde_yaml_ng::Value::deserialize(doc).unwrap_or_else(|e| panic!("{path:?}: {e}"))
        })
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_string))
        .collect()
}

/// How a deploy file starts its bundled Redis.
struct RedisStart {
    file: &'static str,
    /// the container's command line (command/entrypoint, then args/command)
    argv: Vec<String>,
    /// the environment variables that carry the password
    password_env: Vec<String>,
    /// the health check's command line
    probe: Vec<String>,
}

fn k8s_redis() -> RedisStart {
    let docs = yaml_docs(K8S_REDIS);
    let sts = docs
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .unwrap_or_else(|| panic!("{K8S_REDIS}: no StatefulSet"));
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    let mut argv = strings(&c["command"]);
    argv.extend(strings(&c["args"]));
    let password_env = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["valueFrom"]["secretKeyRef"]["key"] == "REDIS_PASSWORD")
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .collect();
    let probe = strings(&c["readinessProbe"]["exec"]["command"]);
    RedisStart {
        file: K8S_REDIS,
        argv,
        password_env,
        probe,
    }
}

fn compose_redis() -> RedisStart {
    let docs = yaml_docs(COMPOSE);
    let svc = &docs[0]["services"]["redis"];
    // compose reads `$$` as one `$`
    let unescaped = |v: &Value| {
        strings(v)
            .into_iter()
            .map(|s| s.replace("$$", "$"))
            .collect::<Vec<_>>()
    };
    let mut argv = unescaped(&svc["entrypoint"]);
    argv.extend(unescaped(&svc["command"]));
    let password_env = svc["environment"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| {
            v.as_str()
                .is_some_and(|s| s.starts_with("${REDIS_PASSWORD"))
        })
        .map(|(k, _)| k.clone())
        .collect();
    // ["CMD", argv...]
    let probe = strings(&svc["healthcheck"]["test"])
        .into_iter()
        .skip(1)
        .collect();
    RedisStart {
        file: COMPOSE,
        argv,
        password_env,
        probe,
    }
}

/// A `redis-server` started from a [`RedisStart`] on a loopback port, its data
/// directory (`/data`) a tempdir; killed on drop.
struct DeployedRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for DeployedRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisStart {
    /// The container's process on this machine, the password variables set to
    /// `password`, listening on 127.0.0.1 only.
    fn command(&self, password: &str, dir: &Path, port: u16) -> Command {
        assert!(!self.argv.is_empty(), "{}: no command line", self.file);
        let mut cmd = Command::new(&self.argv[0]);
        for a in &self.argv[1..] {
            cmd.arg(if a == "/data" {
                dir.as_os_str()
            } else {
                a.as_ref()
            });
        }
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .current_dir(dir)
            .env_remove("REDIS_PASSWORD")
            .env_remove("REDISCLI_AUTH")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for name in &self.password_env {
            cmd.env(name, password);
        }
        cmd
    }

    fn start(&self, password: &str) -> DeployedRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = self
            .command(password, dir.path(), port)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {:?}: {e}", self.file, self.argv));
        let mut r = DeployedRedis {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        // up once it answers anything (PONG, or NOAUTH to a client without the password)
        let answers = || {
            let out = redis_cli(port, &[], &["ping"]);
            out.status.success() && !out.stdout.is_empty()
        };
        while !answers() {
            if let Ok(Some(status)) = r.child.try_wait() {
                let out = r
                    .child
                    .stderr
                    .take()
                    .map(std::io::read_to_string)
                    .and_then(Result::ok)
                    .unwrap_or_default();
                panic!(
                    "{}: Redis exited ({status}) instead of starting: {out}",
                    self.file
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: Redis did not answer on 127.0.0.1:{port} within 10 s",
                self.file
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// The health check, run with the container's environment against `port`.
    fn probe(&self, password: &str, port: u16) -> String {
        assert_eq!(
            self.probe.first().map(String::as_str),
            Some("redis-cli"),
            "{}: the health check is not redis-cli: {:?}",
            self.file,
            self.probe
        );
        let env: Vec<(&str, &str)> = self
            .password_env
            .iter()
            .map(|n| (n.as_str(), password))
            .collect();
        let out = redis_cli(
            port,
            &env,
            &self.probe[1..]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// `redis-cli -p PORT ARGS` with exactly the password variables in `env`.
fn redis_cli(port: u16, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd =
        Command::new(std::env::var_os("REDIS_CLI_BIN").unwrap_or_else(|| "redis-cli".into()));
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .env_remove("REDISCLI_AUTH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap_or_else(|e| panic!("redis-cli: {e}"))
}

fn bundled_redis_refuses_clients_without_its_password(rs: &RedisStart) {
    let redis = rs.start(PASSWORD);
    let anonymous = String::from_utf8_lossy(&redis_cli(redis.port, &[], &["ping"]).stdout)
        .trim()
        .to_string();
    assert!(
        anonymous.starts_with("NOAUTH"),
        "{}: Redis answers a client without the password ({anonymous:?}): any pod that reaches it can write a key record",
        rs.file
    );
    assert_eq!(
        rs.probe(PASSWORD, redis.port),
        "PONG",
        "{}: the health check does not authenticate",
        rs.file
    );
    // the password is not on the command line (ps, /proc/PID/cmdline)
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", redis.child.id())).unwrap_or_default();
    assert!(!cmdline.is_empty(), "{}: no /proc/PID/cmdline", rs.file);
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(PASSWORD),
        "{}: the password is on Redis's command line: {:?}",
        rs.file,
        String::from_utf8_lossy(&cmdline)
    );
}

fn bundled_redis_refuses_an_empty_password(rs: &RedisStart) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = rs.command("", dir.path(), port).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = child
        .stderr
        .take()
        .map(std::io::read_to_string)
        .and_then(Result::ok)
        .unwrap_or_default();
    let status =
        status.unwrap_or_else(|| panic!("{}: Redis is running with an empty password", rs.file));
    assert!(
        !status.success(),
        "{}: exit {status} with an empty password",
        rs.file
    );
    assert!(
        stderr.contains("REDIS_PASSWORD"),
        "{}: the refusal does not name REDIS_PASSWORD: {stderr}",
        rs.file
    );
}

#[test]
fn k8s_redis_requires_its_password() {
    let rs = k8s_redis();
    bundled_redis_refuses_clients_without_its_password(&rs);
    bundled_redis_refuses_an_empty_password(&rs);
}

#[test]
fn compose_redis_requires_its_password() {
    let rs = compose_redis();
    bundled_redis_refuses_clients_without_its_password(&rs);
    bundled_redis_refuses_an_empty_password(&rs);
}

/// `state.redis.url` of the k8s ConfigMap, pointed at `port` on loopback.
fn k8s_redis_url(port: u16) -> String {
    let docs = yaml_docs(K8S_CONFIG);
    let text = docs[0]["data"]["gateway.yaml"]
        .as_str()
        .unwrap_or_else(|| panic!("{K8S_CONFIG}: no gateway.yaml"));
    let cfg: Value = serde_yaml_ng::from_str(text).unwrap();
    let url = cfg["state"]["redis"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        url.contains(":${REDIS_PASSWORD}@"),
        "{K8S_CONFIG}: state.redis.url {url} does not authenticate with ${{REDIS_PASSWORD}}"
    );
    assert!(
        url.contains(K8S_REDIS_ADDR),
        "{K8S_CONFIG}: state.redis.url {url} is not {K8S_REDIS_ADDR}"
    );
    url.replace(K8S_REDIS_ADDR, &format!("127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_uses_the_k8s_redis_password_and_the_key_pepper() {
    let redis = k8s_redis().start(PASSWORD);
    let url = k8s_redis_url(redis.port);
    let upstream = MockUpstream::start_default();
    let config = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .state(State::redis(&url).redis_key("timeout_ms", 500))
        .provider(Provider::openai("mock", &upstream.base_url()).token("sk-deploy-files"))
        .route(Route::new("chat", "/v1").keyed().upstream("mock"))
        .access_log()
        .yaml();
    let gw = Gateway::builder(&config)
        .env("REDIS_PASSWORD", PASSWORD)
        .env("GATEWAY_KEY_PEPPER", PEPPER)
        .start()
        .await;
    let c = TestClient::new();
    let policy = json!({"allowed_models": ["*"], "quotas": [], "metadata": {}});
    for path in ["/admin/tenants/acme", "/admin/tenants/acme/consumers/app"] {
        let r = admin(&c, &gw, Method::PUT, path, Some(&policy)).await;
        assert_eq!(r.status, 200, "PUT {path}: {}", r.text());
    }
    let r = admin(
        &c,
        &gw,
        Method::POST,
        "/admin/tenants/acme/consumers/app/keys",
        Some(&json!({})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key = r.json()["key"].as_str().unwrap_or_default().to_string();
    let bearer = format!("Bearer {key}");
    let r = c
        .post_json_with(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("gpt-4o", "hi"),
            &[("authorization", bearer.as_str())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // the key record is named by HMAC-SHA-256(pepper, key), not by its plain SHA-256
    let env = [("REDISCLI_AUTH", PASSWORD)];
    let records = String::from_utf8_lossy(
        &redis_cli(redis.port, &env, &["--scan", "--pattern", "gw:{k:*"]).stdout,
    )
    .to_string();
    let peppered = gateway::keys::KeyHasher::new(Some(PEPPER.as_bytes()))
        .digest(&key)
        .to_hex();
    let plain = gateway::keys::KeyHasher::new(None).digest(&key).to_hex();
    assert!(
        records.contains(&format!("gw:{{k:{peppered}}}")),
        "no record under the peppered digest: {records}"
    );
    assert!(
        !records.contains(&plain),
        "a record under the plain SHA-256 digest: {records}"
    );
    // neither secret in the gateway's output
    let output = format!("{}{}{}", gw.stderr(), gw.stdout(), gw.access_log_text());
    for secret in [PASSWORD, PEPPER] {
        assert!(!output.contains(secret), "the gateway printed a secret");
    }
}
