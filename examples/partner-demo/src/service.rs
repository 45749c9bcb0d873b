//! Calling the widget session service from the partner's backend: the one
//! request a partner must make, `POST /widget/session`.

use std::net::IpAddr;

/// Where the service is, and this partner's credentials there. Both secrets
/// stay on the backend: the browser never sees them.
#[derive(Clone)]
pub struct Connection {
    /// The service's base URL, without a trailing slash.
    pub url: String,
    pub client_token: String,
    /// The `whsec_...` secret the service signs webhooks with.
    pub webhook_secret: String,
}

/// The service's answer to `POST /widget/session`: on success, the widget's
/// parameters, to pass to the page unmodified; otherwise its error envelope.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Opens a widget session for the signed-in user. `client_ip` is the browser's
/// address as this backend saw it: the service checks it, so it must be the
/// user's, not this server's.
pub async fn open_session(
    http: &reqwest::Client,
    connection: &Connection,
    user_id: &str,
    user_email: &str,
    client_ip: IpAddr,
) -> Result<Answer, String> {
    let body = serde_json::json!({
        "partner_user_id": user_id,
        "user_email": user_email,
        "network": "TRC20",
        "currency": "USDT",
        "amount": "100",
        "type": "buy",
        "client_ip": client_ip.to_canonical().to_string(),
    });
    let response = http
        .post(format!("{}/widget/session", connection.url))
        .bearer_auth(&connection.client_token)
        .header(http::header::CONTENT_TYPE, "application/json")
        // A retry after a timeout must not open a second session: the same
        // key makes the service replay its first answer.
        .header("Idempotency-Key", idempotency_key())
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("the widget session service cannot be reached: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("the widget session service's answer was cut short: {e}"))?;
    Ok(Answer {
        status,
        body: body.to_vec(),
    })
}

/// A fresh key per order. A real backend derives it from its own order id, so
/// that its retries reuse it.
fn idempotency_key() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    format!("order-{}", hex::encode(bytes))
}
