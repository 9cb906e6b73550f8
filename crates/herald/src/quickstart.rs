//! The quick start (R-OPS-1): a single-node Herald in a data folder, with a
//! SQLite file, the file transport, a generated platform DKIM key and tracking
//! secret, and a demo account (rules accepted), API key and three demo persons.
//! Everything is created on the first start and reused afterwards.

use crate::accounts::NewAccount;
use crate::config::{
    Config, DkimConfig, DkimKeyConfig, PlatformConfig, TrackingConfig, WorkerOptions,
};
use crate::service::{Error, Herald};
use crate::transport::TransportConfig;
use herald_auth::KeyAlgorithm;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What the quick start made or found.
#[derive(Debug, Clone)]
pub struct Demo {
    /// The demo account's number.
    pub account: u64,
    /// Its API key.
    pub api_key: String,
    /// The admin token.
    pub admin_token: String,
    /// Where the .eml files land.
    pub mail_dir: PathBuf,
    /// The server's URL.
    pub url: String,
    /// The platform's DKIM record to publish: `name  TXT  "v=DKIM1; …"`.
    pub dkim_record: String,
    /// A one-time sign-in link to the demo account's dashboard.
    pub dashboard_link: crate::app::dashboard::SignInLink,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::ReadFile {
        what,
        path: path.display().to_string(),
        error: e.to_string(),
    }
}

fn random_token(prefix: &str) -> Result<String, Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| Error::Task(format!("random: {e}")))?;
    Ok(format!(
        "{prefix}{}",
        data_encoding::BASE32_NOPAD
            .encode(&bytes)
            .to_ascii_lowercase()
    ))
}

/// The file `dir/name`, created with `make()` on the first start.
fn persistent(
    dir: &Path,
    name: &str,
    make: impl FnOnce() -> Result<String, Error>,
) -> Result<String, Error> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let v = make()?;
            crate::secrets::write_private(&path, format!("{v}\n").as_bytes())
                .map_err(io("quick start file", &path))?;
            Ok(v)
        }
        Err(e) => Err(io("quick start file", &path)(e)),
    }
}

/// The configuration of a quick-start node in `dir`, listening on `listen`;
/// creates the folder, key and secrets on the first start.
pub fn config(dir: &Path, listen: SocketAddr) -> Result<(Config, String), Error> {
    std::fs::create_dir_all(dir.join("mail")).map_err(io("data folder", dir))?;
    let key_file = dir.join("dkim-platform.pem");
    persistent(dir, "dkim-platform.pem", || {
        Ok(
            herald_auth::generate_key("herald.localhost", "herald", KeyAlgorithm::Ed25519)?
                .private_key_pem,
        )
    })?;
    let secret = persistent(dir, "tracking-secret", || random_token(""))?;
    let admin_token = persistent(dir, "admin-token", || random_token("admin_"))?;
    let key_encryption_key = persistent(dir, "dkim-encryption-key", || {
        crate::vault::KeyVault::generate("qs1")
    })?;
    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        listen.ip().to_string()
    };
    let base_url = format!("http://{host}:{}", listen.port());
    let config = Config {
        database_url: format!("sqlite://{}?mode=rwc", dir.join("herald.db").display()),
        platform: PlatformConfig {
            name: "Herald".into(),
            sender: "mailer@herald.localhost".into(),
            message_id_domain: "herald.localhost".into(),
            bounce_domain: "bounces.herald.localhost".into(),
            feedback_sender: "herald".into(),
        },
        tracking: TrackingConfig { base_url, secret },
        dkim: DkimConfig {
            platform: DkimKeyConfig {
                domain: "herald.localhost".into(),
                selector: "herald".into(),
                key_file,
            },
            domains: Vec::new(),
        },
        transport: TransportConfig::File {
            dir: dir.join("mail"),
        },
        fallback_transport: None,
        attachments: Default::default(),
        throttle: Default::default(),
        delivery: Default::default(),
        webhooks: Default::default(),
        rules: Default::default(),
        retry: Default::default(),
        worker: WorkerOptions {
            poll_ms: 200,
            ..WorkerOptions::default()
        },
        events: Default::default(),
        api: crate::config::ApiConfig {
            admin_token: Some(admin_token.clone()),
            ..Default::default()
        },
        domains: crate::config::DomainsConfig {
            key_encryption_key: Some(key_encryption_key),
            ..Default::default()
        },
        sms: Default::default(),
        dashboard: Default::default(),
    };
    Ok((config, admin_token))
}

/// Makes sure the demo account (rules accepted), its API key and the demo
/// persons exist.
pub async fn seed(
    herald: &Herald,
    dir: &Path,
    admin_token: &str,
) -> Result<Demo, crate::app::Error> {
    use crate::app::{accounts, contacts};
    let (account, fresh_key) = match accounts::list(herald).await?.first() {
        Some(a) => (a.id, None),
        None => {
            let new = NewAccount {
                name: "Demo".into(),
                timezone: "UTC".into(),
                date_format: "%Y-%m-%d".into(),
                // On a plan with the dashboard, so the quick start can show it.
                plan: "plus".into(),
            };
            let (a, key) = accounts::open(herald, &new, Some("quick start")).await?;
            (a.id, Some(key.key))
        }
    };
    let key_path = dir.join("demo-api-key");
    let stored = match std::fs::read_to_string(&key_path) {
        Ok(k) if fresh_key.is_none() => Some(k.trim().to_owned()),
        _ => None,
    };
    let api_key = match stored {
        Some(k) if crate::accounts::authenticate(&herald.accounts, &k).await? == Some(account) => k,
        _ => {
            let k = match fresh_key {
                Some(k) => k,
                None => accounts::create_key(herald, account).await?.key,
            };
            crate::secrets::write_private(&key_path, format!("{k}\n").as_bytes())
                .map_err(io("demo key", &key_path))?;
            k
        }
    };
    contacts::upsert_persons(herald, account, &contacts::demo_persons()).await?;
    // The demo account is on a plan with the dashboard (also one made by an
    // earlier version), and the guide shows a sign-in link for it.
    if !crate::app::dashboard::includes_dashboard(herald, &herald.accounts.get(account).await?.plan)
    {
        accounts::set_plan(herald, account, "plus").await?;
    }
    let dashboard_link =
        crate::app::dashboard::create_link(herald, account, "Demo user", None).await?;
    let platform = &herald.config.dkim.platform;
    let pem = std::fs::read_to_string(&platform.key_file)
        .map_err(io("platform DKIM key", &platform.key_file))?;
    let key = herald_auth::DkimKey::from_pem(&pem).map_err(crate::Error::from)?;
    let public = key.public_key();
    let dkim_record = format!(
        "{}._domainkey.{}  TXT  \"{}\"",
        platform.selector,
        platform.domain,
        public.txt_record()
    );
    Ok(Demo {
        dkim_record,
        account,
        api_key,
        admin_token: admin_token.to_owned(),
        mail_dir: match &herald.config.transport {
            TransportConfig::File { dir } => dir.clone(),
            _ => dir.join("mail"),
        },
        url: herald.config.tracking.base_url.clone(),
        dashboard_link,
    })
}

/// The guide printed at start.
pub fn guide(demo: &Demo) -> String {
    let send = crate::app::sends::demo_send_json("news@shop.example").to_string();
    format!(
        "\nHerald is running at {url}\n\
         \n  Demo account {account}, API key:  {key}\n  Admin token:                 {admin}\n\
         \nSend a newsletter to the three demo persons:\n\
         \n  curl -s {url}/v1/sends -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n    -d '{send}'\n\
         \nThe messages land as .eml files in {mail}\n\
         Open one, follow its tracked link (http://…/c/…), then look at:\n\
         \n  curl -s {url}/v1/events -H 'Authorization: Bearer {key}'\n  curl -s {url}/v1/campaigns -H 'Authorization: Bearer {key}'\n\
         \nMail is signed with the platform's DKIM key; its DNS record (for a real domain, publish\n\
         the same for your platform.domain):\n\n  {dkim}\n\
         \nOpen the dashboard (this link works once, for {minutes} minutes):\n\
         \n  {dashboard}\n\
         \nA CRM asks for a new link for each of its users:\n\
         \n  curl -s {url}/v1/dashboard/links -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n    --data '{{\"user\": \"Ulla\", \"language\": \"de\"}}'\n\
         \nThe API is described at {url}/openapi.json. Stop with Ctrl-C.\n",
        url = demo.url,
        account = demo.account,
        key = demo.api_key,
        admin = demo.admin_token,
        mail = demo.mail_dir.display(),
        dkim = demo.dkim_record,
        dashboard = demo.dashboard_link.url,
        minutes = ((demo.dashboard_link.expires_at - chrono::Utc::now()).num_seconds() + 59) / 60,
    )
}
