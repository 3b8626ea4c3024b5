//! [`Peers`]: what a subscriber knows of every other node — its epoch, the last number
//! received, when it was last heard — and the rules that turn envelopes and the passing of
//! time into [`BusEvent`]s. No I/O and no clock: the receive task passes `now` in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::envelope::{Envelope, Kind};
use super::BusEvent;

/// Every other node this subscriber has heard from.
#[derive(Debug)]
pub(crate) struct Peers {
    /// This node's name: its own envelopes are ignored.
    me: String,
    /// Silence after which a node is down.
    dead_after: Duration,
    /// While disconnected from NATS nobody is heard: no node is declared down then.
    paused: bool,
    peers: HashMap<String, Peer>,
}

/// One other node, in its current epoch.
#[derive(Debug)]
struct Peer {
    epoch: u64,
    /// The highest number received or announced in this epoch: the next batch should be
    /// `seq + 1`.
    seq: u64,
    heard: Instant,
    up: bool,
    /// Nothing of this epoch can still be missing unnoticed: it said goodbye with a number
    /// already accounted for, or a gap was reported when it went silent.
    ended: bool,
    /// The presence last reported (`None`: report the next one whatever it is).
    presence: Option<Bytes>,
}

impl Peer {
    fn new(epoch: u64, now: Instant) -> Self {
        Self {
            epoch,
            seq: 0,
            heard: now,
            up: true,
            ended: false,
            presence: None,
        }
    }
}

impl Peers {
    pub(crate) fn new(me: String, dead_after: Duration) -> Self {
        Self {
            me,
            dead_after,
            paused: false,
            peers: HashMap::new(),
        }
    }

    /// Applies one envelope received at `now`, pushing the events it causes to `out` in order.
    pub(crate) fn handle(&mut self, envelope: Envelope, now: Instant, out: &mut Vec<BusEvent>) {
        if envelope.node == self.me {
            return;
        }
        let node = envelope.node;
        let gap = |out: &mut Vec<BusEvent>| out.push(BusEvent::Gap { node: node.clone() });
        let peer = match self.peers.get_mut(&node) {
            None => {
                out.push(BusEvent::NodeUp { node: node.clone() });
                self.peers
                    .entry(node.clone())
                    .or_insert(Peer::new(envelope.epoch, now))
            }
            Some(peer) if peer.epoch != envelope.epoch => {
                // A restart: its numbers begin again. What the old epoch published after the
                // last number seen may be lost unless it ended cleanly.
                if !peer.ended {
                    gap(out);
                }
                if !peer.up {
                    out.push(BusEvent::NodeUp { node: node.clone() });
                }
                *peer = Peer::new(envelope.epoch, now);
                peer
            }
            Some(peer) => {
                peer.heard = now;
                if !peer.up {
                    peer.up = true;
                    peer.ended = false;
                    peer.presence = None;
                    out.push(BusEvent::NodeUp { node: node.clone() });
                }
                peer
            }
        };
        match envelope.kind {
            Kind::Batch => {
                if envelope.seq <= peer.seq {
                    // Seen already, or out of order: not delivered twice, but say so.
                    gap(out);
                    return;
                }
                if envelope.seq > peer.seq + 1 {
                    gap(out);
                }
                peer.seq = envelope.seq;
                out.push(BusEvent::Batch {
                    node,
                    payload: envelope.payload,
                });
            }
            Kind::Heartbeat => {
                if envelope.seq > peer.seq {
                    gap(out);
                    peer.seq = envelope.seq;
                }
                if peer.presence.as_ref() != Some(&envelope.payload) {
                    peer.presence = Some(envelope.payload.clone());
                    out.push(BusEvent::Presence {
                        node,
                        payload: envelope.payload,
                    });
                }
            }
            Kind::Bye => {
                if envelope.seq > peer.seq {
                    gap(out);
                    peer.seq = envelope.seq;
                }
                peer.ended = true;
                peer.up = false;
                out.push(BusEvent::NodeDown { node });
            }
        }
    }

    /// Declares down every node not heard from for `dead_after` by `now` (unless paused).
    pub(crate) fn tick(&mut self, now: Instant, out: &mut Vec<BusEvent>) {
        if self.paused {
            return;
        }
        for (node, peer) in &mut self.peers {
            if peer.up && now.saturating_duration_since(peer.heard) >= self.dead_after {
                peer.up = false;
                out.push(BusEvent::NodeDown { node: node.clone() });
                if !peer.ended {
                    // It may have published after its last heartbeat.
                    peer.ended = true;
                    out.push(BusEvent::Gap { node: node.clone() });
                }
            }
        }
    }

    /// The connection to NATS is lost: nobody can be heard until it is back.
    pub(crate) fn disconnected(&mut self) {
        self.paused = true;
    }

    /// The connection to NATS is back at `now`: every node gets a fresh `dead_after` to be
    /// heard again.
    pub(crate) fn reconnected(&mut self, now: Instant) {
        self.paused = false;
        for peer in self.peers.values_mut() {
            peer.heard = now;
        }
    }

    /// Messages were dropped before they could be read: a gap for every known node (a node
    /// not known yet shows its gap by its first number).
    pub(crate) fn slow_consumer(&mut self, out: &mut Vec<BusEvent>) {
        for node in self.peers.keys() {
            out.push(BusEvent::Gap { node: node.clone() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEAD: Duration = Duration::from_millis(300);

    struct World {
        peers: Peers,
        start: Instant,
    }

    impl World {
        fn new() -> Self {
            Self {
                peers: Peers::new("me".into(), DEAD),
                start: Instant::now(),
            }
        }

        fn at(&self, millis: u64) -> Instant {
            self.start + Duration::from_millis(millis)
        }

        fn recv(&mut self, millis: u64, node: &str, epoch: u64, kind: Kind, seq: u64) -> Vec<Ev> {
            let envelope = Envelope {
                kind,
                node: node.into(),
                epoch,
                seq,
                sent_micros: 0,
                payload: Bytes::from(format!("{seq}")),
            };
            let mut out = Vec::new();
            self.peers.handle(envelope, self.at(millis), &mut out);
            out.into_iter().map(Ev::from).collect()
        }

        fn tick(&mut self, millis: u64) -> Vec<Ev> {
            let mut out = Vec::new();
            self.peers.tick(self.at(millis), &mut out);
            out.into_iter().map(Ev::from).collect()
        }
    }

    /// Events without payloads, for short assertions.
    #[derive(Debug, PartialEq, Eq)]
    enum Ev {
        Batch(String),
        Gap(String),
        Presence(String),
        Up(String),
        Down(String),
        Reconnected,
    }

    impl From<BusEvent> for Ev {
        fn from(event: BusEvent) -> Self {
            match event {
                BusEvent::Batch { node, .. } => Self::Batch(node),
                BusEvent::Gap { node } => Self::Gap(node),
                BusEvent::Presence { node, .. } => Self::Presence(node),
                BusEvent::NodeUp { node } => Self::Up(node),
                BusEvent::NodeDown { node } => Self::Down(node),
                BusEvent::Reconnected => Self::Reconnected,
            }
        }
    }

    use Ev::*;
    use Kind::{Batch as B, Bye as X, Heartbeat as H};

    fn s(node: &str) -> String {
        node.to_owned()
    }

    #[test]
    fn consecutive_batches_are_delivered_without_gaps() {
        let mut w = World::new();
        assert_eq!(w.recv(0, "a", 7, B, 1), [Up(s("a")), Batch(s("a"))]);
        assert_eq!(w.recv(1, "a", 7, B, 2), [Batch(s("a"))]);
        assert_eq!(w.recv(2, "a", 7, H, 2), [Presence(s("a"))]);
        // The same presence is not reported again.
        assert_eq!(w.recv(3, "a", 7, H, 2), []);
    }

    #[test]
    fn own_envelopes_are_ignored() {
        let mut w = World::new();
        assert_eq!(w.recv(0, "me", 1, B, 5), []);
    }

    #[test]
    fn a_skipped_number_is_a_gap() {
        let mut w = World::new();
        w.recv(0, "a", 7, B, 1);
        assert_eq!(w.recv(1, "a", 7, B, 3), [Gap(s("a")), Batch(s("a"))]);
    }

    #[test]
    fn a_first_batch_above_one_is_a_gap() {
        let mut w = World::new();
        assert_eq!(
            w.recv(0, "a", 7, B, 2),
            [Up(s("a")), Gap(s("a")), Batch(s("a"))]
        );
    }

    #[test]
    fn a_repeated_number_is_not_delivered_twice() {
        let mut w = World::new();
        w.recv(0, "a", 7, B, 1);
        assert_eq!(w.recv(1, "a", 7, B, 1), [Gap(s("a"))]);
    }

    #[test]
    fn a_heartbeat_above_what_was_received_is_a_gap_once() {
        let mut w = World::new();
        w.recv(0, "a", 7, B, 1);
        assert_eq!(w.recv(1, "a", 7, H, 2), [Gap(s("a")), Presence(s("a"))]);
        assert_eq!(w.recv(2, "a", 7, B, 3), [Batch(s("a"))]);
    }

    #[test]
    fn silence_is_down_with_a_gap_and_a_heartbeat_is_up_again() {
        let mut w = World::new();
        w.recv(0, "a", 7, H, 0);
        assert_eq!(w.tick(299), []);
        assert_eq!(w.tick(300), [Down(s("a")), Gap(s("a"))]);
        assert_eq!(w.tick(600), []);
        assert_eq!(w.recv(700, "a", 7, H, 0), [Up(s("a")), Presence(s("a"))]);
    }

    #[test]
    fn bye_is_down_at_once_and_a_new_epoch_begins_without_a_gap() {
        let mut w = World::new();
        w.recv(0, "a", 7, B, 1);
        assert_eq!(w.recv(1, "a", 7, X, 1), [Down(s("a"))]);
        assert_eq!(w.tick(1000), []);
        assert_eq!(w.recv(1001, "a", 8, B, 1), [Up(s("a")), Batch(s("a"))]);
    }

    #[test]
    fn bye_announcing_more_than_received_is_a_gap() {
        let mut w = World::new();
        w.recv(0, "a", 7, B, 1);
        assert_eq!(w.recv(1, "a", 7, X, 2), [Gap(s("a")), Down(s("a"))]);
    }

    #[test]
    fn a_restart_without_bye_is_a_gap() {
        let mut w = World::new();
        w.recv(0, "a", 7, B, 1);
        assert_eq!(w.recv(1, "a", 8, B, 1), [Gap(s("a")), Batch(s("a"))]);
    }

    #[test]
    fn no_node_goes_down_while_disconnected() {
        let mut w = World::new();
        w.recv(0, "a", 7, H, 0);
        w.peers.disconnected();
        assert_eq!(w.tick(1000), []);
        w.peers.reconnected(w.at(1000));
        assert_eq!(w.tick(1299), []);
        assert_eq!(w.tick(1300), [Down(s("a")), Gap(s("a"))]);
    }

    #[test]
    fn a_slow_consumer_is_a_gap_for_every_node() {
        let mut w = World::new();
        w.recv(0, "a", 7, H, 0);
        let mut out = Vec::new();
        w.peers.slow_consumer(&mut out);
        let out: Vec<Ev> = out.into_iter().map(Ev::from).collect();
        assert_eq!(out, [Gap(s("a"))]);
        let _ = Reconnected;
    }
}
