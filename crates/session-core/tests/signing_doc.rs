//! `docs/signing.md` is what integrators code against, so its test vectors are
//! checked three ways: the document's values, a straightforward computation
//! written here with `hmac`/`sha2` directly, and `session_core::signing` must all
//! agree. A vector that disagrees fails the test by name.

use std::path::Path;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use session_core::secret::Secret;
use session_core::signing::{
    SignatureScheme, SignedFields, SigningKey, SigningKeys, encode_v2_message,
};
use session_core::time::Timestamp;
use session_core::value::ClientIp;
use sha2::{Digest, Sha512};

/// The document, relative to this crate.
const DOC: &str = "../../docs/signing.md";
/// The info string of the one fenced block that holds the vectors.
const VECTORS_FENCE: &str = "```json test-vectors";
/// The signed fields, in the order the `hmac-sha512` message encodes them.
const FIELDS: [&str; 8] = [
    "merchant_transaction_id",
    "address",
    "client_ip",
    "currency",
    "network",
    "amount",
    "type",
    "widget_id",
];

/// One test vector, as the document states it.
#[derive(Debug)]
struct Vector {
    name: String,
    scheme: SignatureScheme,
    secret: String,
    /// In [`FIELDS`] order.
    fields: [String; 8],
    client_ip_as_sent: Option<String>,
    message_hex: Option<String>,
    signature: String,
}

impl Vector {
    fn signed_fields(&self) -> SignedFields<'_> {
        let [
            mtid,
            address,
            client_ip,
            currency,
            network,
            amount,
            tx_type,
            widget_id,
        ] = &self.fields;
        SignedFields {
            merchant_transaction_id: mtid,
            address,
            client_ip,
            currency,
            network,
            amount,
            tx_type,
            widget_id,
        }
    }
}

fn document() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The text between the ```` ```json test-vectors ```` line and its closing fence,
/// and the document with that block cut out.
fn split_vectors_block(doc: &str) -> (String, String) {
    let mut block = Vec::new();
    let mut rest = Vec::new();
    let mut blocks_seen = 0;
    let mut inside = false;
    for line in doc.lines() {
        if inside {
            if line.trim_end() == "```" {
                inside = false;
            } else {
                block.push(line);
            }
        } else if line.trim_end() == VECTORS_FENCE {
            inside = true;
            blocks_seen += 1;
        } else {
            rest.push(line);
        }
    }
    assert!(!inside, "{DOC}: the test-vectors block is never closed");
    assert_eq!(
        blocks_seen, 1,
        "{DOC} must hold exactly one block fenced with {VECTORS_FENCE:?}"
    );
    (block.join("\n"), rest.join("\n"))
}

fn text<'a>(object: &'a Map<String, Value>, vector: &str, key: &str) -> Option<&'a str> {
    object.get(key).map(|value| {
        value
            .as_str()
            .unwrap_or_else(|| panic!("vector {vector:?}: {key:?} must be a string"))
    })
}

fn parse_vectors(block: &str) -> Vec<Vector> {
    let parsed: Value = serde_json::from_str(block)
        .unwrap_or_else(|e| panic!("{DOC}: the test-vectors block is not JSON: {e}"));
    let items = parsed
        .as_array()
        .expect("the test-vectors block must be a JSON array");
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let object = item
                .as_object()
                .unwrap_or_else(|| panic!("vector #{index} must be a JSON object"));
            let name = text(object, &format!("#{index}"), "name")
                .unwrap_or_else(|| panic!("vector #{index} has no \"name\""))
                .to_owned();
            let required = |key: &str| {
                text(object, &name, key)
                    .unwrap_or_else(|| panic!("vector {name:?} has no {key:?}"))
                    .to_owned()
            };
            let scheme_text = required("scheme");
            let scheme = SignatureScheme::parse(&scheme_text)
                .unwrap_or_else(|| panic!("vector {name:?}: unknown scheme {scheme_text:?}"));
            Vector {
                scheme,
                secret: required("secret"),
                fields: FIELDS.map(required),
                client_ip_as_sent: text(object, &name, "client_ip_as_sent").map(str::to_owned),
                message_hex: text(object, &name, "message_hex").map(str::to_owned),
                signature: required("signature"),
                name,
            }
        })
        .collect()
}

fn vectors() -> Vec<Vector> {
    parse_vectors(&split_vectors_block(&document()).0)
}

/// The `hmac-sha512` message, written from the document's description rather
/// than with `encode_v2_message`: each item as a 4-byte big-endian byte length
/// and its UTF-8 bytes, the tag first.
fn independent_message(fields: &[String; 8]) -> Vec<u8> {
    let mut message = Vec::new();
    for item in std::iter::once("widget-session-v2").chain(fields.iter().map(String::as_str)) {
        let length = u32::try_from(item.len()).expect("test fields are short");
        message.extend_from_slice(&length.to_be_bytes());
        message.extend_from_slice(item.as_bytes());
    }
    message
}

fn independent_signature(vector: &Vector) -> String {
    let digest = match vector.scheme {
        SignatureScheme::HmacSha512 => {
            let mut mac = Hmac::<Sha512>::new_from_slice(vector.secret.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(&independent_message(&vector.fields));
            mac.finalize().into_bytes().to_vec()
        }
        SignatureScheme::Sha512Concat => {
            let [mtid, address, client_ip, ..] = &vector.fields;
            let text = format!("{address}{}{client_ip}{mtid}", vector.secret);
            Sha512::digest(text.as_bytes()).to_vec()
        }
    };
    format!("v2:{}", hex::encode(digest))
}

/// Every way `vector` can disagree, one line each.
fn disagreements(vector: &Vector) -> Vec<String> {
    let mut problems = Vec::new();
    let name = &vector.name;
    let fields = vector.signed_fields();

    let well_formed = vector.signature.len() == 131
        && vector.signature.starts_with("v2:")
        && vector.signature[3..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !well_formed {
        problems.push(format!(
            "{name}: the document's signature is not v2: + 128 lower-case hex: {:?}",
            vector.signature
        ));
    }

    match (vector.scheme, &vector.message_hex) {
        (SignatureScheme::HmacSha512, None) => {
            problems.push(format!(
                "{name}: an hmac-sha512 vector needs \"message_hex\""
            ));
        }
        (SignatureScheme::HmacSha512, Some(message_hex)) => {
            let independent = hex::encode(independent_message(&vector.fields));
            if *message_hex != independent {
                problems.push(format!(
                    "{name}: message_hex differs from the independent encoding\n  \
                     document:    {message_hex}\n  independent: {independent}"
                ));
            }
            let mut ours = Vec::new();
            encode_v2_message(&fields, &mut ours);
            let ours = hex::encode(ours);
            if *message_hex != ours {
                problems.push(format!(
                    "{name}: encode_v2_message differs from message_hex\n  \
                     document: {message_hex}\n  ours:     {ours}"
                ));
            }
        }
        (SignatureScheme::Sha512Concat, Some(_)) => {
            problems.push(format!(
                "{name}: message_hex is only for hmac-sha512 vectors"
            ));
        }
        (SignatureScheme::Sha512Concat, None) => {}
    }

    let independent = independent_signature(vector);
    if vector.signature != independent {
        problems.push(format!(
            "{name}: the signature differs from the independent {} computation\n  \
             document:    {}\n  independent: {independent}",
            vector.scheme.as_str(),
            vector.signature
        ));
    }

    let key = SigningKey::new("doc", Secret::new(vector.secret.as_str()), None)
        .unwrap_or_else(|| panic!("{name}: the secret must be non-empty"));
    let ours = key.sign(vector.scheme, &fields);
    if ours.as_str() != vector.signature {
        problems.push(format!(
            "{name}: SigningKey::sign differs from the document\n  \
             document: {}\n  ours:     {}",
            vector.signature,
            ours.as_str()
        ));
    }
    let keys = SigningKeys::new(vector.scheme, key, vec![]);
    if !keys.verify(&fields, &vector.signature, Timestamp::UNIX_EPOCH) {
        problems.push(format!(
            "{name}: SigningKeys::verify refuses the document's signature"
        ));
    }

    if let Some(as_sent) = &vector.client_ip_as_sent {
        let canonical = ClientIp::parse(as_sent).map(|ip| ip.as_str().to_owned());
        if canonical.as_deref() != Ok(vector.fields[2].as_str()) {
            problems.push(format!(
                "{name}: ClientIp::parse({as_sent:?}) gives {canonical:?}, the document signs {:?}",
                vector.fields[2]
            ));
        }
    }
    problems
}

#[test]
fn every_vector_agrees_with_an_independent_computation_and_our_code() {
    let vectors = vectors();
    let failing: Vec<Vec<String>> = vectors
        .iter()
        .map(disagreements)
        .filter(|problems| !problems.is_empty())
        .collect();
    assert!(
        failing.is_empty(),
        "{} of {} vectors in {DOC} disagree:\n{}",
        failing.len(),
        vectors.len(),
        failing.concat().join("\n")
    );
}

#[test]
fn each_scheme_has_at_least_four_vectors_with_unique_names() {
    let vectors = vectors();
    for scheme in [SignatureScheme::HmacSha512, SignatureScheme::Sha512Concat] {
        let count = vectors.iter().filter(|v| v.scheme == scheme).count();
        assert!(
            count >= 4,
            "{DOC} has {count} {} vectors; at least 4 are required",
            scheme.as_str()
        );
    }
    let mut names: Vec<&str> = vectors.iter().map(|v| v.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "vector names in {DOC} must be unique");
}

#[test]
fn the_vectors_cover_what_the_document_promises() {
    let vectors = vectors();
    let any = |what: &str, found: &dyn Fn(&Vector) -> bool| {
        for scheme in [SignatureScheme::HmacSha512, SignatureScheme::Sha512Concat] {
            assert!(
                vectors.iter().any(|v| v.scheme == scheme && found(v)),
                "{DOC} needs a {} vector with {what}",
                scheme.as_str()
            );
        }
    };
    any("the seed example", &|v| {
        v.fields
            == [
                "550e8400-e29b-41d4-a716-446655440000",
                "TXYZabcdefghijkmnopqrstuvwxyz12345",
                "203.0.113.42",
                "USDT",
                "TRC20",
                "100",
                "buy",
                "fb359d09-fff6-4b1f-906c-b9062b135065",
            ]
    });
    any("an empty client_ip", &|v| v.fields[2].is_empty());
    any("an IPv6 client_ip", &|v| v.fields[2].contains(':'));
    any("a non-ASCII secret", &|v| !v.secret.is_ascii());
    any("a sell with a decimal amount", &|v| {
        v.fields[6] == "sell" && v.fields[5].contains('.')
    });
}

#[test]
fn shifting_a_character_across_a_field_boundary_changes_the_hmac_signature() {
    let vectors = vectors();
    let hmac: Vec<&Vector> = vectors
        .iter()
        .filter(|v| v.scheme == SignatureScheme::HmacSha512)
        .collect();
    let mut pairs = 0;
    for (i, a) in hmac.iter().enumerate() {
        for b in &hmac[i + 1..] {
            let same_concatenation = a.secret == b.secret && a.fields.concat() == b.fields.concat();
            if same_concatenation && a.fields != b.fields {
                pairs += 1;
                assert_ne!(
                    a.message_hex, b.message_hex,
                    "{} and {}: the length prefixes must tell the fields apart",
                    a.name, b.name
                );
                assert_ne!(
                    a.signature, b.signature,
                    "{} and {}: a shifted boundary must change the signature",
                    a.name, b.name
                );
            }
        }
    }
    assert!(
        pairs >= 1,
        "{DOC} needs a pair of hmac-sha512 vectors whose fields concatenate to the same text"
    );
}

#[test]
fn the_prose_shows_the_seed_vector() {
    let doc = document();
    let (block, prose) = split_vectors_block(&doc);
    let vectors = parse_vectors(&block);
    for name in ["hmac-seed", "concat-seed"] {
        let seed = vectors
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("{DOC} has no vector named {name}"));
        assert!(
            prose.contains(&seed.signature),
            "the worked example in {DOC} must show the {name} signature {}",
            seed.signature
        );
        if let Some(message_hex) = &seed.message_hex {
            assert!(
                prose.contains(message_hex.as_str()),
                "the worked example in {DOC} must show the {name} message bytes"
            );
        }
    }
}

#[test]
fn the_documented_client_ip_examples_are_what_the_service_signs() {
    let cases = [
        ("203.0.113.42", Some("203.0.113.42")),
        ("::ffff:203.0.113.42", Some("203.0.113.42")),
        ("::FFFF:CB00:712A", Some("203.0.113.42")),
        (
            "2001:0DB8:0000:0000:0000:0000:0000:0001",
            Some("2001:db8::1"),
        ),
        ("2001:db8:0:0:1:0:0:1", Some("2001:db8::1:0:0:1")),
        ("2001:db8:0:1:1:1:1:1", Some("2001:db8:0:1:1:1:1:1")),
        ("01.2.3.4", None),
        ("fe80::1%eth0", None),
        ("203.0.113.42:80", None),
    ];
    for (as_sent, signed) in cases {
        assert_eq!(
            ClientIp::parse(as_sent).ok().as_ref().map(ClientIp::as_str),
            signed,
            "client_ip {as_sent:?}"
        );
    }
}
