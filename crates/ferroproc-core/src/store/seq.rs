//! A sequence in one block: its length, its capacity, then the offsets of its values'
//! blocks.
//!
//! ```text
//! table payload  size          field
//!             0     8          length
//!             8     8          capacity
//!            16     8 × cap    value blocks
//! ```
//!
//! Commits: `push` writes the offset past the end, then raises the length; `set` switches
//! one offset. Everything else that moves items (insert, delete, slices, sort) writes a
//! whole new block and switches the header's table offset to it, so a writer killed
//! half-way through a shift never leaves an item twice or not at all.

use super::heap::HEADER;
use super::{Heap, Locked, StoreError, StoreKind};

const FIRST_CAPACITY: u64 = 8;

/// A new sequence block holding the value blocks `items` with room for `reserve` in all.
pub(super) fn new_table(heap: &Heap<'_>, items: &[u64], reserve: u64) -> Result<u64, StoreError> {
    let wanted = reserve.max(items.len() as u64).max(1);
    let capacity = wanted.next_power_of_two().max(FIRST_CAPACITY);
    let block = heap.alloc(16 + 8 * capacity)?;
    let region = heap.region;
    let payload = block + HEADER;
    region.word(payload)?.store(items.len() as u64);
    region.word(payload + 8)?.store(capacity);
    for (position, &item) in items.iter().enumerate() {
        region.word(payload + 16 + 8 * position as u64)?.store(item);
    }
    Ok(block)
}

/// A sequence table's payload offset, length and capacity.
fn load(locked: &Locked<'_>) -> Result<(u64, u64, u64), StoreError> {
    locked.expect(StoreKind::Sequence)?;
    let block = locked.table()?;
    let region = locked.region();
    let payload = block + HEADER;
    let length = region.word(payload)?.load();
    let capacity = region.word(payload + 8)?.load();
    if length > capacity || locked.heap().payload_len(block)? < 16 + 8 * capacity {
        return Err(StoreError::Corrupt("a sequence longer than its block"));
    }
    Ok((payload, length, capacity))
}

/// The blocks the sequence uses: its table and each item's value.
pub(super) fn blocks_in_use(locked: &Locked<'_>) -> Result<Vec<u64>, StoreError> {
    let (payload, length, _) = load(locked)?;
    let region = locked.region();
    let mut blocks = vec![payload - HEADER];
    for index in 0..length {
        blocks.push(region.word(payload + 16 + 8 * index)?.load());
    }
    Ok(blocks)
}

impl Locked<'_> {
    /// How many items the sequence has.
    ///
    /// # Errors
    /// [`StoreError::WrongKind`] for a map, [`StoreError::Corrupt`] for a damaged store.
    pub fn seq_len(&self) -> Result<u64, StoreError> {
        load(self).map(|(_, length, _)| length)
    }

    fn item_word(&self, index: u64) -> Result<u64, StoreError> {
        let (payload, length, _) = load(self)?;
        if index >= length {
            return Err(StoreError::OutOfRange { index, len: length });
        }
        Ok(payload + 16 + 8 * index)
    }

    /// Appends item `index` to `out`.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] past the end; as [`seq_len`](Self::seq_len).
    pub fn seq_get(&self, index: u64, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let block = self.region().word(self.item_word(index)?)?.load();
        self.heap().read_into(block, out)
    }

    /// Replaces item `index` with `value`.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] past the end, [`StoreError::Full`] without room.
    pub fn seq_set(&self, index: u64, value: &[u8]) -> Result<(), StoreError> {
        let word = self.region().word(self.item_word(index)?)?;
        let heap = self.heap();
        let new = heap.alloc_with(value)?;
        let old = word.load();
        word.store(new);
        heap.free(old)
    }

    /// Appends `value`.
    ///
    /// # Errors
    /// [`StoreError::Full`] without room; as [`seq_len`](Self::seq_len).
    pub fn seq_push(&self, value: &[u8]) -> Result<(), StoreError> {
        let (_, length, capacity) = load(self)?;
        if length == capacity {
            return self.seq_splice(length, length, &[value]);
        }
        let heap = self.heap();
        let region = self.region();
        let block = heap.alloc_with(value)?;
        let (payload, ..) = load(self)?;
        region.word(payload + 16 + 8 * length)?.store(block);
        region.word(payload)?.store(length + 1);
        Ok(())
    }

    /// Replaces items `start..stop` with `values` (Python's `seq[start:stop] = values`):
    /// insert, delete, extend and whole-list rewrites are all this.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] if `start > stop` or `stop` is past the end,
    /// [`StoreError::Full`] without room (nothing changed).
    pub fn seq_splice(&self, start: u64, stop: u64, values: &[&[u8]]) -> Result<(), StoreError> {
        let (payload, length, _) = load(self)?;
        if start > stop || stop > length {
            return Err(StoreError::OutOfRange {
                index: stop.max(start),
                len: length,
            });
        }
        let heap = self.heap();
        let region = self.region();
        let mut added = Vec::with_capacity(values.len());
        for value in values {
            match heap.alloc_with(value) {
                Ok(block) => added.push(block),
                Err(error) => {
                    for block in added {
                        heap.free(block)?;
                    }
                    return Err(error);
                }
            }
        }
        let mut items = Vec::with_capacity((length - (stop - start)) as usize + added.len());
        let mut removed = Vec::with_capacity((stop - start) as usize);
        for index in 0..length {
            let block = region.word(payload + 16 + 8 * index)?.load();
            if index == start {
                items.extend_from_slice(&added);
            }
            if (start..stop).contains(&index) {
                removed.push(block);
            } else {
                items.push(block);
            }
        }
        if start == length {
            items.extend_from_slice(&added);
        }
        let reserve = if items.len() as u64 > length {
            items.len() as u64 * 2
        } else {
            items.len() as u64
        };
        let table = match new_table(&heap, &items, reserve) {
            Ok(table) => table,
            Err(error) => {
                for block in added {
                    heap.free(block)?;
                }
                return Err(error);
            }
        };
        self.replace_table(table)?;
        for block in removed {
            heap.free(block)?;
        }
        Ok(())
    }

    /// Every item, in order.
    ///
    /// # Errors
    /// As [`seq_len`](Self::seq_len).
    pub fn seq_items(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let (payload, length, _) = load(self)?;
        let region = self.region();
        let heap = self.heap();
        (0..length)
            .map(|index| {
                let mut item = Vec::new();
                heap.read_into(region.word(payload + 16 + 8 * index)?.load(), &mut item)?;
                Ok(item)
            })
            .collect()
    }
}
