//! The envelope of everything on the bus subject: a fixed binary header, the publishing
//! node's name, then an opaque payload.
//!
//! # Format
//! All integers big-endian.
//!
//! ```text
//! offset  size  field
//! 0       1     version (1)
//! 1       1     kind: 1 batch, 2 heartbeat, 3 bye
//! 2       8     epoch: random, chosen at each start of the publisher
//! 10      8     seq: a batch's number (from 1); a heartbeat's or bye's last number published
//! 18      8     sent at: microseconds since the Unix epoch (for the lag metric only)
//! 26      1     n: length of the node name (1..=255)
//! 27      n     node name, UTF-8
//! 27+n    ..    payload: the publication (batch), the presence (heartbeat), nothing (bye)
//! ```

use bytes::{BufMut, Bytes, BytesMut};

/// The envelope version this code writes and reads.
const VERSION: u8 = 1;
/// Bytes before the node name.
const FIXED: usize = 27;

/// What an envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A publication, numbered `seq`.
    Batch,
    /// A heartbeat: `seq` is the last number published, the payload the presence.
    Heartbeat,
    /// The publisher is closing: `seq` is its last number.
    Bye,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Self::Batch => 1,
            Self::Heartbeat => 2,
            Self::Bye => 3,
        }
    }
}

/// One decoded envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) kind: Kind,
    pub(crate) node: String,
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
    pub(crate) sent_micros: u64,
    pub(crate) payload: Bytes,
}

/// Why bytes from NATS are not an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Malformed {
    #[error("{0} bytes: shorter than its header")]
    Short(usize),
    #[error("unknown envelope version {0}")]
    Version(u8),
    #[error("unknown envelope kind {0}")]
    Kind(u8),
    #[error("the node name is empty or not UTF-8")]
    Node,
    #[error("a batch numbered 0")]
    ZeroSeq,
}

impl Envelope {
    /// The envelope's bytes.
    ///
    /// # Panics
    /// If the node name is empty or longer than 255 bytes ([`check_node`] refuses those at
    /// [`Bus::connect`](super::Bus::connect)).
    pub(crate) fn encode(&self) -> Bytes {
        let node = self.node.as_bytes();
        let len = u8::try_from(node.len()).expect("node names are checked at connect");
        let mut out = BytesMut::with_capacity(FIXED + node.len() + self.payload.len());
        out.put_u8(VERSION);
        out.put_u8(self.kind.byte());
        out.put_u64(self.epoch);
        out.put_u64(self.seq);
        out.put_u64(self.sent_micros);
        out.put_u8(len);
        out.put_slice(node);
        out.put_slice(&self.payload);
        out.freeze()
    }

    /// Parses `bytes`; the payload is a slice of them, not a copy.
    ///
    /// # Errors
    /// [`Malformed`] for anything but a whole, known envelope; never panics.
    pub(crate) fn decode(bytes: &Bytes) -> Result<Self, Malformed> {
        let short = Malformed::Short(bytes.len());
        let header = bytes.get(..FIXED).ok_or(short)?;
        if header[0] != VERSION {
            return Err(Malformed::Version(header[0]));
        }
        let kind = match header[1] {
            1 => Kind::Batch,
            2 => Kind::Heartbeat,
            3 => Kind::Bye,
            other => return Err(Malformed::Kind(other)),
        };
        let u64_at = |at: usize| {
            let mut word = [0; 8];
            word.copy_from_slice(&header[at..at + 8]);
            u64::from_be_bytes(word)
        };
        let (epoch, seq, sent_micros) = (u64_at(2), u64_at(10), u64_at(18));
        let node_end = FIXED + usize::from(header[26]);
        let node = bytes.get(FIXED..node_end).ok_or(short)?;
        let node = match std::str::from_utf8(node) {
            Ok(node) if !node.is_empty() => node.to_owned(),
            _ => return Err(Malformed::Node),
        };
        if kind == Kind::Batch && seq == 0 {
            return Err(Malformed::ZeroSeq);
        }
        Ok(Self {
            kind,
            node,
            epoch,
            seq,
            sent_micros,
            payload: bytes.slice(node_end..),
        })
    }
}

/// Whether `node` fits an envelope: 1 to 255 bytes.
pub(crate) fn check_node(node: &str) -> bool {
    (1..=255).contains(&node.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            kind: Kind::Batch,
            node: "node-a".into(),
            epoch: 0x0102_0304_0506_0708,
            seq: 42,
            sent_micros: 1_700_000_000_000_000,
            payload: Bytes::from_static(b"payload"),
        }
    }

    #[test]
    fn round_trip() {
        for kind in [Kind::Batch, Kind::Heartbeat, Kind::Bye] {
            let envelope = Envelope { kind, ..sample() };
            assert_eq!(Envelope::decode(&envelope.encode()), Ok(envelope));
        }
    }

    #[test]
    fn the_header_is_as_documented() {
        let bytes = sample().encode();
        assert_eq!(&bytes[..2], &[1, 1]);
        assert_eq!(&bytes[2..10], &0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&bytes[10..18], &42u64.to_be_bytes());
        assert_eq!(bytes[26], 6);
        assert_eq!(&bytes[27..33], b"node-a");
        assert_eq!(&bytes[33..], b"payload");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().encode();
        for len in 0..33 {
            assert!(Envelope::decode(&bytes.slice(..len)).is_err(), "{len}");
        }
        // Without its payload the rest is still a whole envelope.
        assert!(Envelope::decode(&bytes.slice(..33)).is_ok());
    }

    #[test]
    fn bad_fields_are_errors() {
        let bytes = sample().encode();
        let with = |at: usize, value: u8| {
            let mut copy = bytes.to_vec();
            copy[at] = value;
            Envelope::decode(&Bytes::from(copy))
        };
        assert_eq!(with(0, 2), Err(Malformed::Version(2)));
        assert_eq!(with(1, 9), Err(Malformed::Kind(9)));
        assert_eq!(with(26, 0), Err(Malformed::Node));
        assert_eq!(with(27, 0xff), Err(Malformed::Node));
        assert_eq!(with(26, 200), Err(Malformed::Short(40)));
        let zero = Envelope { seq: 0, ..sample() }.encode();
        assert_eq!(Envelope::decode(&zero), Err(Malformed::ZeroSeq));
    }
}
