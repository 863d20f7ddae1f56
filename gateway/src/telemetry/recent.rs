//! The last requests this replica finished, as their access-log records, for
//! the admin API's `GET /admin/requests` (the console's live view): a bounded
//! ring in memory, newest last, read with filters.

use shared::ai_log::AccessLogLine;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many records the ring keeps.
pub const CAPACITY: usize = 500;

/// The last [`CAPACITY`] records.
#[derive(Default)]
pub struct Recent {
    ring: Mutex<VecDeque<Arc<AccessLogLine>>>,
}

/// What `GET /admin/requests` selects: every given field must match exactly.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub tenant: Option<String>,
    pub consumer: Option<String>,
    pub model: Option<String>,
    pub status: Option<u16>,
}

impl Filter {
    fn matches(&self, l: &AccessLogLine) -> bool {
        let same = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        same(&self.tenant, &l.ai_log.tenant)
            && same(&self.consumer, &l.ai_log.consumer)
            && self.model.as_ref().is_none_or(|m| {
                l.ai_log.model.as_ref() == Some(m) || l.ai_log.request_model.as_ref() == Some(m)
            })
            && self.status.is_none_or(|s| l.response_code == s)
    }
}

impl Recent {
    /// Keeps `line`, dropping the oldest when full.
    pub fn push(&self, line: Arc<AccessLogLine>) {
        let mut ring = match self.ring.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        if ring.len() >= CAPACITY {
            ring.pop_front();
        }
        ring.push_back(line);
    }

    /// The newest `limit` records that `filter` selects, newest first.
    pub fn query(&self, filter: &Filter, limit: usize) -> Vec<Arc<AccessLogLine>> {
        let ring = match self.ring.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        ring.iter()
            .rev()
            .filter(|l| filter.matches(l))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(status: u16, tenant: &str, model: &str) -> Arc<AccessLogLine> {
        let mut l = AccessLogLine {
            response_code: status,
            ..AccessLogLine::default()
        };
        l.ai_log.tenant = Some(tenant.into());
        l.ai_log.model = Some(model.into());
        Arc::new(l)
    }

    #[test]
    fn the_ring_keeps_the_newest_and_filters() {
        let r = Recent::default();
        for i in 0..(CAPACITY + 10) {
            let tenant = if i % 2 == 0 { "acme" } else { "beta" };
            r.push(line(200 + (i % 3) as u16, tenant, "m"));
        }
        let all = r.query(&Filter::default(), usize::MAX);
        assert_eq!(all.len(), CAPACITY);
        let acme = Filter {
            tenant: Some("acme".into()),
            ..Filter::default()
        };
        let got = r.query(&acme, 3);
        assert_eq!(got.len(), 3);
        assert!(got
            .iter()
            .all(|l| l.ai_log.tenant.as_deref() == Some("acme")));
        // newest first: the last pushed acme line has i = CAPACITY + 8
        assert_eq!(got[0].response_code, 200 + ((CAPACITY + 8) % 3) as u16);
        let s = Filter {
            status: Some(201),
            model: Some("m".into()),
            ..Filter::default()
        };
        assert!(r.query(&s, 50).iter().all(|l| l.response_code == 201));
        let none = Filter {
            model: Some("other".into()),
            ..Filter::default()
        };
        assert!(r.query(&none, 50).is_empty());
    }
}
