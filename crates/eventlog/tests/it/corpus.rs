//! The bounce corpus (tests/data/bounces, sources and licences in
//! tests/data/README.md): real bounces, complaints, auto-replies and other
//! mail from public test suites of other bounce parsers, each recipient with
//! its expected kind, address, class and reason in `expected.tsv`. One loop;
//! every difference is listed.

use herald_eventlog::inbound::{self, InboundKind};
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn corpus() -> (std::path::PathBuf, Vec<Vec<String>>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bounces");
    let text = std::fs::read_to_string(dir.join("expected.tsv")).expect("expected.tsv");
    let rows = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    (dir, rows)
}

fn dash(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("-").to_owned()
}

#[test]
fn every_sample_is_judged_as_expected() {
    let (dir, rows) = corpus();
    let mut by_file: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for row in rows {
        assert_eq!(row.len(), 6, "expected.tsv: six columns: {row:?}");
        by_file.entry(row[0].clone()).or_default().push(row);
    }
    assert!(
        by_file.len() >= 170,
        "the corpus holds {} messages",
        by_file.len()
    );
    let mut wrong = String::new();
    let mut recipients = 0;
    for (file, expected) in &by_file {
        let raw = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let kind = inbound::classify_message(&raw);
        let got: Vec<[String; 4]> = match &kind {
            InboundKind::Dsn { recipients } if !recipients.is_empty() => recipients
                .iter()
                .map(|r| {
                    [
                        "dsn".to_owned(),
                        dash(Some(&r.recipient)),
                        dash(r.class.map(|c| c.as_str())),
                        dash(r.reason.map(|r| r.as_str())),
                    ]
                })
                .collect(),
            other => vec![[other.name().to_owned(), "-".into(), "-".into(), "-".into()]],
        };
        let want: Vec<[String; 4]> = expected
            .iter()
            .map(|r| [r[2].clone(), r[3].clone(), r[4].clone(), r[5].clone()])
            .collect();
        recipients += want.len();
        if got != want {
            let _ = writeln!(wrong, "{file}:\n  expected {want:?}\n  got      {got:?}");
        }
    }
    assert!(wrong.is_empty(), "{wrong}");
    assert!(recipients >= 190, "{recipients} recipients");
}

#[test]
fn no_auto_reply_and_no_complaint_is_ever_a_bounce() {
    let (dir, rows) = corpus();
    for row in rows
        .iter()
        .filter(|r| r[2] == "autoreply" || r[2] == "complaint")
    {
        let raw = std::fs::read(dir.join(&row[0])).expect("sample");
        let kind = inbound::classify_message(&raw);
        assert!(
            kind.recipients().iter().all(|r| r.class.is_none()),
            "{}: {kind:?}",
            row[0]
        );
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let _ = inbound::classify_message(&bytes);
        }

        #[test]
        fn on_a_sample_cut_short_or_corrupted(pick in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let (dir, rows) = corpus();
            let file = &rows[pick.index(rows.len())][0];
            let mut raw = std::fs::read(dir.join(file)).expect("sample");
            let n = raw.len().max(1);
            let i = at.index(n).min(raw.len().saturating_sub(1));
            if !raw.is_empty() {
                raw[i] = byte;
            }
            raw.truncate(cut.index(n + 1));
            let _ = inbound::classify_message(&raw);
        }
    }
}
