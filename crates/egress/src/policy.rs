//! Which hosts a sandbox may reach through the egress proxy: a [`Policy`] is a
//! task's [`NetworkMode`] and its allow list compiled into [`Pattern`]s. Decisions
//! are by host name (and port), before any DNS lookup.

use crate::Error;
use anycode_core::NetworkMode;

/// The name under which a sandbox reaches this machine. An allow entry
/// `host.docker.internal:PORT` is a gateway: the proxy connects to the host's
/// `127.0.0.1:PORT` (the one way a sandbox reaches a host service).
pub const HOST_GATEWAY: &str = "host.docker.internal";

/// One allow-list entry: `example.com` (that host), `*.example.org` (its
/// subdomains, not itself), each with an optional `:port`. Without a port, ports 80
/// and 443 are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Lowercase host name (without the `*.`).
    pub host: String,
    /// Whether it matches subdomains of `host` (`*.host`).
    pub wildcard: bool,
    /// The one port allowed; `None`: 80 and 443.
    pub port: Option<u16>,
}

impl Pattern {
    /// Parses an allow entry.
    ///
    /// Errors: [`Error::InvalidPattern`] with the fix, for a URL, a path, an empty
    /// entry, characters a host name cannot have, a bad port, or a gateway
    /// (`host.docker.internal`) without a port.
    pub fn parse(entry: &str) -> Result<Pattern, Error> {
        let bad = |why: &str| Error::InvalidPattern(format!("{entry:?}: {why}"));
        let s = entry.trim().to_ascii_lowercase();
        if s.is_empty() {
            return Err(bad("an allow entry is empty; give a host name such as example.com"));
        }
        if s.contains("://") || s.contains('/') {
            return Err(bad("give the host name only, without scheme or path (e.g. example.com, or example.com:8443)"));
        }
        let (name, port) = match s.rsplit_once(':') {
            Some((h, p)) => {
                let port: u16 = p.parse().ok().filter(|p| *p > 0).ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
                (h.to_string(), Some(port))
            }
            None => (s.clone(), None),
        };
        let (wildcard, host) = match name.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, name),
        };
        let host = host.trim_end_matches('.').to_string();
        let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(bad("not a host name: use letters, digits, '-' and '.', optionally starting with '*.' (e.g. *.example.org)"));
        }
        if host == HOST_GATEWAY && (wildcard || port.is_none()) {
            return Err(bad("a gateway on this machine needs its port: host.docker.internal:PORT"));
        }
        Ok(Pattern { host, wildcard, port })
    }

    /// Whether `host` (lowercase, no trailing dot) on `port` matches.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let port_ok = match self.port {
            Some(p) => p == port,
            None => port == 80 || port == 443,
        };
        let host_ok = if self.wildcard {
            host.len() > self.host.len() + 1 && host.ends_with(&self.host) && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        };
        port_ok && host_ok
    }

    /// Whether this entry is a gateway on this machine (`host.docker.internal:PORT`).
    pub fn is_gateway(&self) -> bool {
        self.host == HOST_GATEWAY
    }
}

/// Checks a whole allow list, returning every problem (one per line).
///
/// Errors: [`Error::InvalidPattern`].
pub fn check_allow(allow: &[String]) -> Result<(), Error> {
    let problems: Vec<String> = allow.iter().filter_map(|e| Pattern::parse(e).err()).map(|e| e.to_string()).collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidPattern(problems.join("; ")))
    }
}

/// A task's mode and compiled allow list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The mode the sandbox runs with.
    pub mode: NetworkMode,
    /// The allow list.
    pub allow: Vec<Pattern>,
}

/// What the proxy does with a request for a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Connect: to the host's `127.0.0.1:port` for a gateway, else to the name's
    /// public addresses.
    Allow {
        /// Whether it is a gateway on this machine.
        gateway: bool,
    },
    /// Refuse with 403.
    Deny,
}

impl Policy {
    /// Compiles `allow` for `mode`.
    ///
    /// Errors: [`Error::InvalidPattern`] naming every bad entry.
    pub fn new(mode: NetworkMode, allow: &[String]) -> Result<Policy, Error> {
        check_allow(allow)?;
        Ok(Policy { mode, allow: allow.iter().filter_map(|e| Pattern::parse(e).ok()).collect() })
    }

    /// Decides for `host` (as the request named it) and `port`: `none` refuses
    /// everything; gateways only by an exact allow entry; `open` allows every other
    /// name (addresses are checked after the lookup); `allowlist` only what an entry
    /// matches.
    pub fn decide(&self, host: &str, port: u16) -> Decision {
        let host = normalize_host(host);
        if self.mode == NetworkMode::None {
            return Decision::Deny;
        }
        let matched = self.allow.iter().find(|p| p.matches(&host, port));
        if host == HOST_GATEWAY {
            return match matched {
                Some(_) => Decision::Allow { gateway: true },
                None => Decision::Deny,
            };
        }
        match (self.mode, matched) {
            (NetworkMode::Open, _) | (_, Some(_)) => Decision::Allow { gateway: false },
            _ => Decision::Deny,
        }
    }
}

/// Lowercase, without a trailing dot or IPv6 brackets.
pub fn normalize_host(host: &str) -> String {
    host.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(mode: NetworkMode, allow: &[&str]) -> Policy {
        Policy::new(mode, &allow.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn patterns_parse_and_bad_ones_say_how_to_fix_them() {
        assert_eq!(Pattern::parse("Example.COM").unwrap(), Pattern { host: "example.com".into(), wildcard: false, port: None });
        assert_eq!(Pattern::parse("*.example.org:8443").unwrap(), Pattern { host: "example.org".into(), wildcard: true, port: Some(8443) });
        assert!(Pattern::parse("host.docker.internal:8080").unwrap().is_gateway());
        for (bad, says) in [
            ("https://example.com", "without scheme"),
            ("example.com/path", "without scheme"),
            ("", "empty"),
            ("exa mple.com", "not a host name"),
            ("example.com:0", "port"),
            ("example.com:99999", "port"),
            ("*.", "not a host name"),
            ("host.docker.internal", "needs its port"),
        ] {
            let e = Pattern::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = check_allow(&["ok.com".into(), "a b".into(), "c/d".into()]).unwrap_err().to_string();
        assert!(e.contains("\"a b\"") && e.contains("\"c/d\""), "{e}");
    }

    #[test]
    fn decisions_by_name_and_port() {
        let allow = p(NetworkMode::Allowlist, &["example.com", "*.example.org", "gw.example.net:8443", "host.docker.internal:4000"]);
        assert_eq!(allow.decide("example.com", 443), Decision::Allow { gateway: false });
        assert_eq!(allow.decide("EXAMPLE.com.", 80), Decision::Allow { gateway: false });
        assert_eq!(allow.decide("example.com", 22), Decision::Deny);
        assert_eq!(allow.decide("a.b.example.org", 443), Decision::Allow { gateway: false });
        assert_eq!(allow.decide("example.org", 443), Decision::Deny, "a wildcard is subdomains only");
        assert_eq!(allow.decide("badexample.org", 443), Decision::Deny);
        assert_eq!(allow.decide("gw.example.net", 8443), Decision::Allow { gateway: false });
        assert_eq!(allow.decide("gw.example.net", 443), Decision::Deny);
        assert_eq!(allow.decide("example.net", 443), Decision::Deny);
        assert_eq!(allow.decide("host.docker.internal", 4000), Decision::Allow { gateway: true });
        assert_eq!(allow.decide("host.docker.internal", 4001), Decision::Deny);
        assert_eq!(allow.decide("10.0.0.1", 443), Decision::Deny);

        let open = p(NetworkMode::Open, &["host.docker.internal:4000"]);
        assert_eq!(open.decide("example.net", 443), Decision::Allow { gateway: false });
        assert_eq!(open.decide("host.docker.internal", 4000), Decision::Allow { gateway: true });
        assert_eq!(open.decide("host.docker.internal", 5432), Decision::Deny, "host services only as gateways");

        let none = p(NetworkMode::None, &["example.com", "host.docker.internal:4000"]);
        assert_eq!(none.decide("example.com", 443), Decision::Deny);
        assert_eq!(none.decide("host.docker.internal", 4000), Decision::Deny);
    }
}
