//! Places under a per-address cap and a total cap: what bounds the TCP
//! connections of a node and its Engine.IO sessions alike.
//!
//! Guarantees: taking a place checks both caps and counts it under one
//! `std::sync::Mutex` (never held across `.await`); a [`Place`] frees itself
//! when dropped, whatever path drops it; an address leaves the table with its
//! last place (the table empties when everyone leaves). Addresses are keyed by
//! [`client_key`](crate::client_key): IPv4 as is, IPv6 by its /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Which cap a refused place was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapExceeded {
    PerAddress,
    Total,
}

#[derive(Default)]
struct Table {
    total: usize,
    /// Removal path: an address leaves when its last place is freed.
    per_address: HashMap<IpAddr, usize>,
}

/// The counts behind the caps. Shared (`Arc`) by every [`Place`] it gave.
pub struct AddressCaps {
    per_address: usize,
    total: usize,
    table: Mutex<Table>,
}

/// A place under the caps; dropping it frees it.
pub struct Place {
    caps: Arc<AddressCaps>,
    key: Option<IpAddr>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut t = self.caps.lock();
        t.total = t.total.saturating_sub(1);
        if let Some(key) = self.key {
            if let Some(n) = t.per_address.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    t.per_address.remove(&key);
                }
            }
        }
    }
}

impl AddressCaps {
    /// At most `per_address` places per client address and `total` in all.
    pub fn new(per_address: usize, total: usize) -> Arc<AddressCaps> {
        Arc::new(AddressCaps {
            per_address,
            total,
            table: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for `peer` (`None`: an unknown address, counted in the total
    /// only), or the cap it is over.
    pub fn admit(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<Place, CapExceeded> {
        let key = peer.map(crate::client_key);
        let mut t = self.lock();
        if t.total >= self.total {
            return Err(CapExceeded::Total);
        }
        if let Some(k) = key {
            let n = t.per_address.get(&k).copied().unwrap_or(0);
            if n >= self.per_address {
                return Err(CapExceeded::PerAddress);
            }
            t.per_address.insert(k, n + 1);
        }
        t.total += 1;
        drop(t);
        Ok(Place {
            caps: self.clone(),
            key,
        })
    }

    /// Places taken now.
    pub fn taken(&self) -> usize {
        self.lock().total
    }

    /// Client addresses holding a place now (the table's size).
    pub fn addresses(&self) -> usize {
        self.lock().per_address.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("an address"))
    }

    #[test]
    fn caps_per_address_and_in_total() {
        let caps = AddressCaps::new(2, 3);
        let a1 = caps.admit(ip("10.0.0.1")).expect("first");
        let a2 = caps.admit(ip("10.0.0.1")).expect("second");
        assert_eq!(
            caps.admit(ip("10.0.0.1")).err(),
            Some(CapExceeded::PerAddress)
        );
        let b = caps.admit(ip("2001:db8::1")).expect("v6");
        assert_eq!(caps.admit(ip("10.0.0.9")).err(), Some(CapExceeded::Total));
        assert_eq!(caps.admit(None).err(), Some(CapExceeded::Total));
        drop(a1);
        let again = caps
            .admit(ip("10.0.0.1"))
            .expect("a freed place is free again");
        assert_eq!(caps.taken(), 3);
        drop((a2, b, again));
        assert_eq!((caps.taken(), caps.addresses()), (0, 0));
    }

    #[test]
    fn the_table_empties() {
        let caps = AddressCaps::new(2, 10);
        let places: Vec<_> = ["10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2"]
            .iter()
            .map(|a| caps.admit(ip(a)).expect("a place"))
            .collect();
        let unknown = caps.admit(None).expect("counted in the total only");
        assert_eq!((caps.taken(), caps.addresses()), (5, 3));
        assert_eq!(
            caps.admit(ip("2001:db8::3")).err(),
            Some(CapExceeded::PerAddress),
            "one /64, two places"
        );
        drop(places);
        drop(unknown);
        assert_eq!((caps.taken(), caps.addresses()), (0, 0));
    }
}
