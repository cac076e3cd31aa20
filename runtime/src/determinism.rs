//! What makes a plugin deterministic: the wall clock, monotonic clock and random
//! sources it sees through WASI are set by the host before every call, so a
//! replayed call (same inputs, same [`CallContext`]) gives the same output.

use rand_core::TryRng;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// The replayable values a host supplies for one call. The default (clock at
/// the epoch, seed 0) is the fixed context `manifest` and `configure` run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallContext {
    /// What the plugin's wall clock reads, in nanoseconds since the Unix epoch.
    /// It stands still during the call.
    pub clock_nanos: u64,
    /// The seed of every random source the plugin sees during the call.
    pub seed: u64,
}

impl CallContext {
    /// A context whose clock reads the host's current time, seeded with `seed`.
    pub fn now(seed: u64) -> Self {
        let clock_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        CallContext { clock_nanos, seed }
    }
}

/// A clock that reads whatever the host set last, for both WASI clocks. The
/// monotonic clock reads the same instant, so it never goes backwards as long
/// as the host's call contexts do not.
#[derive(Debug, Clone, Default)]
pub struct VirtualClock {
    nanos: Arc<AtomicU64>,
}

impl VirtualClock {
    /// Sets the time the plugin will read.
    pub fn set(&self, nanos: u64) {
        self.nanos.store(nanos, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }
}

impl HostWallClock for VirtualClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        Duration::from_nanos(self.get())
    }
}

impl HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.get()
    }
}

/// A random source reseeded by the host before every call (SplitMix64). It is
/// not cryptographically secure; plugins have no business needing that.
#[derive(Debug, Clone, Default)]
pub struct SeededRandom {
    state: Arc<Mutex<u64>>,
}

impl SeededRandom {
    /// Restarts the sequence from `seed`.
    pub fn reseed(&self, seed: u64) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = seed;
    }

    fn next(&self) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl TryRng for SeededRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.next() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reseeding_replays_the_sequence() {
        let mut random = SeededRandom::default();
        random.reseed(42);
        let mut first = [0u8; 20];
        random.try_fill_bytes(&mut first).unwrap();
        random.reseed(42);
        let mut again = [0u8; 20];
        random.try_fill_bytes(&mut again).unwrap();
        assert_eq!(first, again);
        random.reseed(43);
        random.try_fill_bytes(&mut again).unwrap();
        assert_ne!(first, again);
    }

    #[test]
    fn clock_reads_what_was_set() {
        let clock = VirtualClock::default();
        clock.set(1_700_000_000_000_000_000);
        assert_eq!(
            HostWallClock::now(&clock),
            Duration::from_secs(1_700_000_000)
        );
        assert_eq!(HostMonotonicClock::now(&clock), 1_700_000_000_000_000_000);
    }
}
