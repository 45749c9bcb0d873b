//! The store contract: what every store adapter must do, written once against
//! the port traits and run against each store by [`store_contract_tests!`].
//!
//! Each case takes a fresh, empty store, so the cases can run in parallel and
//! never see each other's rows.

mod feed;
mod fixtures;
mod idempotency;
mod partners;
mod sessions;
mod webhooks;

pub use feed::*;
pub use fixtures::{at, partner, partner_spec, sample_session, token};
pub use idempotency::*;
pub use partners::*;
pub use sessions::*;
pub use webhooks::*;

/// Everything a complete store provides.
pub use session_core::ports::Store;

/// Expands to one `#[tokio::test]` per contract case, each on a store made by
/// `$make().await`: an async function returning a fresh store, or `None` when
/// the store cannot be had here (the case then returns early, as the HTTP
/// suite's cases do; under CI `$make` fails instead of answering `None`).
///
/// `$sibling(&store).await` opens a second instance on the same data, as a
/// second server process would (`None` where there is only one instance,
/// in memory). The cases about several instances run once with the store
/// alone and once with the sibling too.
#[macro_export]
macro_rules! store_contract_tests {
    ($make:path, $sibling:path) => {
        $crate::store_contract_tests!(@pairs $make, $sibling;
            subscribers_see_each_applied_change_in_order,
            quick_successive_changes_all_arrive_in_order,
            concurrent_requests_with_one_key_write_one_session,
        );
        $crate::store_contract_tests!(@cases $make;
            registry_round_trips_partner_specs,
            configuration_changes_reach_the_directory,
            token_lifecycle,
            sessions_round_trip_unchanged,
            users_are_per_partner_and_keep_the_latest_email,
            redemption_happens_once,
            keyed_sessions_write_their_answer_once,
            a_key_passes_through_its_generations,
            expired_answers_are_reaped_in_bounded_batches,
            concurrent_redemptions_have_exactly_one_winner,
            provider_events_apply_once_with_their_outbox_event,
            one_event_id_on_two_transactions_is_two_events,
            events_for_unknown_transactions_leave_no_trace,
            scripted_provider_sequences_end_where_the_state_machine_says,
            concurrent_events_on_one_transaction_serialise,
            webhook_deliveries_go_out_in_order_per_transaction,
            claimed_deliveries_are_leased_and_released,
            failed_deliveries_wait_for_an_operator,
            concurrent_dispatchers_never_claim_one_delivery_twice,
            a_claim_keeps_within_each_partners_room,
            a_delivery_committed_while_the_previous_one_is_recorded_still_goes,
        );
    };
    (@pairs $make:path, $sibling:path; $($case:ident),* $(,)?) => {
        mod one_instance {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(store) = $make().await {
                        $crate::$case(&store, &store).await;
                    }
                }
            )*
        }
        mod two_instances {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(store) = $make().await {
                        if let Some(sibling) = $sibling(&store).await {
                            $crate::$case(&store, &sibling).await;
                        }
                    }
                }
            )*
        }
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(store) = $make().await {
                    $crate::$case(store).await;
                }
            }
        )*
    };
}
