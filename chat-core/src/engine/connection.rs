//! [`Connection`]: one client's in-memory link to the engine.

use std::sync::Arc;
use std::task::{Context, Poll};

use chat_proto::{decode_frame, ClientMessage, EncodedFrame, ServerMessage};
use tokio::sync::mpsc;

use super::{Control, Input};
use crate::outbox::Outbox;
use crate::SessionId;

/// The engine has stopped; the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the chat engine has stopped")]
pub struct EngineClosed;

/// Why [`Connection::try_send`] did not hand a message over.
#[derive(Debug, thiserror::Error)]
pub enum TrySendError {
    /// The engine's input queue is full now: the message is given back, to send with
    /// [`Connection::send`] (which waits).
    #[error("the chat engine's input queue is full")]
    Full(ClientMessage),
    /// The engine has stopped.
    #[error("the chat engine has stopped")]
    Closed,
}

/// One client's connection to the engine: send it client messages, receive encoded frames.
///
/// Dropping it disconnects the session.
///
/// It is small (40 bytes): a network front end keeps one per connection for the connection's
/// life, idle or not.
#[derive(Debug)]
pub struct Connection {
    id: SessionId,
    outbox: Arc<Outbox>,
    inputs: mpsc::Sender<Input>,
    control: mpsc::UnboundedSender<Control>,
    /// A frame's length prefix is 4 bytes: no limit is larger.
    max_frame_len: u32,
}

impl Connection {
    pub(super) fn new(
        id: SessionId,
        outbox: Arc<Outbox>,
        inputs: mpsc::Sender<Input>,
        control: mpsc::UnboundedSender<Control>,
        max_frame_len: usize,
    ) -> Self {
        Self {
            id,
            outbox,
            inputs,
            control,
            max_frame_len: u32::try_from(max_frame_len).unwrap_or(u32::MAX),
        }
    }

    /// The session's id (for logs).
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The frame limit in force (for the transport's codec).
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len as usize
    }

    /// Hands a client message to the engine, waiting if the engine is backed up.
    ///
    /// # Errors
    /// [`EngineClosed`] if the engine has stopped.
    pub async fn send(&self, msg: ClientMessage) -> Result<(), EngineClosed> {
        self.inputs
            .send(Input::Message(self.id, msg))
            .await
            .map_err(|_| EngineClosed)
    }

    /// Hands a client message to the engine if its input queue has room now, without
    /// waiting; gives the message back if not ([`TrySendError::Full`]).
    ///
    /// # Errors
    /// [`TrySendError::Full`] if the queue is full, [`TrySendError::Closed`] if the engine
    /// has stopped.
    pub fn try_send(&self, msg: ClientMessage) -> Result<(), TrySendError> {
        self.inputs
            .try_send(Input::Message(self.id, msg))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(Input::Message(_, msg)) => TrySendError::Full(msg),
                _ => TrySendError::Closed,
            })
    }

    /// Waits for outbound frames and appends every queued one to `out`, in order. Returns
    /// false once the engine has closed this connection and every frame has been taken: the
    /// transport should then close.
    pub async fn recv_frames(&mut self, out: &mut impl Extend<EncodedFrame>) -> bool {
        std::future::poll_fn(|cx| self.poll_recv_frames(cx, out)).await
    }

    /// [`recv_frames`](Self::recv_frames) for a transport that polls: `Pending` (with `cx`
    /// woken when frames are queued) while there are none, so a waiting connection holds no
    /// future for it. `out` may be the transport's own writer (frames go straight into it).
    pub fn poll_recv_frames(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut impl Extend<EncodedFrame>,
    ) -> Poll<bool> {
        self.outbox.poll_take_all(cx, out)
    }

    /// `Ready` once the engine has closed this connection, whether or not frames are still
    /// queued (take them with [`poll_recv_frames`](Self::poll_recv_frames)); `Pending`, with
    /// `cx` woken by the close, until then. For a transport that stops taking frames while its
    /// peer is slow and must still learn that the session ended.
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.outbox.poll_closed(cx)
    }

    /// `Ready` once there is something to take with
    /// [`poll_recv_frames`](Self::poll_recv_frames) (frames, or the end), taking nothing;
    /// `Pending`, with `cx` woken by the next frame queued or the close, until then. For a
    /// front end that sets an idle connection aside and wakes it on what comes.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.outbox.poll_ready(cx)
    }

    /// The next server message, decoded (for in-process clients); `None` once closed.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            let frame = std::future::poll_fn(|cx| self.outbox.poll_take_one(cx)).await?;
            match decode_frame::<ServerMessage>(frame.as_bytes(), self.max_frame_len()) {
                Ok(Some((msg, _))) => return Some(msg),
                other => tracing::error!(?other, "the engine queued an undecodable frame"),
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Disconnect(self.id));
    }
}
