//! `/demo/ws`: the WebSocket handshake over hyper's upgrade, then an echo of every message.
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::{
    HeaderMap, Request, Response, StatusCode,
    body::Incoming,
    header::{CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE},
};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, handshake::derive_accept_key, protocol::Role},
};

use crate::handlers::{Body, text};

/// Answers a WebSocket handshake with 101 and echoes on the upgraded connection in its own task;
/// a request that is not a handshake gets 426 Upgrade Required.
pub fn accept(req: Request<Incoming>) -> Response<Body> {
    let Some(accept) = accept_key(req.headers()) else {
        let mut response = text(
            StatusCode::UPGRADE_REQUIRED,
            "expected a WebSocket upgrade\n",
        );
        response
            .headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => echo(TokioIo::new(upgraded)).await,
            Err(e) => eprintln!("websocket upgrade failed: {e}"),
        }
    });
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    response
}

/// The `Sec-WebSocket-Accept` value for a handshake request, or `None` if the headers do not ask
/// for a WebSocket (`Connection: upgrade`, `Upgrade: websocket` and a `Sec-WebSocket-Key`).
pub fn accept_key(headers: &HeaderMap) -> Option<String> {
    let has_token = |name, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(CONNECTION, "upgrade") || !has_token(UPGRADE, "websocket") {
        return None;
    }
    let key = headers.get(SEC_WEBSOCKET_KEY)?;
    Some(derive_accept_key(key.as_bytes()))
}

/// Sends every text and binary message back until the client closes (tungstenite answers pings
/// and the closing handshake by itself).
async fn echo(io: TokioIo<hyper::upgrade::Upgraded>) {
    let mut socket = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    while let Some(message) = socket.next().await {
        let reply = match message {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => message,
            Ok(_) => continue,
            Err(_) => return,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(connection: &'static str, upgrade: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static(connection));
        headers.insert(UPGRADE, HeaderValue::from_static(upgrade));
        headers.insert(
            SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        headers
    }

    #[test]
    fn the_accept_key_is_the_one_from_rfc_6455() {
        assert_eq!(
            accept_key(&handshake("keep-alive, Upgrade", "WebSocket")).as_deref(),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
    }

    #[test]
    fn a_request_that_does_not_ask_for_a_websocket_is_not_a_handshake() {
        assert_eq!(accept_key(&handshake("keep-alive", "websocket")), None);
        assert_eq!(accept_key(&handshake("upgrade", "h2c")), None);
        let mut no_key = handshake("upgrade", "websocket");
        no_key.remove(SEC_WEBSOCKET_KEY);
        assert_eq!(accept_key(&no_key), None);
    }
}
