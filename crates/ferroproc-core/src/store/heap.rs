//! The store's block allocator: power-of-two size classes over a bump pointer, with all of
//! its bookkeeping in the segment, changed only under the store's lock.
//!
//! A block of class `c` is `16 << c` bytes at an 8-aligned offset. Its first word is its
//! header (class in bits 0..8, payload length above), the payload follows. A free block's
//! payload starts with the offset of the next free block of its class.
//!
//! Every change to the bookkeeping ends in one store that makes it visible (pop:
//! `free[c] = next`; push: link, then `free[c] = block`; bump: header, then `top = end`),
//! so a process killed in the middle of one leaves the heap consistent: at worst the block
//! it was taking or giving back belongs to nobody. The blocks below the top always tile
//! it, each header naming its class, so the repair after such a death can walk them all
//! and give back those that neither the structure nor a free list holds.

use super::layout::{FREE_LISTS, HEAP_START, TOP};
use super::{Region, StoreError};

/// How many size classes there are: 16 bytes to 8 TiB.
pub(super) const CLASSES: usize = 40;
/// Bytes of a block's header word.
pub(super) const HEADER: u64 = 8;
/// Memory is reserved (`fallocate`) ahead of the bump pointer in steps of at least this.
const RESERVE_STEP: u64 = 1 << 20;

fn class_size(class: usize) -> u64 {
    16u64 << class
}

fn class_for(payload: u64) -> Result<usize, StoreError> {
    let needed = payload
        .checked_add(HEADER)
        .ok_or(StoreError::Full { needed: payload })?;
    let class = needed.max(16).next_power_of_two().trailing_zeros() as usize - 4;
    if class < CLASSES {
        Ok(class)
    } else {
        Err(StoreError::Full { needed: payload })
    }
}

/// The allocator over a store's segment. The caller holds the store's lock.
pub(super) struct Heap<'a> {
    pub(super) region: Region<'a>,
}

impl Heap<'_> {
    /// A block with room for `payload` bytes; its header records that length.
    pub(super) fn alloc(&self, payload: u64) -> Result<u64, StoreError> {
        let class = class_for(payload)?;
        let head_word = self.region.word(FREE_LISTS + 8 * class as u64)?;
        let head = head_word.load();
        let header = class as u64 | (payload << 8);
        if head == 0 {
            return self.bump(class_size(class), header);
        }
        self.check_block(head)?;
        let next = self.region.word(head + HEADER)?.load();
        if next != 0 {
            self.check_block(next)?;
        }
        head_word.store(next);
        // Same class as before: only the length changes, so the heap stays walkable.
        self.region.word(head)?.store(header);
        Ok(head)
    }

    /// Gives `block` back to its class's free list.
    pub(super) fn free(&self, block: u64) -> Result<(), StoreError> {
        let class = self.class_of(block)?;
        let head_word = self.region.word(FREE_LISTS + 8 * class as u64)?;
        self.region.word(block + HEADER)?.store(head_word.load());
        head_word.store(block);
        Ok(())
    }

    /// A block with `bytes` as its payload.
    pub(super) fn alloc_with(&self, bytes: &[u8]) -> Result<u64, StoreError> {
        let block = self.alloc(bytes.len() as u64)?;
        self.region.copy_in(block + HEADER, bytes)?;
        Ok(block)
    }

    /// The payload length recorded in `block`'s header.
    pub(super) fn payload_len(&self, block: u64) -> Result<u64, StoreError> {
        let class = self.class_of(block)?;
        let len = self.region.word(block)?.load() >> 8;
        if len + HEADER > class_size(class) {
            return Err(StoreError::Corrupt("a block longer than its class"));
        }
        Ok(len)
    }

    /// Appends `block`'s payload to `out`.
    pub(super) fn read_into(&self, block: u64, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let len = self.payload_len(block)? as usize;
        let start = out.len();
        out.resize(start + len, 0);
        self.region.copy_out(block + HEADER, &mut out[start..])
    }

    /// Every block ever carved from the heap, free or not, in address order: they tile
    /// `HEAP_START..top`, each header giving its class (a header is written before the
    /// bump that makes its block part of the heap, and keeps its class for ever).
    pub(super) fn blocks(&self) -> Result<Vec<u64>, StoreError> {
        let top = self.region.word(TOP)?.load();
        let mut blocks = Vec::new();
        let mut at = HEAP_START;
        while at < top {
            let class = self.class_of(at)?;
            blocks.push(at);
            at += class_size(class);
        }
        Ok(blocks)
    }

    /// The blocks on the free lists. A list longer than the heap has blocks is a cycle,
    /// which only a scribbling process can make.
    pub(super) fn free_blocks(&self, limit: usize) -> Result<Vec<u64>, StoreError> {
        let mut free = Vec::new();
        for class in 0..CLASSES {
            let mut block = self.region.word(FREE_LISTS + 8 * class as u64)?.load();
            while block != 0 {
                self.check_block(block)?;
                if free.len() > limit {
                    return Err(StoreError::Corrupt("a free list that loops"));
                }
                free.push(block);
                block = self.region.word(block + HEADER)?.load();
            }
        }
        Ok(free)
    }

    fn class_of(&self, block: u64) -> Result<usize, StoreError> {
        self.check_block(block)?;
        let class = (self.region.word(block)?.load() & 0xff) as usize;
        if class >= CLASSES || block + class_size(class) > self.region.word(TOP)?.load() {
            return Err(StoreError::Corrupt("a block header out of range"));
        }
        Ok(class)
    }

    fn check_block(&self, block: u64) -> Result<(), StoreError> {
        if block < HEAP_START || block % 8 != 0 || block >= self.region.word(TOP)?.load() {
            return Err(StoreError::Corrupt("a block offset out of range"));
        }
        Ok(())
    }

    /// A new block of `size` bytes past the top, its header written before the top moves
    /// over it, so that the blocks below the top always tile (see `blocks`).
    fn bump(&self, size: u64, header: u64) -> Result<u64, StoreError> {
        let top_word = self.region.word(TOP)?;
        let start = top_word.load().max(HEAP_START);
        let end = start
            .checked_add(size)
            .filter(|&end| end <= self.region.len())
            .ok_or(StoreError::Full { needed: size })?;
        self.region.reserve_to(end, RESERVE_STEP)?;
        self.region.word(start)?.store(header);
        top_word.store(end);
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_to_powers_of_two_with_the_header() {
        assert_eq!(class_for(0).unwrap(), 0);
        assert_eq!(class_for(8).unwrap(), 0);
        assert_eq!(class_for(9).unwrap(), 1);
        assert_eq!(class_for(24).unwrap(), 1);
        assert_eq!(class_for(25).unwrap(), 2);
        assert!(class_for(u64::MAX).is_err());
    }
}
