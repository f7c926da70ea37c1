//! [`Secret`]: a credential value that never prints itself.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use zeroize::Zeroize;

/// What [`Secret`] shows instead of its value in `Debug`, `Display` and `Serialize`.
pub const REDACTED: &str = "<redacted>";

/// A credential value (token, API key, or a line carrying them).
///
/// - `Debug`, `Display` and `Serialize` print [`REDACTED`], so a `Secret` that ends
///   up in a log line (`tracing`'s `?x` or `%x`), an error message or a JSON
///   response shows nothing of its value.
/// - The value is reachable only through [`Secret::expose`], which is easy to find
///   in a review.
/// - The memory holding it is overwritten when it is dropped.
///
/// `Deserialize` reads a JSON string (e.g. `accessToken` in Claude Code's
/// credentials file) straight into a `Secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value. The caller should drop or zeroize its own copy.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself. Call this only where the value has to go somewhere: the
    /// keyring, or the agent process's environment.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fixed display form of a key the user typed: `sk-…abcd` (the `sk-` prefix
    /// when the key has it, an ellipsis, the last four characters), or just `…` for
    /// values shorter than 16 characters, where four characters would give away too
    /// much. Never more of the value than that.
    pub fn display_form(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 16 {
            return "…".to_string();
        }
        let tail: String = chars[chars.len() - 4..].iter().collect();
        let head = if self.0.starts_with("sk-") { "sk-" } else { "" };
        format!("{head}…{tail}")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("sk-ant-api03-very-secret-value-wxyz");
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s:#?}"), "Secret(<redacted>)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        #[derive(Serialize, Debug)]
        struct Holder {
            key: Secret,
            other: Option<Secret>,
        }
        let h = Holder { key: s.clone(), other: Some(s.clone()) };
        let json = serde_json::to_string(&h).unwrap();
        assert!(!json.contains("very-secret"), "{json}");
        assert!(!format!("{h:?}").contains("very-secret"));
        assert_eq!(s.expose(), "sk-ant-api03-very-secret-value-wxyz");
    }

    #[test]
    fn display_form_is_fixed() {
        assert_eq!(Secret::new("sk-ant-api03-0123456789abcdef").display_form(), "sk-…cdef");
        assert_eq!(Secret::new("ghp_0123456789abcdefWXYZ").display_form(), "…WXYZ");
        assert_eq!(Secret::new("short-key").display_form(), "…");
        assert_eq!(Secret::new("").display_form(), "…");
    }

    #[test]
    fn reads_json_strings() {
        let s: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(s.expose(), "abc");
        assert!(serde_json::from_str::<Secret>("12").is_err());
    }
}
