//! [`Ids`]: one counter of new ids (users, conversations or devices) inside the hub's
//! [`IdBlock`].

use chat_proto::{ErrorCode, ErrorReply};

use crate::types::IdBlock;

/// The next id of one kind to assign, within the hub's block. Its owner (the directory for
/// users and conversations, delivery for devices) is its one writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Ids {
    block: IdBlock,
    /// The next id to assign; past `block.last` once the block is used up.
    next: u64,
}

impl Ids {
    /// A counter at the start of `block`.
    pub(super) fn new(block: IdBlock) -> Self {
        Self {
            block,
            next: block.first.max(1),
        }
    }

    /// `id` exists (loaded or learned): if it is in this block, the counter goes above it.
    /// An id of another block (another node's) leaves the counter where it is.
    pub(super) fn saw(&mut self, id: u64) {
        if self.block.contains(id) {
            // `id <= block.last <= IdBlock::MAX_ID`: no overflow.
            self.next = self.next.max(id + 1);
        }
    }

    /// The next id, or the refusal `kind` ("user", "conversation", "device") gets once the
    /// block is used up: an id is never reused.
    pub(super) fn take(&mut self, kind: &str) -> Result<u64, ErrorReply> {
        if self.next > self.block.last {
            return Err(ErrorReply::new(
                ErrorCode::Internal,
                format!(
                    "this server has assigned every {kind} id of its block ({}..={}): \
                     restart it to take a new block",
                    self.block.first, self.block.last
                ),
            ));
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

impl Default for Ids {
    fn default() -> Self {
        Self::new(IdBlock::ALL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_the_block_and_counts_only_its_own_ids() {
        let block = IdBlock::numbered(3).unwrap();
        let mut ids = Ids::new(block);
        ids.saw(5);
        ids.saw(IdBlock::numbered(4).unwrap().first + 7);
        assert_eq!(ids.take("user"), Ok(block.first));
        ids.saw(block.first + 10);
        ids.saw(IdBlock::numbered(2).unwrap().last);
        assert_eq!(ids.take("user"), Ok(block.first + 11));
    }

    #[test]
    fn block_zero_never_assigns_id_zero() {
        let mut ids = Ids::new(IdBlock::numbered(0).unwrap());
        assert_eq!(ids.take("device"), Ok(1));
    }

    #[test]
    fn a_used_up_block_refuses_and_keeps_refusing() {
        let mut ids = Ids::new(IdBlock { first: 7, last: 8 });
        assert_eq!(ids.take("conversation"), Ok(7));
        assert_eq!(ids.take("conversation"), Ok(8));
        for _ in 0..2 {
            let refused = ids.take("conversation").unwrap_err();
            assert_eq!(refused.code, ErrorCode::Internal);
            assert!(refused.message.contains("conversation id"), "{refused:?}");
        }
    }

    #[test]
    fn the_last_block_ends_at_max_id() {
        let last = IdBlock::numbered((1 << 21) - 1).unwrap();
        assert_eq!(last.last, IdBlock::MAX_ID);
        assert_eq!(IdBlock::numbered(1 << 21), None);
        assert_eq!(IdBlock::numbered(u64::MAX), None);
        let mut ids = Ids::new(last);
        ids.saw(IdBlock::MAX_ID);
        assert!(ids.take("user").is_err());
    }
}
