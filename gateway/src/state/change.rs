//! Change notifications: what an admin write tells every replica's auth cache to
//! forget. Sent on the Redis pub/sub channel `<key_prefix>changes` as short text
//! (`t:<tenant>`, `c:<tenant>/<consumer>`, `k:<tenant>/<consumer>/<key id>`,
//! `new`, and `h:<provider>` from the health script); never a key or its digest.

/// One change to tenants, consumers or keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// the tenant changed or was deleted: every key under it
    Tenant(String),
    /// the consumer changed or was deleted: every key of it
    Consumer { tenant: String, consumer: String },
    /// one key was revoked or its expiry changed
    Key {
        tenant: String,
        consumer: String,
        id: String,
    },
    /// a key was created: unknown keys remembered as such must be asked again
    NewKey,
    /// a provider's shared health changed (ejected or back): read it again
    Health(String),
}

impl Change {
    pub fn encode(&self) -> String {
        match self {
            Change::Tenant(t) => format!("t:{t}"),
            Change::Consumer { tenant, consumer } => format!("c:{tenant}/{consumer}"),
            Change::Key {
                tenant,
                consumer,
                id,
            } => format!("k:{tenant}/{consumer}/{id}"),
            Change::NewKey => "new".to_string(),
            Change::Health(p) => format!("h:{p}"),
        }
    }

    /// None for text this version does not understand (the caller then drops
    /// everything, which is always safe).
    pub fn decode(s: &str) -> Option<Change> {
        if s == "new" {
            return Some(Change::NewKey);
        }
        let (kind, rest) = s.split_once(':')?;
        if kind == "h" {
            return Some(Change::Health(rest.to_string()));
        }
        let mut parts = rest.splitn(3, '/');
        let tenant = parts.next()?.to_string();
        match (kind, parts.next(), parts.next()) {
            ("t", None, None) => Some(Change::Tenant(tenant)),
            ("c", Some(c), None) => Some(Change::Consumer {
                tenant,
                consumer: c.to_string(),
            }),
            ("k", Some(c), Some(id)) => Some(Change::Key {
                tenant,
                consumer: c.to_string(),
                id: id.to_string(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for c in [
            Change::Tenant("acme".into()),
            Change::Consumer {
                tenant: "acme".into(),
                consumer: "bob".into(),
            },
            Change::Key {
                tenant: "acme".into(),
                consumer: "bob".into(),
                id: "key_1".into(),
            },
            Change::NewKey,
        ] {
            assert_eq!(Change::decode(&c.encode()), Some(c));
        }
        assert_eq!(Change::decode("x:y"), None);
        assert_eq!(Change::decode("garbage"), None);
    }
}
