//! The chat engine (filled in by the chat-core issue).
