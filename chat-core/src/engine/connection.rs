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
#[derive(Debug)]
pub struct Connection {
    id: SessionId,
    outbox: Arc<Outbox>,
    inputs: mpsc::Sender<Input>,
    control: mpsc::UnboundedSender<Control>,
    max_frame_len: usize,
    /// Frames taken from the outbox and not yet returned by `recv`.
    received: Vec<EncodedFrame>,
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
            max_frame_len,
            received: Vec::new(),
        }
    }

    /// The session's id (for logs).
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The frame limit in force (for the transport's codec).
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
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
    pub async fn recv_frames(&mut self, out: &mut Vec<EncodedFrame>) -> bool {
        std::future::poll_fn(|cx| self.poll_recv_frames(cx, out)).await
    }

    /// [`recv_frames`](Self::recv_frames) for a transport that polls: `Pending` (with `cx`
    /// woken when frames are queued) while there are none, so a waiting connection holds no
    /// future for it.
    pub fn poll_recv_frames(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<EncodedFrame>,
    ) -> Poll<bool> {
        if !self.received.is_empty() {
            out.append(&mut self.received);
            return Poll::Ready(true);
        }
        self.outbox.poll_take_all(cx, out)
    }

    /// `Ready` once the engine has closed this connection, whether or not frames are still
    /// queued (take them with [`poll_recv_frames`](Self::poll_recv_frames)); `Pending`, with
    /// `cx` woken by the close, until then. For a transport that stops taking frames while its
    /// peer is slow and must still learn that the session ended.
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.outbox.poll_closed(cx)
    }

    /// The next server message, decoded (for in-process clients); `None` once closed.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            if !self.received.is_empty() {
                let frame = self.received.remove(0);
                match decode_frame::<ServerMessage>(frame.as_bytes(), self.max_frame_len) {
                    Ok(Some((msg, _))) => return Some(msg),
                    other => {
                        tracing::error!(?other, "the engine queued an undecodable frame");
                        continue;
                    }
                }
            }
            let mut frames = Vec::new();
            if !self.outbox.take_all(&mut frames).await {
                return None;
            }
            self.received = frames;
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Disconnect(self.id));
    }
}
