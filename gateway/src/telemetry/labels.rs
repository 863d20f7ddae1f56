//! Label values for metrics: models are named only as the config names them, so
//! client-chosen names never become series. A request's model is its own name
//! when the config lists it exactly (a route's `match.models`, a provider's
//! `models` or `model_mapping`), else the route glob it matched, else `other`.

use std::collections::HashSet;
use std::sync::Arc;

/// The label of a model the config does not name.
pub const OTHER: &str = "other";

/// Every model name the config spells out.
#[derive(Debug, Default)]
pub struct KnownModels {
    /// (a fast hash: looked up a few times per request)
    names: HashSet<Arc<str>, xxhash_rust::xxh3::Xxh3DefaultBuilder>,
}

impl KnownModels {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> KnownModels {
        KnownModels {
            names: names.into_iter().map(Arc::from).collect(),
        }
    }

    /// The config's copy of `name`, if it names it.
    pub fn get(&self, name: &str) -> Option<&Arc<str>> {
        self.names.get(name)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A request's model as a label.
#[derive(Debug, Clone, Default)]
pub enum Label {
    /// the request named no model
    #[default]
    Unknown,
    /// a name the config does not know
    Other,
    Named(Arc<str>),
}

impl Label {
    /// `name`'s label: the config's name for it, else the route glob it matched.
    pub fn of(name: &str, known: &KnownModels, glob: impl FnOnce() -> Option<Arc<str>>) -> Label {
        match known.get(name).cloned().or_else(glob) {
            Some(n) => Label::Named(n),
            None => Label::Other,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Label::Unknown => "unknown",
            Label::Other => OTHER,
            Label::Named(n) => n,
        }
    }
}

/// The model labels of one request.
#[derive(Debug, Clone, Default)]
pub struct ModelLabels {
    /// the request's model (`gen_ai_request_model`)
    pub request: Label,
    /// the model asked of the upstream, when the config names it
    pub upstream: Option<Arc<str>>,
    /// the names the config knows, for the model the upstream answered with
    pub known: Option<Arc<KnownModels>>,
}

impl ModelLabels {
    /// `gen_ai_request_model`: `unknown` when the request named no model.
    pub fn request(&self) -> &str {
        self.request.as_str()
    }

    /// `ai_model`: the answering model when the config names it, else the model
    /// asked of the upstream when it does, else the request's label.
    pub fn model<'a>(&'a self, answered: Option<&str>) -> &'a str {
        answered
            .and_then(|m| self.known.as_ref()?.get(m))
            .or(self.upstream.as_ref())
            .map_or_else(|| self.request(), |m| &**m)
    }

    /// The model a request was priced by (`ai_log.cost_model`, the one asked of
    /// the upstream) as a label: its own name when the config names it, else
    /// the request's label when it is the request's model unmapped, else `other`.
    pub fn priced<'a>(&'a self, priced: &str, request_model: Option<&str>) -> &'a str {
        match self.known.as_ref().and_then(|k| k.get(priced)) {
            Some(name) => name,
            None if request_model == Some(priced) => self.request(),
            None => OTHER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_names_become_labels() {
        let known = Arc::new(KnownModels::new(["gpt-4o", "gpt-4o-2024-08-06"]));
        let l = ModelLabels {
            request: Label::of("made-up", &known, || None),
            upstream: None,
            known: Some(known.clone()),
        };
        assert_eq!(l.model(Some("made-up-by-an-echoing-upstream")), OTHER);
        assert_eq!(l.model(Some("gpt-4o-2024-08-06")), "gpt-4o-2024-08-06");
        let l = ModelLabels {
            upstream: known.get("gpt-4o").cloned(),
            ..l
        };
        assert_eq!(l.model(Some("unlisted")), "gpt-4o");
        assert_eq!(ModelLabels::default().request(), "unknown");
        let glob = || Some(Arc::from("gpt-*"));
        assert_eq!(Label::of("gpt-4o", &known, glob).as_str(), "gpt-4o");
        assert_eq!(Label::of("gpt-5-preview", &known, glob).as_str(), "gpt-*");
    }

    #[test]
    fn the_priced_model_is_named_only_as_the_config_names_it() {
        let known = Arc::new(KnownModels::new(["gpt-4o", "mock-small"]));
        let l = |request: &str| ModelLabels {
            request: Label::of(request, &known, || Some(Arc::from("gpt-*"))),
            upstream: None,
            known: Some(known.clone()),
        };
        // mapped to a model the config names
        assert_eq!(l("gpt-5").priced("mock-small", Some("gpt-5")), "mock-small");
        // unmapped: the request's own label (here the route glob)
        assert_eq!(l("gpt-5").priced("gpt-5", Some("gpt-5")), "gpt-*");
        // mapped (by a regex, say) to a name the config does not spell out
        assert_eq!(l("gpt-5").priced("made-up-target", Some("gpt-5")), OTHER);
    }
}
