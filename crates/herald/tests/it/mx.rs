//! Direct-to-MX delivery (R-SND-6) against dnsmasq and smtp-sink.

use crate::dns::DnsServer;
use crate::sink::{Sink, free_port};
use herald::message::Envelope;
use herald::schedule::Attempt;
use herald::transport::{MxConfig, Transport, TransportConfig};

fn envelope(to: &str) -> Envelope {
    Envelope {
        mail_from: "b-x@bounces.herald.test".into(),
        rcpt_to: to.into(),
    }
}

const MESSAGE: &[u8] = b"From: a@herald.test\r\nTo: r@x.test\r\nSubject: mx\r\n\r\nhello\r\n";

fn mx(port: u16, dns: std::net::SocketAddr) -> Transport {
    Transport::new(&TransportConfig::Mx(MxConfig {
        port,
        per_destination: 2,
        timeout_secs: 5,
        nameserver: Some(dns),
        dns_timeout_secs: 1,
    }))
    .unwrap()
}

#[tokio::test]
async fn delivers_to_mx_hosts_in_preference_order_with_address_fallback() {
    let port = free_port();
    let sink = Sink::start(port, &crate::delivery::scratch("mx"), &[]);
    let dns = DnsServer::start_with(&[
        "--mx-host=shop.test,mx1.shop.test,10",
        "--host-record=mx1.shop.test,127.0.0.1",
        // The first MX of two.test does not answer; the second does.
        "--mx-host=two.test,down.two.test,10",
        "--mx-host=two.test,up.two.test,20",
        "--host-record=down.two.test,127.0.0.2",
        "--host-record=up.two.test,127.0.0.1",
        // No MX: the domain's own address (RFC 5321 §5.1).
        "--host-record=plain.test,127.0.0.1",
    ]);
    let t = mx(port, dns.addr);
    for to in ["r@shop.test", "r@two.test", "r@plain.test"] {
        match t.send(&envelope(to), "id", MESSAGE).await {
            Attempt::Reply { code: 250, .. } => {}
            other => panic!("{to}: {other:?}"),
        }
    }
    let rcpts: Vec<String> = sink.messages().into_iter().flat_map(|(r, _)| r).collect();
    assert_eq!(rcpts.len(), 3, "{rcpts:?}");
    // A domain with neither MX nor address: a temporary failure, retried later.
    match t.send(&envelope("r@nowhere.test"), "id", MESSAGE).await {
        Attempt::Unreachable { reason } => assert!(reason.contains("nowhere.test"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_silent_name_server_defers() {
    let (_sock, addr) = crate::dns::silent_nameserver();
    let t = mx(25, addr);
    match t.send(&envelope("r@shop.test"), "id", MESSAGE).await {
        Attempt::Unreachable { reason } => {
            assert!(reason.contains("MX lookup of shop.test"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
