//! Search (protocol version 2): the words of a request are found by storage's full-text index
//! ([`IoRequest::Search`]) in the conversations the user is a member of — all of each, as
//! `History` shows them (older messages than the user's joining included). Storage leaves out changes and deleted messages and matches
//! a message's latest text only. Storage knows memberships as they were last stored; the hub
//! checks each result against the membership it holds when the results come back (a removal
//! may still be on its way to storage).

use chat_proto::{ErrorReply, Reply, RequestId};

use super::output::IoRequest;
use super::Hub;
use crate::names;
use crate::types::*;

impl Hub {
    /// `Search`: checks the words, then asks storage.
    pub(super) fn search(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        text: &str,
        before: Option<MessageId>,
        limit: u16,
    ) -> Result<(), ErrorReply> {
        let words = names::search_words(text)?;
        if self.directory.convs_of(user).next().is_none() {
            let reply = Reply::SearchResults {
                messages: Vec::new(),
                more: false,
            };
            self.reply(session, request, reply);
            return Ok(());
        }
        let page = usize::from(limit.clamp(1, self.config.max_history_page));
        self.out.io(IoRequest::Search {
            session,
            request,
            user,
            words,
            before,
            limit: page + 1,
        });
        Ok(())
    }

    /// Search results for `user` arrived (`limit` is the search's limit: one more than the
    /// page, to learn whether older matches exist). Answered while the connection lives, as
    /// every request is, even if it logged out meanwhile.
    pub(super) fn found(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        mut messages: Vec<StoredMessage>,
        limit: usize,
    ) {
        if !self.sessions.contains(session) {
            return;
        }
        let more = super::output::one_page(&mut messages, limit);
        let hits: Vec<_> = messages
            .iter()
            .filter(|m| {
                matches!(m.kind, MessageKind::Message | MessageKind::Edited)
                    && self
                        .directory
                        .conv(m.conv)
                        .is_some_and(|c| c.members().contains_key(&user))
            })
            .map(|m| self.chat_message(m))
            .collect();
        self.out
            .reply_fitting(session, request, hits, |messages, truncated| {
                Reply::SearchResults {
                    messages,
                    more: more || truncated,
                }
            });
    }
}
