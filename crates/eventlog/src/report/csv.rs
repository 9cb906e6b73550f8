//! Reports exported as CSV: fixed columns, quoted cells, formula-guarded.

use super::*;

/// The CSV columns, in order, each with its cell: one table, so the header
/// and the rows cannot disagree.
pub(super) type CsvColumn = (&'static str, fn(&Event) -> String);

pub(super) fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

pub(super) const CSV_COLUMNS: [CsvColumn; 20] = [
    ("id", |e| e.id.to_string()),
    ("kind", |e| e.kind.as_str().to_owned()),
    ("at", |e| e.at.to_rfc3339()),
    ("message", |e| opt(&e.message)),
    ("campaign", |e| opt(&e.campaign)),
    ("recipient", |e| e.recipient.clone()),
    ("person", |e| opt(&e.person)),
    ("link", |e| opt(&e.link)),
    ("label", |e| opt(&e.label)),
    ("ip", |e| opt(&e.ip)),
    ("user_agent", |e| opt(&e.user_agent)),
    ("reply", |e| opt(&e.reply)),
    ("reason", |e| opt(&e.reason.map(|r| r.as_str()))),
    ("bot", |e| e.bot.to_string()),
    ("origin", |e| {
        match e.origin {
            crate::bots::Origin::Person => "person",
            crate::bots::Origin::Prefetch => "prefetch",
            crate::bots::Origin::Bot => "bot",
        }
        .to_owned()
    }),
    ("browser", |e| opt(&e.browser)),
    ("os", |e| opt(&e.os)),
    ("device", |e| opt(&e.device)),
    ("country", |e| opt(&e.country)),
    ("city", |e| opt(&e.city)),
];

pub(super) fn csv_cell(out: &mut String, v: &str) {
    // Quote every cell that needs it; a leading =, +, - or @ is prefixed with '
    // so spreadsheet programs do not run it as a formula.
    let guarded = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&guarded.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&guarded);
    }
}

impl EventLog {
    /// The report as CSV (a header line, then one line per event of the page).
    pub async fn report_csv(&self, account: u64, query: &ReportQuery) -> Result<String> {
        let header: Vec<&str> = CSV_COLUMNS.iter().map(|(name, _)| *name).collect();
        let mut out = format!("{}\r\n", header.join(","));
        for e in self.report(account, query).await? {
            for (i, (_, cell)) in CSV_COLUMNS.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                csv_cell(&mut out, &cell(&e));
            }
            out.push_str("\r\n");
        }
        Ok(out)
    }
}
