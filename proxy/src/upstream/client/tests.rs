use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use http_body_util::{BodyExt as _, Empty};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use super::*;

/// What the test replica does after each answer.
#[derive(Clone, Copy)]
enum After {
    KeepAlive,
    Close,
}

/// A replica answering every request with `body` (`Content-Length` framed); it counts the
/// connections it accepted.
async fn replica(body: &'static str, after: After) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head.drain(..end + 4);
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                        if let After::Close = after {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

fn client() -> UpstreamClient {
    new_client(BackendBytes::default(), Duration::from_secs(2))
}

fn get(addr: SocketAddr) -> Request<UpstreamBody> {
    Request::builder()
        .uri("/x")
        .header(header::HOST, addr.to_string())
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .unwrap()
}

async fn read_whole(response: Response<UpstreamResponse>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn a_connection_is_reused_once_its_response_was_read() {
    let (addr, accepted) = replica("hello", After::KeepAlive).await;
    let client = client();
    for _ in 0..3 {
        let response = client.request(addr, get(addr)).await.unwrap();
        assert_eq!(read_whole(response).await, "hello");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for all three"
    );
    assert_eq!(idle::count(client.id, addr), 1);
}

/// A burst of more requests in flight than the old cap of 256: once all are answered, every
/// connection waits for the next burst, which opens none.
#[tokio::test]
async fn a_burst_of_300_requests_keeps_its_connections_for_the_next() {
    let (addr, accepted) = replica("hi", After::KeepAlive).await;
    let client = client();
    for burst in 1..=2 {
        let answers = futures_util::future::join_all((0..300).map(|_| async {
            let response = client.request(addr, get(addr)).await.unwrap();
            read_whole(response).await
        }))
        .await;
        assert!(answers.iter().all(|a| a == "hi"), "burst {burst}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        300,
        "the second burst reuses the first one's connections"
    );
}

#[tokio::test]
async fn a_response_dropped_unread_takes_its_connection_with_it() {
    let (addr, accepted) = replica("a body nobody reads", After::KeepAlive).await;
    let client = client();
    let response = client.request(addr, get(addr)).await.unwrap();
    drop(response);
    assert_eq!(idle::count(client.id, addr), 0);
    let response = client.request(addr, get(addr)).await.unwrap();
    assert_eq!(read_whole(response).await, "a body nobody reads");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_the_replica_closed_is_never_reused() {
    let (addr, accepted) = replica("bye", After::Close).await;
    let client = client();
    for _ in 0..3 {
        let response = client.request(addr, get(addr)).await.unwrap();
        assert_eq!(read_whole(response).await, "bye");
        // Let the close reach the idle connection's task.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn clients_keep_their_idle_connections_apart() {
    let (addr, accepted) = replica("hi", After::KeepAlive).await;
    let (one, two) = (client(), client());
    read_whole(one.request(addr, get(addr)).await.unwrap()).await;
    read_whole(two.request(addr, get(addr)).await.unwrap()).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(idle::count(one.id, addr), 1);
    assert_eq!(idle::count(two.id, addr), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = client().request(addr, get(addr)).await.unwrap_err();
    assert!(error.is_connect(), "{error}");
    assert!(!error.closed_before_answer());
    assert_eq!(error.failure(), retry::Failure::NotConnected);
}

#[tokio::test]
async fn a_replica_that_closes_without_answering_is_told_apart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
        }
    });
    let error = client().request(addr, get(addr)).await.unwrap_err();
    assert!(!error.is_connect());
    assert!(error.closed_before_answer(), "{error}");
    assert_eq!(error.failure(), retry::Failure::ClosedBeforeAnswer);
}

#[tokio::test]
async fn idle_connections_expire_and_are_capped_per_replica() {
    let (addr, _) = replica("x", After::KeepAlive).await;
    let policy = IdlePolicy {
        max_age: Duration::from_millis(50),
        per_replica: 2,
    };
    let c = client();
    for _ in 0..3 {
        let sender = c.connect(addr).await.unwrap();
        idle::give_back(c.id, addr, sender, policy);
    }
    assert_eq!(
        idle::count(c.id, addr),
        2,
        "the oldest beyond the cap was closed"
    );
    assert!(idle::take(c.id, addr, policy).is_some());
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(idle::take(c.id, addr, policy).is_none(), "too old to reuse");
    assert_eq!(idle::count(c.id, addr), 0);
}
