//! GUID-shaped identifiers (32 lowercase hex digits, no dashes) from a seedable generator.
//!
//! SPEC §1.3 shows `sequenceId` and `inferenceId` as GUIDs without dashes. A seeded
//! SplitMix64 stream makes them reproducible in tests; production seeds from entropy.
//! The values are version-4 UUIDs, so tools that parse GUIDs accept them.

/// A stream of identifiers. Clone it only to replay the same stream.
#[derive(Clone, Debug)]
pub struct IdGen {
    state: u64,
}

impl IdGen {
    /// The same seed gives the same identifiers, in the same order.
    pub fn seeded(seed: u64) -> Self {
        IdGen { state: seed }
    }

    /// A stream nobody can predict (distinct across instances and restarts).
    pub fn from_entropy() -> Self {
        IdGen { state: rand::random() }
    }

    fn next_u64(&mut self) -> u64 {
        // SplitMix64: full period, and good enough mixing that consecutive seeds do not collide.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next identifier: 32 lowercase hex digits.
    pub fn next_id(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut buf = [0u8; uuid::fmt::Simple::LENGTH];
        id.simple().encode_lower(&mut buf).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_digits_v4_and_reproducible() {
        let mut a = IdGen::seeded(7);
        let mut b = IdGen::seeded(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = a.next_id();
            assert_eq!(id, b.next_id());
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{id}");
            assert_eq!(&id[12..13], "4", "version nibble of {id}");
            assert!(seen.insert(id));
        }
        assert_ne!(IdGen::seeded(8).next_id(), IdGen::seeded(7).next_id());
    }
}
