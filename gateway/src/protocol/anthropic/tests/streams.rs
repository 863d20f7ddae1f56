//! Streams, both ways.
