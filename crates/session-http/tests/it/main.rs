//! The HTTP test suite: one binary, run against every store.

mod admin;
mod idempotency;
mod instances;
mod lifecycle;
mod limits;
mod live;
mod metrics;
mod openapi;
mod sandbox;
mod server;
mod session;
mod support;

/// Expands to one test per case and store: `cases!(module_name, store_factory; case, ...)`.
macro_rules! cases {
    ($module:ident, $make:expr; $($suite:ident :: $case:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let make = $make;
                    // `None`: no database, and skipping is allowed (never under CI).
                    if let Some(store) = make().await {
                        crate::$suite::$case(store).await;
                    }
                }
            )*
        }
    };
}

/// Every store-generic case, for `cases!`.
macro_rules! all_cases {
    ($module:ident, $make:expr) => {
        cases!($module, $make;
            session::seed_example_answers_the_22_fields,
            session::two_sessions_share_no_identifier,
            session::routes_and_methods,
            session::authentication,
            session::origin_and_ip_gate,
            session::trusted_proxy_forwarded_address,
            session::unreadable_forwarded_for_never_admits_the_proxy,
            session::media_type_and_size,
            session::body_errors,
            session::upstream_and_store_faults,
            session::check_order,
            session::request_ids,
            session::sell_needs_offramp,
            lifecycle::widget_redeems_once,
            lifecycle::tampered_parameters_do_not_consume_the_token,
            lifecycle::expired_and_forged_tokens,
            lifecycle::widget_cors,
            lifecycle::concurrent_redemptions_have_one_winner,
            lifecycle::provider_events_drive_the_status,
            lifecycle::provider_requests_are_authenticated_and_validated,
            lifecycle::tenants_cannot_see_each_other,
            live::ws_refusals_come_before_the_upgrade,
            live::ws_streams_each_change_in_order_then_closes,
            live::ws_terminal_transaction_sends_its_state_and_closes,
            live::ws_fifty_subscribers_all_receive,
            live::ws_pings_and_drops_silent_clients,
            live::ws_client_data_is_ignored_and_large_frames_close_1009,
            live::ws_shutdown_closes_1001,
            idempotency::idempotency_replays_the_same_bytes,
            idempotency::idempotency_different_request_or_partner,
            idempotency::idempotency_bad_keys_name_the_header,
            idempotency::idempotency_errors_are_not_stored,
            idempotency::idempotency_concurrent_requests_create_one,
            idempotency::idempotency_keys_expire_after_the_ttl,
            idempotency::without_a_key_nothing_is_deduplicated,
            metrics::metrics_after_known_traffic,
            metrics::metrics_labels_carry_no_request_values,
            admin::admin_api_is_off_without_a_token,
            admin::admin_api_needs_its_token,
            admin::admin_lists_partners_without_secrets,
            admin::admin_creates_a_partner_whose_token_opens_sessions,
            admin::admin_rotation_without_grace_ends_the_old_token,
            admin::admin_revocation_ends_a_token,
            admin::admin_edits_and_refusals,
            admin::admin_sets_a_partners_rate_limit,
            admin::admin_webhook_deliveries,
            limits::rate_limit_admits_the_budget_and_refuses_the_rest,
            limits::reads_and_websocket_upgrades_count,
            limits::other_partners_are_unaffected,
            limits::a_default_of_zero_leaves_only_partners_own_budgets,
            limits::rate_limit_check_order,
            sandbox::sandbox_routes_are_absent_outside_sandbox_mode,
            sandbox::sandbox_payment_reaches_polling_websocket_and_outbox,
            sandbox::sandbox_fail_and_cancel,
            sandbox::sandbox_never_pays_a_live_session,
        );
    };
}

async fn mem_store() -> Option<std::sync::Arc<session_store_mem::MemStore>> {
    Some(std::sync::Arc::new(session_store_mem::MemStore::new()))
}

/// A PostgreSQL store on a database of its own, dropped with the store.
async fn pg_store() -> Option<std::sync::Arc<session_store_pg::PgStore>> {
    let database = session_store_pg::testing::TestDatabase::create().await?;
    let store = session_store_pg::PgStore::connect(database.config())
        .await
        .expect("connect to the test database");
    Some(std::sync::Arc::new(store.keep_alive(database)))
}

all_cases!(on_mem, || crate::mem_store());
all_cases!(on_pg, || crate::pg_store());
