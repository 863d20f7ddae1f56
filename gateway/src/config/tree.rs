//! The config text as a tree of nodes that keep their line, column and key path
//! (YAML, and JSON read as the YAML it is). Used to find every problem in one
//! pass (the tree can be repaired node by node, see `collect`) and to put a line
//! on each problem's key.

use super::problems::Pos;
use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};
use std::collections::HashMap;

pub type NodeId = usize;

/// Deeper nesting is refused (the deserializer recurses once per level).
const MAX_DEPTH: usize = 128;
/// Aliases can multiply a small text; past this many nodes the text is refused.
const MAX_NODES: usize = 200_000;

#[derive(Debug, Clone)]
pub enum Kind {
    /// `plain`: written without quotes or block indicator (and no `!!str` tag), so
    /// it may read as null, a boolean or a number
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<NodeId>),
    /// (key node, value node) in the written order, duplicates kept
    Map(Vec<(NodeId, NodeId)>),
    /// stands for a removed node: reads as the "zero" of whatever type is asked
    Placeholder,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub pos: Pos,
    /// `providers[0].api_tokens`; "" for the root. A key node has its entry's path.
    pub path: String,
    pub parent: Option<NodeId>,
}

#[derive(Debug, Clone)]
pub struct Tree {
    pub nodes: Vec<Node>,
    pub root: NodeId,
}

/// Why the text is not a tree: a syntax error, with the key path it happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub key: String,
    pub reason: String,
    pub pos: Pos,
}

/// An open collection: its node, its anchor (0 = none) and what it holds so far.
enum Frame {
    Seq(NodeId, usize, Vec<NodeId>),
    /// the last field: a key that waits for its value
    Map(NodeId, usize, Vec<(NodeId, NodeId)>, Option<NodeId>),
}

impl Tree {
    /// Parses `text` (one YAML document; JSON is YAML too).
    pub fn parse(text: &str) -> Result<Tree, SyntaxError> {
        let mut b = Builder {
            nodes: Vec::new(),
            anchors: HashMap::new(),
            stack: Vec::new(),
            root: None,
            documents: 0,
        };
        for event in Parser::new_from_str(text) {
            let (event, span) = event.map_err(|e| b.scan_error(&e))?;
            let pos = Pos {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            b.event(event, pos)?;
        }
        let root = match b.root {
            Some(r) => r,
            // an empty document: an empty plain scalar, read as an empty mapping
            None => b.push(
                Kind::Scalar {
                    value: String::new(),
                    plain: true,
                },
                Pos { line: 1, column: 1 },
            )?,
        };
        let mut tree = Tree {
            nodes: b.nodes,
            root,
        };
        tree.set_paths();
        Ok(tree)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Fills `path` and `parent` top-down (iteratively: depth is bounded anyway).
    fn set_paths(&mut self) {
        let mut todo = vec![(self.root, String::new(), None)];
        while let Some((id, path, parent)) = todo.pop() {
            let node = &mut self.nodes[id];
            node.path = path;
            node.parent = parent;
            let path = node.path.clone();
            match &node.kind {
                Kind::Seq(items) => {
                    for (i, c) in items.iter().enumerate() {
                        todo.push((*c, format!("{path}[{i}]"), Some(id)));
                    }
                }
                Kind::Map(entries) => {
                    let entries = entries.clone();
                    for (k, v) in entries {
                        let seg = match &self.nodes[k].kind {
                            Kind::Scalar { value, .. } => value.clone(),
                            _ => "?".to_string(),
                        };
                        let child = if path.is_empty() {
                            seg
                        } else {
                            format!("{path}.{seg}")
                        };
                        // a complex key's own children keep paths under the key
                        todo.push((k, child.clone(), Some(id)));
                        todo.push((v, child, Some(id)));
                    }
                }
                Kind::Scalar { .. } | Kind::Placeholder => {}
            }
        }
    }

    /// The line and column of the value at `key` (a path as validation writes it);
    /// for a key not written in the file, those of its closest written ancestor.
    pub fn locate(&self, key: &str) -> Pos {
        let mut id = self.root;
        let mut rest = key;
        loop {
            rest = rest.strip_prefix('.').unwrap_or(rest);
            if rest.is_empty() {
                return self.nodes[id].pos;
            }
            let next = match &self.nodes[id].kind {
                Kind::Seq(items) => rest
                    .strip_prefix('[')
                    .and_then(|r| r.split_once(']'))
                    .and_then(|(n, after)| {
                        let i: usize = n.parse().ok()?;
                        Some((*items.get(i)?, after))
                    }),
                // the longest written key that the path continues with
                Kind::Map(entries) => entries
                    .iter()
                    .filter_map(|(k, v)| {
                        let Kind::Scalar { value, .. } = &self.nodes[*k].kind else {
                            return None;
                        };
                        let after = rest.strip_prefix(value.as_str())?;
                        (after.is_empty() || after.starts_with(['.', '['])).then_some((
                            value.len(),
                            *v,
                            after,
                        ))
                    })
                    .max_by_key(|(len, ..)| *len)
                    .map(|(_, v, after)| (v, after)),
                Kind::Scalar { .. } | Kind::Placeholder => None,
            };
            match next {
                Some((child, after)) => {
                    id = child;
                    rest = after;
                }
                None => return self.nodes[id].pos,
            }
        }
    }

    /// The map that holds `id` as a key or value, and the entry's index in it.
    fn entry_of(&self, id: NodeId) -> Option<(NodeId, usize)> {
        let parent = self.nodes[id].parent?;
        match &self.nodes[parent].kind {
            Kind::Map(entries) => entries
                .iter()
                .position(|(k, v)| *k == id || *v == id)
                .map(|i| (parent, i)),
            _ => None,
        }
    }

    /// Removes the mapping entry whose key or value is `id`; false when `id` is
    /// not in a mapping.
    pub fn remove_entry(&mut self, id: NodeId) -> bool {
        let Some((map, i)) = self.entry_of(id) else {
            return false;
        };
        if let Kind::Map(entries) = &mut self.nodes[map].kind {
            entries.remove(i);
        }
        true
    }

    pub fn is_placeholder(&self, id: NodeId) -> bool {
        matches!(self.nodes[id].kind, Kind::Placeholder)
    }

    pub fn make_placeholder(&mut self, id: NodeId) {
        self.nodes[id].kind = Kind::Placeholder;
    }

    /// Turns a placeholder into a plain `0` (for a type that refuses the
    /// placeholder's null).
    pub fn make_zero_number(&mut self, id: NodeId) {
        self.nodes[id].kind = Kind::Scalar {
            value: "0".into(),
            plain: true,
        };
    }

    /// Adds `field: <placeholder>` to the mapping `id` (an empty scalar read as a
    /// mapping becomes one).
    pub fn add_placeholder_field(&mut self, id: NodeId, field: &str) {
        let pos = self.nodes[id].pos;
        let base = &self.nodes[id].path;
        let path = if base.is_empty() {
            field.to_string()
        } else {
            format!("{base}.{field}")
        };
        let key = self.nodes.len();
        self.nodes.push(Node {
            kind: Kind::Scalar {
                value: field.to_string(),
                plain: false,
            },
            pos,
            path: path.clone(),
            parent: Some(id),
        });
        let value = self.nodes.len();
        self.nodes.push(Node {
            kind: Kind::Placeholder,
            pos,
            path,
            parent: Some(id),
        });
        match &mut self.nodes[id].kind {
            Kind::Map(entries) => entries.push((key, value)),
            other => *other = Kind::Map(vec![(key, value)]),
        }
    }
}

struct Builder {
    nodes: Vec<Node>,
    anchors: HashMap<usize, NodeId>,
    stack: Vec<Frame>,
    root: Option<NodeId>,
    documents: usize,
}

impl Builder {
    fn path_here(&self) -> String {
        // good enough for a syntax error: the keys of the open mappings
        let mut out = String::new();
        let last = self.stack.len().saturating_sub(1);
        for (depth, f) in self.stack.iter().enumerate() {
            match f {
                // the item being read, unless the list itself is where it stopped
                Frame::Seq(_, _, items) if depth < last => {
                    out.push_str(&format!("[{}]", items.len()))
                }
                Frame::Seq(..) => {}
                Frame::Map(_, _, _, Some(k)) => {
                    if let Kind::Scalar { value, .. } = &self.nodes[*k].kind {
                        if !out.is_empty() {
                            out.push('.');
                        }
                        out.push_str(value);
                    }
                }
                Frame::Map(_, _, _, None) => {}
            }
        }
        out
    }

    fn error(&self, reason: impl Into<String>, pos: Pos) -> SyntaxError {
        SyntaxError {
            key: self.path_here(),
            reason: reason.into(),
            pos,
        }
    }

    fn scan_error(&self, e: &ScanError) -> SyntaxError {
        let pos = Pos {
            line: e.marker().line(),
            column: e.marker().col() + 1,
        };
        self.error(format!("not valid YAML: {}", e.info()), pos)
    }

    fn push(&mut self, kind: Kind, pos: Pos) -> Result<NodeId, SyntaxError> {
        if self.nodes.len() >= MAX_NODES {
            return Err(self.error(
                format!("the document expands to more than {MAX_NODES} values"),
                pos,
            ));
        }
        self.nodes.push(Node {
            kind,
            pos,
            path: String::new(),
            parent: None,
        });
        Ok(self.nodes.len() - 1)
    }

    /// Deep copy of an anchored node for an alias (paths are set later; problems in
    /// the copy point at the alias).
    fn copy(&mut self, id: NodeId, pos: Pos) -> Result<NodeId, SyntaxError> {
        let kind = match self.nodes[id].kind.clone() {
            Kind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for c in items {
                    out.push(self.copy(c, pos)?);
                }
                Kind::Seq(out)
            }
            Kind::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    out.push((self.copy(k, pos)?, self.copy(v, pos)?));
                }
                Kind::Map(out)
            }
            other => other,
        };
        self.push(kind, pos)
    }

    /// A finished node goes into the open collection (or becomes the root).
    fn attach(&mut self, id: NodeId, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, id);
        }
        match self.stack.last_mut() {
            Some(Frame::Seq(_, _, items)) => items.push(id),
            Some(Frame::Map(_, _, entries, pending)) => match pending.take() {
                Some(k) => entries.push((k, id)),
                None => *pending = Some(id),
            },
            None => self.root = Some(id),
        }
    }

    fn open(&mut self, seq: bool, anchor: usize, pos: Pos) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(format!("nested more than {MAX_DEPTH} levels deep"), pos));
        }
        let id = self.push(Kind::Placeholder, pos)?;
        self.stack.push(if seq {
            Frame::Seq(id, anchor, Vec::new())
        } else {
            Frame::Map(id, anchor, Vec::new(), None)
        });
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, pos: Pos) -> Result<(), SyntaxError> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(self.error("more than one YAML document in the file", pos));
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let str_tag = tag
                    .as_ref()
                    .is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                let plain = style == ScalarStyle::Plain && !str_tag;
                let id = self.push(
                    Kind::Scalar {
                        value: value.into_owned(),
                        plain,
                    },
                    pos,
                )?;
                self.attach(id, anchor);
            }
            Event::Alias(anchor) => {
                let Some(&target) = self.anchors.get(&anchor) else {
                    return Err(self.error("an alias names no anchor", pos));
                };
                let id = self.copy(target, pos)?;
                self.attach(id, 0);
            }
            Event::SequenceStart(anchor, _) => self.open(true, anchor, pos)?,
            Event::MappingStart(anchor, _) => self.open(false, anchor, pos)?,
            Event::SequenceEnd | Event::MappingEnd => {
                let (id, anchor, kind) = match self.stack.pop() {
                    Some(Frame::Seq(id, anchor, items)) => (id, anchor, Kind::Seq(items)),
                    Some(Frame::Map(id, anchor, entries, _)) => (id, anchor, Kind::Map(entries)),
                    None => return Err(self.error("unbalanced collection end", pos)),
                };
                self.nodes[id].kind = kind;
                self.attach(id, anchor);
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_positions_and_lookup() {
        let t = Tree::parse("a:\n  b: [1, {c: x}]\n  \"d.e\": 2\n").unwrap();
        assert_eq!(
            t.locate("a.b[1].c"),
            Pos {
                line: 2,
                column: 14
            }
        );
        assert_eq!(t.locate("a.b[0]"), Pos { line: 2, column: 7 });
        assert_eq!(
            t.locate("a.d.e"),
            Pos {
                line: 3,
                column: 10
            }
        );
        // not written: the closest written ancestor
        assert_eq!(
            t.locate("a.b[1].missing"),
            Pos {
                line: 2,
                column: 10
            }
        );
        assert_eq!(t.locate("a.b[7]"), Pos { line: 2, column: 6 });
    }

    #[test]
    fn aliases_are_copied_and_bounded() {
        let t = Tree::parse("x: &a [1, 2]\ny: *a\n").unwrap();
        assert_eq!(t.locate("y[1]"), Pos { line: 2, column: 4 });
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = Tree::parse(&bomb).unwrap_err();
        assert!(e.reason.contains("more than"), "{e:?}");
    }

    #[test]
    fn depth_and_documents_are_bounded() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(Tree::parse(&deep)
            .unwrap_err()
            .reason
            .contains("levels deep"));
        let two = Tree::parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(two.reason.contains("more than one"), "{two:?}");
    }
}
