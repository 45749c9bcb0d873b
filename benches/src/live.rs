//! The load drivers' `GET /ws` client: one socket following one transaction,
//! opened with the partner's token (ws-load, lifecycle-load).

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens `GET /ws?tx_id=<id>` on `addr` with `Authorization: Bearer <token>`.
/// A small read buffer keeps thousands of idle sockets cheap on the client.
pub async fn subscribe(addr: SocketAddr, token: &str, id: &str) -> Result<Socket, String> {
    let mut request = format!("ws://{addr}/ws?tx_id={id}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the token is not a header value")?;
    request.headers_mut().insert("authorization", bearer);
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (socket, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    Ok(socket)
}
