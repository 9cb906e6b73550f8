//! Fixtures shared by Herald's benchmarks: the 10 KB newsletter with 20 links
//! that the performance targets are stated for.

use herald::message::{
    BuildParams, CompiledTemplate, FieldSchema, Mailbox, MergeData, MessageRef, Platform, SendKind,
    SenderIdentity, Template, Tracker, TrackingOptions,
};

/// A newsletter of about 10 KB of HTML with 20 tracked links and merge fields.
pub fn newsletter() -> Template {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>News</title></head><body>\
         <h1>Hello {{person.first_name | \"there\"}}</h1>",
    );
    let mut i = 0;
    while html.len() < 10_000 {
        if i < 20 {
            html.push_str(&format!(
                "<p>Offer {i} for {{{{organisation.name}}}}: <a href=\"https://shop.example/offer/{i}?utm_source=news&amp;utm_medium=email\">see offer {i}</a>. "
            ));
        } else {
            html.push_str("<p>");
        }
        html.push_str("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.</p>\n");
        i += 1;
    }
    assert!(i >= 20, "the template must hold 20 links");
    html.push_str("</body></html>");
    Template {
        subject: "News for {{person.first_name}} at {{organisation.name}}".into(),
        text: "Hello {{person.first_name}}, see https://shop.example/offers\n".repeat(20),
        html,
    }
}

/// Options used by the benchmarks: links and opens tracked, unsubscribe footer.
pub fn options() -> TrackingOptions {
    TrackingOptions {
        unsubscribe_link: true,
        ..TrackingOptions::default()
    }
}

/// Compiles [`newsletter`].
pub fn compiled() -> CompiledTemplate {
    newsletter()
        .compile(&FieldSchema::standard(), &options())
        .unwrap_or_else(|e| panic!("the benchmark template compiles: {e}"))
}

/// One recipient's data.
pub fn person(n: u64) -> MergeData {
    let mut d = MergeData::default();
    d.person
        .insert("first_name".into(), format!("Person {n} <b>&"));
    d.organisation.insert("name".into(), "Acme & Söhne".into());
    d
}

/// The platform, sender, recipient and tracker of the benchmarks.
pub struct Context {
    /// Platform identity.
    pub platform: Platform,
    /// The CRM user.
    pub sender: SenderIdentity,
    /// The recipient.
    pub to: Mailbox,
    /// Token minting.
    pub tracker: Tracker,
}

impl Context {
    /// Builds the fixed context.
    pub fn new() -> Result<Self, herald::message::Error> {
        Ok(Context {
            platform: Platform::new(
                "Herald",
                "mailer@herald.example",
                "herald.example",
                "bounces.herald.example",
                "herald",
            )?,
            sender: SenderIdentity {
                user: Mailbox::new(Some("Søren"), "soren@shop.example")?,
                domain_verified: false,
            },
            to: Mailbox::new(Some("Ada"), "ada@example.org")?,
            tracker: Tracker::new(&[9; 32], "https://t.herald.example")?,
        })
    }

    /// Build parameters for message `n`.
    pub fn params(&self, n: u64) -> BuildParams<'_> {
        BuildParams {
            platform: &self.platform,
            sender: &self.sender,
            to: &self.to,
            reply_to: None,
            kind: SendKind::Mass,
            message: MessageRef {
                account: 1,
                message: n,
            },
            campaign: Some(herald::message::CampaignId(1)),
            date: chrono::DateTime::UNIX_EPOCH,
            attachments: &[],
        }
    }
}

/// Runs `bench` on a fresh SQLite file, then on a fresh PostgreSQL database
/// (the server at `$HERALD_TEST_POSTGRES`, default
/// `postgres://postgres@127.0.0.1:5432/test`), passing each a label and a URL.
pub fn on_both_databases<F, Fut>(name: &str, bench: F)
where
    F: Fn(&'static str, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let dir = std::env::temp_dir().join(format!("herald-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        bench(
            "sqlite",
            format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()),
        )
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        let admin = std::env::var("HERALD_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let db = format!("herald_{name}_{}", std::process::id());
        let mut conn = sqlx::AnyConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("create {db}: {e}"));
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(b, _)| b)
            .to_owned();
        bench("postgresql", format!("{base}/{db}")).await;
        // HERALD_BENCH_KEEP_POSTGRES: leave the database for EXPLAIN ANALYZE.
        if std::env::var_os("HERALD_BENCH_KEEP_POSTGRES").is_some() {
            println!("kept PostgreSQL database {base}/{db}");
        } else {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    });
}

/// The configuration every delivery benchmark starts from: `db_url`, the
/// platform, tracking and the RSA-2048 DKIM key, an SMTP relay on loopback
/// `port` (32 pooled connections), no throttle unless `throttle` holds
/// `[throttle]` lines, `concurrency` slots a lane, mass sends without a lead
/// time.
pub fn smtp_config(
    db_url: &str,
    port: u16,
    worker: &str,
    concurrency: usize,
    throttle: &str,
) -> herald::config::Config {
    let key = format!(
        "{}/../crates/auth/tests/data/rsa-pkcs1.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut c = herald::config::Config::from_toml(&format!(
        r#"
database_url = "{db_url}"
[platform]
name = "Herald"
sender = "mailer@herald.example"
message_id_domain = "herald.example"
bounce_domain = "bounces.herald.example"
[tracking]
base_url = "https://t.herald.example"
secret = "0123456789abcdef0123456789abcdef"
[dkim.platform]
domain = "herald.example"
selector = "s1"
key_file = "{key}"
[transport]
kind = "smtp"
host = "127.0.0.1"
port = {port}
tls = "none"
pool_size = 32
[throttle]
{throttle}
[worker]
id = "{worker}"
concurrency = {concurrency}
lease_secs = 300
poll_ms = 5
"#
    ))
    .unwrap_or_else(|e| panic!("the benchmark configuration: {e}"));
    c.rules = herald::schedule::SendingRules {
        mass_min_lead_minutes: 0,
        ..herald::schedule::SendingRules::default()
    };
    c
}
