//! Abuse protection (CloudEvents webhook validation, protocol reference §4): the service sends `OPTIONS`
//! with `WebHook-Request-Origin: <its host>` and registers the handler only if the answer allows that host
//! in `WebHook-Allowed-Origin`.
//!
//! Only the hosts of the configured connection strings, plus an explicit extra list, are allowed; any other
//! origin, or none, is refused. The list is built once; a check is a few case-insensitive comparisons.

/// The origins this handler accepts events from.
#[derive(Debug, Clone)]
pub(crate) struct AllowedOrigins {
    /// Lowercase; each service host appears bare and, when its port is not the scheme default, as
    /// `host:port` too (the local emulator runs on a port).
    hosts: Vec<Box<str>>,
}

impl AllowedOrigins {
    /// Service endpoints as `(host, port, default_port)` triples, plus extra hosts from settings.
    pub(crate) fn new<'a>(
        services: impl IntoIterator<Item = (&'a str, u16, bool)>,
        extra: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut hosts: Vec<Box<str>> = Vec::new();
        let mut add = |host: String| {
            if !hosts.iter().any(|known| **known == *host) {
                hosts.push(host.into_boxed_str());
            }
        };
        for (host, port, is_default_port) in services {
            add(host.to_ascii_lowercase());
            if !is_default_port {
                add(format!("{}:{port}", host.to_ascii_lowercase()));
            }
        }
        for host in extra {
            add(host.trim().to_ascii_lowercase());
        }
        Self { hosts }
    }

    /// The allowed hosts.
    #[cfg(test)]
    pub(crate) fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(|host| &**host)
    }

    /// The first requested origin that is allowed, as written by the caller, or `None`. The header may list
    /// several hosts separated by commas or spaces.
    pub(crate) fn pick<'h>(&self, requested: &'h str) -> Option<&'h str> {
        requested
            .split([',', ' '])
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .find(|origin| self.is_allowed(origin))
    }

    /// Whether `origin` (a bare host or `host:port`) is allowed, ignoring ASCII case.
    pub(crate) fn is_allowed(&self, origin: &str) -> bool {
        self.hosts.iter().any(|host| host.eq_ignore_ascii_case(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn origins() -> AllowedOrigins {
        AllowedOrigins::new(
            [("contoso.webpubsub.azure.com", 443, true), ("127.0.0.1", 8080, false)],
            ["Extra.Example.com"],
        )
    }

    #[test]
    fn service_hosts_and_extras_are_allowed_in_any_case() {
        let origins = origins();
        assert_eq!(
            origins.pick("contoso.webpubsub.azure.com"),
            Some("contoso.webpubsub.azure.com")
        );
        assert_eq!(
            origins.pick("CONTOSO.webpubsub.azure.com"),
            Some("CONTOSO.webpubsub.azure.com")
        );
        assert_eq!(origins.pick("extra.example.com"), Some("extra.example.com"));
        assert_eq!(origins.pick("127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(origins.pick("127.0.0.1:8080"), Some("127.0.0.1:8080"));
    }

    #[test]
    fn other_origins_are_refused() {
        let origins = origins();
        for origin in [
            "",
            " ",
            "evil.example.com",
            "contoso.webpubsub.azure.com.evil.com",
            "127.0.0.1:9",
            "*",
            "contoso",
        ] {
            assert_eq!(origins.pick(origin), None, "{origin:?}");
        }
        // A default port is never listed explicitly.
        assert_eq!(origins.pick("contoso.webpubsub.azure.com:443"), None);
    }

    #[test]
    fn the_first_allowed_of_several_is_echoed() {
        let origins = origins();
        assert_eq!(
            origins.pick("evil.example.com, contoso.webpubsub.azure.com"),
            Some("contoso.webpubsub.azure.com")
        );
        assert_eq!(
            origins.pick("evil.example.com extra.example.com"),
            Some("extra.example.com")
        );
    }

    #[test]
    fn duplicates_collapse() {
        let origins = AllowedOrigins::new([("a.example", 443, true), ("A.example", 443, true)], ["a.example"]);
        assert_eq!(origins.hosts().collect::<Vec<_>>(), ["a.example"]);
    }

    proptest! {
        #[test]
        fn picking_never_panics_and_only_returns_allowed(requested in "\\PC{0,80}") {
            let origins = origins();
            if let Some(origin) = origins.pick(&requested) {
                prop_assert!(origins.is_allowed(origin));
            }
        }
    }
}
