//! SPF records (RFC 7208): parsing and validating one record, counting its
//! DNS-querying terms, and making the record to publish.

/// One SPF record, split into terms and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfRecord {
    /// The record as published.
    pub text: String,
    terms: Vec<String>,
}

/// A term of an SPF record that queries DNS (RFC 7208 §4.6.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Querying {
    /// `include:<domain>`.
    Include(String),
    /// `redirect=<domain>`.
    Redirect(String),
    /// `a`, `mx`, `ptr`, `exists`: count, not followed.
    Other,
}

impl SpfRecord {
    /// Whether a TXT record is an SPF record (`v=spf1` then a space or the end).
    pub fn is_spf(txt: &str) -> bool {
        let t = txt.trim_start();
        t.get(..6).is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
            && t[6..].chars().next().is_none_or(|c| c == ' ')
    }

    /// Parses and validates a record; the error says which term is invalid.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !Self::is_spf(text) {
            return Err("the record does not start with `v=spf1`".into());
        }
        // RFC 7208's grammar, as check_host reads it: one parser for both.
        crate::check_host::validate_record(text)?;
        let terms: Vec<String> = text
            .split_ascii_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect();
        Ok(SpfRecord {
            text: text.to_owned(),
            terms,
        })
    }

    pub(crate) fn querying_terms(&self) -> Vec<Querying> {
        self.terms
            .iter()
            .filter_map(|term| {
                let t = term
                    .trim_start_matches(['+', '-', '~', '?'])
                    .to_ascii_lowercase();
                let orig = term.trim_start_matches(['+', '-', '~', '?']);
                if t.starts_with("include:") {
                    Some(Querying::Include(orig[8..].to_owned()))
                } else if t.starts_with("redirect=") {
                    Some(Querying::Redirect(orig[9..].to_owned()))
                } else if t == "a"
                    || t.starts_with("a:")
                    || t.starts_with("a/")
                    || t == "mx"
                    || t.starts_with("mx:")
                    || t.starts_with("mx/")
                    || t == "ptr"
                    || t.starts_with("ptr:")
                    || t.starts_with("exists:")
                {
                    Some(Querying::Other)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Whether the record has `include:<domain>` itself.
    pub fn includes(&self, domain: &str) -> bool {
        self.querying_terms()
            .iter()
            .any(|q| matches!(q, Querying::Include(d) if d.eq_ignore_ascii_case(domain)))
    }

    /// One record with the terms of all `records` (in sorted order, duplicates
    /// and extra `all`/`redirect=` terms dropped) and `include:<domain>`: what a
    /// domain with several SPF records should publish instead.
    pub fn merged_with_include(records: &[SpfRecord], domain: &str) -> String {
        let mut sorted: Vec<&SpfRecord> = records.iter().collect();
        sorted.sort_by(|a, b| a.text.cmp(&b.text));
        let mut terms: Vec<String> = Vec::new();
        let mut last: Option<String> = None;
        for r in sorted {
            for t in &r.terms {
                let l = t
                    .trim_start_matches(['+', '-', '~', '?'])
                    .to_ascii_lowercase();
                if l == "all" || l.starts_with("redirect=") {
                    last.get_or_insert_with(|| t.clone());
                } else if !terms.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                    terms.push(t.clone());
                }
            }
        }
        terms.extend(last);
        SpfRecord {
            text: format!("v=spf1 {}", terms.join(" ")),
            terms,
        }
        .with_include(domain)
    }

    /// This record with `include:<domain>` added before its `all` (or
    /// `redirect=`), so the domain keeps one SPF record; unchanged if it has it.
    pub fn with_include(&self, domain: &str) -> String {
        if self.includes(domain) {
            return self.text.trim().to_owned();
        }
        let mut terms = self.terms.clone();
        let pos = terms
            .iter()
            .position(|t| {
                let l = t
                    .trim_start_matches(['+', '-', '~', '?'])
                    .to_ascii_lowercase();
                l == "all" || l.starts_with("redirect=")
            })
            .unwrap_or(terms.len());
        terms.insert(pos, format!("include:{domain}"));
        format!("v=spf1 {}", terms.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_spf_records() {
        assert!(SpfRecord::is_spf("v=spf1 -all"));
        assert!(SpfRecord::is_spf("V=SPF1"));
        assert!(!SpfRecord::is_spf("v=spf10 -all"));
        assert!(!SpfRecord::is_spf("google-site-verification=x"));
    }

    #[test]
    fn validates_terms() {
        assert!(SpfRecord::parse("v=spf1 a:foo:bar/baz.example.com -all").is_ok());
        assert!(SpfRecord::parse("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx:mx.example/24 a/24//64 include:_spf.example exists:%{i}.x.example ptr ~all exp=explain.example").is_ok());
        for (bad, needle) in [
            ("v=spf1 ip4:300.1.1.1 -all", "not an IPv4"),
            ("v=spf1 ip4:1.2.3.4/33 -all", "prefix length"),
            ("v=spf1 include -all", "domain is required"),
            ("v=spf1 foo:bar -all", "unknown mechanism"),
            (
                "v=spf1 redirect=a.example redirect=b.example",
                "more than once",
            ),
        ] {
            let err = SpfRecord::parse(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn counts_querying_terms() {
        let r = SpfRecord::parse(
            "v=spf1 a mx ptr exists:x.example include:y.example ip4:1.2.3.4 redirect=z.example",
        )
        .expect("valid");
        let q = r.querying_terms();
        assert_eq!(q.len(), 6);
        assert_eq!(q[4], Querying::Include("y.example".into()));
        assert_eq!(q[5], Querying::Redirect("z.example".into()));
    }

    #[test]
    fn adds_the_include_before_all() {
        let r = SpfRecord::parse("v=spf1 ip4:192.0.2.1 ~all").expect("valid");
        assert_eq!(
            r.with_include("spf.herald.example"),
            "v=spf1 ip4:192.0.2.1 include:spf.herald.example ~all"
        );
        let r = SpfRecord::parse("v=spf1 include:spf.herald.example -all").expect("valid");
        assert_eq!(
            r.with_include("spf.herald.example"),
            "v=spf1 include:spf.herald.example -all"
        );
        let r = SpfRecord::parse("v=spf1 redirect=_spf.x.example").expect("valid");
        assert_eq!(
            r.with_include("h.example"),
            "v=spf1 include:h.example redirect=_spf.x.example"
        );
    }
}
