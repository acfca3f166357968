//! Prometheus's own tools against flowproxy: `promtool`, the Prometheus server (Debian's
//! `prometheus` package) scraping a target on loopback, and a tap that shows what the server
//! asked for and got.
use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, ensure};

use crate::curl;

/// Runs `promtool ARGS` with `stdin`; returns whether it succeeded and all it printed.
pub fn promtool(args: &[&str], stdin: &str) -> anyhow::Result<(bool, String)> {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("promtool (apt-get install prometheus)")?;
    child
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), printed))
}

/// A TCP forwarder that keeps the first bytes each way of every connection, to see what the
/// Prometheus server asked for and what it got.
pub struct Tap {
    /// Where to connect instead of `to`.
    pub addr: SocketAddr,
    seen: Arc<Mutex<(Vec<u8>, Vec<u8>)>>,
    stop: Arc<AtomicBool>,
}

impl Tap {
    /// Forwards a new loopback port to `to`.
    pub fn start(to: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let tap = Self {
            addr: listener.local_addr()?,
            seen: Arc::default(),
            stop: Arc::default(),
        };
        let (seen, stop) = (Arc::clone(&tap.seen), Arc::clone(&tap.stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(upstream) = TcpStream::connect(to) else {
                            continue;
                        };
                        let (c2, u2) = (client.try_clone(), upstream.try_clone());
                        let (Ok(c2), Ok(u2)) = (c2, u2) else { continue };
                        let s1 = Arc::clone(&seen);
                        std::thread::spawn(move || pipe(client, u2, &s1, true));
                        let s2 = Arc::clone(&seen);
                        std::thread::spawn(move || pipe(upstream, c2, &s2, false));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(tap)
    }

    /// What went to `to` and what came back, as text.
    pub fn seen(&self) -> (String, String) {
        let seen = self.seen.lock().expect("tap");
        (
            String::from_utf8_lossy(&seen.0).into_owned(),
            String::from_utf8_lossy(&seen.1).into_owned(),
        )
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies `from` to `to` until either closes, keeping up to 64 KiB of it.
fn pipe(mut from: TcpStream, mut to: TcpStream, seen: &Mutex<(Vec<u8>, Vec<u8>)>, request: bool) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        let mut seen = seen.lock().expect("tap");
        let kept = if request { &mut seen.0 } else { &mut seen.1 };
        if kept.len() < 64 * 1024 {
            kept.extend_from_slice(&buf[..n]);
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Debian's Prometheus server on a loopback port, scraping `target` every second; killed
/// and its data removed on drop.
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts it, scraping `target`.
    pub fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("{}-prometheus", crate::Ids::next().netns()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
                 - job_name: flowproxy\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(dir.join("log"))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("prometheus (apt-get install prometheus)")?;
        Ok(Self { child, port, dir })
    }

    /// `GET path` on its HTTP API, as JSON.
    pub fn api(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let response = curl(&[&format!("http://127.0.0.1:{}{path}", self.port)])?;
        ensure!(response.status == 200, "{path}: {}", response.body);
        Ok(serde_json::from_str(&response.body)?)
    }

    /// The value of the instant query `query`'s first sample.
    pub fn value(&self, query: &str) -> anyhow::Result<f64> {
        let answer = self.api(&format!("/api/v1/query?query={query}"))?;
        answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{query}: {answer}"))
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
