//! A real DNS server (dnsmasq) on a loopback port, serving the records a test gives.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn find_tool(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
    ]) {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` is not installed; the README's test command (bash .ci/run) installs it");
}

/// A free loopback port (UDP and TCP free at the time of asking).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub struct DnsServer {
    child: Child,
    pub addr: SocketAddr,
}

/// Splits a TXT record's text into strings of at most 255 bytes, which dnsmasq
/// takes separated by commas (so the text itself may not hold one).
fn txt_arg(name: &str, text: &str) -> String {
    assert!(
        !text.contains(','),
        "dnsmasq splits TXT strings at commas: {text}"
    );
    let parts: Vec<String> = text
        .as_bytes()
        .chunks(255)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!("--txt-record={name},{}", parts.join(","))
}

impl DnsServer {
    /// Starts dnsmasq answering for `*.test` only: the given TXT records and A
    /// records, NXDOMAIN/NODATA for everything else under `test`.
    pub fn start(txt: &[(&str, &str)], a: &[(&str, &str)]) -> Self {
        let mut args: Vec<String> = txt.iter().map(|(name, text)| txt_arg(name, text)).collect();
        args.extend(
            a.iter()
                .map(|(name, ip)| format!("--host-record={name},{ip}")),
        );
        Self::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Starts dnsmasq answering for `*.test` only, with these extra switches
    /// (`--mx-host=…`, `--host-record=…`, `--txt-record=…`).
    pub fn start_with(records: &[&str]) -> Self {
        let port = free_port();
        let mut cmd = Command::new(find_tool("dnsmasq"));
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--local=/test/",
            "--user=root",
        ])
        .arg(format!("--port={port}"))
        .args(records);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not start listening on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        DnsServer { child, addr }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP socket that receives DNS questions and never answers (and no TCP
/// listener): a name server that times out.
pub fn silent_nameserver() -> (UdpSocket, SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = sock.local_addr().expect("addr");
    (sock, addr)
}
