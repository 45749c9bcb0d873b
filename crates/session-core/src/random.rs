//! Randomness as an input: production draws from a CSPRNG, tests from a script.

/// A source of cryptographically secure random bytes.
pub trait Random: Send + Sync {
    fn fill(&self, dest: &mut [u8]);
}

/// A random version 4 UUID drawn from `random`.
pub fn uuid_v4(random: &dyn Random) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    random.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A fresh secret: 32 bytes drawn from `random`, as 64 lowercase hex digits.
pub fn hex_secret(random: &dyn Random) -> String {
    let mut bytes = [0u8; 32];
    random.fill(&mut bytes);
    hex::encode(bytes)
}
