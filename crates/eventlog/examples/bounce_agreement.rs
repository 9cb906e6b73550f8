//! Measures Herald's bounce judgement against another classifier's labels.
//!
//! ```sh
//! cargo run -p herald-eventlog --example bounce_agreement -- labels.tsv
//! ```
//!
//! `labels.tsv`: one line per recipient, `path<TAB>index<TAB>expected`, where
//! `index` counts the report's recipients from 1 and `expected` is `hard`,
//! `soft`, `blocked` (a bounce of that class), `none` (a recipient that did
//! not bounce: delivered, relayed), `complaint` or `autoreply` (the message's
//! kind). Prints the class agreement, the precision and recall of "hard", and
//! each disagreement. Lines starting with `#` are skipped.

use herald_eventlog::inbound::{self, InboundKind};
use std::collections::HashMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: bounce_agreement labels.tsv")?;
    let mut cache: HashMap<String, InboundKind> = HashMap::new();
    let (
        mut total,
        mut agree,
        mut called_hard,
        mut right_hard,
        mut true_hard,
        mut found_hard,
        mut other,
    ) = (0, 0, 0, 0, 0, 0, 0);
    for line in std::fs::read_to_string(&path)?.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [file, index, expected] = cols[..] else {
            return Err(format!("three columns expected: {line}").into());
        };
        let index: usize = index.parse()?;
        if !cache.contains_key(file) {
            let kind = inbound::classify_message(&std::fs::read(file)?);
            if matches!(kind, InboundKind::Other) {
                other += 1;
            }
            cache.insert(file.to_owned(), kind);
        }
        let kind = &cache[file];
        let got = match kind {
            InboundKind::Complaint { .. } => "complaint",
            InboundKind::AutoReply => "autoreply",
            InboundKind::Other => "other",
            InboundKind::Dsn { recipients } => recipients
                .get(index.saturating_sub(1))
                .map(|r| r.class.map_or("none", |c| c.as_str()))
                .unwrap_or("missing"),
        };
        total += 1;
        if got == expected {
            agree += 1;
        } else {
            let diag = kind
                .recipients()
                .get(index.saturating_sub(1))
                .and_then(|r| r.diagnostic.clone())
                .unwrap_or_default();
            println!(
                "{file}#{index}\texpected {expected}\tgot {got}\t{}",
                diag.chars().take(120).collect::<String>()
            );
        }
        if got == "hard" {
            called_hard += 1;
            right_hard += usize::from(expected == "hard");
        }
        if expected == "hard" {
            true_hard += 1;
            found_hard += usize::from(got == "hard");
        }
    }
    let pct = |a: usize, b: usize| {
        if b == 0 {
            0.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    println!(
        "agreement {agree}/{total} ({:.1}%); hard precision {right_hard}/{called_hard} ({:.1}%); hard recall {found_hard}/{true_hard} ({:.1}%); unread messages {other}",
        pct(agree, total),
        pct(right_hard, called_hard),
        pct(found_hard, true_hard)
    );
    Ok(())
}
