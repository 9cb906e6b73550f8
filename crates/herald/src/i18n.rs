//! The languages of Herald's pages (R-UI-1): English, French, German and
//! Spanish, every text through Project Fluent (`locales/<lang>/herald.ftl`,
//! embedded in the binary), and numbers, percentages and dates written the
//! way each language writes them (CLDR's separators; chrono's localized month
//! names), in the account's time zone.
//!
//! ```
//! use herald::i18n::{Language, Texts};
//! let texts = Texts::new().expect("the embedded translations parse");
//! assert_eq!(texts.get(Language::De, "nav-campaigns"), "Kampagnen");
//! assert_eq!(Language::De.count(1234567), "1.234.567");
//! assert_eq!(Language::Fr.percent(0.125), "12,5\u{202f}%");
//! ```

use chrono::{DateTime, Utc};
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use std::fmt;

/// A language Herald's pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    /// English (the default).
    En,
    /// French.
    Fr,
    /// German.
    De,
    /// Spanish.
    Es,
}

/// The embedded translations, in [`Language::ALL`]'s order.
const SOURCES: [(Language, &str); 4] = [
    (Language::En, include_str!("../locales/en/herald.ftl")),
    (Language::Fr, include_str!("../locales/fr/herald.ftl")),
    (Language::De, include_str!("../locales/de/herald.ftl")),
    (Language::Es, include_str!("../locales/es/herald.ftl")),
];

impl Language {
    /// Every language, English first.
    pub const ALL: [Language; 4] = [Language::En, Language::Fr, Language::De, Language::Es];

    /// The language's code (`en`, `fr`, `de`, `es`).
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Fr => "fr",
            Language::De => "de",
            Language::Es => "es",
        }
    }

    /// The language's name in itself (for a language menu).
    pub fn native_name(self) -> &'static str {
        match self {
            Language::En => "English",
            Language::Fr => "Français",
            Language::De => "Deutsch",
            Language::Es => "Español",
        }
    }

    /// The language of a tag such as `fr`, `fr-CA`, `de_AT` or `ES`; `None`
    /// for a language Herald is not written in.
    pub fn parse(tag: &str) -> Option<Language> {
        let primary = tag
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        Language::ALL.into_iter().find(|l| l.code() == primary)
    }

    /// The first of `tags` Herald is written in, else English.
    pub fn first_of<'a>(tags: impl IntoIterator<Item = &'a str>) -> Language {
        tags.into_iter()
            .find_map(Language::parse)
            .unwrap_or(Language::En)
    }

    fn chrono_locale(self) -> chrono::Locale {
        match self {
            Language::En => chrono::Locale::en_US,
            Language::Fr => chrono::Locale::fr_FR,
            Language::De => chrono::Locale::de_DE,
            Language::Es => chrono::Locale::es_ES,
        }
    }

    /// (group separator, decimal separator, minimum digits before grouping
    /// starts), as CLDR has them.
    fn separators(self) -> (&'static str, char, usize) {
        match self {
            Language::En => (",", '.', 4),
            // CLDR: French groups with a narrow no-break space.
            Language::Fr => ("\u{202f}", ',', 4),
            Language::De => (".", ',', 4),
            // CLDR: Spanish groups only from five digits (minimumGroupingDigits 2).
            Language::Es => (".", ',', 5),
        }
    }

    /// A count, grouped: `1,234,567` (en), `1 234 567` (fr), `1.234.567`
    /// (de), `1.234.567` and `1234` (es).
    pub fn count(self, n: u64) -> String {
        let digits = n.to_string();
        let (group, _, min) = self.separators();
        if digits.len() < min {
            return digits;
        }
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push_str(group);
            }
            out.push(c);
        }
        out
    }

    /// A rate (`0.125`) as a percentage with one decimal: `12.5%` (en),
    /// `12,5 %` (fr, narrow no-break space), `12,5 %` (de, es: no-break space).
    pub fn percent(self, rate: f64) -> String {
        let value = if rate.is_finite() { rate * 100.0 } else { 0.0 };
        let text = format!("{value:.1}");
        let (_, decimal, _) = self.separators();
        let text = text.replace('.', &decimal.to_string());
        match self {
            Language::En => format!("{text}%"),
            Language::Fr => format!("{text}\u{202f}%"),
            Language::De | Language::Es => format!("{text}\u{a0}%"),
        }
    }

    /// A time in `tz`, with the date as the language writes it: `Dec 1, 2026,
    /// 14:05` (en), `1 déc. 2026 14:05` (fr), `1. Dez 2026, 14:05` (de),
    /// `1 dic 2026, 14:05` (es).
    pub fn datetime(self, at: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
        let pattern = match self {
            Language::En => "%b %-d, %Y, %H:%M",
            Language::Fr => "%-d %b %Y %H:%M",
            Language::De => "%-d. %b %Y, %H:%M",
            Language::Es => "%-d %b %Y, %H:%M",
        };
        at.with_timezone(&tz)
            .format_localized(pattern, self.chrono_locale())
            .to_string()
    }

    /// A date in `tz` (no time): `Dec 1` (en), `1 déc.` (fr), `1. Dez` (de), `1 dic` (es).
    pub fn day(self, at: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
        let pattern = match self {
            Language::En => "%b %-d",
            Language::Fr | Language::Es => "%-d %b",
            Language::De => "%-d. %b",
        };
        at.with_timezone(&tz)
            .format_localized(pattern, self.chrono_locale())
            .to_string()
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A translation file that does not parse or adds a message twice.
#[derive(Debug, thiserror::Error)]
#[error("locales/{language}/herald.ftl: {problem}")]
pub struct TextsError {
    /// The language.
    pub language: Language,
    /// What is wrong.
    pub problem: String,
}

/// The translations of every language, parsed once.
pub struct Texts {
    bundles: Vec<(Language, FluentBundle<FluentResource>)>,
}

impl fmt::Debug for Texts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Texts").finish_non_exhaustive()
    }
}

/// A message argument: text or a number already formatted for the language.
pub type Arg<'a> = (&'a str, String);

impl Texts {
    /// Parses the embedded translations.
    pub fn new() -> Result<Texts, TextsError> {
        let mut bundles = Vec::new();
        for (language, source) in SOURCES {
            let resource =
                FluentResource::try_new(source.to_owned()).map_err(|(_, errors)| TextsError {
                    language,
                    problem: format!("{errors:?}"),
                })?;
            let tag: unic_langid::LanguageIdentifier =
                language.code().parse().map_err(|e| TextsError {
                    language,
                    problem: format!("{e}"),
                })?;
            let mut bundle = FluentBundle::new_concurrent(vec![tag]);
            // No Unicode isolation marks around arguments: the pages are
            // left-to-right, and the marks would end up in copied text.
            bundle.set_use_isolating(false);
            bundle.add_resource(resource).map_err(|errors| TextsError {
                language,
                problem: format!("{errors:?}"),
            })?;
            bundles.push((language, bundle));
        }
        Ok(Texts { bundles })
    }

    /// The message ids of `language`'s file, sorted.
    pub fn ids(&self, language: Language) -> Vec<String> {
        let source = SOURCES
            .iter()
            .find(|(l, _)| *l == language)
            .map(|(_, s)| *s)
            .unwrap_or_default();
        let mut ids: Vec<String> = source
            .lines()
            .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
            .filter_map(|l| l.split_once(" =").map(|(id, _)| id.trim().to_owned()))
            .collect();
        ids.sort();
        ids
    }

    /// Message `id` in `language` with `args`; the id itself (and a warning
    /// in the log) when the message is missing, so a gap shows, never panics.
    pub fn with(&self, language: Language, id: &str, args: &[Arg<'_>]) -> String {
        match self.try_with(language, id, args) {
            Ok(text) => text,
            Err(problem) => {
                tracing::warn!(language = %language, id, problem, "translation");
                id.to_owned()
            }
        }
    }

    /// Message `id` in `language` without arguments.
    pub fn get(&self, language: Language, id: &str) -> String {
        self.with(language, id, &[])
    }

    /// Message `id` in `language` with `args`, or what is wrong with it
    /// (missing, or an argument it names is not given).
    pub fn try_with(
        &self,
        language: Language,
        id: &str,
        args: &[Arg<'_>],
    ) -> Result<String, String> {
        let (_, bundle) = self
            .bundles
            .iter()
            .find(|(l, _)| *l == language)
            .ok_or_else(|| format!("no bundle for {language}"))?;
        let message = bundle
            .get_message(id)
            .ok_or_else(|| format!("no message `{id}`"))?;
        let pattern = message
            .value()
            .ok_or_else(|| format!("message `{id}` has no value"))?;
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(*name, FluentValue::from(value.as_str()));
        }
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
        if errors.is_empty() {
            Ok(text.into_owned())
        } else {
            Err(format!("message `{id}`: {errors:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts() -> Texts {
        Texts::new().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The `$name`s a message's source uses.
    fn variables(source: &str, id: &str) -> Vec<String> {
        let line = source
            .lines()
            .find(|l| l.starts_with(&format!("{id} =")))
            .unwrap_or_default();
        line.split("{ $")
            .skip(1)
            .filter_map(|rest| rest.split(' ').next())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_language_has_every_message() {
        let t = texts();
        let english = t.ids(Language::En);
        assert!(english.len() > 150, "{} messages", english.len());
        for (language, source) in SOURCES {
            assert_eq!(
                t.ids(language),
                english,
                "locales/{language}/herald.ftl differs from English in its messages"
            );
            for id in &english {
                // Every message formats, with the arguments English gives it.
                let vars = variables(SOURCES[0].1, id);
                assert_eq!(
                    variables(source, id),
                    vars,
                    "{language} {id}: other arguments"
                );
                let args: Vec<Arg<'_>> = vars.iter().map(|v| (v.as_str(), "1".into())).collect();
                let text = t
                    .try_with(language, id, &args)
                    .unwrap_or_else(|e| panic!("{language}: {e}"));
                assert!(!text.trim().is_empty(), "{language} {id} is empty");
            }
        }
    }

    /// Message ids the dashboard's templates name literally, plus the ones
    /// they build from event kinds and bounce reasons.
    fn used_ids() -> Vec<String> {
        let mut ids = Vec::new();
        for source in [
            include_str!("dashboard/pages.rs"),
            include_str!("dashboard/chart.rs"),
        ] {
            for piece in source.split('"').skip(1).step_by(2) {
                let looks_like_id = piece.contains('-')
                    && piece.starts_with(|c: char| c.is_ascii_lowercase())
                    && piece
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                // Literals that are HTML ids or data values, not messages.
                let not_messages = ["delete-confirmed", "confirm-title", "utf-8"];
                if looks_like_id && !not_messages.contains(&piece) {
                    ids.push(piece.to_owned());
                }
            }
        }
        for kind in herald_eventlog::EventKind::ALL {
            ids.push(format!("kind-{}", kind.as_str().replace('_', "-")));
        }
        for reason in herald_schedule::BounceReason::ALL {
            ids.push(format!("reason-{}", reason.as_str().replace('_', "-")));
        }
        ids.sort();
        ids.dedup();
        ids
    }

    #[test]
    fn every_message_the_pages_use_exists() {
        let t = texts();
        let known = t.ids(Language::En);
        let used = used_ids();
        assert!(used.len() > 100, "{} ids found", used.len());
        let missing: Vec<&String> = used.iter().filter(|id| !known.contains(id)).collect();
        assert!(missing.is_empty(), "used but not translated: {missing:?}");
    }

    #[test]
    fn languages_are_parsed_from_tags_and_default_to_english() {
        for (tag, want) in [
            ("fr", Some(Language::Fr)),
            ("fr-CA", Some(Language::Fr)),
            ("de_AT", Some(Language::De)),
            (" ES ", Some(Language::Es)),
            ("en-GB", Some(Language::En)),
            ("tlh", None),
            ("", None),
        ] {
            assert_eq!(Language::parse(tag), want, "{tag:?}");
        }
        assert_eq!(Language::first_of(["xx", "de-DE", "fr"]), Language::De);
        assert_eq!(Language::first_of(["xx"]), Language::En);
    }

    #[test]
    fn numbers_rates_and_dates_are_written_as_each_language_writes_them() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T13:05:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let tz: chrono_tz::Tz = chrono_tz::Europe::Copenhagen;
        // (language, 1234, 1234567, 0.125, the time in Copenhagen)
        let cases = [
            (
                Language::En,
                "1,234",
                "1,234,567",
                "12.5%",
                "Dec 1, 2026, 14:05",
            ),
            (
                Language::Fr,
                "1\u{202f}234",
                "1\u{202f}234\u{202f}567",
                "12,5\u{202f}%",
                "1 déc. 2026 14:05",
            ),
            (
                Language::De,
                "1.234",
                "1.234.567",
                "12,5\u{a0}%",
                "1. Dez 2026, 14:05",
            ),
            (
                Language::Es,
                "1234",
                "1.234.567",
                "12,5\u{a0}%",
                "1 dic 2026, 14:05",
            ),
        ];
        for (l, small, big, rate, time) in cases {
            assert_eq!(l.count(1234), small, "{l}");
            assert_eq!(l.count(1_234_567), big, "{l}");
            assert_eq!(l.count(999), "999", "{l}");
            assert_eq!(l.percent(0.125), rate, "{l}");
            assert_eq!(l.datetime(at, tz), time, "{l}");
        }
        assert_eq!(Language::En.percent(f64::NAN), "0.0%");
    }
}
