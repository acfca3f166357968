//! A minimal HTTP/1.1 server inside a host that answers fixed bodies by path: a stand-in for
//! the Swarm Listener, or for a peer replica whose answers the test controls (it can hold
//! every answer until released). Stopped on drop.
use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::Host;

#[derive(Default)]
struct Shared {
    routes: Mutex<BTreeMap<String, (u16, String)>>,
    requests: Mutex<Vec<String>>,
    held: Mutex<bool>,
    released: Condvar,
    stop: AtomicBool,
}

/// The server; `route` sets what a path answers (others get 404).
pub struct StubServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for StubServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl StubServer {
    /// Listens on `port` of every address of `host`.
    pub fn start(host: &Host, port: u16) -> anyhow::Result<Self> {
        let listener = host.enter(|| TcpListener::bind(("0.0.0.0", port)))??;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let thread = std::thread::spawn({
            let shared = Arc::clone(&shared);
            move || accept_loop(&listener, &shared)
        });
        Ok(Self {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    /// Makes `path` (without the query) answer `status` with the JSON `body`.
    pub fn route(&self, path: &str, status: u16, body: &str) {
        lock(&self.shared.routes).insert(path.to_owned(), (status, body.to_owned()));
    }

    /// Holds every answer until [`StubServer::release`].
    pub fn hold(&self) {
        *lock(&self.shared.held) = true;
    }

    /// Lets held and future requests be answered.
    pub fn release(&self) {
        *lock(&self.shared.held) = false;
        self.shared.released.notify_all();
    }

    /// The request lines received so far (`GET /path HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.requests).clone()
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.release();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(shared);
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// One request per connection, answered with `Connection: close`.
fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let request_line = request_line.trim_end().to_owned();
    lock(&shared.requests).push(request_line.clone());
    {
        let mut held = lock(&shared.held);
        while *held && !shared.stop.load(Ordering::Relaxed) {
            held = shared
                .released
                .wait(held)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/");
    let (status, body) = lock(&shared.routes)
        .get(path)
        .cloned()
        .unwrap_or((404, "{\"Message\":\"no such path\"}".to_owned()));
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} Stub\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
