//! The multiset of row hashes of the previous poll, and the comparison of a new scan with it.
//!
//! Memory: 24 bytes per distinct row (the hash, its multiplicity, and a counter used during a
//! scan) plus a bucket index of 4 bytes per power-of-two slot, about 28 MB for a million
//! distinct rows. A scan adds 16 bytes per row that appeared; finishing it grows the entry list
//! in place (no second copy of the multiset is ever built). Hashes are uniformly distributed,
//! so the index (the top bits of the hash) finds a row's bucket directly and buckets hold about
//! one entry: a lookup costs one or two cache misses, not a binary search.

use super::row_hash::RowHash;

#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: RowHash,
    /// Multiplicity in the previous poll.
    count: u32,
    /// Occurrences seen by the scan in progress.
    seen: u32,
}

/// Row hashes with multiplicities, sorted, with a bucket index.
#[derive(Debug, Clone, Default)]
pub struct HashMultiset {
    entries: Vec<Entry>,
    /// `starts[b]..starts[b + 1]` are the entries of bucket `b` (the top `bits` bits).
    starts: Vec<u32>,
    bits: u32,
    rows: u64,
}

impl HashMultiset {
    /// The empty multiset (a source never polled).
    pub fn new() -> HashMultiset {
        HashMultiset::from_counts(Vec::new())
    }

    /// Builds the multiset from `(hash, multiplicity)` pairs in any order; pairs with the same
    /// hash are added up and zero multiplicities dropped.
    pub fn from_counts(pairs: impl IntoIterator<Item = (RowHash, u32)>) -> HashMultiset {
        let entries = pairs
            .into_iter()
            .map(|(hash, count)| Entry {
                hash,
                count,
                seen: 0,
            })
            .collect();
        Self::indexed(normalised(entries))
    }

    fn indexed(entries: Vec<Entry>) -> HashMultiset {
        let bits = (entries.len().max(2) as u64)
            .next_power_of_two()
            .trailing_zeros()
            .min(22);
        let slots = 1usize << bits;
        let mut starts = vec![0u32; slots + 1];
        for e in &entries {
            starts[bucket(e.hash, bits) + 1] += 1;
        }
        for b in 0..slots {
            starts[b + 1] += starts[b];
        }
        let rows = entries.iter().map(|e| u64::from(e.count)).sum();
        HashMultiset {
            entries,
            starts,
            bits,
            rows,
        }
    }

    /// Number of rows (with multiplicity).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Number of distinct rows.
    pub fn distinct(&self) -> usize {
        self.entries.len()
    }

    /// Multiplicity of `hash`.
    pub fn count(&self, hash: RowHash) -> u32 {
        self.find(hash).map(|i| self.entries[i].count).unwrap_or(0)
    }

    fn find(&self, hash: RowHash) -> Option<usize> {
        let b = bucket(hash, self.bits);
        let (lo, hi) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        self.entries[lo..hi]
            .iter()
            .position(|e| e.hash == hash)
            .map(|i| lo + i)
    }
}

/// Collects `(hash, multiplicity)` pairs one at a time (as they stream in) into a
/// [`HashMultiset`], without an intermediate list.
#[derive(Debug, Default)]
pub struct MultisetBuilder {
    entries: Vec<Entry>,
}

impl MultisetBuilder {
    /// Adds `count` copies of `hash`.
    pub fn push(&mut self, hash: RowHash, count: u32) {
        self.entries.push(Entry {
            hash,
            count,
            seen: 0,
        });
    }

    /// The multiset (equal hashes added up, zero counts dropped).
    pub fn build(self) -> HashMultiset {
        let mut entries = self.entries;
        entries.shrink_to_fit();
        HashMultiset::indexed(normalised(entries))
    }
}

/// Sorts entries by hash, adds up the counts of equal hashes and drops zero counts, in place.
fn normalised(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_unstable_by_key(|e| e.hash);
    let mut kept = 0;
    for i in 0..entries.len() {
        let e = entries[i];
        if e.count == 0 {
            continue;
        }
        if kept > 0 && entries[kept - 1].hash == e.hash {
            entries[kept - 1].count = entries[kept - 1].count.saturating_add(e.count);
        } else {
            entries[kept] = e;
            kept += 1;
        }
    }
    entries.truncate(kept);
    entries
}

fn bucket(hash: RowHash, bits: u32) -> usize {
    (hash.prefix() >> (64 - bits)) as usize
}

/// What the comparison says of one scanned row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The previous poll had this row (one more occurrence of it is accounted for).
    Known,
    /// The row is new (or one more copy of a row than the previous poll had): it appeared.
    Appeared,
}

/// A scan in progress against the previous poll's multiset.
#[derive(Debug)]
pub struct Comparison {
    prev: HashMultiset,
    /// Hashes absent from `prev`, one per occurrence.
    new: Vec<RowHash>,
    scanned: u64,
    appeared: u64,
}

/// The result of a finished scan.
#[derive(Debug)]
pub struct Compared {
    /// Rows of the previous poll that the scan did not find at all (every copy went).
    pub vanished: Vec<RowHash>,
    /// Rows of which some copies went but not all: how many went.
    pub reduced: Vec<(RowHash, u32)>,
    /// Rows scanned.
    pub scanned: u64,
    /// Rows that appeared (each was reported as [`Seen::Appeared`]).
    pub appeared: u64,
    /// Rows that disappeared (the multiplicities of `disappeared` added up).
    pub disappeared_rows: u64,
    /// The multiset of this scan: the next poll's previous.
    pub next: HashMultiset,
}

impl Comparison {
    /// Starts a scan against `prev`.
    pub fn new(mut prev: HashMultiset) -> Comparison {
        for e in &mut prev.entries {
            e.seen = 0;
        }
        Comparison {
            prev,
            new: Vec::new(),
            scanned: 0,
            appeared: 0,
        }
    }

    /// Accounts for one scanned row.
    pub fn observe(&mut self, hash: RowHash) -> Seen {
        self.scanned += 1;
        if let Some(i) = self.prev.find(hash) {
            let e = &mut self.prev.entries[i];
            e.seen = e.seen.saturating_add(1);
            if e.seen <= e.count {
                return Seen::Known;
            }
        } else {
            self.new.push(hash);
        }
        self.appeared += 1;
        Seen::Appeared
    }

    /// Rows scanned so far.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// Gives the previous multiset back unchanged (the scan failed).
    pub fn abandon(self) -> HashMultiset {
        self.prev
    }

    /// Ends the scan: what disappeared, and the new multiset.
    pub fn finish(self) -> Compared {
        let mut vanished = Vec::new();
        let mut reduced = Vec::new();
        let mut disappeared_rows = 0;
        let mut entries = self.prev.entries;
        for e in &mut entries {
            if e.seen < e.count {
                if e.seen == 0 {
                    vanished.push(e.hash);
                } else {
                    reduced.push((e.hash, e.count - e.seen));
                }
                disappeared_rows += u64::from(e.count - e.seen);
            }
            e.count = e.seen;
            e.seen = 0;
        }
        let next = if self.new.is_empty() && vanished.is_empty() {
            // Counts changed in place at most: the sort order and the index still hold.
            HashMultiset {
                entries,
                starts: self.prev.starts,
                bits: self.prev.bits,
                rows: self.scanned,
            }
        } else {
            // Grown in place: the new hashes (no entry had them) join the list, which is sorted
            // again; equal new hashes are added up and emptied entries dropped.
            let mut new = self.new;
            entries.reserve_exact(new.len());
            entries.extend(new.drain(..).map(|hash| Entry {
                hash,
                count: 1,
                seen: 0,
            }));
            drop(new);
            HashMultiset::indexed(normalised(entries))
        };
        Compared {
            vanished,
            reduced,
            scanned: self.scanned,
            appeared: self.appeared,
            disappeared_rows,
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::hash_row;
    use std::collections::BTreeMap;

    fn h(s: &str) -> RowHash {
        hash_row(s.as_bytes())
    }

    fn disappeared(done: &Compared) -> BTreeMap<RowHash, u32> {
        let mut gone: BTreeMap<RowHash, u32> = done.reduced.iter().copied().collect();
        for h in &done.vanished {
            gone.insert(*h, u32::MAX);
        }
        gone
    }

    /// Scans `rows` against `prev`; returns the appeared rows, the disappeared counts and next.
    fn scan(prev: HashMultiset, rows: &[&str]) -> (Vec<String>, BTreeMap<RowHash, u32>, Compared) {
        let mut c = Comparison::new(prev);
        let mut appeared = Vec::new();
        for r in rows {
            if c.observe(h(r)) == Seen::Appeared {
                appeared.push(r.to_string());
            }
        }
        let done = c.finish();
        let gone = disappeared(&done);
        (appeared, gone, done)
    }

    #[test]
    fn first_poll_emits_every_row_with_duplicates() {
        let (appeared, gone, done) = scan(HashMultiset::new(), &["a", "b", "a", "\\N"]);
        assert_eq!(appeared, ["a", "b", "a", "\\N"]);
        assert!(gone.is_empty());
        assert_eq!(done.next.rows(), 4);
        assert_eq!(done.next.count(h("a")), 2);
    }

    #[test]
    fn multiplicities_are_compared() {
        let prev =
            HashMultiset::from_counts(vec![(h("a"), 2), (h("b"), 1), (h("c"), 3), (h("e"), 2)]);
        // One a gone, b unchanged, c one more, d new, both e gone.
        let (appeared, gone, done) = scan(prev, &["c", "a", "d", "c", "b", "c", "c"]);
        assert_eq!(appeared, ["d", "c"]);
        assert_eq!(gone, BTreeMap::from([(h("a"), 1), (h("e"), u32::MAX)]));
        assert_eq!(done.vanished, [h("e")]);
        assert_eq!(done.appeared, 2);
        assert_eq!(done.disappeared_rows, 3);
        assert_eq!(done.next.count(h("c")), 4);
        assert_eq!(done.next.count(h("a")), 1);
        assert_eq!(done.next.rows(), 7);
    }

    #[test]
    fn unchanged_scan_reports_nothing_and_abandon_keeps_counts() {
        let prev = HashMultiset::from_counts(vec![(h("a"), 2), (h("b"), 1)]);
        let (appeared, gone, done) = scan(prev.clone(), &["b", "a", "a"]);
        assert!(appeared.is_empty() && gone.is_empty());
        assert_eq!(done.next.rows(), 3);
        let mut c = Comparison::new(prev);
        c.observe(h("a"));
        c.observe(h("z"));
        let back = c.abandon();
        assert_eq!(back.count(h("a")), 2);
        assert_eq!(back.count(h("z")), 0);
        // A scan after an abandoned one starts from clean counters.
        let (appeared, gone, _) = scan(back, &["a", "a", "b"]);
        assert!(appeared.is_empty() && gone.is_empty());
    }

    #[test]
    fn randomised_against_a_map() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut state = HashMultiset::new();
        let mut model: BTreeMap<u64, u32> = BTreeMap::new();
        for _round in 0..30 {
            let n = (next() % 300) as usize;
            let rows: Vec<String> = (0..n).map(|_| (next() % 60).to_string()).collect();
            let mut c = Comparison::new(state);
            let mut appeared: BTreeMap<u64, u32> = BTreeMap::new();
            for r in &rows {
                if c.observe(h(r)) == Seen::Appeared {
                    *appeared.entry(r.parse().unwrap()).or_default() += 1;
                }
            }
            let done = c.finish();
            let mut now: BTreeMap<u64, u32> = BTreeMap::new();
            for r in &rows {
                *now.entry(r.parse().unwrap()).or_default() += 1;
            }
            for k in 0..60u64 {
                let before = model.get(&k).copied().unwrap_or(0);
                let after = now.get(&k).copied().unwrap_or(0);
                let gone = disappeared(&done)
                    .get(&h(&k.to_string()))
                    .copied()
                    .map(|n| if n == u32::MAX { before } else { n })
                    .unwrap_or(0);
                assert_eq!(
                    appeared.get(&k).copied().unwrap_or(0),
                    after.saturating_sub(before)
                );
                assert_eq!(gone, before.saturating_sub(after));
                assert_eq!(
                    done.vanished.contains(&h(&k.to_string())),
                    before > 0 && after == 0
                );
                assert_eq!(done.next.count(h(&k.to_string())), after);
            }
            model = now;
            state = done.next;
        }
    }

    #[test]
    fn memory_stays_small() {
        let pairs: Vec<(RowHash, u32)> = (0..100_000u32)
            .map(|i| (hash_row(&i.to_le_bytes()), 1))
            .collect();
        let m = HashMultiset::from_counts(pairs);
        assert_eq!(m.distinct(), 100_000);
        // 24 bytes an entry, 4 bytes a slot (131072 slots), as the module documentation says.
        assert_eq!(std::mem::size_of::<Entry>(), 24);
        let heap = m.entries.capacity() * std::mem::size_of::<Entry>()
            + m.starts.capacity() * std::mem::size_of::<u32>();
        assert!(heap <= 100_000 * 24 + 131_073 * 4 + 64, "{heap} bytes");
    }
}
