//! Link tracking (R-MSG-4): rewrites the links of an HTML template with a
//! streaming HTML rewriter (lol_html), so malformed HTML is handled as browsers
//! handle it, never by regular expressions.
//!
//! Tracked: every `<a href>` and `<area href>` whose URL is `http://` or
//! `https://` (or is a merge field, e.g. `{{custom.link}}`; the merged value must
//! then be an http(s) URL for the click to redirect). Left alone: `mailto:`,
//! `tel:`, `#fragment` and other schemes, `{{links.unsubscribe}}`, and any link
//! the author marks with `data-herald-notrack` (or `clicktracking="off"`).
//! Each tracked link gets a label, shown as "Related to" in the event log: the
//! `data-herald-label` attribute if the author set one, else the landing-page
//! name if the URL is one of [`TrackingOptions::landing_pages`], else the URL.
//! The marker attributes are removed from the output.

use crate::{Error, Result};
use lol_html::html_content::ContentType;
use lol_html::{RewriteStrSettings, element, end, rewrite_str};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

/// How [`crate::Template::compile`] treats links, the open pixel and the
/// unsubscribe link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingOptions {
    /// Rewrite http(s) links to tracked click URLs.
    pub track_links: bool,
    /// Add the open-tracking pixel.
    pub track_opens: bool,
    /// Make sure the message has an unsubscribe link, adding a footer to each
    /// body that lacks `{{links.unsubscribe}}` (required for mass email, R-MSG-6).
    pub unsubscribe_link: bool,
    /// The text of the added unsubscribe footer's link.
    pub unsubscribe_label: String,
    /// Landing pages by URL: a link to one of them is labelled with its name.
    pub landing_pages: BTreeMap<String, String>,
    /// The most tracked links one template may have.
    pub max_links: u16,
}

impl Default for TrackingOptions {
    fn default() -> Self {
        TrackingOptions {
            track_links: true,
            track_opens: true,
            unsubscribe_link: false,
            unsubscribe_label: "Unsubscribe".into(),
            landing_pages: BTreeMap::new(),
            max_links: 10_000,
        }
    }
}

/// One tracked link of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedLink {
    /// The destination as written (entities decoded; may hold merge fields).
    pub url: String,
    /// The "Related to" label.
    pub label: String,
}

pub(crate) struct Rewritten {
    pub html: String,
    pub links: Vec<TrackedLink>,
    /// Untracked http(s) links with merge fields, written `{{@url N}}`: their
    /// values are URL-encoded by place when rendered, like tracked ones.
    pub plain: Vec<String>,
}

const PIXEL: &str = r#"<img src="{{@open}}" width="1" height="1" alt="" style="display:block;width:1px;height:1px;border:0" />"#;

pub(crate) fn unsubscribe_footer_html(label: &str) -> String {
    let mut escaped = String::new();
    crate::merge::escape_html(&mut escaped, label);
    // Braces in the label must not read as merge tags.
    let escaped = escaped.replace('{', "&#123;").replace('}', "&#125;");
    format!(
        r#"<p style="font-size:12px;color:#666"><a href="{{{{links.unsubscribe}}}}">{escaped}</a></p>"#
    )
}

fn is_tracked(url: &str) -> bool {
    let lower: String = url.chars().take(8).collect::<String>().to_ascii_lowercase();
    lower.starts_with("http://")
        || lower.starts_with("https://")
        || (url.starts_with("{{") && !url.trim_start_matches(['{', ' ']).starts_with("links."))
}

/// Decodes the character references a URL in an attribute may hold.
pub(crate) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &tail[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &tail[e + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn rewrite(html: &str, options: &TrackingOptions) -> Result<Rewritten> {
    let links: RefCell<Vec<TrackedLink>> = RefCell::new(Vec::new());
    let plain: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let pixel_placed = Rc::new(Cell::new(!options.track_opens));
    let max_links = options.max_links;
    let link_handler = element!("a[href], area[href]", |el| {
        let untracked = el.has_attribute("data-herald-notrack")
            || el
                .get_attribute("clicktracking")
                .is_some_and(|v| v.eq_ignore_ascii_case("off"));
        let label = el.get_attribute("data-herald-label");
        el.remove_attribute("data-herald-notrack");
        el.remove_attribute("data-herald-label");
        el.remove_attribute("clicktracking");
        let href = el.get_attribute("href").unwrap_or_default();
        let url = decode_entities(href.trim());
        if !is_tracked(&url) {
            return Ok(());
        }
        if untracked || !options.track_links {
            if url.contains("{{") {
                let mut plain = plain.borrow_mut();
                el.set_attribute("href", &format!("{{{{@url {}}}}}", plain.len()))?;
                plain.push(url);
            }
            return Ok(());
        }
        let mut links = links.borrow_mut();
        if links.len() >= usize::from(max_links) {
            return Err(format!("more than {max_links} tracked links").into());
        }
        let label = label
            .map(|l| decode_entities(&l))
            .or_else(|| options.landing_pages.get(&url).cloned())
            .unwrap_or_else(|| url.clone());
        el.set_attribute("href", &format!("{{{{@link {}}}}}", links.len()))?;
        links.push(TrackedLink { url, label });
        Ok(())
    });
    let placed = Rc::clone(&pixel_placed);
    let body_handler = element!("body", move |el| {
        let placed = Rc::clone(&placed);
        if let Some(handlers) = el.end_tag_handlers() {
            let handler: lol_html::EndTagHandler<'static> = Box::new(move |end| {
                if !placed.get() {
                    end.before(PIXEL, ContentType::Html);
                    placed.set(true);
                }
                Ok(())
            });
            handlers.push(handler);
        }
        Ok(())
    });
    let placed = Rc::clone(&pixel_placed);
    let end_handler = end!(move |end| {
        if !placed.get() {
            end.append(PIXEL, ContentType::Html);
            placed.set(true);
        }
        Ok(())
    });
    let html = rewrite_str(
        html,
        RewriteStrSettings {
            element_content_handlers: vec![link_handler, body_handler],
            document_content_handlers: vec![end_handler],
            ..RewriteStrSettings::new()
        },
    )
    .map_err(|e| Error::Html(e.to_string()))?;
    Ok(Rewritten {
        html,
        links: links.into_inner(),
        plain: plain.into_inner(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(html: &str) -> Rewritten {
        rewrite(html, &TrackingOptions::default()).expect("rewrites")
    }

    #[test]
    fn tracks_http_links_and_keeps_labels() {
        let r = rw(
            r##"<a href="https://a.example/x?y=1&amp;z=2">A</a> <A HREF='http://b.example'>B</A> <a href="mailto:x@y.z">m</a> <a href="tel:+1">t</a> <a href="#top">f</a> <a data-herald-notrack href="https://c.example">c</a>"##,
        );
        assert_eq!(r.links.len(), 2);
        assert_eq!(r.links[0].url, "https://a.example/x?y=1&z=2");
        assert_eq!(r.links[0].label, "https://a.example/x?y=1&z=2");
        assert_eq!(r.links[1].url, "http://b.example");
        assert!(
            r.html.contains(r#"<a href="{{@link 0}}">A</a>"#),
            "{}",
            r.html
        );
        assert!(
            r.html.contains("mailto:x@y.z") && r.html.contains("tel:+1") && r.html.contains("#top")
        );
        assert!(
            r.html.contains(r#"<a href="https://c.example">c</a>"#),
            "{}",
            r.html
        );
    }

    #[test]
    fn labels_come_from_the_author_or_landing_pages() {
        let mut o = TrackingOptions::default();
        o.landing_pages
            .insert("https://lp.example/spring".into(), "Spring sale".into());
        let r = rewrite(r#"<a href="https://lp.example/spring">x</a><a data-herald-label="Docs" href="https://d.example">y</a>"#, &o).expect("rewrites");
        assert_eq!(r.links[0].label, "Spring sale");
        assert_eq!(r.links[1].label, "Docs");
        assert!(!r.html.contains("data-herald-label"));
    }

    #[test]
    fn pixel_goes_before_body_end_or_at_the_end() {
        let r = rw("<html><body><p>x</p></body></html>");
        assert!(r.html.contains("{{@open}}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;width:1px;height:1px;border:0\" /></body>"), "{}", r.html);
        let r = rw("<p>no body <b>unclosed");
        assert!(r.html.ends_with("border:0\" />"), "{}", r.html);
        assert_eq!(r.html.matches("{{@open}}").count(), 1);
    }

    #[test]
    fn malformed_html_is_survived() {
        let r = rw(
            r#"<a href="https://x.example">one<a href=https://y.example>two</div></span><a href="https://z.example"#,
        );
        assert!(r.links.len() >= 2);
    }

    #[test]
    fn entities_decode() {
        assert_eq!(
            decode_entities("a&amp;b&#38;c&#x26;d&bogus;&"),
            "a&b&c&d&bogus;&"
        );
    }
}
