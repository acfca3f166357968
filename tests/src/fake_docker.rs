//! A stand-in for the Docker Engine API on a unix socket, just enough for label discovery:
//! `/version` (API 1.41, as Docker 20.10 answers), `/services` (the services the test sets, or
//! 503 "not a swarm manager" as on a worker) and a streaming `/events`. The real daemon is
//! exercised by `cargo xtask swarm-test`; this one lets a test decide exactly what the proxy
//! sees and when. Stopped, and its socket removed, on drop.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use serde_json::{Value, json};

use crate::Ids;

#[derive(Default)]
struct Shared {
    services: Mutex<Vec<Value>>,
    worker: AtomicBool,
    listed: AtomicUsize,
    watchers: Mutex<Vec<UnixStream>>,
    stop: AtomicBool,
}

/// The fake daemon.
pub struct FakeDocker {
    socket: PathBuf,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeDocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDocker")
            .field("socket", &self.socket)
            .finish()
    }
}

/// A Swarm service as the Engine API lists it: replicated (`Some(n)`) or global.
pub fn service(name: &str, labels: &[(&str, &str)], replicas: Option<u64>) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mode = match replicas {
        Some(n) => json!({"Replicated": {"Replicas": n}}),
        None => json!({"Global": {}}),
    };
    json!({
        "ID": format!("id-{name}"),
        "Version": {"Index": 1},
        "Spec": {"Name": name, "Labels": labels, "Mode": mode},
    })
}

impl FakeDocker {
    /// Listens on a fresh socket under the temporary directory.
    pub fn start() -> anyhow::Result<Self> {
        let socket = std::env::temp_dir().join(format!("{}-docker.sock", Ids::next().netns()));
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared::default());
        let thread = std::thread::spawn({
            let shared = Arc::clone(&shared);
            move || {
                while !shared.stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let shared = Arc::clone(&shared);
                            std::thread::spawn(move || {
                                let _ = serve(stream, &shared);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            }
        });
        Ok(Self {
            socket,
            shared,
            thread: Some(thread),
        })
    }

    /// The socket (`--docker-socket`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sets what `/services` lists.
    pub fn set_services(&self, services: Vec<Value>) {
        *self.shared.services.lock().expect("not poisoned") = services;
    }

    /// Answers `/services` like a worker node (503, "not a swarm manager") or like a manager.
    pub fn set_worker(&self, worker: bool) {
        self.shared.worker.store(worker, Ordering::Relaxed);
    }

    /// How many times `/services` was asked for.
    pub fn list_count(&self) -> usize {
        self.shared.listed.load(Ordering::Relaxed)
    }

    /// How many event streams are open.
    pub fn watchers(&self) -> usize {
        self.shared.watchers.lock().expect("not poisoned").len()
    }

    /// Sends a `service` event (`action`: create, update, remove) to every open event stream.
    pub fn emit(&self, action: &str, name: &str) {
        let event = json!({
            "Type": "service",
            "Action": action,
            "Actor": {"ID": format!("id-{name}"), "Attributes": {"name": name}},
            "scope": "swarm",
            "time": 1,
            "timeNano": 1,
        });
        let line = format!("{event}\n");
        let mut watchers = self.shared.watchers.lock().expect("not poisoned");
        watchers.retain_mut(|w| {
            w.write_all(line.as_bytes())
                .and_then(|()| w.flush())
                .is_ok()
        });
    }
}

impl Drop for FakeDocker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.watchers.lock().expect("not poisoned").clear();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn serve(stream: UnixStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    // `/v1.41/services` and `/services` alike.
    let endpoint = match path.strip_prefix("/v1.") {
        Some(rest) => rest.split_once('/').map_or("", |(_, e)| e),
        None => path.trim_start_matches('/'),
    };
    let mut stream = stream;
    match endpoint {
        "version" => respond(
            &mut stream,
            200,
            &json!({"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24",
                    "Os": "linux", "Arch": "amd64"}),
        ),
        "services" => {
            shared.listed.fetch_add(1, Ordering::Relaxed);
            if shared.worker.load(Ordering::Relaxed) {
                respond(
                    &mut stream,
                    503,
                    &json!({"message": "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."}),
                )
            } else {
                let services = shared.services.lock().expect("not poisoned").clone();
                respond(&mut stream, 200, &Value::Array(services))
            }
        }
        "events" => {
            // Close-delimited: the body lasts as long as the connection.
            stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
            )?;
            stream.flush()?;
            shared.watchers.lock().expect("not poisoned").push(stream);
            Ok(())
        }
        _ => respond(&mut stream, 404, &json!({"message": "page not found"})),
    }
}

fn respond(stream: &mut UnixStream, status: u16, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    write!(
        stream,
        "HTTP/1.1 {status} Fake\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
