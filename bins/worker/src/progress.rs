//! Progress: a bar on a terminal (indicatif), a structured log line otherwise.

use herald::Herald;
use herald::worker::Stats;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Reports until the process ends: every 200 ms on a terminal, every 10 s in logs.
pub async fn report(herald: Arc<Herald>, stats: Arc<Stats>) {
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last_done = 0;
    loop {
        tokio::time::sleep(if terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(10)
        })
        .await;
        let done = stats.done();
        let pending = herald.outbox.pending().await.unwrap_or(0);
        let (delivered, deferred, bounced, failed, refused) = (
            stats.delivered.load(Ordering::Relaxed),
            stats.deferred.load(Ordering::Relaxed),
            stats.bounced.load(Ordering::Relaxed),
            stats.failed.load(Ordering::Relaxed),
            stats.refused_sessions.load(Ordering::Relaxed),
        );
        match &bar {
            Some(bar) => {
                bar.set_length(done + pending);
                bar.set_position(done);
                bar.set_message(format!(
                    "delivered {delivered} deferred {deferred} bounced {bounced} failed {failed} refused sessions {refused}"
                ));
            }
            None if done != last_done || pending > 0 => {
                tracing::info!(
                    delivered,
                    deferred,
                    bounced,
                    failed,
                    refused_sessions = refused,
                    pending,
                    per_10s = done - last_done,
                    "progress"
                );
            }
            None => {}
        }
        last_done = done;
    }
}
