//! Merge values inside a link's destination are written by their place in the
//! URL (RFC 3986 §2–3), so a value is data and can never change the URL's
//! shape: `Mary Ann` in a path is `Mary%20Ann`, `x&admin=1#frag` in a query
//! value stays one value. The merged URL is then normalised by the `url`
//! crate (WHATWG URL Standard, which agrees with RFC 3986 on http(s) URLs):
//! an internationalised host becomes punycode and any other non-ASCII is
//! percent-encoded, so what goes into a `Location` header is ASCII.
//!
//! The place of a value is read from what precedes it in the merged URL:
//! - nothing yet, or no `://` yet: the value is (the start of) a whole URL
//!   written by the CRM (`{{custom.link}}`): only what no URL may hold
//!   (space, controls, `"<>\^`{|}`) is encoded, `%` escapes are kept;
//! - after `scheme://` and before the next `/`, `?` or `#`: the host (and
//!   port); everything but unreserved characters, sub-delimiters and `:` is
//!   encoded, so a value cannot end the host or add user information;
//! - in the path: `pchar` and `/` are kept (RFC 3986 `path-abempty`), `?`,
//!   `#`, `%` and the rest are encoded;
//! - in the query: unreserved characters and `:@/?!$'()*,` are kept; `&`,
//!   `=`, `+`, `;`, `#`, `%` and the rest are encoded, since form decoders
//!   split on `&`, `=` and `;` and read `+` as a space;
//! - in the fragment: `pchar`, `/` and `?` are kept, `#`, `%` and the rest are
//!   encoded.

use std::fmt::Write as _;

/// Where in a URL a merge value lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Before `scheme://`: the value is a URL (or its start).
    Whole,
    /// The host and port.
    Authority,
    /// The path.
    Path,
    /// The query.
    Query,
    /// The fragment.
    Fragment,
}

impl Place {
    /// The place of a value written after `prefix` (the URL merged so far).
    pub(crate) fn after(prefix: &str) -> Place {
        let Some(scheme_end) = prefix.find("://") else {
            return Place::Whole;
        };
        let rest = &prefix[scheme_end + 3..];
        if rest.contains('#') {
            Place::Fragment
        } else if rest.contains('?') {
            Place::Query
        } else if rest.contains('/') {
            Place::Path
        } else {
            Place::Authority
        }
    }

    fn keeps(self, c: char) -> bool {
        let unreserved = c.is_ascii_alphanumeric() || "-._~".contains(c);
        let sub_delim = "!$&'()*+,;=".contains(c);
        match self {
            Place::Whole => {
                !c.is_ascii() && !c.is_control()
                    || c.is_ascii_graphic() && !"\"<>\\^`{|}".contains(c)
            }
            Place::Authority => {
                unreserved || sub_delim || c == ':' || !c.is_ascii() && !c.is_control()
            }
            Place::Path => unreserved || sub_delim || ":@/".contains(c),
            Place::Query => unreserved || ":@/?!$'()*,".contains(c),
            Place::Fragment => unreserved || sub_delim || ":@/?".contains(c),
        }
    }
}

/// Writes `value` into `out` as its place requires.
pub(crate) fn encode_into(out: &mut String, value: &str, place: Place) {
    for c in value.chars() {
        if place.keeps(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// The merged destination as an ASCII http(s) URL, or `None` when it is not
/// one (another scheme, no host, a host a value made invalid).
pub(crate) fn finish(merged: &str) -> Option<String> {
    let url = url::Url::parse(merged.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    Some(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_read_from_the_prefix() {
        for (prefix, place) in [
            ("", Place::Whole),
            ("https", Place::Whole),
            ("https://", Place::Authority),
            ("https://shop.", Place::Authority),
            ("https://shop.test:", Place::Authority),
            ("https://shop.test/", Place::Path),
            ("https://shop.test/a/b-", Place::Path),
            ("https://shop.test/a?", Place::Query),
            ("https://shop.test?x=", Place::Query),
            ("https://shop.test/a?x=1&y=", Place::Query),
            ("https://shop.test/a?x=1#", Place::Fragment),
            ("https://shop.test/#a?b", Place::Fragment),
        ] {
            assert_eq!(Place::after(prefix), place, "{prefix}");
        }
    }

    #[test]
    fn each_place_encodes_what_would_change_the_url() {
        for (value, place, encoded) in [
            ("Mary Ann", Place::Path, "Mary%20Ann"),
            ("a/b", Place::Path, "a/b"),
            ("a?b#c%d", Place::Path, "a%3Fb%23c%25d"),
            ("x&admin=1#frag", Place::Query, "x%26admin%3D1%23frag"),
            ("1+1;2", Place::Query, "1%2B1%3B2"),
            ("Zoë", Place::Query, "Zo%C3%AB"),
            ("a#b c", Place::Fragment, "a%23b%20c"),
            ("evil.test/x", Place::Authority, "evil.test%2Fx"),
            ("evil.test@", Place::Authority, "evil.test%40"),
            ("bücher", Place::Authority, "bücher"),
            (
                "https://shop.test/a%20b?x=1 2",
                Place::Whole,
                "https://shop.test/a%20b?x=1%202",
            ),
            (
                "https://shop.test/\n",
                Place::Whole,
                "https://shop.test/%0A",
            ),
        ] {
            let mut out = String::new();
            encode_into(&mut out, value, place);
            assert_eq!(out, encoded, "{value:?} in {place:?}");
        }
    }

    #[test]
    fn finishing_normalises_to_ascii_http_urls() {
        assert_eq!(
            finish("https://bücher.test/Zoë").as_deref(),
            Some("https://xn--bcher-kva.test/Zo%C3%AB")
        );
        assert_eq!(
            finish("https://shop.test/sale").as_deref(),
            Some("https://shop.test/sale")
        );
        assert_eq!(finish("javascript:alert(1)"), None);
        assert_eq!(finish("mailto:a@shop.test"), None);
        assert_eq!(finish("https://evil.test%2Fx.shop.test/"), None);
    }
}
