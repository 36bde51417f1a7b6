//! The learner tables `pinned_flows` and `pinned_flows_reverse`: connection
//! state, learned by the workers themselves and shared by all of them.
//!
//! A flow's two directions may arrive on different workers, so the table is
//! shared rather than per worker. Lookups take no lock: each bucket carries
//! a sequence number (a seqlock), readers retry if a writer changed the
//! bucket while they read it. Learning a flow (rare: once per connection
//! per direction) takes the bucket's sequence number odd with one CAS, so
//! learners of the same bucket serialise while readers never wait on them.
//!
//! Layout: buckets of four slots in two 64-byte cache lines; a key may live
//! in either of two buckets (two-choice hashing), the table is sized for a
//! load of at most one half. Each slot is three 64-bit words: two of key,
//! one of value (valid bit, expiry class, last-hit time in ms, 24-bit
//! pointer). Entries expire when their class's timeout passes since their
//! last hit: a lookup treats an expired entry as a miss and a learn reuses
//! its slot, so no sweeper thread is needed. Every hit refreshes the entry
//! (upstream never does, and loses busy connections at the timeout).

use std::sync::atomic::{fence, AtomicU64, Ordering};

/// The 5-tuple key of a learned flow.
///
/// IPv4 now; the table stores keys as 64-bit words, so IPv6 keys (five
/// words) can use the same layout with a wider slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// Source address.
    pub src_ip: u32,
    /// Destination address.
    pub dst_ip: u32,
    /// IP protocol.
    pub proto: u8,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl FlowKey {
    #[inline]
    fn words(&self) -> [u64; 2] {
        [
            u64::from(self.src_ip) << 32 | u64::from(self.dst_ip),
            // Bit 63 marks a used key word, so an all-zero key still differs
            // from an empty slot.
            1 << 63
                | u64::from(self.proto) << 32
                | u64::from(self.src_port) << 16
                | u64::from(self.dst_port),
        ]
    }

    fn from_words(w: [u64; 2]) -> Self {
        FlowKey {
            src_ip: (w[0] >> 32) as u32,
            dst_ip: w[0] as u32,
            proto: (w[1] >> 32) as u8,
            src_port: (w[1] >> 16) as u16,
            dst_port: w[1] as u16,
        }
    }

    /// A well-mixed 64-bit hash of the key (both bucket choices come from it).
    #[inline]
    pub fn hash(&self) -> u64 {
        let [a, b] = self.words();
        let x = (a ^ b.rotate_left(23)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let x = (x ^ (x >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^ (x >> 29) ^ b.wrapping_mul(0x94d0_49bb_1331_11eb)
    }

    /// The key of the other direction of the same flow.
    pub fn reversed(&self) -> Self {
        FlowKey {
            src_ip: self.dst_ip,
            dst_ip: self.src_ip,
            proto: self.proto,
            src_port: self.dst_port,
            dst_port: self.src_port,
        }
    }
}

/// A learned entry as read by the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEntry {
    /// The flow.
    pub key: FlowKey,
    /// The NAT pointer the entry's hit action carries.
    pub ptr: u32,
    /// Expiry class.
    pub class: u8,
    /// Milliseconds since the last hit (or the learn).
    pub idle_ms: u64,
}

/// What a learn did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnOutcome {
    /// A new entry was added.
    Added,
    /// The key was already present (another worker learned it first); its
    /// pointer is returned.
    Exists(u32),
    /// Both candidate buckets are full of live entries.
    Full,
}

const SLOTS: usize = 4;
const VALID: u64 = 1 << 63;
const CLASS_SHIFT: u32 = 60;
const TIME_SHIFT: u32 = 24;
const TIME_MASK: u64 = (1 << 36) - 1;
const PTR_MASK: u64 = (1 << 24) - 1;
/// Hits refresh the stored time only when it is this stale (ms), so a busy
/// flow does not write its cache line on every packet.
const REFRESH_GRANULARITY_MS: u64 = 16;

/// Milliseconds from the time `at` stored in an entry to `now_ms`, in the
/// entry's 36-bit time field. Each worker reads the clock once per burst, so
/// another worker may have stamped the entry after this one read its clock:
/// a stamp up to half the field's range in the future is "now" (age 0), not
/// a wrapped age of 2^36 ms that would expire a live connection.
#[inline]
fn age_ms(at: u64, now_ms: u64) -> u64 {
    let age = (now_ms & TIME_MASK).wrapping_sub(at) & TIME_MASK;
    if age > TIME_MASK / 2 {
        0
    } else {
        age
    }
}

#[inline]
fn pack(ptr: u32, class: u8, now_ms: u64) -> u64 {
    VALID
        | u64::from(class & 7) << CLASS_SHIFT
        | (now_ms & TIME_MASK) << TIME_SHIFT
        | (u64::from(ptr) & PTR_MASK)
}

#[derive(Debug, Default)]
struct Slot {
    key: [AtomicU64; 2],
    value: AtomicU64,
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Bucket {
    seq: AtomicU64,
    /// Set once a key whose first choice is this bucket was put in its
    /// second choice: only then must a miss here look at the second bucket.
    overflow: AtomicU64,
    slots: [Slot; SLOTS],
}

/// A snapshot of one slot, read consistently.
#[derive(Clone, Copy)]
struct SlotRead {
    key: [u64; 2],
    value: u64,
}

/// A learner table (see the module documentation).
#[derive(Debug)]
pub struct FlowTable {
    buckets: Box<[Bucket]>,
    mask: u64,
    expiry_ms: [u64; 8],
    capacity: usize,
}

impl FlowTable {
    /// A table for at least `capacity` flows, with the timeouts of each expiry class.
    pub fn new(capacity: usize, expiry_ms: [u64; 8]) -> Self {
        let slots = (capacity.max(SLOTS) * 2).next_power_of_two();
        let n = slots / SLOTS;
        let buckets = crate::hugepages::vec_on_huge_pages(n, Bucket::default);
        FlowTable {
            buckets: buckets.into_boxed_slice(),
            mask: (n - 1) as u64,
            expiry_ms,
            capacity,
        }
    }

    /// The capacity asked for at creation.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The timeouts of the expiry classes.
    pub fn expiry_ms(&self) -> [u64; 8] {
        self.expiry_ms
    }

    #[inline]
    fn bucket_indices(&self, hash: u64) -> (usize, usize) {
        let a = hash & self.mask;
        let mut b = (hash >> 32 ^ hash >> 17) & self.mask;
        if b == a {
            b = (a + 1) & self.mask;
        }
        (a as usize, b as usize)
    }

    /// Hints the CPU to fetch the first-choice bucket of `hash` (call a
    /// batch stage ahead of the lookup, so misses overlap).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        let (a, _) = self.bucket_indices(hash);
        let bucket: &Bucket = &self.buckets[a];
        crate::prefetch::prefetch(bucket);
        crate::prefetch::prefetch(&bucket.slots[SLOTS - 1]);
    }

    /// The candidate buckets of `hash`: the first, and the second only when
    /// the first has overflowed.
    #[inline]
    fn candidates(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let (a, b) = self.bucket_indices(hash);
        std::iter::once(a).chain(
            std::iter::once(b)
                .filter(move |_| self.buckets[a].overflow.load(Ordering::Acquire) != 0),
        )
    }

    #[inline]
    fn expired(&self, value: u64, now_ms: u64) -> bool {
        let class = ((value >> CLASS_SHIFT) & 7) as usize;
        let at = (value >> TIME_SHIFT) & TIME_MASK;
        age_ms(at, now_ms) > self.expiry_ms[class]
    }

    /// Reads a bucket's slots consistently (seqlock read side).
    #[inline]
    fn read_bucket(bucket: &Bucket) -> [SlotRead; SLOTS] {
        loop {
            let s1 = bucket.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let mut out = [SlotRead {
                key: [0; 2],
                value: 0,
            }; SLOTS];
            for (o, slot) in out.iter_mut().zip(bucket.slots.iter()) {
                o.key = [
                    slot.key[0].load(Ordering::Relaxed),
                    slot.key[1].load(Ordering::Relaxed),
                ];
                o.value = slot.value.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if bucket.seq.load(Ordering::Relaxed) == s1 {
                return out;
            }
        }
    }

    /// Finds the live slot holding `words` in `bucket` (seqlock read side:
    /// compares in place, slot by slot, and retries if a writer changed the
    /// bucket meanwhile). Returns the slot index and its value word.
    #[inline]
    fn find_in(&self, bucket: &Bucket, words: [u64; 2], now_ms: u64) -> Option<(usize, u64)> {
        loop {
            let s1 = bucket.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let mut found = None;
            for (i, slot) in bucket.slots.iter().enumerate() {
                // Key words first: a mismatch (the common case) costs one load.
                if slot.key[1].load(Ordering::Relaxed) == words[1]
                    && slot.key[0].load(Ordering::Relaxed) == words[0]
                {
                    found = Some((i, slot.value.load(Ordering::Relaxed)));
                    break;
                }
            }
            fence(Ordering::Acquire);
            if bucket.seq.load(Ordering::Relaxed) == s1 {
                return found.filter(|(_, v)| v & VALID != 0 && !self.expired(*v, now_ms));
            }
        }
    }

    /// Looks `key` up; on a hit returns its pointer and refreshes its
    /// expiry, moving the entry to expiry class `demote_to` when given (a
    /// closing connection).
    #[inline(always)]
    pub fn lookup(
        &self,
        key: &FlowKey,
        hash: u64,
        now_ms: u64,
        demote_to: Option<u8>,
    ) -> Option<u32> {
        let words = key.words();
        let a = (hash & self.mask) as usize;
        let (idx, slot, value) = match self.find_in(&self.buckets[a], words, now_ms) {
            Some((slot, value)) => (a, slot, value),
            // The second choice only matters once the first has overflowed.
            None if self.buckets[a].overflow.load(Ordering::Acquire) != 0 => {
                let (_, b) = self.bucket_indices(hash);
                let (slot, value) = self.find_in(&self.buckets[b], words, now_ms)?;
                (b, slot, value)
            }
            None => return None,
        };
        let at = (value >> TIME_SHIFT) & TIME_MASK;
        let class = ((value >> CLASS_SHIFT) & 7) as u8;
        let new_class = demote_to.unwrap_or(class);
        if new_class != class || age_ms(at, now_ms) >= REFRESH_GRANULARITY_MS {
            let fresh = pack((value & PTR_MASK) as u32, new_class, now_ms);
            // Only if the slot still holds what we read: a slot reused by
            // another flow meanwhile keeps its own value.
            let _ = self.buckets[idx].slots[slot].value.compare_exchange(
                value,
                fresh,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        Some((value & PTR_MASK) as u32)
    }

    /// Takes a bucket's write lock (sequence odd); returns the even value held before.
    #[inline]
    fn lock(bucket: &Bucket) -> u64 {
        loop {
            let s = bucket.seq.load(Ordering::Relaxed);
            if s & 1 == 0
                && bucket
                    .seq
                    .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return s;
            }
            std::hint::spin_loop();
        }
    }

    #[inline]
    fn unlock(bucket: &Bucket, held: u64) {
        bucket.seq.store(held + 2, Ordering::Release);
    }

    /// Learns `key -> ptr` with expiry `class` unless it is present.
    pub fn learn(
        &self,
        key: &FlowKey,
        hash: u64,
        ptr: u32,
        class: u8,
        now_ms: u64,
    ) -> LearnOutcome {
        let words = key.words();
        let value = pack(ptr, class, now_ms);
        let (a, b) = self.bucket_indices(hash);
        // Present in the second bucket already? (Checked first so a key is
        // never added to the first bucket while it lives in the second.)
        if self.buckets[a].overflow.load(Ordering::Acquire) != 0 {
            if let Some((_, v)) = self.find_in(&self.buckets[b], words, now_ms) {
                return LearnOutcome::Exists((v & PTR_MASK) as u32);
            }
        }
        for idx in [a, b] {
            let bucket = &self.buckets[idx];
            let held = Self::lock(bucket);
            let mut free = None;
            for (i, slot) in bucket.slots.iter().enumerate() {
                let v = slot.value.load(Ordering::Relaxed);
                let live = v & VALID != 0 && !self.expired(v, now_ms);
                if live {
                    let k = [
                        slot.key[0].load(Ordering::Relaxed),
                        slot.key[1].load(Ordering::Relaxed),
                    ];
                    if k == words {
                        Self::unlock(bucket, held);
                        return LearnOutcome::Exists((v & PTR_MASK) as u32);
                    }
                } else if free.is_none() {
                    free = Some(i);
                }
            }
            if let Some(i) = free {
                if idx == b {
                    self.buckets[a].overflow.store(1, Ordering::Release);
                }
                let slot = &bucket.slots[i];
                slot.key[0].store(words[0], Ordering::Relaxed);
                slot.key[1].store(words[1], Ordering::Relaxed);
                slot.value.store(value, Ordering::Relaxed);
                Self::unlock(bucket, held);
                return LearnOutcome::Added;
            }
            Self::unlock(bucket, held);
        }
        LearnOutcome::Full
    }

    /// Removes `key` if it is live in expiry class `class` (a closed
    /// connection's flow that a new connection on the same addresses and
    /// ports supersedes); true when it did. Reads without the lock and
    /// locks the bucket only to clear a match.
    pub fn remove_in_class(&self, key: &FlowKey, hash: u64, class: u8, now_ms: u64) -> bool {
        let words = key.words();
        for idx in self.candidates(hash) {
            let bucket = &self.buckets[idx];
            let Some((i, v)) = self.find_in(bucket, words, now_ms) else {
                continue;
            };
            if ((v >> CLASS_SHIFT) & 7) as u8 != class {
                return false;
            }
            let held = Self::lock(bucket);
            let slot = &bucket.slots[i];
            // Only if the slot still holds that flow as read.
            let same = slot.value.load(Ordering::Relaxed) == v
                && slot.key[0].load(Ordering::Relaxed) == words[0]
                && slot.key[1].load(Ordering::Relaxed) == words[1];
            if same {
                slot.value.store(0, Ordering::Relaxed);
            }
            Self::unlock(bucket, held);
            return same;
        }
        false
    }

    /// Removes `key`; returns its pointer when it was present and live.
    pub fn remove(&self, key: &FlowKey, now_ms: u64) -> Option<u32> {
        let words = key.words();
        let (a, b) = self.bucket_indices(key.hash());
        let mut found = None;
        for idx in [a, b] {
            let bucket = &self.buckets[idx];
            let held = Self::lock(bucket);
            for slot in &bucket.slots {
                let v = slot.value.load(Ordering::Relaxed);
                let k = [
                    slot.key[0].load(Ordering::Relaxed),
                    slot.key[1].load(Ordering::Relaxed),
                ];
                if v & VALID != 0 && k == words {
                    if !self.expired(v, now_ms) {
                        found = Some((v & PTR_MASK) as u32);
                    }
                    slot.value.store(0, Ordering::Relaxed);
                }
            }
            Self::unlock(bucket, held);
        }
        found
    }

    /// The live entry of `key`, if any.
    pub fn get(&self, key: &FlowKey, now_ms: u64) -> Option<FlowEntry> {
        self.candidates(key.hash()).find_map(|idx| {
            self.find_in(&self.buckets[idx], key.words(), now_ms)
                .map(|(_, v)| self.entry(*key, v, now_ms))
        })
    }

    fn entry(&self, key: FlowKey, v: u64, now_ms: u64) -> FlowEntry {
        let at = (v >> TIME_SHIFT) & TIME_MASK;
        FlowEntry {
            key,
            ptr: (v & PTR_MASK) as u32,
            class: ((v >> CLASS_SHIFT) & 7) as u8,
            idle_ms: age_ms(at, now_ms),
        }
    }

    /// Every live entry (a full scan: control path only).
    pub fn entries(&self, now_ms: u64) -> Vec<FlowEntry> {
        let mut out = Vec::new();
        for bucket in self.buckets.iter() {
            for s in Self::read_bucket(bucket) {
                if s.value & VALID != 0 && !self.expired(s.value, now_ms) {
                    out.push(self.entry(FlowKey::from_words(s.key), s.value, now_ms));
                }
            }
        }
        out
    }

    /// Live entries (a full scan: control path only).
    pub fn len(&self, now_ms: u64) -> usize {
        self.buckets
            .iter()
            .map(|b| {
                Self::read_bucket(b)
                    .iter()
                    .filter(|s| s.value & VALID != 0 && !self.expired(s.value, now_ms))
                    .count()
            })
            .sum()
    }

    /// Removes every entry.
    pub fn clear(&self) {
        for bucket in self.buckets.iter() {
            let held = Self::lock(bucket);
            for slot in &bucket.slots {
                slot.value.store(0, Ordering::Relaxed);
            }
            Self::unlock(bucket, held);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn key(n: u32) -> FlowKey {
        FlowKey {
            src_ip: 0x0a00_0000 | n,
            dst_ip: 0x0a60_0001,
            proto: 6,
            src_port: (n % 60000) as u16,
            dst_port: 80,
        }
    }

    #[test]
    fn learn_lookup_remove() {
        let t = FlowTable::new(64, [1000; 8]);
        let k = key(1);
        assert_eq!(t.lookup(&k, k.hash(), 0, None), None);
        assert_eq!(t.learn(&k, k.hash(), 42, 2, 0), LearnOutcome::Added);
        assert_eq!(t.learn(&k, k.hash(), 43, 2, 0), LearnOutcome::Exists(42));
        assert_eq!(t.lookup(&k, k.hash(), 10, None), Some(42));
        assert_eq!(t.get(&k, 10).unwrap().class, 2);
        assert_eq!(t.entries(10).len(), 1);
        assert_eq!(t.remove(&k, 10), Some(42));
        assert_eq!(t.lookup(&k, k.hash(), 10, None), None);
        assert_eq!(t.remove(&k, 10), None);
    }

    #[test]
    fn entries_expire_unless_hit_and_slots_are_reused() {
        let mut timeouts = [10_000; 8];
        timeouts[1] = 100;
        let t = FlowTable::new(64, timeouts);
        let k = key(2);
        t.learn(&k, k.hash(), 7, 1, 1_000);
        // Hits keep it alive past the timeout after the learn.
        for now in (1_050..=1_400).step_by(50) {
            assert_eq!(t.lookup(&k, k.hash(), now, None), Some(7), "at {now}");
        }
        assert_eq!(t.lookup(&k, k.hash(), 1_600, None), None);
        assert_eq!(t.len(1_600), 0);
        assert_eq!(t.learn(&k, k.hash(), 8, 1, 1_600), LearnOutcome::Added);
        assert_eq!(t.lookup(&k, k.hash(), 1_601, None), Some(8));
    }

    /// Two workers read the clock at different times: one stamps an entry
    /// at 1,000 ms while the other, whose burst began at 990 ms, still
    /// looks it up. That lookup must hit (it used to see an age of 2^36 ms
    /// and miss, so a busy connection's replies went out un-NATed), and must
    /// not move the stamp back; real expiry still works.
    #[test]
    fn a_stamp_newer_than_the_readers_clock_is_fresh() {
        let t = FlowTable::new(64, [100; 8]);
        let k = key(3);
        t.learn(&k, k.hash(), 9, 0, 1_000);
        assert_eq!(t.lookup(&k, k.hash(), 990, None), Some(9));
        assert_eq!(t.get(&k, 990).map(|e| e.idle_ms), Some(0));
        assert_eq!(t.get(&k, 1_050).map(|e| e.idle_ms), Some(50));
        assert_eq!(t.lookup(&k, k.hash(), 1_101, None), None);
    }

    #[test]
    fn fills_to_capacity_and_reports_full() {
        let t = FlowTable::new(1024, [60_000; 8]);
        let mut added = 0;
        let mut full = 0;
        for n in 0..4096 {
            let k = key(n);
            match t.learn(&k, k.hash(), n & 0xff_ffff, 0, 0) {
                LearnOutcome::Added => added += 1,
                LearnOutcome::Full => full += 1,
                LearnOutcome::Exists(_) => panic!("distinct keys"),
            }
        }
        assert!(
            added >= 1024,
            "two-choice buckets should hold the capacity asked for: {added}"
        );
        assert!(full > 0);
        for n in 0..4096 {
            let k = key(n);
            if let Some(p) = t.lookup(&k, k.hash(), 1, None) {
                assert_eq!(p, n);
            }
        }
    }

    #[test]
    fn concurrent_learners_and_readers_agree() {
        let t = Arc::new(FlowTable::new(1 << 14, [60_000; 8]));
        let threads: Vec<_> = (0..4)
            .map(|w| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for n in 0..8000u32 {
                        let k = key(n);
                        match t.learn(&k, k.hash(), n, 0, 0) {
                            LearnOutcome::Added | LearnOutcome::Exists(_) => {}
                            LearnOutcome::Full => panic!("worker {w}: table full"),
                        }
                        assert_eq!(t.lookup(&k, k.hash(), 0, None), Some(n));
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(t.len(0), 8000);
    }
}
