//! Requests awaiting their replies, by [`RequestId`]: the one place ids are chosen and replies
//! are matched to what was asked.

use std::collections::BTreeMap;

use chat_proto::{ClientMessage, ErrorReply, Reply, Request, RequestId, ServerMessage};

/// The requests sent and not yet answered, each with what its owner keeps about it (`T`).
///
/// Ids count up from 1 and are never reused on one `Requests`, so a reply always finds the
/// request it answers, even one sent again after a reconnect with its original id.
#[derive(Debug)]
pub struct Requests<T> {
    /// The last id handed out.
    last: u32,
    pending: BTreeMap<RequestId, T>,
}

/// A reply matched to its request.
#[derive(Debug)]
pub struct Answer<T> {
    /// The request's id.
    pub id: RequestId,
    /// What the owner kept about the request.
    pub tag: T,
    /// The reply, or the server's refusal.
    pub result: Result<Reply, ErrorReply>,
}

impl<T> Requests<T> {
    /// No requests yet.
    pub fn new() -> Self {
        Self {
            last: 0,
            pending: BTreeMap::new(),
        }
    }

    /// Records `request` under a fresh id with `tag`; returns the message to send.
    pub fn start(&mut self, tag: T, request: Request) -> ClientMessage {
        self.last = self.last.wrapping_add(1);
        let id = RequestId(self.last);
        self.pending.insert(id, tag);
        ClientMessage::Request { id, request }
    }

    /// Takes the request `msg` answers. Returns the message back if it is not a reply to a
    /// pending request (an event, or a reply nobody waits for).
    ///
    /// # Errors
    /// The message itself, when it answers nothing pending.
    pub fn finish(&mut self, msg: ServerMessage) -> Result<Answer<T>, ServerMessage> {
        let (id, result) = match msg {
            ServerMessage::Ok { id, reply } => (id, Ok(reply)),
            ServerMessage::Err { id, error } => (id, Err(error)),
            other => return Err(other),
        };
        match self.pending.remove(&id) {
            Some(tag) => Ok(Answer { id, tag, result }),
            None => Err(match result {
                Ok(reply) => ServerMessage::Ok { id, reply },
                Err(error) => ServerMessage::Err { id, error },
            }),
        }
    }

    /// Forgets the request `id`, returning its tag.
    pub fn remove(&mut self, id: RequestId) -> Option<T> {
        self.pending.remove(&id)
    }

    /// Whether `msg` is the reply to `id`.
    pub fn is_reply_to(msg: &ServerMessage, id: RequestId) -> bool {
        matches!(msg, ServerMessage::Ok { id: got, .. } | ServerMessage::Err { id: got, .. } if *got == id)
    }

    /// The pending requests, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (RequestId, &T)> {
        self.pending.iter().map(|(id, tag)| (*id, tag))
    }

    /// How many requests are unanswered.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every request was answered.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

impl<T> Default for Requests<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::ErrorCode;

    #[test]
    fn replies_find_their_requests_in_any_order() {
        let mut requests = Requests::new();
        let first = requests.start("rooms", Request::ListRooms);
        let second = requests.start("users", Request::ListUsers);
        let (ClientMessage::Request { id: a, .. }, ClientMessage::Request { id: b, .. }) =
            (first, second)
        else {
            panic!("requests");
        };
        assert_ne!(a, b);
        let error = ErrorReply::new(ErrorCode::Internal, "oops");
        let answer = requests
            .finish(ServerMessage::Err {
                id: b,
                error: error.clone(),
            })
            .expect("pending");
        assert_eq!((answer.tag, answer.result), ("users", Err(error)));
        let answer = requests
            .finish(ServerMessage::Ok {
                id: a,
                reply: Reply::Done,
            })
            .expect("pending");
        assert_eq!(answer.tag, "rooms");
        assert!(requests.is_empty());
        // A second reply, or an event, is given back.
        assert!(requests
            .finish(ServerMessage::Ok {
                id: a,
                reply: Reply::Done
            })
            .is_err());
        assert_eq!(
            requests.finish(ServerMessage::CaughtUp).err(),
            Some(ServerMessage::CaughtUp)
        );
    }
}
