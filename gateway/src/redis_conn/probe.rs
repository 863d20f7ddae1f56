//! Probing a Redis Cluster node by node, for the state monitor: the slot map
//! (`CLUSTER SLOTS` from the first node that answers) and a `PING` to every
//! master, each on a connection of its own, so a dead node is noticed without
//! traffic and a node that answers again is noticed without sending data-plane
//! calls to it. The cluster client the calls use is never touched here: a
//! probe of a dead node cannot hold up the calls to the others (`redis_conn`
//! renews that client when the map gives a slot to another master).

use super::reach::Reach;
use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Why a probe got no answer.
enum Failure {
    /// the connection failed
    Broken(String),
    /// nothing within the time allowed
    Late,
}

pub struct Probes {
    /// credentials and TLS of the configured nodes; the address is swapped
    base: Option<ConnectionInfo>,
    /// `host:port` of the configured nodes: where the slot map is asked first
    seeds: Vec<String>,
    conns: tokio::sync::Mutex<HashMap<String, MultiplexedConnection>>,
    connect: Duration,
    answer: Duration,
}

/// `host:port` of a connection (a unix socket: its path).
pub fn host_port(info: &ConnectionInfo) -> Option<String> {
    match info.addr() {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => Some(format!("{h}:{p}")),
        ConnectionAddr::Unix(p) => Some(p.display().to_string()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// `CLUSTER SLOTS` as (first, last, master `host:port`); a master announced
/// without an address is the node asked (`asked`).
fn parse_slots(v: &Value, asked: &str) -> Option<Vec<(u16, u16, String)>> {
    let Value::Array(ranges) = v else {
        return None;
    };
    let asked_host = asked.rsplit_once(':').map_or(asked, |(h, _)| h);
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let Value::Array(f) = r else { return None };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
            (f.first(), f.get(1), f.get(2))
        else {
            return None;
        };
        let host = master.first().and_then(text).unwrap_or_default();
        let Some(Value::Int(port)) = master.get(1) else {
            return None;
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.to_string()
        } else {
            host
        };
        out.push((
            u16::try_from(*first).ok()?,
            u16::try_from(*last).ok()?,
            format!("{host}:{port}"),
        ));
    }
    Some(out)
}

impl Probes {
    /// `urls`: the configured cluster nodes. `answer`: how long a node may take
    /// to answer a probe (the data plane's per-call timeout).
    pub fn new(urls: &[String], connect: Duration, answer: Duration) -> Probes {
        let infos: Vec<ConnectionInfo> = urls
            .iter()
            .filter_map(|u| u.as_str().into_connection_info().ok())
            .collect();
        Probes {
            seeds: infos.iter().filter_map(host_port).collect(),
            base: infos.into_iter().next(),
            conns: tokio::sync::Mutex::new(HashMap::new()),
            connect,
            answer,
        }
    }

    /// The configured nodes' credentials and TLS for the node at `addr`.
    pub fn info_for(&self, addr: &str) -> Option<ConnectionInfo> {
        let (host, port) = addr.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let base = self.base.clone()?;
        let a = match base.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.to_string(), port),
        };
        Some(base.set_addr(a))
    }

    async fn connect(&self, addr: &str) -> Result<MultiplexedConnection, String> {
        let info = self
            .info_for(addr)
            .ok_or_else(|| format!("cannot address {addr}"))?;
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect))
            .set_response_timeout(Some(self.answer));
        let c = tokio::time::timeout(
            self.connect + self.answer,
            client.get_multiplexed_async_connection_with_config(&cfg),
        )
        .await
        .map_err(|_| "no connection in time".to_string())?
        .map_err(|e| e.to_string())?;
        self.conns.lock().await.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Sends `cmd` to the node at `addr` on its probe connection (made on
    /// first use, dropped after a failure). A kept connection that broke (the
    /// node restarted, say) is replaced and the command sent once more.
    async fn ask(&self, addr: &str, cmd: &redis::Cmd) -> Result<Value, String> {
        let cached = self.conns.lock().await.get(addr).cloned();
        let fresh = cached.is_none();
        let mut conn = match cached {
            Some(c) => c,
            None => self.connect(addr).await?,
        };
        let mut r = self.send(&mut conn, cmd).await;
        if let (Err(Failure::Broken(_)), false) = (&r, fresh) {
            self.conns.lock().await.remove(addr);
            let mut conn = self.connect(addr).await?;
            r = self.send(&mut conn, cmd).await;
        }
        if r.is_err() {
            self.conns.lock().await.remove(addr);
        }
        r.map_err(|e| match e {
            Failure::Broken(e) => e,
            Failure::Late => format!("no answer within {} ms", self.answer.as_millis()),
        })
    }

    async fn send(
        &self,
        conn: &mut MultiplexedConnection,
        cmd: &redis::Cmd,
    ) -> Result<Value, Failure> {
        match tokio::time::timeout(self.answer, cmd.query_async::<Value>(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Failure::Broken(e.to_string())),
            Err(_) => Err(Failure::Late),
        }
    }

    /// The slot map from the first node that gives it: known masters first,
    /// then the configured nodes, those known to be out last.
    pub async fn slot_map(&self, reach: &Reach) -> Option<Vec<(u16, u16, String)>> {
        let mut asked: Vec<String> = reach.addrs();
        for s in &self.seeds {
            if !asked.contains(s) {
                asked.push(s.clone());
            }
        }
        // nodes known to be out last: they would only cost a timeout
        let down: Vec<String> = reach
            .nodes()
            .into_iter()
            .filter_map(|(a, d)| d.then_some(a))
            .collect();
        asked.sort_by_key(|a| down.contains(a));
        let slots = redis::cmd("CLUSTER").arg("SLOTS").clone();
        for addr in &asked {
            if let Ok(v) = self.ask(addr, &slots).await {
                if let Some(ranges) = parse_slots(&v, addr).filter(|r| !r.is_empty()) {
                    return Some(ranges);
                }
            }
        }
        None
    }

    /// Every master of the map PINGed at once and its state set from the
    /// answer; connections to nodes that left the map are dropped.
    pub async fn ping_masters(&self, reach: &Reach) {
        let ping = redis::cmd("PING");
        let masters = reach.addrs();
        let answers = join_all(masters.iter().map(|a| self.ask(a, &ping))).await;
        for (addr, a) in masters.iter().zip(answers) {
            match a {
                Ok(_) => reach.report_node(addr, true, &""),
                Err(e) => reach.report_node(addr, false, &e),
            }
        }
        let mut conns = self.conns.lock().await;
        conns.retain(|a, _| masters.contains(a) || self.seeds.contains(a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn cluster_slots_answer() {
        let v = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                Value::Array(vec![bulk("10.0.0.1"), Value::Int(6379), bulk("id1")]),
                Value::Array(vec![bulk("10.0.0.4"), Value::Int(6379), bulk("id4")]),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                Value::Array(vec![bulk(""), Value::Int(7001), bulk("id2")]),
            ]),
        ]);
        assert_eq!(
            parse_slots(&v, "10.0.0.9:7000"),
            Some(vec![
                (0, 5460, "10.0.0.1:6379".to_string()),
                (5461, 16383, "10.0.0.9:7001".to_string())
            ])
        );
        assert_eq!(parse_slots(&Value::Int(1), "x:1"), None);
    }

    #[test]
    fn probes_keep_credentials() {
        let p = Probes::new(
            &["redis://user:pw@10.0.0.1:6379".to_string()],
            Duration::from_secs(1),
            Duration::from_millis(50),
        );
        assert_eq!(p.seeds, ["10.0.0.1:6379"]);
        let i = p.info_for("10.0.0.2:7000").expect("an address");
        assert!(matches!(i.addr(), ConnectionAddr::Tcp(host, 7000) if host == "10.0.0.2"));
        assert_eq!(i.redis_settings().password(), Some("pw"));
    }
}
