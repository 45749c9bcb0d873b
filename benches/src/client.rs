//! The load drivers' HTTP client: one keep-alive HTTP/1.1 connection to
//! session-server, used by one task at a time (webhook-load, lifecycle-load).

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// A status and the whole body of an answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Connection {
    pub async fn open(server: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(server)
            .await
            .map_err(|e| format!("cannot connect to {server}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {server}: {e}"))?;
        tokio::spawn(async move {
            // The run ends by dropping its connections; nothing to report.
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: server.to_string(),
        })
    }

    /// `POST /widget/session` with the load partner's token.
    pub async fn create_session(
        &mut self,
        token: &str,
        body: &'static str,
    ) -> Result<Answer, String> {
        let request = Request::post("/widget/session")
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .map_err(|e| e.to_string())?;
        self.send(request).await
    }

    /// `POST path` with a JSON `body` and extra `headers`.
    pub async fn post(
        &mut self,
        path: &str,
        body: String,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let mut request = Request::post(path)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        self.send(request).await
    }

    /// `POST /provider/events` with the body's signature.
    pub async fn provider_event(
        &mut self,
        body: String,
        signature: &str,
    ) -> Result<Answer, String> {
        let request = Request::post("/provider/events")
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .header("x-signature", signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        self.send(request).await
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Answer, String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection lost: {e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("answer body: {e}"))?
            .to_bytes();
        Ok(Answer { status, body })
    }
}
