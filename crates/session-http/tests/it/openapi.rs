//! Keeps `docs/openapi.yaml` honest: its routes are the router's, its error
//! rows are `ErrorKind::triple`'s, its examples fit its schemas, and real
//! responses from a running server fit the document.
//!
//! Schemas are checked with the `jsonschema` crate (JSON Schema 2020-12, the
//! dialect of OpenAPI 3.1, with formats asserted and patterns run by the
//! `regex` engine), plus the one rule JSON Schema cannot say: response fields
//! come in the order the schema's `properties` list them.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use http::Method;
use serde_json::{Value, json};
use session_core::ErrorKind;

use crate::support::{
    Options, SEED_BODY, TestResponse, TestServer, WIDGET_ORIGIN, init_body, seed_with,
};

/// The public listener's routes and methods, as `crates/session-http/src/router.rs`
/// serves them (path parameters in OpenAPI form). Update both together.
const PUBLIC_ROUTES: &[(&str, &[&str])] = &[
    ("/widget/session", &["post"]),
    ("/widget/init", &["post", "options"]),
    ("/widget/transactions/{merchant_transaction_id}", &["get"]),
    ("/widget/users/{partner_user_id}/kyc-status", &["get"]),
    ("/provider/events", &["post"]),
    ("/ws", &["get"]),
    ("/widget/sdk.js", &["get"]),
    (
        "/sandbox/transactions/{merchant_transaction_id}/simulate",
        &["post", "options"],
    ),
];

/// The admin listener's routes, as `crates/session-http/src/admin.rs` and
/// `admin_api.rs` serve them.
const ADMIN_ROUTES: &[(&str, &[&str])] = &[
    ("/healthz", &["get"]),
    ("/metrics", &["get"]),
    ("/readyz", &["get"]),
    ("/admin/partners", &["get", "post"]),
    ("/admin/partners/{partner_id}", &["get", "patch"]),
    ("/admin/partners/{partner_id}/origins", &["post", "delete"]),
    ("/admin/partners/{partner_id}/ips", &["post", "delete"]),
    (
        "/admin/partners/{partner_id}/wallets",
        &["post", "patch", "delete"],
    ),
    ("/admin/partners/{partner_id}/tokens", &["post"]),
    (
        "/admin/partners/{partner_id}/tokens/{token_id}",
        &["delete"],
    ),
    (
        "/admin/partners/{partner_id}/tokens/{token_id}/rotate",
        &["post"],
    ),
    ("/admin/partners/{partner_id}/signing-key/rotate", &["post"]),
    (
        "/admin/partners/{partner_id}/webhook-secret/rotate",
        &["post"],
    ),
    ("/admin/webhooks/deliveries", &["get"]),
    ("/admin/webhooks/deliveries/{delivery_id}/retry", &["post"]),
    ("/admin/webhooks/replay", &["post"]),
];

/// Rows of the error table that no route produces yet; the document must not
/// list them as responses, and must say so in `info.description`.
const NOT_SERVED: [ErrorKind; 1] = [ErrorKind::TokenError];

/// Component responses no operation references, with the status they stand for.
const UNREFERENCED_RESPONSES: &[(&str, u16)] = &[("MethodNotAllowed", 405)];

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

// ---------------------------------------------------------------------------
// The document

struct Doc {
    root: Value,
    /// The document as one JSON Schema resource, for `$ref`s between schemas.
    registry: jsonschema::Registry<'static>,
}

fn doc() -> &'static Doc {
    static DOC: OnceLock<Doc> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("docs/openapi.yaml is readable");
        let root: Value =
            serde_norway::from_str(&text).expect("docs/openapi.yaml is YAML with string keys");
        let registry = jsonschema::Registry::new()
            .add(DOC_URI, root.clone())
            .and_then(|registry| registry.prepare())
            .expect("docs/openapi.yaml registers as a schema resource");
        Doc { root, registry }
    })
}

impl Doc {
    fn paths(&self) -> &serde_json::Map<String, Value> {
        self.root["paths"].as_object().expect("paths is a mapping")
    }

    /// Follows `$ref` (a local JSON pointer) until the value is not a bare reference.
    fn deref<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(target) = value.get("$ref").and_then(Value::as_str) {
            value = self.target(target);
        }
        value
    }

    fn target(&self, reference: &str) -> &Value {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local references are used: {reference}"));
        self.root
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling reference {reference}"))
    }

    fn operations(&self) -> Vec<(&str, &str, &Value)> {
        let mut out = Vec::new();
        for (path, item) in self.paths() {
            let item = item.as_object().expect("path item is a mapping");
            for (method, operation) in item {
                if HTTP_METHODS.contains(&method.as_str()) {
                    out.push((path.as_str(), method.as_str(), operation));
                }
            }
        }
        out
    }

    fn operation(&self, path: &str, method: &str) -> &Value {
        self.paths()
            .get(path)
            .and_then(|item| item.get(method))
            .unwrap_or_else(|| panic!("the document has no {method} {path}"))
    }

    /// The documented methods of `path`, upper-case, in document order.
    fn methods(&self, path: &str) -> Vec<String> {
        let item = self.paths()[path].as_object().expect("path item");
        item.keys()
            .filter(|k| HTTP_METHODS.contains(&k.as_str()))
            .map(|k| k.to_ascii_uppercase())
            .collect()
    }

    fn response(&self, path: &str, method: &str, status: u16) -> Option<&Value> {
        self.operation(path, method)["responses"]
            .get(status.to_string())
            .map(|r| self.deref(r))
    }

    fn json_schema<'a>(&'a self, response: &'a Value) -> Option<&'a Value> {
        response.pointer("/content/application~1json/schema")
    }

    /// Every response object: (where, status, response), operations first
    /// (resolved), then the component responses no operation references.
    fn all_responses(&self) -> Vec<(String, u16, &Value)> {
        let mut out = Vec::new();
        let mut referenced = BTreeSet::new();
        for (path, method, operation) in self.operations() {
            let responses = operation["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} has responses"));
            for (status, response) in responses {
                if let Some(r) = response.get("$ref").and_then(Value::as_str) {
                    referenced.insert(r.trim_start_matches("#/components/responses/").to_owned());
                }
                let status: u16 = status
                    .parse()
                    .unwrap_or_else(|_| panic!("{method} {path}: status {status} is a number"));
                out.push((
                    format!("{method} {path} {status}"),
                    status,
                    self.deref(response),
                ));
            }
        }
        let components = self.root["components"]["responses"]
            .as_object()
            .expect("components.responses");
        let unreferenced: Vec<&str> = components
            .keys()
            .map(String::as_str)
            .filter(|name| !referenced.contains(*name))
            .collect();
        let expected: Vec<&str> = UNREFERENCED_RESPONSES.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            unreferenced, expected,
            "component responses that no operation uses (update UNREFERENCED_RESPONSES)"
        );
        for (name, status) in UNREFERENCED_RESPONSES {
            out.push((
                format!("components.responses.{name}"),
                *status,
                &components[*name],
            ));
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Checking values against the document's schemas

/// Where the whole document is registered for the validator, so a schema's
/// `$ref: '#/components/...'` resolves as the document writes it.
const DOC_URI: &str = "urn:widget-session:openapi";

impl Doc {
    /// Errors of a response body (or header) against `schema`, field order included.
    fn validate(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let mut errors = self.validate_request(schema, instance);
        self.check_order(schema, instance, "", &mut errors);
        errors
    }

    /// Errors of a request body against `schema`: field order is free there.
    /// Each error reads `<instance path>: <what is wrong>`, and names the
    /// pattern when a `pattern` failed.
    fn validate_request(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .with_registry(&self.registry)
            .build(&absolute_refs(schema))
            .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"));
        validator
            .iter_errors(instance)
            .map(|error| {
                let pattern = match error.kind() {
                    jsonschema::error::ValidationErrorKind::Pattern { pattern } => {
                        format!(" (pattern {pattern})")
                    }
                    _ => String::new(),
                };
                format!("{}: {error}{pattern}", error.instance_path())
            })
            .collect()
    }

    /// The wire format has a fixed field order, which the document's
    /// `properties` list: checks it wherever a schema with properties applies.
    fn check_order(&self, schema: &Value, instance: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            self.check_order(self.target(target), instance, at, errors);
        }
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check_order(part, instance, at, errors);
        }
        if let (Some(properties), Some(object)) = (
            schema.get("properties").and_then(Value::as_object),
            instance.as_object(),
        ) {
            let documented: Vec<&String> = properties
                .keys()
                .filter(|k| object.contains_key(*k))
                .collect();
            let served: Vec<&String> = object
                .keys()
                .filter(|k| properties.contains_key(*k))
                .collect();
            if documented != served {
                errors.push(format!(
                    "{at}: field order {served:?}, documented {documented:?}"
                ));
            }
            for (name, sub) in properties {
                if let Some(member) = object.get(name) {
                    self.check_order(sub, member, &format!("{at}/{name}"), errors);
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), instance.as_array()) {
            for (i, item) in array.iter().enumerate() {
                self.check_order(items, item, &format!("{at}/{i}"), errors);
            }
        }
    }

    /// Every `pattern` in the document, with where it is.
    fn patterns(&self) -> Vec<(String, &str)> {
        fn walk<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
            match value {
                Value::Object(members) => {
                    for (key, member) in members {
                        match (key.as_str(), member) {
                            ("pattern", Value::String(pattern)) => {
                                out.push((at.clone(), pattern));
                            }
                            // Example values are data, not schemas.
                            ("examples" | "example", _) => {}
                            _ => walk(member, format!("{at}/{key}"), out),
                        }
                    }
                }
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(item, format!("{at}/{i}"), out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.root, String::new(), &mut out);
        out
    }
}

/// `schema` with its local references made absolute, so they point into the
/// document registered at [`DOC_URI`] wherever `schema` itself came from.
fn absolute_refs(schema: &Value) -> Value {
    match schema {
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(key, member)| {
                    let member = match (key.as_str(), member) {
                        ("$ref", Value::String(r)) if r.starts_with('#') => {
                            Value::String(format!("{DOC_URI}{r}"))
                        }
                        _ => absolute_refs(member),
                    };
                    (key.clone(), member)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(absolute_refs).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------
// Static checks of the document

#[test]
fn document_is_openapi_3_1_and_lists_exactly_the_served_routes() {
    let doc = doc();
    let version = doc.root["openapi"].as_str().expect("openapi is a string");
    assert!(version.starts_with("3.1."), "openapi: {version}");

    let pairs = |routes: &[(&str, &[&str])]| -> BTreeSet<(String, String)> {
        routes
            .iter()
            .flat_map(|(path, methods)| {
                methods
                    .iter()
                    .map(move |m| ((*path).to_owned(), (*m).to_owned()))
            })
            .collect()
    };
    let mut public = BTreeSet::new();
    let mut admin = BTreeSet::new();
    for (path, method, _) in doc.operations() {
        // Admin paths carry the admin listener as their own `servers`.
        let listener = if doc.paths()[path].get("servers").is_some() {
            &mut admin
        } else {
            &mut public
        };
        listener.insert((path.to_owned(), method.to_owned()));
    }
    assert_eq!(public, pairs(PUBLIC_ROUTES), "public routes (router.rs)");
    assert_eq!(admin, pairs(ADMIN_ROUTES), "admin routes (admin.rs)");

    let mut ids = BTreeSet::new();
    for (path, method, operation) in doc.operations() {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has an operationId"));
        assert!(ids.insert(id), "operationId {id} is unique");
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let parameter = doc.deref(parameter);
            if parameter["in"] == "path" {
                let name = parameter["name"].as_str().expect("parameter name");
                assert!(
                    path.contains(&format!("{{{name}}}")),
                    "{method} {path}: path parameter {name} is in the path"
                );
            }
        }
    }
}

/// JSON Schema patterns match anywhere in the text; the document anchors every
/// one so that it describes the whole value, and writes each in the syntax the
/// `regex` crate (and any ECMA-262 engine) reads the same way.
#[test]
fn every_pattern_is_anchored_and_compiles() {
    let patterns = doc().patterns();
    assert!(!patterns.is_empty(), "the document has patterns");
    for (at, pattern) in patterns {
        assert!(
            pattern.starts_with('^') && pattern.ends_with('$'),
            "{at}: pattern {pattern} is anchored with ^ and $"
        );
        if let Err(e) = regex::Regex::new(pattern) {
            panic!("{at}: pattern {pattern} does not compile: {e}");
        }
    }
}

/// The document's value schemas accept what the service accepts (SPEC.md §1
/// and §2) and refuse what it refuses, so a client generating values from the
/// document is not sent into refusals the document does not predict.
#[test]
fn value_schemas_agree_with_the_service() {
    let doc = doc();
    let positive_good: &[&str] = &["100", "99.50", "0.1", "0.00000001", "007", "1.0"];
    let positive_bad: &[&str] = &[
        "0", "0.0", "000", "00.000", "", ".5", "5.", "1e3", "-1", " 5", "1.2.3",
    ];
    let signature = format!("v2:{}", "0a9f".repeat(32));
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("/components/schemas/Amount", positive_good, positive_bad),
        (
            "/components/schemas/CreateSessionRequest/properties/amount",
            positive_good,
            positive_bad,
        ),
        (
            "/components/schemas/ProviderEvent/properties/crypto_amount",
            positive_good,
            positive_bad,
        ),
        (
            "/components/schemas/ProviderEvent/properties/fiat_amount",
            positive_good,
            positive_bad,
        ),
        (
            "/components/schemas/AmountOrEmpty",
            &["", "100", "92.15", "0.5"],
            &["0", "0.00", ".5", "5.", "1e3", "-1", " 5"],
        ),
        (
            "/components/schemas/Code",
            &["USDT", "BEP-20", "a_b"],
            &["", "TRC 20", "é", &"X".repeat(33)],
        ),
        (
            "/components/schemas/CreatedSession/properties/signature",
            &[&signature],
            &[
                "v2:0A9F",
                &signature[..signature.len() - 1],
                &signature.replace("v2:", "v3:"),
            ],
        ),
        // The server takes any X-Request-Id and replaces one it will not echo.
        (
            "/components/parameters/XRequestId/schema",
            &["", "req-1", &"x".repeat(129), "a b", "é"],
            &[],
        ),
        // It only ever sends a well-formed one.
        (
            "/components/headers/X-Request-Id/schema",
            &["req-1", &"x".repeat(128)],
            &["", &"x".repeat(129), "a b"],
        ),
    ];
    for (pointer, good, bad) in cases {
        let schema = json!({ "$ref": format!("#{pointer}") });
        for value in *good {
            let errors = doc.validate_request(&schema, &json!(value));
            assert!(errors.is_empty(), "{pointer} accepts {value:?}: {errors:?}");
        }
        for value in *bad {
            assert!(
                !doc.validate_request(&schema, &json!(value)).is_empty(),
                "{pointer} refuses {value:?}"
            );
        }
    }
}

/// The checks above only mean something if a wrong value fails them: a
/// foreign field, fields out of order, a bad value behind a `$ref`.
#[test]
fn the_schema_checks_refuse_what_the_document_forbids() {
    let doc = doc();
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let good = json!({"error": "not_found", "code": "not_found", "message": "not found"});
    assert_eq!(doc.validate(&error, &good), Vec::<String>::new());
    let cases = [
        (
            json!({"error": "not_found", "code": "not_found", "message": "m", "detail": "x"}),
            "detail",
        ),
        (
            json!({"code": "not_found", "error": "not_found", "message": "m"}),
            "field order",
        ),
        (
            json!({"error": "not_found", "code": "not_found"}),
            "message",
        ),
        (
            json!({"error": 1, "code": "not_found", "message": "m"}),
            "string",
        ),
    ];
    for (body, expected) in cases {
        let errors = doc.validate(&error, &body);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{body} is refused for {expected:?}: {errors:?}"
        );
    }
    let status = json!({ "$ref": "#/components/schemas/TransactionStatus" });
    let mut transaction = json!({
        "merchant_transaction_id": "not-a-uuid", "partner_user_id": "u", "type": "buy",
        "status": "pending", "currency": "USDT", "network": "TRC20", "crypto_amount": "",
        "fiat_currency": "EUR", "fiat_amount": "", "created_at": "2026-11-24T10:00:00.000000Z",
        "updated_at": "2026-11-24T10:00:00.000000Z"
    });
    let errors = doc.validate(&status, &transaction);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/merchant_transaction_id: ")),
        "a malformed id behind two $refs is refused: {errors:?}"
    );
    transaction["merchant_transaction_id"] = json!(uuid::Uuid::new_v4().to_string());
    assert_eq!(doc.validate(&status, &transaction), Vec::<String>::new());
}

/// The links let a client (or a fuzzer) go from a created session to its
/// redemption and its transaction: each names a real operation, takes only
/// fields the session has, and fills exactly what the target needs.
#[test]
fn links_lead_from_a_created_session_to_what_it_opens() {
    let doc = doc();
    let created = doc
        .response("/widget/session", "post", 200)
        .expect("a 200 for POST /widget/session");
    let links = created["links"].as_object().expect("the 200 has links");
    let session_fields = doc.root["components"]["schemas"]["CreatedSession"]["properties"]
        .as_object()
        .expect("CreatedSession has properties");
    let field_of = |expression: &Value| -> String {
        let expression = expression.as_str().expect("a runtime expression");
        let field = expression
            .strip_prefix("$response.body#/")
            .unwrap_or_else(|| panic!("{expression} reads the response body"));
        assert!(
            session_fields.contains_key(field),
            "{expression}: CreatedSession has {field}"
        );
        field.to_owned()
    };
    let mut targets = BTreeSet::new();
    for (name, link) in links {
        let id = link["operationId"].as_str().expect("operationId");
        let (path, method, operation) = doc
            .operations()
            .into_iter()
            .find(|(_, _, op)| op["operationId"] == id)
            .unwrap_or_else(|| panic!("link {name}: no operation {id}"));
        targets.insert(format!("{method} {path}"));
        if let Some(body) = link.get("requestBody") {
            let body = body.as_object().expect("requestBody is an object");
            let fields: BTreeSet<&str> = body.keys().map(String::as_str).collect();
            let schema = doc.deref(
                operation
                    .pointer("/requestBody/content/application~1json/schema")
                    .expect("the target takes a JSON body"),
            );
            let required: BTreeSet<&str> = schema["required"]
                .as_array()
                .expect("required")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(fields, required, "link {name} fills every field of {id}");
            for (field, expression) in body {
                assert_eq!(&field_of(expression), field, "link {name}: {field}");
            }
        }
        for (parameter, expression) in link
            .get("parameters")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            assert!(
                path.contains(&format!("{{{parameter}}}")),
                "link {name}: {parameter} is a path parameter of {path}"
            );
            field_of(expression);
        }
    }
    assert_eq!(
        targets,
        BTreeSet::from([
            "get /widget/transactions/{merchant_transaction_id}".to_owned(),
            "post /widget/init".to_owned(),
        ]),
        "links from a created session"
    );
}

#[test]
fn every_response_carries_x_request_id() {
    let doc = doc();
    for (place, _, response) in doc.all_responses() {
        let header = response
            .pointer("/headers/X-Request-Id")
            .map(|h| doc.deref(h))
            .unwrap_or_else(|| panic!("{place} documents X-Request-Id"));
        assert_eq!(
            header["required"], true,
            "{place}: X-Request-Id is always sent"
        );
    }
}

/// An error response as the document describes it.
struct ErrorResponse<'a> {
    place: String,
    status: u16,
    errors: BTreeSet<&'a str>,
    codes: BTreeSet<&'a str>,
    examples: Vec<(&'a str, &'a Value)>,
}

/// The values an `enum` or `const` allows for `field` in an Error-based schema.
fn allowed<'a>(schema: &'a Value, field: &str) -> BTreeSet<&'a str> {
    let mut out = BTreeSet::new();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let Some(constraint) = part.pointer(&format!("/properties/{field}")) else {
            continue;
        };
        if let Some(one) = constraint.get("const").and_then(Value::as_str) {
            out.insert(one);
        }
        for value in constraint
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.insert(value.as_str().expect("error and code values are strings"));
        }
    }
    out
}

fn error_responses(doc: &Doc) -> Vec<ErrorResponse<'_>> {
    let mut out = Vec::new();
    for (place, status, response) in doc.all_responses() {
        let Some(schema) = doc.json_schema(response) else {
            continue;
        };
        let is_error = schema["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|part| part["$ref"] == "#/components/schemas/Error")
            || schema["$ref"] == "#/components/schemas/Error";
        if !is_error {
            assert!(
                status < 400,
                "{place}: an error status uses the Error schema"
            );
            continue;
        }
        let examples = response
            .pointer("/content/application~1json/examples")
            .and_then(Value::as_object)
            .map(|all| {
                all.iter()
                    .map(|(key, example)| (key.as_str(), &example["value"]))
                    .collect()
            })
            .unwrap_or_default();
        out.push(ErrorResponse {
            place,
            status,
            errors: allowed(schema, "error"),
            codes: allowed(schema, "code"),
            examples,
        });
    }
    out
}

#[test]
fn error_rows_match_the_one_error_table() {
    let doc = doc();
    let table: Vec<(u16, &str, &str)> = ErrorKind::ALL.iter().map(|k| k.triple()).collect();
    let all_codes: BTreeSet<&str> = table.iter().map(|(_, _, code)| *code).collect();
    let mut documented: BTreeSet<(u16, &str)> = BTreeSet::new();

    for response in error_responses(doc) {
        let ErrorResponse {
            place,
            status,
            errors,
            codes,
            examples,
        } = response;
        assert!(
            !codes.is_empty(),
            "{place}: lists its codes (enum or const)"
        );
        assert!(
            !errors.is_empty(),
            "{place}: lists its error slugs (enum or const)"
        );
        for code in &codes {
            assert!(
                all_codes.contains(code),
                "{place}: code {code} is not in ErrorKind::ALL"
            );
            let row = table
                .iter()
                .find(|(s, _, c)| *s == status && c == code)
                .unwrap_or_else(|| {
                    let real: Vec<_> = table.iter().filter(|(_, _, c)| c == code).collect();
                    panic!("{place}: code {code} is not served with status {status}; the table says {real:?}")
                });
            assert!(
                errors.contains(row.1),
                "{place}: code {code} comes with error {}, not listed",
                row.1
            );
            documented.insert((status, code));
        }
        for error in &errors {
            assert!(
                table
                    .iter()
                    .any(|(s, e, c)| *s == status && e == error && codes.contains(c)),
                "{place}: error {error} belongs to none of the listed codes"
            );
        }
        let example_keys: BTreeSet<&str> = examples.iter().map(|(key, _)| *key).collect();
        assert_eq!(
            example_keys, codes,
            "{place}: one example per code, named by it"
        );
        for (key, value) in examples {
            let triple = (
                status,
                value["error"].as_str().unwrap_or(""),
                value["code"].as_str().unwrap_or(""),
            );
            assert_eq!(triple.2, key, "{place}: example {key} has its own code");
            assert!(
                table.contains(&triple),
                "{place}: example {key} {triple:?} is not a row of ErrorKind::triple"
            );
        }
    }

    let description = doc.root["info"]["description"]
        .as_str()
        .expect("info.description");
    for kind in ErrorKind::ALL {
        let (status, _, code) = kind.triple();
        if NOT_SERVED.contains(kind) {
            assert!(
                !documented.contains(&(status, code)),
                "{kind:?} is not served and must not be listed as a response"
            );
            assert!(
                description.contains(code),
                "info.description explains why {code} is not served"
            );
        } else {
            assert!(
                documented.contains(&(status, code)),
                "{kind:?} ({status} {code}) is served but not documented"
            );
        }
    }
}

#[test]
fn examples_fit_their_schemas_and_bodies_list_every_field_as_required() {
    let doc = doc();
    // The seed page abbreviates these two values ("v2:a1b2c3d4e5f6...").
    let abbreviated = ["/signature: ", "/init_token: "];
    for (path, method, operation) in doc.operations() {
        let mut contents = Vec::new();
        if let Some(body) = operation.get("requestBody") {
            contents.push(("request".to_owned(), &body["content"]["application/json"]));
        }
        for (status, response) in operation["responses"].as_object().expect("responses") {
            if let Some(content) = doc.deref(response).pointer("/content/application~1json") {
                contents.push((status.clone(), content));
            }
        }
        for (what, content) in contents {
            let schema = &content["schema"];
            for (name, example) in content["examples"].as_object().into_iter().flatten() {
                let errors = if what == "request" {
                    doc.validate_request(schema, &example["value"])
                } else {
                    doc.validate(schema, &example["value"])
                };
                let seed_response = (path, method, what.as_str(), name.as_str())
                    == ("/widget/session", "post", "200", "seed");
                let unexpected: Vec<&String> = errors
                    .iter()
                    .filter(|e| {
                        !(seed_response
                            && abbreviated.iter().any(|p| e.starts_with(p))
                            && e.contains("pattern"))
                    })
                    .collect();
                assert!(
                    unexpected.is_empty(),
                    "{method} {path} {what} example {name}: {unexpected:#?}"
                );
            }
        }
    }

    let seed_example = doc
        .operation("/widget/session", "post")
        .pointer("/requestBody/content/application~1json/examples/seed/value")
        .expect("the seed request example");
    let seed: Value = serde_json::from_str(SEED_BODY).expect("seed body");
    assert_eq!(
        seed_example, &seed,
        "the document's seed request is the seed page's"
    );

    for name in [
        "Error",
        "CreatedSession",
        "RedeemedSession",
        "TransactionStatus",
        "KycStatusBody",
    ] {
        let schema = &doc.root["components"]["schemas"][name];
        let properties: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has properties"))
            .keys()
            .map(String::as_str)
            .collect();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has required"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(required, properties, "{name}: every field is always sent");
        assert_eq!(schema["additionalProperties"], false, "{name} is closed");
    }
    let created = &doc.root["components"]["schemas"]["CreatedSession"];
    let fields = created["properties"].as_object().expect("properties");
    assert_eq!(fields.len(), 22, "the seed page's 22 fields");
    let locked = [
        ("fix_currency", json!(true)),
        ("fix_amount", json!(true)),
        ("fix_fiat_currency", json!(false)),
        ("fix_fiat_amount", json!(true)),
        ("init_token_type", json!("sdk_partner_authorization")),
    ];
    for (field, value) in locked {
        assert_eq!(fields[field]["const"], value, "{field} is locked");
    }
}

// ---------------------------------------------------------------------------
// Live responses against the document

impl Doc {
    /// Checks `live`, the answer to `method path` (`path` as the document
    /// writes it), against the document: the status is documented, required
    /// headers are sent and fit their schemas, and the body fits the schema
    /// (error bodies with a code that has an example). Returns the body.
    #[track_caller]
    fn check(&self, path: &str, method: &str, live: &TestResponse) -> Value {
        let status = live.status.as_u16();
        let response = self.response(path, method, status).unwrap_or_else(|| {
            panic!(
                "{method} {path} answered {status}, which the document does not list: {:?}",
                live.body
            )
        });
        self.check_against(&format!("{method} {path} {status}"), response, live)
    }

    #[track_caller]
    fn check_against(&self, place: &str, response: &Value, live: &TestResponse) -> Value {
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let header = self.deref(header);
            match live.header(&name.to_ascii_lowercase()) {
                Some(value) => {
                    let errors = self.validate(&header["schema"], &json!(value));
                    assert!(errors.is_empty(), "{place}: header {name}: {errors:?}");
                }
                None => assert_ne!(
                    header["required"], true,
                    "{place}: header {name} is missing"
                ),
            }
        }
        let Some(schema) = self.json_schema(response) else {
            assert!(live.body.is_empty(), "{place}: documented without a body");
            assert_eq!(
                live.header("content-type"),
                None,
                "{place}: no Content-Type"
            );
            return Value::Null;
        };
        assert_eq!(
            live.header("content-type"),
            Some("application/json"),
            "{place}"
        );
        let body = live.json();
        let errors = self.validate(schema, &body);
        assert!(errors.is_empty(), "{place}: {body}\n{errors:#?}");
        if let Some(code) = body.get("code").and_then(Value::as_str) {
            let example = response.pointer(&format!("/content/application~1json/examples/{code}"));
            assert!(example.is_some(), "{place}: code {code} has an example");
        }
        body
    }

    /// Sends a method the document does not list for `path` and checks the 405.
    async fn check_method_not_allowed(
        &self,
        server: &TestServer,
        admin: bool,
        template: &str,
        path: &str,
    ) {
        let documented = self.methods(template);
        let method = ["GET", "POST", "PUT", "DELETE", "PATCH"]
            .into_iter()
            .find(|m| !documented.iter().any(|d| d == m))
            .expect("some method is not served");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let live = if admin {
            server.admin(method.clone(), path).send().await
        } else {
            server.request(method.clone(), path).send().await
        };
        assert_eq!(live.status, 405, "{method} {path}");
        let response = self.deref(&self.root["components"]["responses"]["MethodNotAllowed"]);
        self.check_against(&format!("{method} {path} 405"), response, &live);
        let allow: BTreeSet<String> = live
            .header("allow")
            .expect("Allow")
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        let documented: BTreeSet<String> = documented.into_iter().collect();
        assert_eq!(
            allow, documented,
            "{path}: Allow lists exactly the documented methods"
        );
    }
}

#[track_caller]
fn assert_code(live: &TestResponse, status: u16, code: &str) {
    let body = live.json();
    assert_eq!(
        (live.status.as_u16(), body["code"].as_str()),
        (status, Some(code)),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_responses_match_the_document() {
    let doc = doc();
    let mut options = Options::standard();
    // Small enough that a 413 needs no large upload; every other body fits.
    options.body_limit = 4 * 1024;
    options.admin_token = Some(crate::support::ADMIN_TOKEN);
    options.sandbox = true;
    let store = Arc::new(session_store_mem::MemStore::new());
    let server = TestServer::start(store, options).await;
    let acme = server.tokens.acme.clone();

    // POST /widget/session
    const SESSION: &str = "/widget/session";
    let created = server.create_session(&acme, SEED_BODY).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let session = doc.check(SESSION, "post", &created);
    let keyed = |key: &'static str, body: String| {
        server
            .request(Method::POST, SESSION)
            .bearer(&acme)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = keyed("doc-1", SEED_BODY.to_owned()).await;
    doc.check(SESSION, "post", &first);
    let replayed = keyed("doc-1", SEED_BODY.to_owned()).await;
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    doc.check(SESSION, "post", &replayed);
    let failures: Vec<(TestResponse, u16, &str)> = vec![
        (
            keyed("doc-1", seed_with(&[("amount", Some("\"5\""))])).await,
            409,
            "idempotency_key_reused",
        ),
        (
            keyed("", SEED_BODY.to_owned()).await,
            400,
            "validation_error",
        ),
        (
            server
                .request(Method::POST, SESSION)
                .json(SEED_BODY)
                .send()
                .await,
            401,
            "missing_token",
        ),
        (
            server
                .create_session(
                    "ct_test_unknownunknownunknownunknownunknownunkno",
                    SEED_BODY,
                )
                .await,
            401,
            "invalid_token",
        ),
        (
            server
                .request(Method::POST, SESSION)
                .bearer(&acme)
                .header("origin", "https://evil.example")
                .json(SEED_BODY)
                .send()
                .await,
            403,
            "forbidden_origin",
        ),
        (
            server
                .create_session(&acme, &seed_with(&[("type", Some("\"sell\""))]))
                .await,
            403,
            "offramp_disabled",
        ),
        (
            server
                .request(Method::POST, SESSION)
                .bearer(&acme)
                .header("content-type", "text/plain")
                .body(SEED_BODY.as_bytes())
                .send()
                .await,
            415,
            "unsupported_media_type",
        ),
        (
            server
                .create_session(&acme, &format!("{}{SEED_BODY}", " ".repeat(5 * 1024)))
                .await,
            413,
            "payload_too_large",
        ),
        (server.create_session(&acme, "{").await, 400, "decode_error"),
        (
            server
                .create_session(&acme, &seed_with(&[("amount", None)]))
                .await,
            400,
            "missing_param",
        ),
        (
            server
                .create_session(&acme, &seed_with(&[("amount", Some("\"1e3\""))]))
                .await,
            400,
            "validation_error",
        ),
        (
            server
                .create_session(&acme, &seed_with(&[("currency", Some("\"BTC\""))]))
                .await,
            400,
            "currency_not_allowed",
        ),
        (
            server
                .create_session(&acme, &seed_with(&[("network", Some("\"SOL\""))]))
                .await,
            400,
            "network_not_allowed",
        ),
        (
            server
                .create_session(&acme, &seed_with(&[("network", Some("\"ERC20\""))]))
                .await,
            400,
            "WALLET_NOT_SUPPORTED",
        ),
        (
            server
                .create_session(
                    &server.tokens.upstream,
                    &seed_with(&[("network", Some("\"ERC20\""))]),
                )
                .await,
            502,
            "provider_error",
        ),
        (
            server
                .create_session(
                    &server.tokens.upstream,
                    &seed_with(&[("network", Some("\"BEP20\""))]),
                )
                .await,
            502,
            "upstream_unavailable",
        ),
        (
            server
                .create_session(
                    &server.tokens.upstream,
                    &seed_with(&[("network", Some("\"POLYGON\""))]),
                )
                .await,
            502,
            "upstream_invalid_response",
        ),
        (
            server
                .create_session(
                    &acme,
                    &seed_with(&[("partner_user_id", Some("\"fail-unavailable\""))]),
                )
                .await,
            503,
            "store_unavailable",
        ),
        (
            server
                .create_session(
                    &acme,
                    &seed_with(&[("partner_user_id", Some("\"fail-db\""))]),
                )
                .await,
            500,
            "db_error",
        ),
    ];
    for (live, status, code) in &failures {
        assert_code(live, *status, code);
        doc.check(SESSION, "post", live);
    }

    // GET /widget/transactions/{merchant_transaction_id}
    const TRANSACTION: &str = "/widget/transactions/{merchant_transaction_id}";
    let id = session["merchant_transaction_id"]
        .as_str()
        .expect("merchant_transaction_id")
        .to_owned();
    let get = |path: String, token: Option<&str>| {
        let mut request = server.request(Method::GET, &path);
        if let Some(token) = token {
            request = request.bearer(token);
        }
        request.send()
    };
    let transaction = get(format!("/widget/transactions/{id}"), Some(&acme)).await;
    assert_eq!(transaction.status, 200, "{:?}", transaction.body);
    doc.check(TRANSACTION, "get", &transaction);
    let unknown = get(
        format!("/widget/transactions/{}", uuid::Uuid::new_v4()),
        Some(&acme),
    )
    .await;
    assert_code(&unknown, 404, "not_found");
    doc.check(TRANSACTION, "get", &unknown);
    let anonymous = get(format!("/widget/transactions/{id}"), None).await;
    assert_code(&anonymous, 401, "missing_token");
    doc.check(TRANSACTION, "get", &anonymous);

    // GET /widget/users/{partner_user_id}/kyc-status
    const KYC: &str = "/widget/users/{partner_user_id}/kyc-status";
    let kyc = get("/widget/users/user-123/kyc-status".into(), Some(&acme)).await;
    assert_eq!(kyc.status, 200, "{:?}", kyc.body);
    doc.check(KYC, "get", &kyc);
    let nobody = get("/widget/users/nobody/kyc-status".into(), Some(&acme)).await;
    assert_code(&nobody, 404, "not_found");
    doc.check(KYC, "get", &nobody);

    // GET /ws: the refusals are plain HTTP answers; the messages after the
    // upgrade fit `TxUpdate`, field order included.
    const WS: &str = "/ws";
    let plain = get(format!("/ws?tx_id={id}"), Some(&acme)).await;
    assert_code(&plain, 400, "validation_error");
    doc.check(WS, "get", &plain);
    let anonymous = get(format!("/ws?tx_id={id}"), None).await;
    assert_code(&anonymous, 401, "missing_token");
    doc.check(WS, "get", &anonymous);
    let mut socket = crate::live::subscribe(server.addr, &acme, &id).await;
    let message = crate::live::next_update(&mut socket, std::time::Duration::from_secs(5)).await;
    let schema = serde_json::json!({"$ref": "#/components/schemas/TxUpdate"});
    let errors = doc.validate(&schema, &message);
    assert!(errors.is_empty(), "GET /ws message {message}: {errors:?}");
    drop(socket);

    // OPTIONS and POST /widget/init
    const INIT: &str = "/widget/init";
    let preflight = |origin: &'static str| {
        server
            .request(Method::OPTIONS, INIT)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight(WIDGET_ORIGIN).await;
    assert_eq!(allowed.status, 204);
    doc.check(INIT, "options", &allowed);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some(WIDGET_ORIGIN)
    );
    let refused = preflight("https://evil.example").await;
    assert_code(&refused, 403, "forbidden_origin");
    doc.check(INIT, "options", &refused);

    let redeem = |body: Value, origin: &'static str| {
        server
            .request(Method::POST, INIT)
            .header("origin", origin)
            .json(&body.to_string())
            .send()
    };
    let mut tampered = init_body(&session);
    tampered["amount"] = "1000".into();
    let mut forged = init_body(&session);
    forged["init_token"] = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".into();
    let mut incomplete = init_body(&session);
    incomplete.as_object_mut().expect("object").remove("type");
    let refusals = [
        (
            redeem(tampered, WIDGET_ORIGIN).await,
            400,
            "invalid_signature",
        ),
        (
            redeem(forged, WIDGET_ORIGIN).await,
            401,
            "invalid_init_token",
        ),
        (
            redeem(incomplete, WIDGET_ORIGIN).await,
            400,
            "missing_param",
        ),
        (
            redeem(init_body(&session), "https://evil.example").await,
            403,
            "forbidden_origin",
        ),
    ];
    for (live, status, code) in &refusals {
        assert_code(live, *status, code);
        doc.check(INIT, "post", live);
    }
    let redeemed = redeem(init_body(&session), WIDGET_ORIGIN).await;
    assert_eq!(redeemed.status, 200, "{:?}", redeemed.body);
    doc.check(INIT, "post", &redeemed);
    let again = redeem(init_body(&session), WIDGET_ORIGIN).await;
    assert_code(&again, 409, "session_already_used");
    doc.check(INIT, "post", &again);

    // POST /provider/events
    const EVENTS: &str = "/provider/events";
    let signed = |body: &Value| {
        let raw = body.to_string();
        server
            .request(Method::POST, EVENTS)
            .header("x-signature", &server.provider.sign_hex(raw.as_bytes()))
            .json(&raw)
            .send()
    };
    let processing = json!({"event_id": "ev-1", "merchant_transaction_id": id, "status": "processing",
        "fiat_amount": "92.15", "fiat_currency": "EUR", "payment_method": "card", "kyc_status": "pending",
        "occurred_at": "2026-11-24T08:00:00Z"});
    let backwards = json!({"event_id": "ev-2", "merchant_transaction_id": id, "status": "pending"});
    let reports = [
        (
            signed(&processing).await,
            json!({"applied": true, "duplicate": false}),
        ),
        (
            signed(&processing).await,
            json!({"applied": false, "duplicate": true}),
        ),
        (
            signed(&backwards).await,
            json!({"applied": false, "duplicate": false, "ignored_because": "backward"}),
        ),
    ];
    for (live, expected) in &reports {
        assert_eq!(live.status, 200, "{:?}", live.body);
        let body = doc.check(EVENTS, "post", live);
        for (field, value) in expected.as_object().expect("object") {
            assert_eq!(&body[field], value, "{body}");
        }
    }
    // The transaction moved: its status body still fits the document.
    let moved = get(format!("/widget/transactions/{id}"), Some(&acme)).await;
    assert_eq!(
        doc.check(TRANSACTION, "get", &moved)["status"],
        "processing"
    );
    let unsigned = server
        .request(Method::POST, EVENTS)
        .json(&processing.to_string())
        .send()
        .await;
    let unknown_tx = signed(&json!({"event_id": "ev-x", "merchant_transaction_id": uuid::Uuid::new_v4().to_string(), "status": "processing"})).await;
    let bad_status =
        signed(&json!({"event_id": "ev-y", "merchant_transaction_id": id, "status": "done"})).await;
    for (live, status, code) in [
        (&unsigned, 401, "invalid_signature"),
        (&unknown_tx, 404, "not_found"),
        (&bad_status, 400, "validation_error"),
    ] {
        assert_code(live, status, code);
        doc.check(EVENTS, "post", live);
    }

    // Rate limits: the partner `limited` (5/s, burst 10) spends its budget on
    // each partner route in turn; every answer, the 429 included, fits the
    // document. (The budget uses the real clock, not the test clock.)
    let limited = server.tokens.limited.clone();
    let owned = server.create_session(&limited, SEED_BODY).await;
    let owned_id = doc.check(SESSION, "post", &owned)["merchant_transaction_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let routes = [
        (SESSION, "post", SESSION.to_owned()),
        (
            TRANSACTION,
            "get",
            format!("/widget/transactions/{owned_id}"),
        ),
        (
            "/widget/users/{partner_user_id}/kyc-status",
            "get",
            "/widget/users/user-123/kyc-status".to_owned(),
        ),
    ];
    for (template, method, path) in &routes {
        let mut refused = false;
        for _ in 0..200 {
            let live = if *method == "post" {
                server.create_session(&limited, SEED_BODY).await
            } else {
                server
                    .request(Method::GET, path)
                    .bearer(&limited)
                    .send()
                    .await
            };
            doc.check(template, method, &live);
            assert!(live.header("ratelimit-policy").is_some(), "{path}");
            if live.status == 429 {
                refused = true;
                break;
            }
        }
        assert!(refused, "{method} {path} is refused within 200 requests");
    }
    let ws_path = format!("/ws?tx_id={owned_id}");
    let mut refused = false;
    for _ in 0..20 {
        for _ in 0..200 {
            if server.create_session(&limited, "{}").await.status == 429 {
                break;
            }
        }
        let live = crate::live::upgrade(&server, &ws_path)
            .bearer(&limited)
            .send()
            .await;
        if live.status == 429 {
            doc.check("/ws", "get", &live);
            refused = true;
            break;
        }
    }
    assert!(refused, "an upgrade over budget is refused");

    // The sandbox: the stand-in widget's script and the payment simulator
    // on a session of its own.
    let script = server.request(Method::GET, "/widget/sdk.js").send().await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(
        doc.response("/widget/sdk.js", "get", 200)
            .expect("documented")["content"]["text/javascript"]
            .is_object(),
        "the script's media type is documented"
    );
    const SIMULATE: &str = "/sandbox/transactions/{merchant_transaction_id}/simulate";
    let sandboxed = server.create_session(&acme, SEED_BODY).await;
    let sandboxed = doc.check(SESSION, "post", &sandboxed);
    let sandbox_path = format!(
        "/sandbox/transactions/{}/simulate",
        sandboxed["merchant_transaction_id"].as_str().expect("id")
    );
    let init_token = sandboxed["init_token"].as_str().expect("token").to_owned();
    let simulate = |token: &str, body: &'static str| {
        server
            .request(Method::POST, &sandbox_path)
            .header("origin", WIDGET_ORIGIN)
            .bearer(token)
            .json(body)
            .send()
    };
    let before_redeemed = simulate(&init_token, r#"{"outcome":"completed"}"#).await;
    assert_code(&before_redeemed, 409, "conflict");
    doc.check(SIMULATE, "post", &before_redeemed);
    let redeemed = redeem(init_body(&sandboxed), WIDGET_ORIGIN).await;
    assert_eq!(redeemed.status, 200, "{:?}", redeemed.body);
    for (live, status, code) in [
        (
            simulate("not-a-token", r#"{"outcome":"completed"}"#).await,
            401,
            "invalid_init_token",
        ),
        (
            simulate(&init_token, r#"{"outcome":"refunded"}"#).await,
            400,
            "validation_error",
        ),
    ] {
        assert_code(&live, status, code);
        doc.check(SIMULATE, "post", &live);
    }
    let paid = simulate(&init_token, r#"{"outcome":"completed"}"#).await;
    assert_eq!(paid.status, 200, "{:?}", paid.body);
    assert_eq!(paid.json()["status"], "completed");
    doc.check(SIMULATE, "post", &paid);
    let preflight = server
        .request(Method::OPTIONS, &sandbox_path)
        .header("origin", WIDGET_ORIGIN)
        .send()
        .await;
    doc.check(SIMULATE, "options", &preflight);

    // An expired init_token (the clock moves past its hour last, so nothing
    // above is affected).
    let later = server.create_session(&acme, SEED_BODY).await;
    let later = doc.check(SESSION, "post", &later);
    server.clock.advance(3_601);
    let expired = redeem(init_body(&later), WIDGET_ORIGIN).await;
    assert_code(&expired, 410, "session_expired");
    doc.check(INIT, "post", &expired);

    // Unknown routes and wrong methods, on both listeners.
    let concrete = |template: &str| {
        template
            .replace("{merchant_transaction_id}", &id)
            .replace("{partner_user_id}", "user-123")
    };
    for (template, _) in PUBLIC_ROUTES {
        doc.check_method_not_allowed(&server, false, template, &concrete(template))
            .await;
    }
    for (template, _) in ADMIN_ROUTES {
        let path = template
            .replace("{partner_id}", "acme")
            .replace("{token_id}", "abcdef01")
            .replace("{delivery_id}", "evt_1");
        doc.check_method_not_allowed(&server, true, template, &path)
            .await;
    }
    let not_found = doc.deref(&doc.root["components"]["responses"]["NotFound"]);
    for live in [
        server.request(Method::GET, "/nope").send().await,
        server.admin(Method::GET, "/nope").send().await,
    ] {
        assert_code(&live, 404, "not_found");
        doc.check_against("unknown route 404", not_found, &live);
    }

    // Admin: liveness, readiness, and readiness while draining.
    let healthz = server.admin(Method::GET, "/healthz").send().await;
    assert_eq!(healthz.status, 200);
    doc.check("/healthz", "get", &healthz);
    let ready = server.admin(Method::GET, "/readyz").send().await;
    assert_eq!(ready.status, 200);
    doc.check("/readyz", "get", &ready);
    admin_responses_match_the_document(doc, &server).await;

    server.lifecycle.start_draining();
    let draining = server.admin(Method::GET, "/readyz").send().await;
    assert_code(&draining, 503, "shutting_down");
    doc.check("/readyz", "get", &draining);

    server.stop().await;
}

/// The admin API's answers, successes and refusals, against the document.
async fn admin_responses_match_the_document(doc: &Doc, server: &TestServer) {
    let call = |method: Method, path: &str, body: Option<Value>| {
        let path = path.to_owned();
        async move { server.admin_call(method, &path, body.as_ref()).await }
    };
    let checks: Vec<(&str, &str, TestResponse, u16)> = vec![
        ("/admin/partners", "get", call(Method::GET, "/admin/partners", None).await, 200),
        (
            "/admin/partners",
            "post",
            call(Method::POST, "/admin/partners", Some(crate::admin::new_partner("docco"))).await,
            200,
        ),
        (
            "/admin/partners",
            "post",
            call(Method::POST, "/admin/partners", Some(crate::admin::new_partner("docco"))).await,
            409,
        ),
        (
            "/admin/partners",
            "post",
            call(Method::POST, "/admin/partners", Some(json!({"id": "x"}))).await,
            400,
        ),
        (
            "/admin/partners",
            "get",
            server.admin(Method::GET, "/admin/partners").send().await,
            401,
        ),
        (
            "/admin/partners/{partner_id}",
            "get",
            call(Method::GET, "/admin/partners/docco", None).await,
            200,
        ),
        (
            "/admin/partners/{partner_id}",
            "get",
            call(Method::GET, "/admin/partners/ghost", None).await,
            404,
        ),
        (
            "/admin/partners/{partner_id}",
            "patch",
            call(Method::PATCH, "/admin/partners/docco", Some(json!({"webhook_url": "https://hooks.docco.example/x"}))).await,
            200,
        ),
        (
            "/admin/partners/{partner_id}/origins",
            "post",
            call(Method::POST, "/admin/partners/docco/origins", Some(json!({"origin": "https://b.docco.example"}))).await,
            200,
        ),
        (
            "/admin/partners/{partner_id}/origins",
            "delete",
            call(Method::DELETE, "/admin/partners/docco/origins?origin=https%3A%2F%2Fb.docco.example", None).await,
            200,
        ),
        (
            "/admin/partners/{partner_id}/ips",
            "post",
            call(Method::POST, "/admin/partners/docco/ips", Some(json!({"range": "203.0.113.0/24"}))).await,
            200,
        ),
        (
            "/admin/partners/{partner_id}/ips",
            "delete",
            call(Method::DELETE, "/admin/partners/docco/ips?range=198.51.100.0%2F24", None).await,
            404,
        ),
        (
            "/admin/partners/{partner_id}/wallets",
            "post",
            call(Method::POST, "/admin/partners/docco/wallets", Some(json!({"currency": "USDT", "network": "TRC20", "address": "TXYZabcdefghijkmnopqrstuvwxyz12346"}))).await,
            200,
        ),
        (
            "/admin/partners/{partner_id}/wallets",
            "patch",
            call(Method::PATCH, "/admin/partners/docco/wallets", Some(json!({"currency": "USDT", "network": "TRC20", "address": "TXYZabcdefghijkmnopqrstuvwxyz12346", "active": false}))).await,
            200,
        ),
        (
            "/admin/partners/{partner_id}/wallets",
            "delete",
            call(Method::DELETE, "/admin/partners/docco/wallets?currency=USDT&network=TRC20&address=TXYZabcdefghijkmnopqrstuvwxyz12346", None).await,
            200,
        ),
        (
            "/admin/partners/{partner_id}/signing-key/rotate",
            "post",
            call(Method::POST, "/admin/partners/docco/signing-key/rotate", Some(json!({"grace": "1h"}))).await,
            200,
        ),
        (
            "/admin/partners/{partner_id}/webhook-secret/rotate",
            "post",
            call(Method::POST, "/admin/partners/docco/webhook-secret/rotate", Some(json!({"grace": 0}))).await,
            200,
        ),
        (
            "/admin/partners/{partner_id}/webhook-secret/rotate",
            "post",
            call(Method::POST, "/admin/partners/acme/webhook-secret/rotate", Some(json!({}))).await,
            409,
        ),
        (
            "/admin/partners/{partner_id}/tokens",
            "post",
            server
                .admin(Method::POST, "/admin/partners/docco/tokens")
                .bearer(crate::support::ADMIN_TOKEN)
                .header("content-type", "text/plain")
                .body(b"{}")
                .send()
                .await,
            415,
        ),
        (
            "/admin/partners/{partner_id}/tokens",
            "post",
            call(Method::POST, "/admin/partners/docco/tokens", Some(json!({"label": "x".repeat(5_000)}))).await,
            413,
        ),
        (
            "/admin/webhooks/deliveries",
            "get",
            call(Method::GET, "/admin/webhooks/deliveries?partner=acme&state=pending&limit=10", None).await,
            200,
        ),
        (
            "/admin/webhooks/deliveries",
            "get",
            call(Method::GET, "/admin/webhooks/deliveries?limit=0", None).await,
            400,
        ),
        (
            "/admin/webhooks/deliveries/{delivery_id}/retry",
            "post",
            call(Method::POST, "/admin/webhooks/deliveries/evt_424242/retry", None).await,
            404,
        ),
        (
            "/admin/webhooks/replay",
            "post",
            call(Method::POST, "/admin/webhooks/replay", Some(json!({"partner": "acme", "since": "2026-01-01T00:00:00Z"}))).await,
            200,
        ),
    ];
    for (path, method, live, status) in &checks {
        assert_eq!(
            live.status.as_u16(),
            *status,
            "{method} {path}: {:?}",
            live.body
        );
        doc.check(path, method, live);
    }
    let issued = call(
        Method::POST,
        "/admin/partners/docco/tokens",
        Some(json!({"env": "live"})),
    )
    .await;
    let body = doc.check("/admin/partners/{partner_id}/tokens", "post", &issued);
    let token_id = body["token_id"].as_str().expect("token_id").to_owned();
    let rotated = call(
        Method::POST,
        &format!("/admin/partners/docco/tokens/{token_id}/rotate"),
        Some(json!({"grace": "90s", "label": "rotated"})),
    )
    .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let rotated = doc.check(
        "/admin/partners/{partner_id}/tokens/{token_id}/rotate",
        "post",
        &rotated,
    );
    let revoked = call(
        Method::DELETE,
        &format!(
            "/admin/partners/docco/tokens/{}",
            rotated["token_id"].as_str().expect("id")
        ),
        None,
    )
    .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    doc.check(
        "/admin/partners/{partner_id}/tokens/{token_id}",
        "delete",
        &revoked,
    );
    let shown = call(Method::GET, "/admin/partners/docco", None).await;
    doc.check("/admin/partners/{partner_id}", "get", &shown);
}
