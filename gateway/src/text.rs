//! Bounding text the gateway records or answers with.

/// Cuts `s` to at most `limit` bytes, on a character boundary.
pub fn cut(s: &mut String, limit: usize) {
    if s.len() > limit {
        let mut at = limit;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_on_a_char_boundary() {
        let mut s = "aé".to_string();
        super::cut(&mut s, 2);
        assert_eq!(s, "a");
        let mut s = "short".to_string();
        super::cut(&mut s, 10);
        assert_eq!(s, "short");
    }
}
