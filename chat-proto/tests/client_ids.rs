//! The recommended client message ids: time in the high bits, never repeating.

use chat_proto::{ClientMsgId, ClientMsgIds};
use proptest::prelude::*;

#[test]
fn an_id_is_the_time_then_random_bits() {
    let mut ids = ClientMsgIds::default();
    let id = ids.next(1_765_000_000_123, u64::MAX);
    assert_eq!(id.0 >> 22, 1_765_000_000_123);
    assert_eq!(id.0 & 0x3f_ffff, 0x3f_ffff);
}

#[test]
fn a_clock_that_steps_back_still_gives_larger_ids() {
    let mut ids = ClientMsgIds::default();
    let before = ids.next(1_765_000_000_000, 5);
    let after = ids.next(1_764_000_000_000, 7);
    assert_eq!(after, ClientMsgId(before.0 + 1));
    // Once the clock passes the last id again, ids follow it.
    let later = ids.next(1_765_000_000_001, 3);
    assert_eq!(later.0, (1_765_000_000_001 << 22) | 3);
}

proptest! {
    #[test]
    fn ids_strictly_increase(draws in prop::collection::vec((any::<u64>(), any::<u64>()), 1..200)) {
        let mut ids = ClientMsgIds::default();
        let mut last = None;
        for (millis, random) in draws {
            // Clocks within 2109; beyond it the millis overflow their 42 bits.
            let id = ids.next(millis % (1 << 42), random);
            prop_assert!(last.is_none_or(|last| id > last), "{id:?} after {last:?}");
            last = Some(id);
        }
    }
}

#[test]
fn ids_now_carry_the_clock() {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    let before = u64::try_from(since.as_millis()).expect("fits");
    let id = ClientMsgIds::default().next_now(0);
    assert!(id.0 >> 22 >= before, "{id:?} is before {before} ms");
}
