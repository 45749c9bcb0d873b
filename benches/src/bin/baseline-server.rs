//! `baseline-server`: a bare hyper 1.x HTTP/1.1 server that reads the request body and
//! answers a fixed JSON body, with no application work at all. `cargo xtask load`
//! measures it beside `session-server` in the same run: it is the HTTP ceiling of the
//! machine, the figure our throughput and latency are divided by.
//!
//! Usage: `baseline-server [ADDR]` (default `127.0.0.1:0`). It prints
//! `listening on <addr>` on stdout once it accepts connections, and runs until killed.
//! Like `session-server`, it runs a multi-thread tokio runtime with one worker per core,
//! keeps connections alive and sets TCP_NODELAY.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The answer to every request: the shape and size (997 bytes) of a real
/// `POST /widget/session` response, so both servers put the same bytes on the wire.
const BODY: &str = concat!(
    r#"{"merchant_transaction_id":"488d93e9-8b2a-4e67-bbaf-202bcaf539e6","#,
    r#""widget_id":"fb359d09-fff6-4b1f-906c-b9062b135065","#,
    r#""address":"TXYZabcdefghijkmnopqrstuvwxyz12345","#,
    r#""signature":"v2:b7baa6b502b4055a5d31b2710c399bf455cc464d19eb000082557a1afdccff4e"#,
    r#"b24bb20d1c1f40d71decd600c513e584c011bf5671e9d6c5c7b6d8ba32067b8b","#,
    r#""init_token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InRkZmVkNzMzNCJ9."#,
    r#"eyJqdGkiOiJ6Q2lnRk9OTFRkT2lYSWc5bUx0NTVBIiwic3ViIjoiNDg4ZDkzZTktOGIyYS00ZTY3LWJi"#,
    r#"YWYtMjAyYmNhZjUzOWU2IiwiYXVkIjoiZmIzNTlkMDktZmZmNi00YjFmLTkwNmMtYjkwNjJiMTM1MDY1Ii"#,
    r#"wiaWF0IjoxNzk1NDgyMzY2LCJleHAiOjE3OTU0ODU5NjZ9.9RVdhrrtveNRk1o81HljlLRh9QvQjrV2tp"#,
    r#"Kly2PSVqI","init_token_type":"sdk_partner_authorization","currency":"USDT","#,
    r#""currencies":["USDT"],"fix_currency":true,"network":"TRC20","networks":["TRC20"],"#,
    r#""fix_network":["TRC20"],"amount":"100","fix_amount":true,"fiat_currency":"EUR","#,
    r#""fiat_currencies":["EUR"],"fix_fiat_currency":false,"fix_fiat_amount":true,"#,
    r#""type":"buy","lang":"en","theme":"light","redirect_url":""}"#,
);

/// Where to listen when no address is given: loopback, a port the kernel picks.
const DEFAULT_ADDR: &str = "127.0.0.1:0";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let text = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    if text == "-h" || text == "--help" || args.next().is_some() {
        eprintln!("usage: baseline-server [ADDR]   (default {DEFAULT_ADDR})");
        return ExitCode::FAILURE;
    }
    let addr: SocketAddr = match text.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("baseline-server: {text:?} is not a socket address: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The same runtime as session-server's default: multi-thread, one worker per core.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("baseline-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("baseline-server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Stdout is line-buffered, so the harness sees this line at once.
    println!("listening on {local}");
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                eprintln!("baseline-server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(TokioIo::new(stream), service_fn(answer));
        tokio::spawn(async move {
            // A client closing mid-request is normal under load; nothing to report.
            let _ = connection.await;
        });
    }
}

/// Reads the whole body, as a real handler must before it can parse it, then answers.
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match request.into_body().collect().await {
        Ok(_) => (StatusCode::OK, Bytes::from_static(BODY.as_bytes())),
        Err(_) => (StatusCode::BAD_REQUEST, Bytes::from_static(b"{}")),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_json_of_the_size_of_a_real_session_response() {
        assert_eq!(BODY.len(), 997);
        assert!(BODY.starts_with('{') && BODY.ends_with('}'));
    }
}
