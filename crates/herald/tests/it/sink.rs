//! Postfix's smtp-sink on a loopback port, dumping each message to a file.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Sink {
    child: Child,
    pub dir: PathBuf,
}

impl Sink {
    /// Starts smtp-sink on `port` with extra switches (`-r rcpt`, `-f rcpt`, `-q data` …).
    pub fn start(port: u16, dir: &Path, switches: &[&str]) -> Sink {
        Self::start_at("127.0.0.1", port, dir, switches)
    }

    /// Starts smtp-sink on `ip:port` (another loopback address stands for
    /// another provider).
    pub fn start_at(ip: &str, port: u16, dir: &Path, switches: &[&str]) -> Sink {
        std::fs::create_dir_all(dir).unwrap();
        // smtp-sink runs as `nobody` when started as root; let it write the dumps.
        let _ = Command::new("chmod").arg("0777").arg(dir).status();
        let mut cmd = Command::new(find_tool("smtp-sink"));
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.args(switches)
            .arg("-d")
            .arg(format!("{}/%M.", dir.display()))
            .arg(format!("{ip}:{port}"))
            .arg("100")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((ip, port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtp-sink did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sink {
            child,
            dir: dir.to_owned(),
        }
    }

    /// The dumped messages: (envelope recipients, message with CRLF line ends,
    /// smtp-sink's own X- and Received lines removed).
    pub fn messages(&self) -> Vec<(Vec<String>, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let path = entry.unwrap().path();
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            let mut rcpts = Vec::new();
            let mut lines = text.split('\n').peekable();
            // smtp-sink's header: X-* lines, then its Received: with continuations.
            while let Some(l) = lines.peek() {
                if let Some(r) = l.strip_prefix("X-Rcpt-Args: ") {
                    rcpts.push(
                        r.trim()
                            .trim_start_matches('<')
                            .trim_end_matches('>')
                            .to_owned(),
                    );
                    lines.next();
                } else if l.starts_with("X-") {
                    lines.next();
                } else {
                    break;
                }
            }
            if lines.peek().is_some_and(|l| l.starts_with("Received: ")) {
                lines.next();
                while lines.peek().is_some_and(|l| l.starts_with(['\t', ' '])) {
                    lines.next();
                }
            }
            let body: Vec<&str> = lines.collect();
            out.push((rcpts, body.join("\r\n").into_bytes()));
        }
        out
    }

    pub fn count(&self) -> usize {
        std::fs::read_dir(&self.dir).map(|d| d.count()).unwrap_or(0)
    }
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
