//! Consumer API keys: `sk-gw-` + 43 base62 characters (256 bits from the OS
//! random source). Only a digest is ever stored: SHA-256, or HMAC-SHA-256 keyed with
//! a pepper when `GATEWAY_KEY_PEPPER` is set. Digests are compared in constant time;
//! the plaintext exists only in the answer that created the key.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

pub const KEY_PREFIX: &str = "sk-gw-";
/// base62 characters after the prefix: 43 * log2(62) = 256 bits.
const KEY_CHARS: usize = 43;
/// Characters of a key id (`key_` + 16 base62).
const ID_CHARS: usize = 16;
/// How many characters after `sk-gw-` are shown to people to tell keys apart.
pub const SHOWN_PREFIX_CHARS: usize = 8;
/// The environment variable holding the optional pepper.
pub const PEPPER_ENV: &str = "GATEWAY_KEY_PEPPER";

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The OS random source failed (it does not on any supported platform, but the
/// caller must answer with an error rather than hand out a weak key).
#[derive(Debug)]
pub struct RandomUnavailable(String);

impl fmt::Display for RandomUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the operating system's random source failed: {}", self.0)
    }
}

impl std::error::Error for RandomUnavailable {}

/// `n` uniformly random base62 characters (rejection sampling: no modulo bias).
fn base62(n: usize) -> Result<String, RandomUnavailable> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).map_err(|e| RandomUnavailable(e.to_string()))?;
        for &b in &buf {
            // 248 = 4 * 62: bytes at or above it would favour the first characters.
            if b < 248 && out.len() < n {
                out.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

/// A freshly created key. `plaintext` goes to the caller once and is never stored.
pub struct NewKey {
    pub id: String,
    pub plaintext: String,
    pub prefix: String,
    pub digest: Digest32,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A key digest (SHA-256 or HMAC-SHA-256), stored and compared instead of the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest32(pub [u8; 32]);

impl Digest32 {
    /// Lower-case hex, the form kept in the state backend.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s
    }

    pub fn from_hex(hex: &str) -> Option<Digest32> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Digest32(out))
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Digest32) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Debug for Digest32 {
    // Even a digest is not printed whole: it identifies a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest32({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

/// Hashes keys; holds the optional pepper.
#[derive(Clone)]
pub struct KeyHasher {
    pepper: Option<Vec<u8>>,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHasher {{ peppered: {} }}", self.pepper.is_some())
    }
}

impl KeyHasher {
    pub fn new(pepper: Option<&[u8]>) -> KeyHasher {
        KeyHasher {
            pepper: pepper.filter(|p| !p.is_empty()).map(<[u8]>::to_vec),
        }
    }

    /// The hasher the environment asks for (`GATEWAY_KEY_PEPPER`, if set).
    pub fn from_env() -> KeyHasher {
        let pepper = std::env::var(PEPPER_ENV).ok();
        KeyHasher::new(pepper.as_deref().map(str::as_bytes))
    }

    pub fn digest(&self, key: &str) -> Digest32 {
        match &self.pepper {
            None => Digest32(Sha256::digest(key.as_bytes()).into()),
            Some(p) => match <Hmac<Sha256> as Mac>::new_from_slice(p) {
                Ok(mut mac) => {
                    mac.update(key.as_bytes());
                    Digest32(mac.finalize().into_bytes().into())
                }
                // HMAC accepts keys of any length; this arm is unreachable in practice,
                // and a plain digest of pepper + key is still never the bare key.
                Err(_) => Digest32(
                    Sha256::new()
                        .chain_update(p)
                        .chain_update(key.as_bytes())
                        .finalize()
                        .into(),
                ),
            },
        }
    }

    /// A digest of `v` for a use other than keys: `domain` keeps it apart from
    /// every key digest (and from the other uses).
    pub fn digest_for(&self, domain: &[u8], v: &[u8]) -> Digest32 {
        let plain = || {
            Sha256::new()
                .chain_update(domain)
                .chain_update(v)
                .finalize()
                .into()
        };
        match &self.pepper {
            None => Digest32(plain()),
            Some(p) => match <Hmac<Sha256> as Mac>::new_from_slice(p) {
                Ok(mut mac) => {
                    mac.update(domain);
                    mac.update(v);
                    Digest32(mac.finalize().into_bytes().into())
                }
                // unreachable in practice (HMAC takes keys of any length)
                Err(_) => Digest32(
                    Sha256::new()
                        .chain_update(p)
                        .chain_update(domain)
                        .chain_update(v)
                        .finalize()
                        .into(),
                ),
            },
        }
    }

    /// Creates a new key and its id.
    pub fn generate(&self) -> Result<NewKey, RandomUnavailable> {
        let plaintext = format!("{KEY_PREFIX}{}", base62(KEY_CHARS)?);
        Ok(NewKey {
            id: format!("key_{}", base62(ID_CHARS)?),
            prefix: shown_prefix(&plaintext).to_string(),
            digest: self.digest(&plaintext),
            plaintext,
        })
    }
}

/// The hasher of quota subjects: the pepper comes from the environment, as
/// for keys, so every replica of a deployment names a subject the same.
static SUBJECT_HASHER: std::sync::LazyLock<KeyHasher> =
    std::sync::LazyLock::new(KeyHasher::from_env);

/// The name a value a client sends is counted by when it may be a credential
/// (a `by: header:<name>` quota subject): `sha256:` and the first 16 bytes, in
/// hex, of its SHA-256 (HMAC-SHA-256 keyed with `GATEWAY_KEY_PEPPER` when that
/// is set), apart from key digests. The value itself is never stored.
pub fn subject_digest(v: &[u8]) -> String {
    SUBJECT_HASHER.subject_digest(v)
}

impl KeyHasher {
    /// `subject_digest` with this hasher's pepper.
    pub fn subject_digest(&self, v: &[u8]) -> String {
        let hex = self.digest_for(b"gateway quota subject\0", v).to_hex();
        format!("sha256:{}", hex.get(..32).unwrap_or(&hex))
    }
}

/// The first `n` bytes of the SHA-256 of `v`, as lowercase hex: a short one-way
/// name for a value that must not be stored or shown (api tokens, secret
/// headers).
pub fn sha256_hex(v: &[u8], n: usize) -> String {
    Sha256::digest(v)
        .iter()
        .take(n)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The part of a key people may see: the first 8 characters after `sk-gw-`.
pub fn shown_prefix(key: &str) -> &str {
    let rest = key.strip_prefix(KEY_PREFIX).unwrap_or(key);
    let end = rest
        .char_indices()
        .nth(SHOWN_PREFIX_CHARS)
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

/// Whether a presented credential has the shape of a gateway key (cheap check that
/// spares the state backend lookups for obviously foreign tokens).
pub fn looks_like_key(s: &str) -> bool {
    s.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == KEY_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let h = KeyHasher::new(None);
        let k = h.generate().unwrap();
        assert!(k.plaintext.starts_with("sk-gw-"));
        assert_eq!(k.plaintext.len(), 6 + 43);
        assert!(looks_like_key(&k.plaintext));
        assert_eq!(k.prefix, &k.plaintext[6..14]);
        assert!(k.id.starts_with("key_") && k.id.len() == 4 + 16);
        assert!(h.digest(&k.plaintext).ct_eq(&k.digest));
        // Debug output never shows the key.
        assert!(!format!("{k:?}").contains(&k.plaintext));
        assert!(!format!("{:?}", k.digest).contains(&k.digest.to_hex()));
    }

    #[test]
    fn keys_do_not_repeat_and_use_all_of_base62() {
        let h = KeyHasher::new(None);
        let mut seen = HashSet::new();
        let mut chars = HashSet::new();
        for _ in 0..500 {
            let k = h.generate().unwrap();
            chars.extend(k.plaintext[6..].bytes());
            assert!(seen.insert(k.plaintext));
        }
        assert_eq!(chars.len(), 62);
    }

    #[test]
    fn sha256_and_hmac_digests() {
        // SHA-256("abc")
        assert_eq!(
            KeyHasher::new(None).digest("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // HMAC-SHA-256 test case 2 of RFC 4231: key "Jefe".
        assert_eq!(
            KeyHasher::new(Some(b"Jefe"))
                .digest("what do ya want for nothing?")
                .to_hex(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(!KeyHasher::new(Some(b"p"))
            .digest("k")
            .ct_eq(&KeyHasher::new(None).digest("k")));
        // An empty pepper is no pepper.
        assert!(KeyHasher::new(Some(b""))
            .digest("k")
            .ct_eq(&KeyHasher::new(None).digest("k")));
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let d = KeyHasher::new(None).digest("x");
        assert_eq!(Digest32::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest32::from_hex("zz"), None);
        assert_eq!(Digest32::from_hex(&"G".repeat(64)), None);
    }

    #[test]
    fn prefixes_and_shapes() {
        assert_eq!(shown_prefix("sk-gw-abcdefghijkl"), "abcdefgh");
        assert_eq!(shown_prefix("sk-gw-abc"), "abc");
        assert_eq!(shown_prefix("sk-gw-ééééééééé"), "éééééééé");
        assert!(!looks_like_key("sk-gw-short"));
        assert!(!looks_like_key("Bearer sk-gw-x"));
        assert!(!looks_like_key(&format!("sk-gw-{}", "a".repeat(42) + "!")));
    }
}
