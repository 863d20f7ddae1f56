//! The usage ledger's figures: per tenant x consumer x model x provider x day,
//! what the requests an upstream answered used and cost. The gateway keeps them
//! (Redis or memory) as requests settle; `gateway bill` computes the same from
//! access logs.

use crate::money::Nanos;
use serde::{Deserialize, Serialize};

/// One ledger group's coordinates. `consumer` is empty for an anonymous request.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dims {
    pub tenant: String,
    pub consumer: String,
    /// the model the gateway asked the upstream for (`ai_log.cost_model`)
    pub model: String,
    pub provider: String,
    /// UTC date of the request's start, `YYYY-MM-DD`
    pub day: String,
}

/// What one group of requests used and cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// nano-units of the pricing currency
    pub cost: Nanos,
    pub unpriced_requests: u64,
    pub estimated_requests: u64,
}

impl Totals {
    /// The figures in the order the ledger stores them.
    pub fn to_array(&self) -> [u64; 9] {
        [
            self.requests,
            self.input_tokens,
            self.output_tokens,
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.cost,
            self.unpriced_requests,
            self.estimated_requests,
        ]
    }

    pub fn from_array(a: [u64; 9]) -> Totals {
        let [requests, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost, unpriced_requests, estimated_requests] =
            a;
        Totals {
            requests,
            input_tokens,
            output_tokens,
            cached_tokens,
            cache_write_tokens,
            reasoning_tokens,
            cost,
            unpriced_requests,
            estimated_requests,
        }
    }

    /// Adds another group's figures (saturating).
    pub fn add(&mut self, o: &Totals) {
        let mut a = self.to_array();
        for (x, y) in a.iter_mut().zip(o.to_array()) {
            *x = x.saturating_add(y);
        }
        *self = Totals::from_array(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_field_by_field() {
        let mut t = Totals::from_array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
        t.add(&Totals::from_array([10, 20, 30, 40, 50, 60, 70, 80, 90]));
        assert_eq!(t.to_array(), [11, 22, 33, 44, 55, 66, 77, 88, 99]);
        assert_eq!(t.cost, 77);
    }
}
