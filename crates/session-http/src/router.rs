//! Which route a request is for: the first check of SPEC.md §1.

use http::Method;

/// A known route, with its path parameter still percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    CreateSession,
    WidgetInit,
    WidgetInitPreflight,
    Transaction(&'a str),
    KycStatus(&'a str),
    ProviderEvents,
    Live,
    /// The sandbox's stand-in widget script (SPEC.md §7).
    SandboxSdk,
    /// The sandbox's payment simulator, with the transaction id.
    SandboxSimulate(&'a str),
    SandboxSimulatePreflight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed<'a> {
    Found(Route<'a>),
    NotFound,
    /// A known path with another method; the value is the `Allow` header.
    MethodNotAllowed(&'static str),
}

/// Matches a request line. Paths match exactly (no trailing slash, no
/// normalisation); a path parameter is one non-empty segment. The sandbox's
/// routes exist only when `sandbox` is on: otherwise they are unknown paths.
pub fn route<'a>(method: &Method, path: &'a str, sandbox: bool) -> Routed<'a> {
    let (allow, found) = match path {
        "/widget/sdk.js" if sandbox => {
            ("GET", (method == Method::GET).then_some(Route::SandboxSdk))
        }
        "/widget/session" => (
            "POST",
            (method == Method::POST).then_some(Route::CreateSession),
        ),
        "/widget/init" => (
            "POST, OPTIONS",
            match *method {
                Method::POST => Some(Route::WidgetInit),
                Method::OPTIONS => Some(Route::WidgetInitPreflight),
                _ => None,
            },
        ),
        "/provider/events" => (
            "POST",
            (method == Method::POST).then_some(Route::ProviderEvents),
        ),
        "/ws" => ("GET", (method == Method::GET).then_some(Route::Live)),
        _ => {
            if let Some(id) = segment(path.strip_prefix("/widget/transactions/")) {
                (
                    "GET",
                    (method == Method::GET).then_some(Route::Transaction(id)),
                )
            } else if let Some(user) = segment(
                path.strip_prefix("/widget/users/")
                    .and_then(|rest| rest.strip_suffix("/kyc-status")),
            ) {
                (
                    "GET",
                    (method == Method::GET).then_some(Route::KycStatus(user)),
                )
            } else if let Some(id) = segment(
                path.strip_prefix("/sandbox/transactions/")
                    .and_then(|rest| rest.strip_suffix("/simulate")),
            )
            .filter(|_| sandbox)
            {
                (
                    "POST, OPTIONS",
                    match *method {
                        Method::POST => Some(Route::SandboxSimulate(id)),
                        Method::OPTIONS => Some(Route::SandboxSimulatePreflight),
                        _ => None,
                    },
                )
            } else {
                return Routed::NotFound;
            }
        }
    };
    match found {
        Some(route) => Routed::Found(route),
        None => Routed::MethodNotAllowed(allow),
    }
}

/// Route templates, the `route` label of request metrics (never the path
/// itself, whose ids are unbounded). The last one is every other path.
pub const TEMPLATES: [&str; 9] = [
    "/widget/session",
    "/widget/init",
    "/provider/events",
    "/ws",
    "/widget/transactions/{merchant_transaction_id}",
    "/widget/users/{partner_user_id}/kyc-status",
    "/widget/sdk.js",
    "/sandbox/transactions/{merchant_transaction_id}/simulate",
    "unmatched",
];

/// The index in [`TEMPLATES`] of the route `path` belongs to, whatever the
/// method.
pub fn template(path: &str) -> usize {
    match path {
        "/widget/session" => 0,
        "/widget/init" => 1,
        "/provider/events" => 2,
        "/ws" => 3,
        _ if segment(path.strip_prefix("/widget/transactions/")).is_some() => 4,
        _ if segment(
            path.strip_prefix("/widget/users/")
                .and_then(|rest| rest.strip_suffix("/kyc-status")),
        )
        .is_some() =>
        {
            5
        }
        "/widget/sdk.js" => 6,
        _ if segment(
            path.strip_prefix("/sandbox/transactions/")
                .and_then(|rest| rest.strip_suffix("/simulate")),
        )
        .is_some() =>
        {
            7
        }
        _ => 8,
    }
}

fn segment(candidate: Option<&str>) -> Option<&str> {
    candidate.filter(|s| !s.is_empty() && !s.contains('/'))
}

/// Decodes a percent-encoded path segment; `None` unless it is UTF-8.
pub fn decode_segment(raw: &str) -> Option<String> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_methods_and_misses() {
        let cases = [
            (
                Method::POST,
                "/widget/session",
                Routed::Found(Route::CreateSession),
            ),
            (
                Method::GET,
                "/widget/session",
                Routed::MethodNotAllowed("POST"),
            ),
            (
                Method::OPTIONS,
                "/widget/session",
                Routed::MethodNotAllowed("POST"),
            ),
            (Method::POST, "/widget/session/", Routed::NotFound),
            (
                Method::POST,
                "/widget/init",
                Routed::Found(Route::WidgetInit),
            ),
            (
                Method::OPTIONS,
                "/widget/init",
                Routed::Found(Route::WidgetInitPreflight),
            ),
            (
                Method::GET,
                "/widget/init",
                Routed::MethodNotAllowed("POST, OPTIONS"),
            ),
            (
                Method::GET,
                "/widget/transactions/abc",
                Routed::Found(Route::Transaction("abc")),
            ),
            (
                Method::DELETE,
                "/widget/transactions/abc",
                Routed::MethodNotAllowed("GET"),
            ),
            (Method::GET, "/widget/transactions/", Routed::NotFound),
            (Method::GET, "/widget/transactions/a/b", Routed::NotFound),
            (
                Method::GET,
                "/widget/users/u%2F1/kyc-status",
                Routed::Found(Route::KycStatus("u%2F1")),
            ),
            (
                Method::POST,
                "/widget/users/u1/kyc-status",
                Routed::MethodNotAllowed("GET"),
            ),
            (Method::GET, "/widget/users//kyc-status", Routed::NotFound),
            (
                Method::GET,
                "/widget/users/a/b/kyc-status",
                Routed::NotFound,
            ),
            (
                Method::POST,
                "/provider/events",
                Routed::Found(Route::ProviderEvents),
            ),
            (Method::GET, "/ws", Routed::Found(Route::Live)),
            (Method::POST, "/ws", Routed::MethodNotAllowed("GET")),
            (Method::GET, "/ws/", Routed::NotFound),
            (Method::GET, "/", Routed::NotFound),
            (Method::GET, "/healthz", Routed::NotFound),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(&method, path, false), expected, "{method} {path}");
            assert_eq!(route(&method, path, true), expected, "{method} {path}");
        }
    }

    #[test]
    fn sandbox_routes_exist_only_in_sandbox_mode() {
        let cases = [
            (
                Method::GET,
                "/widget/sdk.js",
                Routed::Found(Route::SandboxSdk),
            ),
            (
                Method::POST,
                "/widget/sdk.js",
                Routed::MethodNotAllowed("GET"),
            ),
            (
                Method::POST,
                "/sandbox/transactions/abc/simulate",
                Routed::Found(Route::SandboxSimulate("abc")),
            ),
            (
                Method::OPTIONS,
                "/sandbox/transactions/abc/simulate",
                Routed::Found(Route::SandboxSimulatePreflight),
            ),
            (
                Method::GET,
                "/sandbox/transactions/abc/simulate",
                Routed::MethodNotAllowed("POST, OPTIONS"),
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(&method, path, true), expected, "{method} {path}");
            assert_eq!(
                route(&method, path, false),
                Routed::NotFound,
                "{method} {path} outside the sandbox"
            );
        }
        for path in [
            "/sandbox/transactions//simulate",
            "/sandbox/transactions/a/b/simulate",
            "/sandbox/transactions/abc",
            "/widget/sdk.js/",
        ] {
            assert_eq!(route(&Method::POST, path, true), Routed::NotFound, "{path}");
            assert_eq!(route(&Method::GET, path, true), Routed::NotFound, "{path}");
        }
    }

    #[test]
    fn segments_decode_to_utf8_only() {
        assert_eq!(decode_segment("u%2F1%20%C3%A9").as_deref(), Some("u/1 é"));
        assert_eq!(decode_segment("%FF"), None);
    }
}
