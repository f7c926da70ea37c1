//! [`Secret`]: a credential value that never prints itself. AnyCode's one secret
//! type: agent credentials (this crate) and the GitHub token (`anycode-github`) both
//! use it.

use serde::{Deserialize, Deserializer};
use std::fmt;
use zeroize::Zeroize;

/// What [`Secret`] shows instead of its value in `Debug` and `Display`.
pub const REDACTED: &str = "<redacted>";

/// A credential value (token, API key, or a line carrying them).
///
/// - `Debug` and `Display` print [`REDACTED`], so a `Secret` that ends up in a log
///   line (`tracing`'s `?x` or `%x`) or an error message shows nothing of its value.
/// - It does not implement `Serialize`: a type holding one cannot be turned into
///   JSON (an API answer, a file) by accident; the compiler refuses.
/// - The value is reachable only through [`Secret::expose`], which is easy to find
///   in a review.
/// - The memory holding it is overwritten when it is dropped.
///
/// `Deserialize` reads a JSON string (e.g. `accessToken` in Claude Code's
/// credentials file) straight into a `Secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value as it is. The caller should drop or zeroize its own copy.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Wraps a value someone pasted or a program printed, without the whitespace
    /// around it (a pasted token, `gh auth token`'s output and a keyring entry
    /// written by hand often end in a newline). `raw` is zeroized.
    pub fn trimmed(mut raw: String) -> Secret {
        let s = Secret(raw.trim().to_string());
        raw.zeroize();
        s
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
        #[derive(Debug)]
        #[allow(dead_code)] // Read only by `Debug`.
        struct Holder {
            key: Secret,
            other: Option<Secret>,
        }
        let h = Holder { key: s.clone(), other: Some(s.clone()) };
        assert!(!format!("{h:?}").contains("very-secret"));
        assert!(!format!("{h:#?}").contains("very-secret"));
        assert_eq!(s.expose(), "sk-ant-api03-very-secret-value-wxyz");
    }

    /// Compiles only while `Secret` does not implement `Serialize` (the check of
    /// `static_assertions::assert_not_impl_any!`): with an impl, `Secret` would match
    /// both impls below and the call would be ambiguous.
    #[test]
    fn is_not_serialize() {
        trait AmbiguousIfSerialize<A> {
            fn check() {}
        }
        impl<T: ?Sized> AmbiguousIfSerialize<()> for T {}
        #[allow(dead_code)]
        struct IsSerialize;
        impl<T: ?Sized + serde::Serialize> AmbiguousIfSerialize<IsSerialize> for T {}
        <Secret as AmbiguousIfSerialize<_>>::check();
    }

    #[test]
    fn trimmed_drops_surrounding_whitespace_only() {
        assert_eq!(Secret::trimmed(" ghp_abc\n".to_string()).expose(), "ghp_abc");
        assert_eq!(Secret::trimmed("a b".to_string()).expose(), "a b");
        assert!(Secret::trimmed("\n  \t".to_string()).is_empty());
        assert_eq!(Secret::new(" kept \n").expose(), " kept \n", "new keeps the value as it is");
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
