//! The translation tables, one row per mapped field, and the answers,
//! streams, errors and embeddings.
