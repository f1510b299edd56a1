//! An ordered hash map in one table block, after CPython's compact dict: a power-of-two
//! index of `u32` slots (linear probing) over an array of entries in insertion order.
//!
//! ```text
//! table payload  size           field
//!             0     8           slots      how many index slots (a power of two)
//!             8     8           capacity   how many entries fit
//!            16     8           used       entries written so far (deleted ones too)
//!            24     8           live       entries not deleted (a cache: see recount)
//!            32     4 × slots   index      entry numbers; u32::MAX: an empty slot
//!             …    24 × capacity entries   key hash, key block (0: deleted), value block
//! ```
//!
//! A key block's payload is the key's length (`u32`), the key, then its extra bytes.
//!
//! Commits (see the module above): an insert writes the entry past `used`, points an index
//! slot at it, then raises `used`; a dead writer can leave an index slot pointing at an
//! entry number that is not written yet, or that a later insert fills with another key,
//! and lookups skip such slots because they compare the key. A delete zeroes the entry's
//! key offset; an update switches its value offset. A rebuild (the table is full, or
//! `clear`) fills a new table and then switches the header's table offset.

use super::heap::HEADER;
use super::{key_hash, Locked, StoreError, StoreKind};

const EMPTY: u32 = u32::MAX;
const ENTRY: u64 = 24;
const FIRST_SLOTS: u64 = 8;

/// One entry copied out of a map: the key's canonical bytes, its extra bytes, its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    key_block: Vec<u8>,
    key_len: usize,
    /// The value's bytes.
    pub value: Vec<u8>,
}

impl MapEntry {
    /// The key's canonical bytes.
    pub fn key(&self) -> &[u8] {
        &self.key_block[4..4 + self.key_len]
    }

    /// The extra bytes stored with the key when it was inserted.
    pub fn extra(&self) -> &[u8] {
        &self.key_block[4 + self.key_len..]
    }
}

/// The geometry of one table.
#[derive(Clone, Copy)]
struct Table {
    payload: u64,
    slots: u64,
    capacity: u64,
}

impl Table {
    fn slot(self, number: u64) -> u64 {
        self.payload + 32 + 4 * number
    }

    fn entry(self, number: u64) -> u64 {
        self.payload + 32 + (4 * self.slots).next_multiple_of(8) + ENTRY * number
    }

    fn bytes(slots: u64) -> u64 {
        32 + (4 * slots).next_multiple_of(8) + ENTRY * (slots * 2 / 3)
    }
}

/// Where a key is, or where it would go.
enum Probe {
    Found { entry: u64 },
    Vacant { slot: Option<u64> },
}

/// A new empty table with index slots for at least `live` entries, as block offset.
pub(super) fn new_table(heap: &super::Heap<'_>, live: u64) -> Result<u64, StoreError> {
    let mut slots = FIRST_SLOTS;
    while slots * 2 / 3 < live.saturating_mul(2).max(1) {
        slots *= 2;
    }
    let block = heap.alloc(Table::bytes(slots))?;
    let region = heap.region;
    let payload = block + HEADER;
    region.word(payload)?.store(slots);
    region.word(payload + 8)?.store(slots * 2 / 3);
    region.word(payload + 16)?.store(0);
    region.word(payload + 24)?.store(0);
    let table = Table {
        payload,
        slots,
        capacity: slots * 2 / 3,
    };
    for slot in 0..slots {
        region.half(table.slot(slot))?.store(EMPTY);
    }
    Ok(block)
}

/// Recomputes the live count after a holder died (it may have died between a commit and
/// updating the count).
pub(super) fn recount(locked: &Locked<'_>) -> Result<(), StoreError> {
    let table = load_table(locked)?;
    let region = locked.region();
    let used = used(locked, table)?;
    let mut live = 0;
    for number in 0..used {
        if region.word(table.entry(number) + 8)?.load() != 0 {
            live += 1;
        }
    }
    region.word(table.payload + 24)?.store(live);
    Ok(())
}

/// The blocks the map uses: its table and each live entry's key and value.
pub(super) fn blocks_in_use(locked: &Locked<'_>) -> Result<Vec<u64>, StoreError> {
    let table = load_table(locked)?;
    let region = locked.region();
    let mut blocks = vec![table.payload - HEADER];
    for number in 0..used(locked, table)? {
        let entry = table.entry(number);
        let key_block = region.word(entry + 8)?.load();
        if key_block != 0 {
            blocks.push(key_block);
            blocks.push(region.word(entry + 16)?.load());
        }
    }
    Ok(blocks)
}

fn load_table(locked: &Locked<'_>) -> Result<Table, StoreError> {
    let block = locked.table()?;
    let region = locked.region();
    let payload = block + HEADER;
    let slots = region.word(payload)?.load();
    let capacity = region.word(payload + 8)?.load();
    if !slots.is_power_of_two() || capacity != slots * 2 / 3 {
        return Err(StoreError::Corrupt("a map table of impossible size"));
    }
    if locked.heap().payload_len(block)? < Table::bytes(slots) {
        return Err(StoreError::Corrupt("a map table larger than its block"));
    }
    Ok(Table {
        payload,
        slots,
        capacity,
    })
}

fn used(locked: &Locked<'_>, table: Table) -> Result<u64, StoreError> {
    let used = locked.region().word(table.payload + 16)?.load();
    if used > table.capacity {
        return Err(StoreError::Corrupt("a map with more entries than room"));
    }
    Ok(used)
}

fn add_live(locked: &Locked<'_>, table: Table, delta: i64) -> Result<(), StoreError> {
    let word = locked.region().word(table.payload + 24)?;
    word.store(word.load().wrapping_add_signed(delta));
    Ok(())
}

fn probe(locked: &Locked<'_>, table: Table, hash: u64, key: &[u8]) -> Result<Probe, StoreError> {
    let region = locked.region();
    let used = used(locked, table)?;
    let mask = table.slots - 1;
    let mut slot = hash & mask;
    for _ in 0..table.slots {
        let number = region.half(table.slot(slot))?.load();
        if number == EMPTY {
            return Ok(Probe::Vacant { slot: Some(slot) });
        }
        let number = u64::from(number);
        if number < used {
            let entry = table.entry(number);
            let key_block = region.word(entry + 8)?.load();
            if key_block != 0
                && region.word(entry)?.load() == hash
                && key_matches(locked, key_block, key)?
            {
                return Ok(Probe::Found { entry });
            }
        }
        slot = (slot + 1) & mask;
    }
    Ok(Probe::Vacant { slot: None })
}

fn key_matches(locked: &Locked<'_>, key_block: u64, key: &[u8]) -> Result<bool, StoreError> {
    let region = locked.region();
    let length = region.half(key_block + HEADER)?.load();
    Ok(length as usize == key.len() && region.equals(key_block + HEADER + 4, key)?)
}

impl Locked<'_> {
    fn find(&self, key: &[u8]) -> Result<(Table, u64, Probe), StoreError> {
        self.expect(StoreKind::Map)?;
        let table = load_table(self)?;
        let hash = key_hash(self.store.seed, key);
        let probe = probe(self, table, hash, key)?;
        Ok((table, hash, probe))
    }

    /// Appends the value of `key` to `out`; false if the map has no such key.
    ///
    /// # Errors
    /// [`StoreError::WrongKind`] for a sequence, [`StoreError::Corrupt`] for a damaged
    /// store.
    pub fn map_get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool, StoreError> {
        match self.find(key)?.2 {
            Probe::Found { entry } => {
                let value = self.region().word(entry + 16)?.load();
                self.heap().read_into(value, out)?;
                Ok(true)
            }
            Probe::Vacant { .. } => Ok(false),
        }
    }

    /// Whether the map has `key`.
    ///
    /// # Errors
    /// As [`map_get`](Self::map_get).
    pub fn map_contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(matches!(self.find(key)?.2, Probe::Found { .. }))
    }

    /// Sets `key` to `value`; a new key is stored with `extra` beside it and goes last in
    /// the order, an existing one keeps its place and its extra bytes. Returns whether the
    /// key existed.
    ///
    /// # Errors
    /// [`StoreError::Full`] if the segment has no room (nothing changed).
    pub fn map_set(&self, key: &[u8], extra: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        let (mut table, hash, mut found) = self.find(key)?;
        let heap = self.heap();
        let region = self.region();
        if let Probe::Found { entry } = found {
            let new = heap.alloc_with(value)?;
            let word = region.word(entry + 16)?;
            let old = word.load();
            word.store(new);
            heap.free(old)?;
            return Ok(true);
        }
        let used_now = used(self, table)?;
        if used_now == table.capacity || matches!(found, Probe::Vacant { slot: None }) {
            let live = region.word(table.payload + 24)?.load();
            self.rebuild(live + 1)?;
            table = load_table(self)?;
            found = probe(self, table, hash, key)?;
        }
        let Probe::Vacant { slot: Some(slot) } = found else {
            return Err(StoreError::Corrupt("no room in a freshly rebuilt map"));
        };
        let number = used(self, table)?;
        let key_block = heap.alloc(4 + (key.len() + extra.len()) as u64)?;
        let written = region
            .half(key_block + HEADER)
            .and_then(|length| {
                length.store(key.len() as u32);
                region.copy_in(key_block + HEADER + 4, key)?;
                region.copy_in(key_block + HEADER + 4 + key.len() as u64, extra)
            })
            .and_then(|()| heap.alloc_with(value));
        let value_block = match written {
            Ok(block) => block,
            Err(error) => {
                heap.free(key_block)?;
                return Err(error);
            }
        };
        let entry = table.entry(number);
        region.word(entry)?.store(hash);
        region.word(entry + 8)?.store(key_block);
        region.word(entry + 16)?.store(value_block);
        region.half(table.slot(slot))?.store(number as u32);
        region.word(table.payload + 16)?.store(number + 1);
        add_live(self, table, 1)?;
        Ok(false)
    }

    /// Removes `key`, appending its value to `out` if given; false if there was none.
    ///
    /// # Errors
    /// As [`map_get`](Self::map_get).
    pub fn map_remove(&self, key: &[u8], out: Option<&mut Vec<u8>>) -> Result<bool, StoreError> {
        let (table, _, found) = self.find(key)?;
        let Probe::Found { entry } = found else {
            return Ok(false);
        };
        self.remove_entry(table, entry, out, None)?;
        Ok(true)
    }

    fn remove_entry(
        &self,
        table: Table,
        entry: u64,
        value_out: Option<&mut Vec<u8>>,
        key_out: Option<&mut Vec<u8>>,
    ) -> Result<(), StoreError> {
        let region = self.region();
        let heap = self.heap();
        let key_word = region.word(entry + 8)?;
        let key_block = key_word.load();
        let value_block = region.word(entry + 16)?.load();
        if let Some(out) = value_out {
            heap.read_into(value_block, out)?;
        }
        if let Some(out) = key_out {
            heap.read_into(key_block, out)?;
        }
        key_word.store(0);
        add_live(self, table, -1)?;
        heap.free(key_block)?;
        heap.free(value_block)
    }

    /// Removes the last entry in insertion order (Python's `popitem`); `None` if empty.
    ///
    /// # Errors
    /// As [`map_get`](Self::map_get).
    pub fn map_pop_last(&self) -> Result<Option<MapEntry>, StoreError> {
        self.expect(StoreKind::Map)?;
        let table = load_table(self)?;
        let region = self.region();
        for number in (0..used(self, table)?).rev() {
            let entry = table.entry(number);
            if region.word(entry + 8)?.load() != 0 {
                let mut key_block = Vec::new();
                let mut value = Vec::new();
                self.remove_entry(table, entry, Some(&mut value), Some(&mut key_block))?;
                return entry_from(key_block, value).map(Some);
            }
        }
        Ok(None)
    }

    /// How many keys the map has.
    ///
    /// # Errors
    /// As [`map_get`](Self::map_get).
    pub fn map_len(&self) -> Result<u64, StoreError> {
        self.expect(StoreKind::Map)?;
        let table = load_table(self)?;
        self.region()
            .word(table.payload + 24)
            .map(|word| word.load())
    }

    /// Every entry, in insertion order.
    ///
    /// # Errors
    /// As [`map_get`](Self::map_get).
    pub fn map_entries(&self) -> Result<Vec<MapEntry>, StoreError> {
        self.expect(StoreKind::Map)?;
        let table = load_table(self)?;
        let region = self.region();
        let heap = self.heap();
        let mut entries = Vec::new();
        for number in 0..used(self, table)? {
            let entry = table.entry(number);
            let key_block = region.word(entry + 8)?.load();
            if key_block == 0 {
                continue;
            }
            let mut key = Vec::new();
            let mut value = Vec::new();
            heap.read_into(key_block, &mut key)?;
            heap.read_into(region.word(entry + 16)?.load(), &mut value)?;
            entries.push(entry_from(key, value)?);
        }
        Ok(entries)
    }

    /// Removes every key.
    ///
    /// # Errors
    /// As [`map_get`](Self::map_get).
    pub fn map_clear(&self) -> Result<(), StoreError> {
        self.expect(StoreKind::Map)?;
        let old = load_table(self)?;
        let used = used(self, old)?;
        let new = new_table(&self.heap(), 0)?;
        let region = self.region();
        let heap = self.heap();
        // Read the old entries before the commit frees their table.
        let mut blocks = Vec::new();
        for number in 0..used {
            let entry = old.entry(number);
            let key_block = region.word(entry + 8)?.load();
            if key_block != 0 {
                blocks.push(key_block);
                blocks.push(region.word(entry + 16)?.load());
            }
        }
        self.replace_table(new)?;
        for block in blocks {
            heap.free(block)?;
        }
        Ok(())
    }

    /// Moves the live entries, in order, into a new table with room for `live` of them
    /// and then some.
    fn rebuild(&self, live: u64) -> Result<(), StoreError> {
        let old = load_table(self)?;
        let heap = self.heap();
        let region = self.region();
        let block = new_table(&heap, live)?;
        let new = Table {
            payload: block + HEADER,
            slots: region.word(block + HEADER)?.load(),
            capacity: region.word(block + HEADER + 8)?.load(),
        };
        let mask = new.slots - 1;
        let mut count = 0;
        for number in 0..used(self, old)? {
            let from = old.entry(number);
            let key_block = region.word(from + 8)?.load();
            if key_block == 0 {
                continue;
            }
            let hash = region.word(from)?.load();
            let to = new.entry(count);
            region.word(to)?.store(hash);
            region.word(to + 8)?.store(key_block);
            region.word(to + 16)?.store(region.word(from + 16)?.load());
            let mut slot = hash & mask;
            while region.half(new.slot(slot))?.load() != EMPTY {
                slot = (slot + 1) & mask;
            }
            region.half(new.slot(slot))?.store(count as u32);
            count += 1;
        }
        region.word(new.payload + 16)?.store(count);
        region.word(new.payload + 24)?.store(count);
        self.replace_table(block)
    }
}

fn entry_from(key_block: Vec<u8>, value: Vec<u8>) -> Result<MapEntry, StoreError> {
    let length = key_block
        .get(..4)
        .map(|bytes| u32::from_ne_bytes(bytes.try_into().expect("4 bytes")) as usize)
        .filter(|&length| 4 + length <= key_block.len())
        .ok_or(StoreError::Corrupt("a key longer than its block"))?;
    Ok(MapEntry {
        key_block,
        key_len: length,
        value,
    })
}
