//! Client details of opens and clicks (R-EVT-1): the User-Agent parsed into
//! browser, operating system and device (woothee), and the IP located to a
//! country and city in a MaxMind-format database (maxminddb), when one is given.

use crate::{Error, Result};
use std::net::IpAddr;

/// Browser, OS and device of a User-Agent; `None` for what is unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAgent {
    /// e.g. `Chrome`, `Safari`, `Firefox`.
    pub browser: Option<String>,
    /// e.g. `Windows 10`, `Mac OSX`, `iPhone`, `Android`.
    pub os: Option<String>,
    /// `pc`, `smartphone`, `mobilephone`, `crawler`, `appliance` or `misc`.
    pub device: Option<String>,
}

fn known(v: &str) -> Option<String> {
    (!v.is_empty() && v != "UNKNOWN").then(|| v.to_owned())
}

/// Parses a User-Agent.
pub fn parse_user_agent(ua: &str) -> UserAgent {
    match woothee::parser::Parser::new().parse(ua) {
        Some(r) => UserAgent {
            browser: known(r.name),
            os: known(r.os),
            device: known(r.category),
        },
        None => UserAgent::default(),
    }
}

/// A MaxMind-format city database (GeoLite2-City, GeoIP2-City), read from
/// bytes the caller loaded: this crate opens no files.
pub struct GeoIp(maxminddb::Reader<Vec<u8>>);

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("database_type", &self.0.metadata.database_type)
            .finish()
    }
}

impl GeoIp {
    /// Reads a database from its bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        maxminddb::Reader::from_source(bytes)
            .map(GeoIp)
            .map_err(|e| Error::Invalid {
                field: "geoip database",
                rule: format!("not a MaxMind DB: {e}"),
            })
    }

    /// The ISO country code and English city name of `ip`, where known.
    pub fn locate(&self, ip: &str) -> (Option<String>, Option<String>) {
        let Ok(ip) = ip.trim().parse::<IpAddr>() else {
            return (None, None);
        };
        match self.0.lookup::<maxminddb::geoip2::City<'_>>(ip) {
            Ok(Some(c)) => (
                c.country.and_then(|c| c.iso_code).map(str::to_owned),
                c.city
                    .and_then(|c| c.names)
                    .and_then(|n| n.get("en").map(|s| (*s).to_owned())),
            ),
            _ => (None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_parsed() {
        let chrome = parse_user_agent(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        );
        assert_eq!(
            (
                chrome.browser.as_deref(),
                chrome.os.as_deref(),
                chrome.device.as_deref()
            ),
            (Some("Chrome"), Some("Windows 10"), Some("pc"))
        );
        let iphone = parse_user_agent(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(
            (
                iphone.browser.as_deref(),
                iphone.os.as_deref(),
                iphone.device.as_deref()
            ),
            (Some("Safari"), Some("iPhone"), Some("smartphone"))
        );
        let bot = parse_user_agent("Googlebot/2.1 (+http://www.google.com/bot.html)");
        assert_eq!(bot.device.as_deref(), Some("crawler"));
        assert_eq!(parse_user_agent(""), UserAgent::default());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        assert!(GeoIp::from_bytes(b"not a database".to_vec()).is_err());
    }
}
