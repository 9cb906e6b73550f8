//! SMS texts (R-MSG-8): the same merge rules as email, and the length in
//! segments that the text will be sent as.
//!
//! A text made only of GSM 03.38 characters is sent in GSM-7: 160 septets in one
//! segment, 153 per segment when split (the extension characters `^{}\[~]|€`
//! take two septets). Any other character makes the whole text UCS-2: 70 UTF-16
//! units in one segment, 67 per segment when split.

use crate::merge::{Escape, NoUrls, Segment, parse, render_into};
use crate::{FieldSchema, MergeData, MergeValues, Part, Result};
use serde::{Deserialize, Serialize};

const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{0c}";

/// The encoding an SMS text is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SmsEncoding {
    /// GSM 03.38 7-bit default alphabet.
    Gsm7,
    /// UCS-2 (UTF-16).
    Ucs2,
}

/// The length of an SMS text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsLength {
    /// GSM-7 or UCS-2.
    pub encoding: SmsEncoding,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: usize,
    /// Segments the text is sent as (0 for an empty text).
    pub segments: usize,
}

/// Counts the segments of `text`.
pub fn length(text: &str) -> SmsLength {
    let mut septets = 0;
    let mut gsm = true;
    for c in text.chars() {
        if GSM_BASIC.contains(c) {
            septets += 1;
        } else if GSM_EXTENSION.contains(c) {
            septets += 2;
        } else {
            gsm = false;
            break;
        }
    }
    let (encoding, units, single, multi) = if gsm {
        (SmsEncoding::Gsm7, septets, 160, 153)
    } else {
        (SmsEncoding::Ucs2, text.encode_utf16().count(), 70, 67)
    };
    let segments = match units {
        0 => 0,
        n if n <= single => 1,
        n => n.div_ceil(multi),
    };
    SmsLength {
        encoding,
        units,
        segments,
    }
}

/// An SMS template, parsed and checked against a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsTemplate {
    segments: Vec<Segment>,
}

impl SmsTemplate {
    /// Parses `text` (same merge syntax as email; `links.unsubscribe` is not
    /// available in SMS).
    pub fn compile(text: &str, schema: &FieldSchema) -> Result<Self> {
        let segments = parse(text, Part::Sms, schema, false)?;
        if segments.iter().any(|s| matches!(s, Segment::Unsubscribe)) {
            return Err(crate::Error::Invalid {
                field: "SMS text",
                rule: "`links.unsubscribe` is not available in SMS".into(),
            });
        }
        Ok(SmsTemplate { segments })
    }

    /// Keeps the values `data` gives this template's fields.
    pub fn resolve(&self, data: &MergeData) -> MergeValues {
        let mut values = MergeValues::default();
        for seg in &self.segments {
            if let Segment::Field { path, .. } = seg
                && let Some(v) = data.get(path).filter(|v| !v.is_empty())
            {
                values.0.insert(path.clone(), v.to_owned());
            }
        }
        values
    }

    /// The merged text and its length.
    pub fn render(&self, values: &MergeValues) -> (String, SmsLength) {
        let mut out = String::new();
        render_into(&mut out, &self.segments, values, Escape::None, &NoUrls);
        let len = length(&out);
        (out, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(
            length(""),
            SmsLength {
                encoding: SmsEncoding::Gsm7,
                units: 0,
                segments: 0
            }
        );
        assert_eq!(length(&"a".repeat(160)).segments, 1);
        assert_eq!(length(&"a".repeat(161)).segments, 2);
        assert_eq!(length(&"a".repeat(306)).segments, 2);
        assert_eq!(length(&"a".repeat(307)).segments, 3);
        // Extension characters take two septets.
        assert_eq!(
            length(&"€".repeat(80)),
            SmsLength {
                encoding: SmsEncoding::Gsm7,
                units: 160,
                segments: 1
            }
        );
        assert_eq!(length(&"€".repeat(81)).segments, 2);
    }

    #[test]
    fn ucs2_boundaries() {
        assert_eq!(
            length(&"ж".repeat(70)),
            SmsLength {
                encoding: SmsEncoding::Ucs2,
                units: 70,
                segments: 1
            }
        );
        assert_eq!(length(&"ж".repeat(71)).segments, 2);
        assert_eq!(length(&"ж".repeat(134)).segments, 2);
        assert_eq!(length(&"ж".repeat(135)).segments, 3);
        // An emoji is two UTF-16 units, and one forces UCS-2 for the whole text.
        assert_eq!(
            length(&format!("{}😀", "a".repeat(68))),
            SmsLength {
                encoding: SmsEncoding::Ucs2,
                units: 70,
                segments: 1
            }
        );
    }

    #[test]
    fn merges_like_email() {
        let t = SmsTemplate::compile(
            "Hi {{person.first_name | \"there\"}}, 50% off!",
            &FieldSchema::standard(),
        )
        .expect("compiles");
        let mut d = MergeData::default();
        let (text, len) = t.render(&t.resolve(&d));
        assert_eq!(text, "Hi there, 50% off!");
        assert_eq!(len.segments, 1);
        d.person.insert("first_name".into(), "Zoë".into());
        assert_eq!(t.render(&t.resolve(&d)).0, "Hi Zoë, 50% off!");
        assert!(SmsTemplate::compile("{{person.nope}}", &FieldSchema::standard()).is_err());
    }
}
