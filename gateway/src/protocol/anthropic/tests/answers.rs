//! Whole answers and error bodies, both ways.
