//! `session-server webhooks ...`: the operator's view of webhook deliveries
//! (list), and sending them again (retry one, replay a partner's since a
//! time). Runs against the store like `partners ...`.

use std::io::Write;

use clap::{Args, Subcommand, ValueEnum};
use session_core::admin::DeliveryRow as DeliveryJson;
use session_core::partner::PartnerId;
use session_core::ports::{
    DeliveryFilter, DeliveryState, WEBHOOK_ID_PREFIX, WebhookOutbox, webhook_id,
};
use session_core::service::admin::WebhookAdmin;
use session_core::time::{Clock, Timestamp};
use uuid::Uuid;

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(flatten)]
    pub operator: crate::cli::OperatorArgs,

    #[command(subcommand)]
    pub command: WebhooksCommand,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Deliveries, newest first.
    List(ListArgs),
    /// Queue one delivery again now (`id`: its webhook-id or number).
    Retry { id: String },
    /// Queue again every delivery of a partner committed since a time.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub partner: Option<String>,
    #[arg(long)]
    pub transaction: Option<Uuid>,
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[arg(long)]
    pub partner: String,
    /// RFC 3339, e.g. 2026-11-24T10:00:00Z.
    #[arg(long)]
    pub since: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    Pending,
    Delivered,
    Failed,
}

impl From<StateArg> for DeliveryState {
    fn from(arg: StateArg) -> Self {
        match arg {
            StateArg::Pending => Self::Pending,
            StateArg::Delivered => Self::Delivered,
            StateArg::Failed => Self::Failed,
        }
    }
}

/// `evt_42` or `42`.
fn delivery_id(text: &str) -> Result<i64, String> {
    text.strip_prefix(WEBHOOK_ID_PREFIX)
        .unwrap_or(text)
        .parse()
        .map_err(|_| format!("{text:?} is not a webhook-id (evt_<number>)"))
}

fn partner(text: &str) -> Result<PartnerId, String> {
    PartnerId::parse(text).map_err(|why| format!("--partner {text:?}: {why}"))
}

/// A refusal as the operator reads it: a store fault with its cause.
fn refused(rejection: session_core::Rejection) -> String {
    match rejection.detail() {
        Some(detail) => format!("store: {detail}"),
        None => rejection.message().to_owned(),
    }
}

/// Runs `command`, printing text or (with `json`) JSON to `out`.
pub async fn run(
    command: &WebhooksCommand,
    json: bool,
    outbox: &dyn WebhookOutbox,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<(), String> {
    let admin = WebhookAdmin { outbox, clock };
    let write = |out: &mut dyn Write, text: String| {
        writeln!(out, "{text}").map_err(|e| format!("cannot write the answer: {e}"))
    };
    match command {
        WebhooksCommand::List(args) => {
            let filter = DeliveryFilter {
                partner: args.partner.as_deref().map(partner).transpose()?,
                transaction: args.transaction,
                state: args.state.map(DeliveryState::from),
                limit: args.limit,
            };
            let listed = admin.deliveries(&filter).await.map_err(refused)?;
            if json {
                let rows: Vec<DeliveryJson> = listed.iter().map(DeliveryJson::from).collect();
                let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
                return write(out, text);
            }
            if listed.is_empty() {
                return write(out, "no deliveries".into());
            }
            for view in &listed {
                let row = DeliveryJson::from(view);
                write(
                    out,
                    format!(
                        "{}  {}  {}  {}  {}  attempts {}  last {}",
                        row.id,
                        row.partner,
                        row.merchant_transaction_id,
                        row.status,
                        row.state,
                        row.attempts,
                        row.last_result.as_deref().unwrap_or("-"),
                    ),
                )?;
            }
            Ok(())
        }
        WebhooksCommand::Retry { id } => {
            let number = delivery_id(id)?;
            admin.retry(number).await.map_err(refused)?;
            if json {
                write(
                    out,
                    serde_json::json!({ "id": webhook_id(number), "state": "pending" }).to_string(),
                )
            } else {
                write(out, format!("{}: queued again", webhook_id(number)))
            }
        }
        WebhooksCommand::Replay(args) => {
            let partner = partner(&args.partner)?;
            let since = Timestamp::parse_rfc3339(&args.since)
                .ok_or_else(|| format!("--since {:?} is not an RFC 3339 time", args.since))?;
            let count = admin.replay(&partner, since).await.map_err(refused)?;
            if json {
                write(
                    out,
                    serde_json::json!({ "partner": partner.as_str(), "queued": count }).to_string(),
                )
            } else {
                write(out, format!("{partner}: {count} deliveries queued again"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use session_core::ports::{PartnerRegistry, SessionStore};
    use session_core::session::{EventPlan, ProviderEvent};
    use session_core::status::TxStatus;
    use session_core::testing::FixedClock;
    use session_store_contract::{partner_spec, sample_session};
    use session_store_mem::MemStore;

    use super::*;
    use crate::cli::{Cli, Command};

    async fn run_line(store: &MemStore, line: &[&str]) -> Result<String, String> {
        let cli = Cli::try_parse_from(["session-server", "webhooks"].iter().chain(line))
            .map_err(|e| e.to_string())?;
        let Some(Command::Webhooks(args)) = cli.command else {
            return Err("not a webhooks command".into());
        };
        let mut out = Vec::new();
        run(
            &args.command,
            args.operator.json,
            store,
            &FixedClock::default(),
            &mut out,
        )
        .await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[tokio::test]
    async fn list_retry_and_replay() {
        let store = MemStore::new();
        let spec = partner_spec("acme");
        store.put_partner(&spec).await.expect("partner");
        let partner = spec.build().expect("builds");
        let session = sample_session(&partner, "u1", "u1@example.com", 1);
        let id = session.merchant_transaction_id;
        store.insert_session(&session).await.expect("insert");
        let now = FixedClock::default().now();
        let plan = EventPlan {
            event: ProviderEvent {
                event_id: "e1".into(),
                merchant_transaction_id: id,
                status: TxStatus::Processing,
                crypto_amount: None,
                fiat_amount: None,
                fiat_currency: None,
                payment_method: None,
                occurred_at: now,
                kyc_status: None,
            },
            now,
        };
        store.apply_provider_event(&plan).await.expect("apply");

        let listed = run_line(&store, &["list", "--json", "--partner", "acme"])
            .await
            .expect("list");
        let rows: serde_json::Value = serde_json::from_str(&listed).expect("json array");
        let row = &rows[0];
        assert_eq!(row["id"], "evt_1");
        assert_eq!(row["partner"], "acme");
        assert_eq!(row["merchant_transaction_id"], id.hyphenated().to_string());
        assert_eq!(row["status"], "processing");
        assert_eq!(row["state"], "pending");
        assert_eq!(row["attempts"], 0);
        assert!(row["last_result"].is_null());
        let delivered = run_line(&store, &["list", "--state", "delivered"])
            .await
            .expect("list");
        assert_eq!(delivered.trim(), "no deliveries");

        assert_eq!(
            run_line(&store, &["retry", "evt_1"])
                .await
                .expect("retry")
                .trim(),
            "evt_1: queued again"
        );
        let unknown = run_line(&store, &["retry", "evt_99"])
            .await
            .expect_err("unknown");
        assert!(unknown.contains("no delivery evt_99"), "{unknown}");
        let bad = run_line(&store, &["retry", "nope"])
            .await
            .expect_err("malformed");
        assert!(bad.contains("not a webhook-id"), "{bad}");
        let replayed = run_line(
            &store,
            &[
                "replay",
                "--partner",
                "acme",
                "--since",
                "2020-01-01T00:00:00Z",
                "--json",
            ],
        )
        .await
        .expect("replay");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&replayed).expect("json")["queued"],
            1
        );
    }
}
