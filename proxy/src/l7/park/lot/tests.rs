use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::{
    io::AsyncWriteExt as _,
    net::{TcpListener, TcpStream},
    sync::watch,
    time::Instant,
};

use super::{ParkingLot, Ticket};

/// `Ticket::poll_wait` as a future.
async fn wait(ticket: &Ticket, socket: &TcpStream) -> bool {
    std::future::poll_fn(|cx| ticket.poll_wait(socket, cx)).await
}

/// A connected pair: the proxy's end (parked) and the client's.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    // As hyper leaves it before a park: its last read found nothing (tokio takes a new
    // socket for readable until a read says otherwise).
    let mut byte = [0u8; 1];
    let nothing = server.try_read(&mut byte).unwrap_err();
    assert_eq!(nothing.kind(), std::io::ErrorKind::WouldBlock);
    (server, client)
}

#[tokio::test]
async fn a_parked_connection_ends_at_its_deadline_and_not_before() {
    let gauge = Gauge::default();
    let lot = ParkingLot::new(Some(gauge.clone()));
    let (_stop, shutdown) = watch::channel(false);
    tokio::spawn(std::sync::Arc::clone(&lot).sweep(shutdown));
    let (server, _client) = pair().await;
    let parked_at = Instant::now();
    let limit = Duration::from_millis(300);
    let ticket = lot.park(parked_at + limit).expect("the lot is open");
    assert_eq!(gauge.get(), 1);
    let woken = wait(&ticket, &server).await;
    let waited = parked_at.elapsed();
    assert!(!woken, "a deadline that passed ends the connection");
    assert!(waited >= limit, "ended after {waited:?}, before {limit:?}");
    assert!(waited < limit * 3, "ended only after {waited:?}");
    drop(ticket);
    assert_eq!(gauge.get(), 0, "the gauge counts parked connections only");
}

#[tokio::test]
async fn bytes_from_the_client_wake_a_parked_connection_before_its_deadline() {
    let lot = ParkingLot::new(None);
    let (_stop, shutdown) = watch::channel(false);
    tokio::spawn(std::sync::Arc::clone(&lot).sweep(shutdown));
    let (server, mut client) = pair().await;
    // Two parked at once: the later deadline must not hold up or wake the earlier one.
    let (other, _other_client) = pair().await;
    let later = lot.park(Instant::now() + Duration::from_secs(60)).unwrap();
    let ticket = lot.park(Instant::now() + Duration::from_secs(30)).unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        client
    });
    let woken = tokio::time::timeout(Duration::from_secs(5), wait(&ticket, &server)).await;
    assert_eq!(woken, Ok(true), "the client's bytes wake it");
    let still = tokio::time::timeout(Duration::from_millis(100), wait(&later, &other)).await;
    assert!(still.is_err(), "a silent connection stays parked");
}

#[tokio::test]
async fn shutdown_ends_every_parked_connection_and_parks_no_more() {
    let lot = ParkingLot::new(None);
    let (stop, shutdown) = watch::channel(false);
    let sweeper = tokio::spawn(std::sync::Arc::clone(&lot).sweep(shutdown));
    let (server, _client) = pair().await;
    let ticket = lot.park(Instant::now() + Duration::from_secs(60)).unwrap();
    let waiting = wait(&ticket, &server);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(true).unwrap();
        stop
    });
    let woken = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    assert_eq!(woken, Ok(false), "shutdown ends the parked connection");
    tokio::time::timeout(Duration::from_secs(5), sweeper)
        .await
        .expect("the sweeper ends at shutdown")
        .unwrap();
    assert!(
        lot.park(Instant::now() + Duration::from_secs(60)).is_none(),
        "nothing parks once shutdown started"
    );
}
