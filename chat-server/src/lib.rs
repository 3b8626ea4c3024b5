//! The chat server (filled in by the chat-server issue).
