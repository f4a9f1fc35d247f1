//! Sessions per device: a login claims one of its device's slots and holds it
//! until its session ends, so one device (or one stolen key) cannot take every
//! session slot of the server, nor multiply the memory a session may hold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Counts the sessions of each device, up to a limit per device.
#[derive(Clone)]
pub struct DeviceSlots {
    limit: usize,
    taken: Arc<Mutex<HashMap<String, usize>>>,
}

/// One device's claim on a session slot; dropping it frees the slot.
#[derive(Debug)]
pub struct DeviceSlot {
    device: String,
    taken: Arc<Mutex<HashMap<String, usize>>>,
}

impl DeviceSlots {
    /// Allows `limit` sessions per device.
    pub fn new(limit: usize) -> DeviceSlots {
        DeviceSlots {
            limit,
            taken: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The most sessions one device may have.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Claims a slot for `device`; `None` when it already has `limit` sessions.
    pub fn claim(&self, device: &str) -> Option<DeviceSlot> {
        let mut taken = lock(&self.taken);
        let count = taken.entry(device.to_string()).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(DeviceSlot {
            device: device.to_string(),
            taken: self.taken.clone(),
        })
    }
}

impl Drop for DeviceSlot {
    fn drop(&mut self) {
        let mut taken = lock(&self.taken);
        if let Some(count) = taken.get_mut(&self.device) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                taken.remove(&self.device);
            }
        }
    }
}

fn lock(taken: &Mutex<HashMap<String, usize>>) -> MutexGuard<'_, HashMap<String, usize>> {
    taken.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_gets_at_most_its_limit_and_a_freed_slot_can_be_claimed_again() {
        let slots = DeviceSlots::new(2);
        let first = slots.claim("a").expect("first");
        let _second = slots.claim("a").expect("second");
        assert!(slots.claim("a").is_none(), "a third is over the limit");
        assert!(slots.claim("b").is_some(), "other devices are not affected");
        drop(first);
        assert!(slots.claim("a").is_some(), "a freed slot is free");
    }
}
