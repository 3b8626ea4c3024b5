//! The I/O adapter: carries out the hub's [`IoRequest`]s — storage reads, and password
//! hashing on the hashing threads (`password.rs`) — each as its own task, and reports the [`Completion`] (or the failure, which
//! closes only that session) on the engine's control channel.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::Control;
use crate::outbox::Outbox;
use crate::password::{new_token, HashError, Passwords};
use crate::storage::Storage;
use crate::store::StoreError;
use crate::{Completion, IoRequest, MessageId};

/// Why an I/O request failed.
#[derive(Debug, thiserror::Error)]
enum IoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The reader took nothing from its queue for the stall timeout.
    #[error("the connection made no progress")]
    Stalled,
}

pub(super) struct Io<S> {
    pub(super) storage: S,
    pub(super) passwords: Passwords,
    pub(super) control: mpsc::UnboundedSender<Control>,
    /// A backlog batch is loaded once the connection's queue has this much room.
    pub(super) backlog_bytes: usize,
    /// How long a backlog load waits for a reader that takes nothing.
    pub(super) stall: std::time::Duration,
}

impl<S: Storage> Io<S> {
    /// Runs `request` as its own task. A backlog load first waits for the connection to take
    /// what it was sent (`outbox`), which paces the replay by the reader.
    pub(super) fn spawn(&self, request: IoRequest, outbox: Option<Arc<Outbox>>) {
        let storage = self.storage.clone();
        let passwords = self.passwords.clone();
        let control = self.control.clone();
        let (room, stall) = (self.backlog_bytes, self.stall);
        tokio::spawn(async move {
            let session = request.session();
            let event = match run(request, &storage, &passwords, outbox, room, stall).await {
                Ok(completion) => Control::Completion(completion),
                Err(IoError::Stalled) => Control::Stalled(session),
                Err(error) => {
                    tracing::error!(session = session.0, %error, "I/O failed; closing the connection");
                    Control::Failed(session)
                }
            };
            let _ = control.send(event);
        });
    }
}

impl<S: Storage> Io<S> {
    /// *(cluster)* Reads the directory as a task; a failure is reported as such (the next gap
    /// tries again).
    pub(super) fn read_directory(&self) {
        let storage = self.storage.clone();
        let control = self.control.clone();
        tokio::spawn(async move {
            let snapshot = match storage.directory().await {
                Ok(snapshot) => Some(Box::new(snapshot)),
                Err(error) => {
                    tracing::error!(%error, "cannot read the directory after lost batches");
                    None
                }
            };
            let _ = control.send(Control::Completion(Completion::Directory(snapshot)));
        });
    }

    /// *(cluster)* Reads the messages committed in `(after, up_to]` as a task; a failure is
    /// reported as such (the hub tries again).
    pub(super) fn read_committed(&self, after: MessageId, up_to: Option<MessageId>, limit: usize) {
        let storage = self.storage.clone();
        let control = self.control.clone();
        tokio::spawn(async move {
            let messages = match storage.committed(after, up_to, limit).await {
                Ok(messages) => Some(messages),
                Err(error) => {
                    tracing::error!(%error, "cannot read what other nodes committed; trying again");
                    None
                }
            };
            let completion = Completion::Committed {
                after,
                up_to,
                limit,
                messages,
            };
            let _ = control.send(Control::Completion(completion));
        });
    }
}

async fn run(
    request: IoRequest,
    storage: &impl Storage,
    passwords: &Passwords,
    outbox: Option<Arc<Outbox>>,
    room: usize,
    stall: std::time::Duration,
) -> Result<Completion, IoError> {
    Ok(match request {
        IoRequest::VerifyPassword {
            session,
            user,
            password,
        } => {
            let stored = match user {
                Some(user) => storage.password_hash(user).await?,
                None => None,
            };
            let ok = passwords.verify(stored, password).await?;
            Completion::PasswordVerified {
                session,
                ok,
                token: new_token(),
            }
        }
        IoRequest::HashPassword { session, password } => {
            let hash = passwords.hash(password).await?;
            Completion::PasswordHashed {
                session,
                hash,
                token: new_token(),
            }
        }
        IoRequest::FindToken { session, hash } => Completion::TokenFound {
            session,
            record: storage.find_token(hash).await?,
        },
        IoRequest::LoadBacklog {
            session,
            user,
            device,
            after,
            limit,
        } => {
            if let Some(outbox) = outbox {
                if !outbox.wait_for_room(room, stall).await {
                    return Err(IoError::Stalled);
                }
            }
            Completion::Backlog {
                session,
                messages: storage.backlog(user, device, after, limit).await?,
            }
        }
        IoRequest::LoadMessage { session, change } => Completion::MessageLoaded {
            session,
            message: storage.message(change.target).await?,
            change,
        },
        IoRequest::CountUnread {
            session,
            user,
            convs,
            up_to,
            cap,
            purpose,
        } => Completion::Unread {
            session,
            user,
            purpose,
            counts: storage.unread(user, &convs, up_to, cap).await?,
        },
        IoRequest::Search {
            session,
            request,
            user,
            words,
            before,
            limit,
        } => Completion::Found {
            session,
            request,
            user,
            limit,
            messages: storage.search(user, &words, before, limit).await?,
        },
        IoRequest::LoadHistory {
            session,
            request,
            conv,
            before,
            limit,
        } => Completion::History {
            session,
            request,
            limit,
            messages: storage.history(conv, before, limit).await?,
        },
        IoRequest::LoadAudit {
            session,
            request,
            conv,
            before,
            limit,
        } => Completion::AuditLoaded {
            session,
            request,
            limit,
            records: storage.audit_log(conv, before, limit).await?,
        },
    })
}
