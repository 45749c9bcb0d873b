//! The partner's own record of its orders: what the verified webhooks said
//! about each, for its page. A real backend keeps this in its database.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde_json::json;

#[derive(Debug, Default)]
pub struct Orders {
    inner: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    /// By `merchant_transaction_id`: the statuses reported, in order.
    orders: HashMap<String, Vec<String>>,
    /// `webhook-id`s already applied: a redelivery changes nothing.
    seen: HashSet<String>,
}

impl Orders {
    /// Records an order the service opened a session for.
    pub fn opened(&self, merchant_transaction_id: &str) {
        self.book()
            .orders
            .insert(merchant_transaction_id.to_owned(), vec!["pending".into()]);
    }

    /// Applies a verified webhook once. `false` for an order this backend did
    /// not open (acknowledged all the same: the service must not retry it).
    pub fn reported(&self, webhook_id: &str, merchant_transaction_id: &str, status: &str) -> bool {
        let mut book = self.book();
        if !book.seen.insert(webhook_id.to_owned()) {
            return true;
        }
        match book.orders.get_mut(merchant_transaction_id) {
            Some(statuses) => {
                statuses.push(status.to_owned());
                true
            }
            None => false,
        }
    }

    /// What the page shows: the latest status and every one reported.
    pub fn view(&self, merchant_transaction_id: &str) -> Option<serde_json::Value> {
        let book = self.book();
        let statuses = book.orders.get(merchant_transaction_id)?;
        Some(json!({
            "merchant_transaction_id": merchant_transaction_id,
            "status": statuses.last(),
            "history": statuses,
        }))
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic while holding the lock leaves a consistent map behind.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redelivered_webhook_is_applied_once() {
        let orders = Orders::default();
        orders.opened("m1");
        assert!(orders.reported("w1", "m1", "processing"));
        assert!(orders.reported("w1", "m1", "processing"));
        assert!(orders.reported("w2", "m1", "completed"));
        let view = orders.view("m1").expect("known");
        assert_eq!(view["status"], "completed");
        assert_eq!(
            view["history"],
            json!(["pending", "processing", "completed"])
        );
        assert!(!orders.reported("w3", "unknown", "completed"));
        assert_eq!(orders.view("unknown"), None);
    }
}
