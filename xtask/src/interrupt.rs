//! Ctrl-C and SIGTERM become a flag instead of sudden death, so guards such as the
//! throwaway PostgreSQL cluster still stop and clean up.
//!
//! The terminal delivers Ctrl-C to the whole process group: the running child (cargo,
//! initdb) dies of it, its wait returns, and the error unwinds through the guards.
//! A second Ctrl-C exits at once, for when cleanup itself hangs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::{Error, Result};

static REQUESTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers; call once, early in `main`.
pub fn install() -> Result<()> {
    let flag = REQUESTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal set it.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(flag))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(flag)))
            .map_err(|e| Error::failed(format!("cannot install the Ctrl-C handler: {e}")))?;
    }
    Ok(())
}

/// Whether the user asked us to stop.
pub fn requested() -> bool {
    REQUESTED
        .get()
        .is_some_and(|flag| flag.load(Ordering::SeqCst))
}

/// `Err(Interrupted)` once the user asked us to stop; checked between steps.
pub fn check() -> Result<()> {
    if requested() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}
