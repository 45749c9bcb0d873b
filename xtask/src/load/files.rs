//! The run's inputs: the load partner's bootstrap file and token, the seed request
//! body, and the temporary directory that holds them while the run lasts.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::tempdir::TempDir;

/// The load partner's client token: `ct_test_` and 44 base64url characters.
pub const TOKEN: &str = "ct_test_bG9hZC10ZXN0LXRva2VuLWZvci14dGFzay1sb2FkLTAx";

/// The seed request of SPEC.md, sent by every `POST /widget/session` of the run.
pub const SEED_BODY: &str = r#"{"partner_user_id":"user-123","user_email":"user@example.com","network":"TRC20","currency":"USDT","amount":"100","type":"buy","client_ip":"203.0.113.42"}"#;

/// One partner, `load`, able to sell USDT on TRC20 for EUR; no IP or origin gate, so
/// loopback clients are served as any partner's would be.
pub const BOOTSTRAP: &str = r#"# Written by `cargo xtask load` for one run.
[[partner]]
id = "load"
name = "Load test partner"
client_tokens = ["ct_test_bG9hZC10ZXN0LXRva2VuLWZvci14dGFzay1sb2FkLTAx"]
signature_scheme = "hmac-sha512"

[partner.widget]
widget_id = "fb359d09-fff6-4b1f-906c-b9062b135065"
currencies = ["USDT"]
networks = ["TRC20"]
fiat_currency = "EUR"
fiat_currencies = ["EUR"]
type = "buy"

[[partner.wallet]]
currency = "USDT"
network = "TRC20"
address = "TXYZabcdefghijkmnopqrstuvwxyz12345"
active = true
"#;

/// The load partner's webhook secret for `--webhooks` (a load-only value).
const WEBHOOK_SECRET: &str = "whsec_bG9hZC10ZXN0LXdlYmhvb2stc2VjcmV0LTAwMDE=";

/// [`BOOTSTRAP`] with the partner's webhook pointed at `url`.
pub fn bootstrap_with_webhook(url: &str) -> String {
    let scheme = "signature_scheme = \"hmac-sha512\"\n";
    BOOTSTRAP.replacen(
        scheme,
        &format!("{scheme}webhook_url = \"{url}\"\nwebhook_secret = \"{WEBHOOK_SECRET}\"\n"),
        1,
    )
}

/// A fresh directory under the system temp dir, removed with everything in it on drop.
#[derive(Debug)]
pub struct WorkDir {
    dir: TempDir,
}

impl WorkDir {
    pub fn create() -> Result<Self> {
        Ok(Self {
            dir: TempDir::create("xtask-load")?,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.path().join(name);
        fs::write(&path, text)
            .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_well_formed_and_is_the_one_bootstrapped() {
        let tail = TOKEN.strip_prefix("ct_test_").expect("a test token");
        assert!(tail.len() >= 43, "at least 43 characters after the prefix");
        assert!(
            tail.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "base64url only"
        );
        assert!(BOOTSTRAP.contains(&format!("client_tokens = [\"{TOKEN}\"]")));
    }

    #[test]
    fn the_webhook_bootstrap_sets_the_partner_webhook() {
        let text = bootstrap_with_webhook("http://127.0.0.1:9/hook");
        let added = format!(
            "webhook_url = \"http://127.0.0.1:9/hook\"\nwebhook_secret = \"{WEBHOOK_SECRET}\"\n"
        );
        assert_eq!(
            text.replacen(&added, "", 1),
            BOOTSTRAP,
            "only the two lines"
        );
        let own_keys = text.split("[partner.widget]").next().expect("keys first");
        assert!(own_keys.contains(&added), "among the partner's own keys");
    }

    #[test]
    fn the_work_dir_holds_files_and_is_removed_on_drop() {
        let dir = WorkDir::create().expect("create");
        let path = dir.write("a.txt", "hello").expect("write");
        assert_eq!(fs::read_to_string(&path).expect("read"), "hello");
        let root = dir.path().to_path_buf();
        drop(dir);
        assert!(!root.exists(), "{} should be gone", root.display());
    }
}
