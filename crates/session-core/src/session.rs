//! The records a session leaves: what was agreed at creation (immutable), the
//! transaction's evolving state, and the facts the provider reports.

use std::sync::Arc;

use uuid::Uuid;

use crate::partner::{PartnerId, WidgetView};
use crate::signing::{Signature, SignedFields};
use crate::status::{KycStatus, Transition, TxStatus};
use crate::time::Timestamp;
use crate::value::{Address, Amount, ClientIp, Code, Email, PartnerUserId, RedirectUrl, TxType};

/// The end user a session is for, per partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUser {
    pub partner_user_id: PartnerUserId,
    pub email: Email,
}

/// Everything fixed when a session is created. The store keeps it verbatim;
/// nothing in it changes afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub merchant_transaction_id: Uuid,
    pub partner_id: PartnerId,
    pub user: EndUser,
    pub tx_type: TxType,
    pub currency: Code,
    pub network: Code,
    pub amount: Amount,
    pub address: Address,
    pub client_ip: Option<ClientIp>,
    pub redirect_url: Option<RedirectUrl>,
    pub widget: Arc<WidgetView>,
    pub signature: Signature,
    /// The partner signing key that produced `signature`.
    pub signing_kid: Arc<str>,
    /// The init token's `jti`; the token itself is never stored.
    pub init_token_jti: String,
    pub init_token_expires_at: Timestamp,
    pub created_at: Timestamp,
    /// Opened with a test client token (`ct_test_`): only such sessions may
    /// be paid by the sandbox's simulator, so a live session is never
    /// completed without a payment, even on a service in sandbox mode.
    pub test_mode: bool,
}

impl Session {
    /// The state of a session that has just been created.
    pub fn initial_state(&self) -> TxState {
        TxState {
            status: TxStatus::Pending,
            crypto_amount: None,
            fiat_amount: None,
            fiat_currency: self.widget.fiat_currency.clone(),
            payment_method: None,
            updated_at: self.created_at,
        }
    }

    /// The canonical text of the session id.
    pub fn id_text(&self) -> String {
        self.merchant_transaction_id.hyphenated().to_string()
    }
}

/// Builds the signed field tuple of a session. Takes the id and widget id as text
/// so callers format each UUID once.
pub fn signed_fields<'a>(
    session: &'a Session,
    id: &'a str,
    widget_id: &'a str,
) -> SignedFields<'a> {
    SignedFields {
        merchant_transaction_id: id,
        address: session.address.as_str(),
        client_ip: session.client_ip.as_ref().map_or("", ClientIp::as_str),
        currency: session.currency.as_str(),
        network: session.network.as_str(),
        amount: session.amount.as_str(),
        tx_type: session.tx_type.as_str(),
        widget_id,
    }
}

/// What changes over a transaction's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxState {
    pub status: TxStatus,
    /// Decimal strings, absent until the provider reports them.
    pub crypto_amount: Option<String>,
    pub fiat_amount: Option<String>,
    pub fiat_currency: Code,
    pub payment_method: Option<String>,
    pub updated_at: Timestamp,
}

/// A session as the store returns it. The immutable part is shared: a store
/// that keeps sessions in memory and the response being built hold the same
/// allocation instead of copying a dozen strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub session: Arc<Session>,
    pub state: TxState,
    /// When the init token was redeemed, if it was.
    pub redeemed_at: Option<Timestamp>,
}

/// An end user's KYC status and when the provider last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KycState {
    pub status: KycStatus,
    pub updated_at: Option<Timestamp>,
}

impl KycState {
    pub const NOT_STARTED: KycState = KycState {
        status: KycStatus::NotStarted,
        updated_at: None,
    };
}

/// A progress report from the payment provider, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEvent {
    pub event_id: String,
    pub merchant_transaction_id: Uuid,
    pub status: TxStatus,
    pub crypto_amount: Option<Amount>,
    pub fiat_amount: Option<Amount>,
    pub fiat_currency: Option<Code>,
    pub payment_method: Option<String>,
    /// When the provider says it happened (the receipt time when it did not say).
    pub occurred_at: Timestamp,
    pub kyc_status: Option<KycStatus>,
}

/// The event written to the outbox with every applied status change, for
/// webhooks and live subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChanged {
    pub merchant_transaction_id: Uuid,
    pub partner_id: PartnerId,
    pub tx_type: TxType,
    pub status: TxStatus,
    pub currency: Code,
    pub network: Code,
    pub crypto_amount: Option<String>,
    pub fiat_currency: Code,
    pub fiat_amount: Option<String>,
    pub payment_method: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub occurred_at: Timestamp,
}

/// What applying one provider event changes; computed by the core, written
/// atomically by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEffects {
    /// The state machine's verdict on the reported status.
    pub decision: Transition,
    /// The transaction's status once the event is applied.
    pub status_after: TxStatus,
    /// The transaction's new state, when the status change is applied.
    pub state: Option<TxState>,
    /// The user's new KYC state, when the event carries a newer one.
    pub kyc: Option<KycState>,
    /// Written with `state`, in the same transaction.
    pub outbox: Option<StatusChanged>,
}

/// A provider event to apply, and the instant it is applied at. Stores call
/// [`EventPlan::effects`] under their locks; the decision itself stays here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPlan {
    pub event: ProviderEvent,
    pub now: Timestamp,
}

impl EventPlan {
    /// Whether [`EventPlan::effects`] reads the user's KYC state: only for an
    /// event that reports one. Otherwise a store need not read, nor lock, the
    /// user's row, so the events of one busy user (a partner's house account,
    /// say) do not queue behind each other's commits; it may pass any state,
    /// such as [`KycState::NOT_STARTED`].
    pub fn reads_kyc(&self) -> bool {
        self.event.kyc_status.is_some()
    }

    /// The effects of the event on a transaction in `stored` state whose user
    /// has `kyc`. Pure: the store calls it under its row locks.
    ///
    /// The status moves only as [`crate::status::transition`] allows; reported
    /// amounts, fiat currency and payment method are recorded with an applied
    /// move. A KYC status is taken when it is newer (by `occurred_at`) than the
    /// last one.
    pub fn effects(&self, stored: &StoredSession, kyc: &KycState) -> EventEffects {
        let event = &self.event;
        let current = &stored.state;
        let decision = crate::status::transition(current.status, event.status);
        let state = (decision == Transition::Apply).then(|| TxState {
            status: event.status,
            crypto_amount: event
                .crypto_amount
                .as_ref()
                .map(|a| a.as_str().to_owned())
                .or_else(|| current.crypto_amount.clone()),
            fiat_amount: event
                .fiat_amount
                .as_ref()
                .map(|a| a.as_str().to_owned())
                .or_else(|| current.fiat_amount.clone()),
            fiat_currency: event
                .fiat_currency
                .clone()
                .unwrap_or_else(|| current.fiat_currency.clone()),
            payment_method: event
                .payment_method
                .clone()
                .or_else(|| current.payment_method.clone()),
            updated_at: self.now,
        });
        let outbox = state.as_ref().map(|state| {
            let session = &stored.session;
            StatusChanged {
                merchant_transaction_id: session.merchant_transaction_id,
                partner_id: session.partner_id.clone(),
                tx_type: session.tx_type,
                status: state.status,
                currency: session.currency.clone(),
                network: session.network.clone(),
                crypto_amount: state.crypto_amount.clone(),
                fiat_currency: state.fiat_currency.clone(),
                fiat_amount: state.fiat_amount.clone(),
                payment_method: state.payment_method.clone(),
                created_at: session.created_at,
                updated_at: state.updated_at,
                occurred_at: event.occurred_at,
            }
        });
        let newer_kyc = |status| {
            kyc.updated_at
                .is_none_or(|last| event.occurred_at > last)
                .then_some(status)
        };
        let kyc = event
            .kyc_status
            .and_then(newer_kyc)
            .filter(|status| *status != kyc.status || kyc.updated_at.is_none())
            .map(|status| KycState {
                status,
                updated_at: Some(event.occurred_at),
            });
        EventEffects {
            decision,
            status_after: state.as_ref().map_or(current.status, |s| s.status),
            state,
            kyc,
            outbox,
        }
    }
}
