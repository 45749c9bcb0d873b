//! `docs/webhooks.md` is what partners verify our webhooks against, so its test
//! vectors are checked three ways: the document's values, a computation
//! written here with `hmac`/`sha2`/`base64` directly, and
//! `session_core::webhook` must all agree. A vector that disagrees fails the
//! test by name.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use session_core::secret::Secret;
use session_core::time::Timestamp;
use session_core::webhook::{WebhookKey, WebhookKeys};
use sha2::Sha256;

const DOC: &str = "../../docs/webhooks.md";
const VECTORS_FENCE: &str = "```json test-vectors";

fn vectors() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let text = std::fs::read_to_string(&path).expect("docs/webhooks.md is readable");
    let start = text.find(VECTORS_FENCE).expect("the vectors block") + VECTORS_FENCE.len();
    let end = start + text[start..].find("\n```").expect("the block ends");
    let parsed: Value = serde_json::from_str(&text[start..end]).expect("the vectors are JSON");
    parsed.as_array().expect("an array of vectors").clone()
}

fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
    vector[field]
        .as_str()
        .unwrap_or_else(|| panic!("{}: {field} is a string", vector["name"]))
}

/// The signature as written from the definition, without the core.
fn independent(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

#[test]
fn the_documented_vectors_hold() {
    let vectors = vectors();
    assert!(vectors.len() >= 4, "the published vector and ours");
    for vector in &vectors {
        let name = text(vector, "name");
        let (id, body) = (text(vector, "webhook_id"), text(vector, "body"));
        let timestamp = vector["timestamp"].as_i64().expect("timestamp");
        let key = |field| {
            WebhookKey::from_secret(&Secret::new(text(vector, field))).expect("valid secret")
        };
        let mut expected = independent(text(vector, "secret"), id, timestamp, body);
        let mut previous = Vec::new();
        if vector.get("previous_secret").is_some() {
            let old = text(vector, "previous_secret");
            expected = format!("{expected} {}", independent(old, id, timestamp, body));
            previous.push((
                key("previous_secret"),
                Timestamp::from_unix_seconds(i64::MAX / 2_000_000),
            ));
        }
        let keys = WebhookKeys::new(key("secret"), previous);
        let ours = keys.signature_header(
            id,
            timestamp,
            body.as_bytes(),
            Timestamp::from_unix_seconds(timestamp),
        );
        assert_eq!(
            text(vector, "signature"),
            expected,
            "{name}: document vs definition"
        );
        assert_eq!(
            ours, expected,
            "{name}: session_core::webhook vs definition"
        );
        assert!(
            key("secret").verifies(&ours, id, timestamp, body.as_bytes()),
            "{name}: the current key verifies its own header"
        );
    }
}
