//! Merge fields (R-MSG-2): the template syntax, its parser, and rendering.
//!
//! # Syntax
//!
//! - `{{person.first_name}}` — the value of a field: a namespace (`person`,
//!   `organisation`, `custom`) and a field name of letters, digits and `_`.
//!   Spaces inside the braces are allowed.
//! - `{{person.first_name | "there"}}` — the same with a default, used when the
//!   person has no value (or an empty one). In a default, `\"` is a quote and `\\`
//!   a backslash.
//! - `{{links.unsubscribe}}` — the message's unsubscribe page URL.
//! - `{{"{{"}}` — a quoted string stands for itself, which is how a literal `{{`
//!   is written.
//!
//! A field that the [`FieldSchema`] does not know is an error naming the field and
//! its line and column. Values are HTML-escaped in the HTML part, left as they are
//! in the text part, and must be one line of text in the subject.

use crate::links::{self, TrackedLink, TrackingOptions};
use crate::{Error, Part, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A message template as the CRM user wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// The subject line, with merge fields.
    pub subject: String,
    /// The HTML body, with merge fields; empty for a text-only message.
    pub html: String,
    /// The plain-text body, with merge fields; empty for an HTML-only message.
    pub text: String,
}

/// The merge fields a template may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSchema {
    person: BTreeSet<String>,
    organisation: BTreeSet<String>,
    custom: BTreeSet<String>,
}

const PERSON: &[&str] = &[
    "first_name",
    "last_name",
    "full_name",
    "email",
    "title",
    "salutation",
    "phone",
    "mobile",
    "department",
    "job_title",
    "language",
];
const ORGANISATION: &[&str] = &[
    "name",
    "address",
    "postcode",
    "city",
    "state",
    "country",
    "phone",
    "website",
    "vat_number",
    "industry",
];

impl FieldSchema {
    /// A schema with no fields at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The standard CRM person and organisation fields, and no custom fields.
    pub fn standard() -> Self {
        FieldSchema {
            person: PERSON.iter().map(|s| (*s).to_owned()).collect(),
            organisation: ORGANISATION.iter().map(|s| (*s).to_owned()).collect(),
            custom: BTreeSet::new(),
        }
    }

    /// Adds a person field.
    pub fn with_person_field(mut self, name: &str) -> Self {
        self.person.insert(name.to_owned());
        self
    }

    /// Adds an organisation field.
    pub fn with_organisation_field(mut self, name: &str) -> Self {
        self.organisation.insert(name.to_owned());
        self
    }

    /// Adds a custom field (`{{custom.<name>}}`).
    pub fn with_custom_field(mut self, name: &str) -> Self {
        self.custom.insert(name.to_owned());
        self
    }

    /// Whether `path` (`namespace.field`) is a field of this schema.
    pub fn knows(&self, path: &str) -> bool {
        match path.split_once('.') {
            Some(("person", f)) => self.person.contains(f),
            Some(("organisation", f)) => self.organisation.contains(f),
            Some(("custom", f)) => self.custom.contains(f),
            _ => false,
        }
    }
}

/// One recipient's data: person, organisation and custom fields by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeData {
    /// Person fields (`{{person.x}}`).
    pub person: BTreeMap<String, String>,
    /// Organisation fields (`{{organisation.x}}`).
    pub organisation: BTreeMap<String, String>,
    /// Custom fields (`{{custom.x}}`).
    pub custom: BTreeMap<String, String>,
}

impl MergeData {
    /// The value of `path` (`namespace.field`), if the recipient has one.
    pub fn get(&self, path: &str) -> Option<&str> {
        let (ns, field) = path.split_once('.')?;
        let map = match ns {
            "person" => &self.person,
            "organisation" => &self.organisation,
            "custom" => &self.custom,
            _ => return None,
        };
        map.get(field).map(String::as_str)
    }
}

/// The values one recipient gives the fields a template uses, fixed when the
/// email is created (R-MSG-2): later changes to the person change nothing.
/// Serialises as a JSON object of field path to value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MergeValues(pub BTreeMap<String, String>);

impl MergeValues {
    /// The stored value of `path`, if any.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.0.get(path).map(String::as_str)
    }
}

/// A piece of a parsed template part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Segment {
    /// Text written by the author, output as it is.
    Literal(String),
    /// A merge field and its default.
    Field {
        path: String,
        default: Option<String>,
    },
    /// The tracking URL of link N.
    Link(u16),
    /// Untracked link N's destination, its values URL-encoded by place.
    Url(u16),
    /// The open pixel URL.
    Open,
    /// The unsubscribe page URL.
    Unsubscribe,
}

/// The URLs a rendered part may need, minted per message.
pub(crate) trait Urls {
    fn link(&self, index: u16) -> String;
    fn open(&self) -> String;
    fn unsubscribe(&self) -> String;
    /// Untracked link `index`, merged (see [`CompiledTemplate::render_part`]).
    fn plain(&self, _index: u16) -> String {
        String::new()
    }
}

/// How merged values are written into a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    Html,
    None,
}

/// A template parsed, checked and with its links rewritten: stored once per send
/// and rendered once per recipient with that recipient's [`MergeValues`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledTemplate {
    pub(crate) subject: Vec<Segment>,
    pub(crate) html: Option<Vec<Segment>>,
    pub(crate) text: Option<Vec<Segment>>,
    links: Vec<TrackedLink>,
    link_urls: Vec<Vec<Segment>>,
    /// The destinations of untracked links with merge fields (`{{@url N}}`).
    #[serde(default)]
    plain_urls: Vec<Vec<Segment>>,
    fields: BTreeSet<String>,
    subject_fields: BTreeSet<String>,
    has_unsubscribe: bool,
}

impl Template {
    /// Parses and checks the three parts against `schema`, rewrites the links of
    /// the HTML part and adds the open pixel as `options` say.
    pub fn compile(
        &self,
        schema: &FieldSchema,
        options: &TrackingOptions,
    ) -> Result<CompiledTemplate> {
        if self.html.trim().is_empty() && self.text.trim().is_empty() {
            return Err(Error::EmptyBody);
        }
        let subject = parse(&self.subject, Part::Subject, schema, false)?;
        for seg in &subject {
            if let Segment::Literal(s)
            | Segment::Field {
                default: Some(s), ..
            } = seg
            {
                crate::check_header_value("Subject", s)?;
            }
            if matches!(seg, Segment::Unsubscribe) {
                return Err(syntax(
                    Part::Subject,
                    &self.subject,
                    0,
                    "`links.unsubscribe` cannot be used in the subject",
                ));
            }
        }
        let mut text = if self.text.trim().is_empty() {
            None
        } else {
            Some(parse(&self.text, Part::Text, schema, false)?)
        };
        let (html, links, link_urls, plain_urls) = if self.html.trim().is_empty() {
            (None, Vec::new(), Vec::new(), Vec::new())
        } else {
            // First pass on the author's own text, so errors carry their positions.
            parse(&self.html, Part::Html, schema, false)?;
            let rewritten = links::rewrite(&self.html, options)?;
            let html = parse(&rewritten.html, Part::Html, schema, true)?;
            let mut urls = Vec::with_capacity(rewritten.links.len());
            for link in &rewritten.links {
                urls.push(parse(&link.url, Part::Html, schema, false)?);
            }
            let plain = rewritten
                .plain
                .iter()
                .map(|u| parse(u, Part::Html, schema, false))
                .collect::<Result<Vec<_>>>()?;
            (Some(html), rewritten.links, urls, plain)
        };
        let mut html = html;
        let mentions_unsubscribe = |segs: &Option<Vec<Segment>>| {
            segs.as_ref()
                .is_some_and(|s| s.contains(&Segment::Unsubscribe))
        };
        if options.unsubscribe_link {
            if let Some(h) = html.as_mut().filter(|h| !h.contains(&Segment::Unsubscribe)) {
                let footer = parse(
                    &links::unsubscribe_footer_html(&options.unsubscribe_label),
                    Part::Html,
                    schema,
                    false,
                )?;
                insert_before_body_end(h, footer);
            }
            if let Some(t) = text.as_mut().filter(|t| !t.contains(&Segment::Unsubscribe)) {
                t.push(Segment::Literal(format!(
                    "\n\n{}: ",
                    options.unsubscribe_label
                )));
                t.push(Segment::Unsubscribe);
                t.push(Segment::Literal("\n".into()));
            }
        }
        let has_unsubscribe = mentions_unsubscribe(&html) || mentions_unsubscribe(&text);
        let mut fields = BTreeSet::new();
        let all = subject
            .iter()
            .chain(html.iter().flatten())
            .chain(text.iter().flatten())
            .chain(link_urls.iter().flatten())
            .chain(plain_urls.iter().flatten());
        for seg in all {
            if let Segment::Field { path, .. } = seg {
                fields.insert(path.clone());
            }
        }
        let subject_fields = subject
            .iter()
            .filter_map(|s| match s {
                Segment::Field { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        Ok(CompiledTemplate {
            subject,
            html,
            text,
            links,
            link_urls,
            plain_urls,
            fields,
            subject_fields,
            has_unsubscribe,
        })
    }
}

/// Puts `footer` before the last `</body>` literal, or at the end.
fn insert_before_body_end(html: &mut Vec<Segment>, footer: Vec<Segment>) {
    for i in (0..html.len()).rev() {
        if let Segment::Literal(lit) = &html[i]
            && let Some(pos) = lit.to_ascii_lowercase().rfind("</body")
        {
            let (before, after) = lit.split_at(pos);
            let (before, after) = (before.to_owned(), after.to_owned());
            let mut tail = vec![Segment::Literal(before)];
            tail.extend(footer);
            tail.push(Segment::Literal(after));
            html.splice(i..=i, tail);
            return;
        }
    }
    html.extend(footer);
}

impl CompiledTemplate {
    /// Keeps the values `data` gives the fields this template uses. A value that
    /// would go into the subject must be one line of text.
    pub fn resolve(&self, data: &MergeData) -> Result<MergeValues> {
        let mut values = BTreeMap::new();
        for path in &self.fields {
            if let Some(v) = data.get(path).filter(|v| !v.is_empty()) {
                if self.subject_fields.contains(path)
                    && v.chars().any(|c| c.is_control() && c != '\t')
                {
                    return Err(Error::UnsafeValue {
                        field: path.clone(),
                        part: Part::Subject,
                    });
                }
                values.insert(path.clone(), v.to_owned());
            }
        }
        Ok(MergeValues(values))
    }

    /// The tracked links of the HTML part, in index order.
    pub fn links(&self) -> &[TrackedLink] {
        &self.links
    }

    /// The fields this template uses.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(String::as_str)
    }

    /// Whether the template carries an unsubscribe link (required for mass email).
    pub fn has_unsubscribe_link(&self) -> bool {
        self.has_unsubscribe
    }

    /// The destination of tracked link `index` for a recipient: the URL the click
    /// endpoint may redirect to, and no other. Merge values are percent-encoded
    /// by their place in the URL and the result is normalised to ASCII (see
    /// the `url_place` module: a value is data and never changes the URL's
    /// shape). `None` for an unknown index or a destination that is not an
    /// http(s) URL after merging.
    pub fn link_url(&self, index: u16, values: &MergeValues) -> Option<String> {
        let segs = self.link_urls.get(usize::from(index))?;
        crate::url_place::finish(&merge_url(segs, values)?)
    }

    /// Untracked link `index` merged as [`CompiledTemplate::link_url`] merges,
    /// or, when that is no http(s) URL, the place-encoded text as it is.
    fn plain_url(&self, index: u16, values: &MergeValues) -> String {
        let Some(merged) = self
            .plain_urls
            .get(usize::from(index))
            .and_then(|segs| merge_url(segs, values))
        else {
            return String::new();
        };
        crate::url_place::finish(&merged).unwrap_or(merged)
    }

    /// The subject for these values (for previews and the scheduled list).
    pub fn render_subject(&self, values: &MergeValues) -> String {
        let mut out = String::new();
        render_into(&mut out, &self.subject, values, Escape::None, &NoUrls);
        out
    }

    /// The message as this recipient will read it, for a preview: the merged
    /// subject and bodies, tracked links shown as their destinations, the
    /// open pixel as an inline transparent GIF and the unsubscribe link as
    /// `#unsubscribe`.
    pub fn preview(&self, values: &MergeValues) -> Preview {
        let urls = |html| PreviewUrls {
            template: self,
            values,
            html,
        };
        Preview {
            subject: self.render_subject(values),
            html: self.render_part(Part::Html, values, &urls(true)),
            text: self.render_part(Part::Text, values, &urls(false)),
        }
    }

    pub(crate) fn render_part(
        &self,
        part: Part,
        values: &MergeValues,
        urls: &dyn Urls,
    ) -> Option<String> {
        let (segs, escape) = match part {
            Part::Subject => (Some(&self.subject), Escape::None),
            Part::Html => (self.html.as_ref(), Escape::Html),
            Part::Text | Part::Sms => (self.text.as_ref(), Escape::None),
        };
        let segs = segs?;
        let mut out = String::with_capacity(
            segs.iter()
                .map(|s| match s {
                    Segment::Literal(l) => l.len(),
                    _ => 48,
                })
                .sum(),
        );
        let urls = WithPlain {
            template: self,
            values,
            inner: urls,
        };
        render_into(&mut out, segs, values, escape, &urls);
        Some(out)
    }
}

/// A merged message for a preview ([`CompiledTemplate::preview`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preview {
    /// The merged subject.
    pub subject: String,
    /// The merged HTML body, if the template has one.
    pub html: Option<String>,
    /// The merged text body, if the template has one.
    pub text: Option<String>,
}

const PREVIEW_PIXEL: &str =
    "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";

struct PreviewUrls<'a> {
    template: &'a CompiledTemplate,
    values: &'a MergeValues,
    html: bool,
}
impl Urls for PreviewUrls<'_> {
    fn link(&self, index: u16) -> String {
        let url = self
            .template
            .link_url(index, self.values)
            .unwrap_or_default();
        if self.html {
            url.replace('&', "&amp;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        } else {
            url
        }
    }
    fn open(&self) -> String {
        // A transparent 1×1 GIF inline: a preview page loads nothing.
        PREVIEW_PIXEL.into()
    }
    fn unsubscribe(&self) -> String {
        "#unsubscribe".into()
    }
}

/// URLs for rendering without a message: every placeholder renders empty.
pub(crate) struct NoUrls;
impl Urls for NoUrls {
    fn link(&self, _: u16) -> String {
        String::new()
    }
    fn open(&self) -> String {
        String::new()
    }
    fn unsubscribe(&self) -> String {
        String::new()
    }
}

/// A link's destination with each value percent-encoded by its place; `None`
/// if it holds a placeholder (links, the pixel and the unsubscribe page are
/// not destinations).
fn merge_url(segs: &[Segment], values: &MergeValues) -> Option<String> {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Segment::Literal(s) => out.push_str(s),
            Segment::Field { path, default } => {
                let v = values.get(path).or(default.as_deref()).unwrap_or("");
                let place = crate::url_place::Place::after(out.trim_start());
                crate::url_place::encode_into(&mut out, v, place);
            }
            Segment::Link(_) | Segment::Url(_) | Segment::Open | Segment::Unsubscribe => {
                return None;
            }
        }
    }
    Some(out)
}

/// The part's own URLs plus its untracked links, merged from the template.
struct WithPlain<'a> {
    template: &'a CompiledTemplate,
    values: &'a MergeValues,
    inner: &'a dyn Urls,
}

impl Urls for WithPlain<'_> {
    fn link(&self, index: u16) -> String {
        self.inner.link(index)
    }
    fn open(&self) -> String {
        self.inner.open()
    }
    fn unsubscribe(&self) -> String {
        self.inner.unsubscribe()
    }
    fn plain(&self, index: u16) -> String {
        // An attribute value: `&` and quotes escaped like any value.
        let mut out = String::new();
        escape_html(&mut out, &self.template.plain_url(index, self.values));
        out
    }
}

pub(crate) fn render_into(
    out: &mut String,
    segs: &[Segment],
    values: &MergeValues,
    escape: Escape,
    urls: &dyn Urls,
) {
    for seg in segs {
        match seg {
            Segment::Literal(s) => out.push_str(s),
            Segment::Field { path, default } => {
                let v = values.get(path).or(default.as_deref()).unwrap_or("");
                match escape {
                    Escape::Html => escape_html(out, v),
                    Escape::None => out.push_str(v),
                }
            }
            Segment::Link(i) => out.push_str(&urls.link(*i)),
            Segment::Url(i) => out.push_str(&urls.plain(*i)),
            Segment::Open => out.push_str(&urls.open()),
            Segment::Unsubscribe => out.push_str(&urls.unsubscribe()),
        }
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'`: safe in text and in quoted attributes.
pub(crate) fn escape_html(out: &mut String, value: &str) {
    let mut last = 0;
    for (i, c) in value.char_indices() {
        let rep = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&value[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&value[last..]);
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn syntax(part: Part, src: &str, offset: usize, problem: &str) -> Error {
    let (line, column) = line_col(src, offset);
    Error::TemplateSyntax {
        part,
        problem: problem.to_owned(),
        line,
        column,
    }
}

/// Parses one part. `internal` admits the `@link N` and `@open` placeholders
/// that the link rewriter inserts; authors cannot write them.
pub(crate) fn parse(
    src: &str,
    part: Part,
    schema: &FieldSchema,
    internal: bool,
) -> Result<Vec<Segment>> {
    let mut segs: Vec<Segment> = Vec::new();
    let mut literal = String::new();
    let mut pos = 0;
    while let Some(found) = src[pos..].find("{{") {
        let open = pos + found;
        literal.push_str(&src[pos..open]);
        let inner_start = open + 2;
        let close = find_close(src, inner_start)
            .ok_or_else(|| syntax(part, src, open, "`{{` is not closed by `}}`"))?;
        let inner = &src[inner_start..close];
        match parse_tag(inner, part, schema, internal) {
            Ok(Segment::Literal(s)) => literal.push_str(&s),
            Ok(seg) => {
                if !literal.is_empty() {
                    segs.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segs.push(seg);
            }
            Err(TagError::Unknown(field)) => {
                let (line, column) = line_col(src, open);
                return Err(Error::UnknownField {
                    part,
                    field,
                    line,
                    column,
                });
            }
            Err(TagError::Syntax(problem)) => return Err(syntax(part, src, open, &problem)),
        }
        pos = close + 2;
    }
    literal.push_str(&src[pos..]);
    if !literal.is_empty() {
        segs.push(Segment::Literal(literal));
    }
    Ok(segs)
}

/// The byte offset of the `}}` closing a tag opened before `from`, skipping
/// quoted strings.
fn find_close(src: &str, from: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = from;
    let mut in_str = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'}' if !in_str && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

enum TagError {
    Unknown(String),
    Syntax(String),
}

fn parse_string(s: &str) -> Result<(String, &str), TagError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, '"')) => {}
        _ => return Err(TagError::Syntax("a default must be a quoted string".into())),
    }
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                _ => {
                    return Err(TagError::Syntax(
                        "in a quoted string, `\\` may only escape `\"` or `\\`".into(),
                    ));
                }
            },
            '"' => return Ok((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    Err(TagError::Syntax("a quoted string is not closed".into()))
}

fn parse_tag(
    inner: &str,
    part: Part,
    schema: &FieldSchema,
    internal: bool,
) -> Result<Segment, TagError> {
    let inner = inner.trim();
    if inner.starts_with('"') {
        let (s, rest) = parse_string(inner)?;
        if !rest.trim().is_empty() {
            return Err(TagError::Syntax(
                "unexpected text after a quoted string".into(),
            ));
        }
        return Ok(Segment::Literal(s));
    }
    if let Some(rest) = inner.strip_prefix('@') {
        if !internal {
            return Err(TagError::Syntax("`@` names are reserved for Herald".into()));
        }
        if rest == "open" {
            return Ok(Segment::Open);
        }
        if let Some(n) = rest.strip_prefix("link ").and_then(|n| n.parse().ok()) {
            return Ok(Segment::Link(n));
        }
        if let Some(n) = rest.strip_prefix("url ").and_then(|n| n.parse().ok()) {
            return Ok(Segment::Url(n));
        }
        return Err(TagError::Syntax(format!("unknown internal tag `@{rest}`")));
    }
    let (path, default) = match inner.split_once('|') {
        Some((p, d)) => {
            let (s, rest) = parse_string(d.trim_start())?;
            if !rest.trim().is_empty() {
                return Err(TagError::Syntax("unexpected text after the default".into()));
            }
            (p.trim(), Some(s))
        }
        None => (inner, None),
    };
    let well_formed = path.split_once('.').is_some_and(|(ns, f)| {
        !ns.is_empty()
            && !f.is_empty()
            && ns.chars().all(|c| c.is_ascii_lowercase())
            && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if !well_formed {
        return Err(TagError::Syntax(format!(
            "`{path}` is not a merge field; write `namespace.field`, e.g. `person.first_name`"
        )));
    }
    if path == "links.unsubscribe" {
        if default.is_some() || part == Part::Subject {
            return Err(TagError::Syntax(
                "`links.unsubscribe` takes no default and cannot be used in the subject".into(),
            ));
        }
        return Ok(Segment::Unsubscribe);
    }
    if !schema.knows(path) {
        return Err(TagError::Unknown(path.to_owned()));
    }
    Ok(Segment::Field {
        path: path.to_owned(),
        default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn schema() -> FieldSchema {
        FieldSchema::standard().with_custom_field("plan")
    }

    /// Percent-decoding, as a receiving web server does.
    fn percent_decode(s: &str) -> String {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .expect("UTF-8")
            .into_owned()
    }

    fn p(src: &str) -> Result<Vec<Segment>> {
        parse(src, Part::Text, &schema(), false)
    }

    #[test]
    fn parses_fields_defaults_and_literals() {
        let segs =
            p("Hi {{ person.first_name | \"there \\\"you\\\"\" }}! {{\"{{\"}}x").expect("parses");
        assert_eq!(
            segs,
            vec![
                Segment::Literal("Hi ".into()),
                Segment::Field {
                    path: "person.first_name".into(),
                    default: Some("there \"you\"".into())
                },
                Segment::Literal("! {{x".into()),
            ]
        );
    }

    #[test]
    fn unknown_field_names_field_and_position() {
        let err = p("line one\n  ab {{person.shoe_size}}").unwrap_err();
        assert_eq!(
            err,
            Error::UnknownField {
                part: Part::Text,
                field: "person.shoe_size".into(),
                line: 2,
                column: 6
            }
        );
        assert!(
            err.to_string()
                .contains("`person.shoe_size` at line 2, column 6"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_are_clear() {
        for (src, needle) in [
            ("a {{person.first_name", "not closed"),
            ("{{ person.first_name | friend }}", "quoted string"),
            ("{{ first_name }}", "namespace.field"),
            ("{{@open}}", "reserved"),
            ("{{ person.first_name | \"x }}", "not closed"),
        ] {
            let err = p(src).unwrap_err();
            assert!(err.to_string().contains(needle), "{src}: {err}");
        }
    }

    #[test]
    fn html_escaping_applies_to_values_and_defaults() {
        let mut out = String::new();
        escape_html(&mut out, "<a href=\"x\">'&'</a>");
        assert_eq!(out, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn resolve_keeps_only_used_fields_and_refuses_newlines_in_the_subject() {
        let t = Template {
            subject: "Hi {{person.first_name}}".into(),
            html: String::new(),
            text: "{{custom.plan}}".into(),
        }
        .compile(&schema(), &TrackingOptions::default())
        .expect("compiles");
        let mut d = MergeData::default();
        d.person.insert("first_name".into(), "Ada".into());
        d.person.insert("last_name".into(), "Lovelace".into());
        d.custom.insert("plan".into(), "Gold\r\nline".into());
        let v = t.resolve(&d).expect("resolves");
        assert_eq!(v.0.len(), 2);
        assert_eq!(v.get("custom.plan"), Some("Gold\r\nline"));
        d.person
            .insert("first_name".into(), "Ada\r\nBcc: x@y.z".into());
        assert_eq!(
            t.resolve(&d),
            Err(Error::UnsafeValue {
                field: "person.first_name".into(),
                part: Part::Subject
            })
        );
    }

    /// Untracked links get the same place encoding as tracked ones, written
    /// into the attribute HTML-escaped; other schemes are left as they were.
    #[test]
    fn untracked_links_encode_values_by_place_too() {
        let html = "<a href=\"https://shop.test/u/{{person.first_name}}?t={{custom.plan}}&amp;x=1\">a</a>\
            <a data-herald-notrack href=\"https://shop.test/{{person.last_name}}\">b</a>\
            <a href=\"mailto:{{person.email}}\">c</a>";
        let values = MergeValues(
            [
                ("person.first_name", "Mary Ann"),
                ("custom.plan", "x&admin=1#f"),
                ("person.last_name", "Zoë \"Q\""),
                ("person.email", "a@b.test"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        );
        for track_links in [false, true] {
            let t = Template {
                subject: "s".into(),
                html: html.into(),
                text: String::new(),
            }
            .compile(
                &schema(),
                &TrackingOptions {
                    track_links,
                    track_opens: false,
                    ..TrackingOptions::default()
                },
            )
            .expect("compiles");
            let out = t
                .render_part(Part::Html, &values, &NoUrls)
                .expect("has html");
            if !track_links {
                assert!(
                    out.contains(
                        "href=\"https://shop.test/u/Mary%20Ann?t=x%26admin%3D1%23f&amp;x=1\""
                    ),
                    "{out}"
                );
            }
            assert!(
                out.contains("href=\"https://shop.test/Zo%C3%AB%20%22Q%22\""),
                "{out}"
            );
            assert!(out.contains("href=\"mailto:a@b.test\""), "{out}");
        }
    }

    #[test]
    fn an_empty_template_is_refused() {
        let err = Template {
            subject: "s".into(),
            html: " ".into(),
            text: String::new(),
        }
        .compile(&schema(), &TrackingOptions::default())
        .unwrap_err();
        assert_eq!(err, Error::EmptyBody);
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(src in ".{0,200}") {
            let _ = p(&src);
            let _ = parse(&src, Part::Html, &schema(), true);
        }

        #[test]
        fn literal_text_without_braces_round_trips(src in "[^{}]{0,100}") {
            let segs = p(&src).expect("plain text parses");
            let mut out = String::new();
            render_into(&mut out, &segs, &MergeValues::default(), Escape::Html, &NoUrls);
            prop_assert_eq!(out, src);
        }

        /// Issue 10 §1: a merge value in a tracked link's path, query or
        /// fragment stays data: the URL keeps its host and its other query
        /// pairs, each place decodes back to the value, and the result is ASCII
        /// (fit for `Location`). Dot segments (`.`, `..` in the path) are the
        /// one exception: URL parsers resolve them, encoded or not.
        #[test]
        fn a_value_in_a_link_never_changes_the_url_shape(value in any::<String>()) {
            prop_assume!(!value.split('/').any(|s| s == "." || s == ".."));
            let t = Template {
                subject: "s".into(),
                html: "<a href=\"https://shop.test/p/{{person.first_name}}?a={{person.first_name}}&amp;b=1#{{person.first_name}}\">x</a>".into(),
                text: String::new(),
            }
            .compile(&schema(), &TrackingOptions::default())
            .expect("compiles");
            let v = MergeValues([("person.first_name".to_owned(), value.clone())].into());
            let url = t.link_url(0, &v).expect("an http URL");
            prop_assert!(url.is_ascii() && !url.contains([' ', '\n', '\r']), "{}", url);
            let parsed = url::Url::parse(&url).expect("parses");
            prop_assert_eq!(parsed.host_str(), Some("shop.test"));
            let pairs: Vec<(String, String)> = parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            prop_assert_eq!(pairs, vec![("a".to_owned(), value.clone()), ("b".to_owned(), "1".to_owned())]);
            let decode = |s: &str| percent_decode(s);
            prop_assert_eq!(decode(parsed.path().strip_prefix("/p/").expect("path kept")), value.clone());
            prop_assert_eq!(decode(parsed.fragment().expect("fragment kept")), value);
        }

        #[test]
        fn a_whole_url_value_keeps_its_own_shape(path in "[a-z0-9/]{0,20}", q in "[a-z0-9]{1,10}") {
            let t = Template { subject: "s".into(), html: "<a href=\"{{person.first_name}}\">x</a>".into(), text: String::new() }
                .compile(&schema(), &TrackingOptions::default()).expect("compiles");
            let link = format!("https://shop.test/{path}?q={q}&r=%20");
            let v = MergeValues([("person.first_name".to_owned(), link.clone())].into());
            prop_assert_eq!(t.link_url(0, &v), Some(link));
        }

        #[test]
        fn no_value_escapes_an_html_attribute(value in any::<String>()) {
            let t = Template { subject: "s".into(), html: "<p title=\"{{person.first_name}}\">x</p>".into(), text: String::new() }
                .compile(&schema(), &TrackingOptions { track_opens: false, ..TrackingOptions::default() }).expect("compiles");
            let mut d = MergeData::default();
            d.person.insert("first_name".into(), value.clone());
            let v = t.resolve(&d).expect("resolves");
            let html = t.render_part(Part::Html, &v, &NoUrls).expect("has html");
            let inner = html.strip_prefix("<p title=\"").and_then(|r| r.strip_suffix("\">x</p>")).expect("attribute intact");
            prop_assert!(!inner.contains(['"', '<', '>', '\'']));
            let unescaped = inner.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&");
            prop_assert_eq!(unescaped, value);
        }
    }
}
