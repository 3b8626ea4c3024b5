//! [`run`]: drives a [`Client`] over any [`Connector`] with tokio, for interactive front ends.
//! It makes no decisions: it moves inputs, frames and timers between the world and the client.
//! Connecting runs beside the input, so a slow or unreachable server never stalls it.

use std::future::Future;
use std::pin::Pin;

use chat_proto::{MessageId, Target};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{sleep_until, timeout, Instant};

use crate::client::{Client, Event, Output, HANDSHAKE_TIMEOUT};
use crate::transport::{Connector, Transport};
use crate::Error;

/// What the front end's input side reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A line was entered.
    Line(String),
    /// The line being edited is now this (drives the typing indicator).
    Keys(String),
    /// The answer to [`Event::AskPassword`] (`None`: cancelled).
    Password(Option<String>),
    /// Fetch a page of history (see [`Client::fetch_history`]).
    History {
        /// Whose.
        target: Target,
        /// Older than this id (`None`: the newest page).
        before: Option<MessageId>,
        /// How many messages.
        limit: u16,
    },
    /// Fetch a room's members (see [`Client::fetch_members`]).
    Members(String),
    /// *(v2)* Mark a conversation read up to its newest message seen (see
    /// [`Client::mark_read`]).
    MarkRead(Target),
    /// Quit now.
    Quit,
    /// No more input.
    End,
}

type Connecting<T> =
    Pin<Box<dyn Future<Output = Result<Result<T, Error>, tokio::time::error::Elapsed>> + Send>>;

/// Runs `client` until it exits: connects (and reconnects) with `connector`, to the server each
/// [`Output::Connect`] names ([`Connector::pick`]; see [`Failover`](crate::Failover)), feeds it
/// `input` and the server's frames, and hands every event to `show`. Returns the exit status.
pub async fn run<C>(
    mut client: Client,
    connector: C,
    mut input: UnboundedReceiver<Input>,
    mut show: impl FnMut(Event),
) -> i32
where
    C: Connector + Clone + 'static,
{
    let mut conn: Option<C::Transport> = None;
    let mut connect_at: Option<(Instant, usize)> = None;
    let mut connecting: Option<Connecting<C::Transport>> = None;
    let mut input_open = true;
    loop {
        while let Some(output) = client.poll_output() {
            match output {
                Output::Send(msg) => {
                    let Some(transport) = conn.as_mut() else {
                        continue;
                    };
                    if transport.send(msg).await.is_err() {
                        conn = None;
                        client.handle_disconnect(now());
                    }
                }
                Output::Print(event) => show(event),
                Output::Connect { after, server } => {
                    connecting = None;
                    connect_at = Some((Instant::now() + after, server));
                }
                Output::Close => conn = None,
                Output::Exit(code) => return code,
            }
        }
        let wake = client.poll_timeout().map(Instant::from_std);
        tokio::select! {
            line = input.recv(), if input_open => match line {
                Some(Input::Line(line)) => client.handle_line(&line, now()),
                Some(Input::Keys(line)) => client.handle_keys(&line, now()),
                Some(Input::Password(password)) => client.handle_password(password.as_deref(), now()),
                Some(Input::History { target, before, limit }) => {
                    client.fetch_history(target, before, limit, now());
                }
                Some(Input::Members(room)) => client.fetch_members(room, now()),
                Some(Input::MarkRead(target)) => client.mark_read(target, now()),
                Some(Input::Quit) => client.handle_quit(now()),
                Some(Input::End) | None => {
                    input_open = false;
                    client.handle_input_end(now());
                }
            },
            msg = recv(&mut conn) => match msg {
                Some(msg) => client.handle_message(msg, now()),
                None => {
                    conn = None;
                    client.handle_disconnect(now());
                }
            },
            () = sleep_until_opt(connect_at.map(|(at, _)| at)) => {
                let server = connect_at.take().map_or(0, |(_, server)| server);
                let mut connector = connector.clone();
                connector.pick(server);
                connecting = Some(Box::pin(async move {
                    timeout(HANDSHAKE_TIMEOUT, connector.connect()).await
                }));
            },
            result = opt(&mut connecting) => {
                connecting = None;
                match result {
                    Ok(Ok(transport)) => {
                        conn = Some(transport);
                        client.handle_connected(now());
                    }
                    Ok(Err(error)) => client.handle_connect_failed(&error.to_string(), now()),
                    Err(_) => client.handle_connect_failed("timed out", now()),
                }
            },
            () = sleep_until_opt(wake) => client.handle_timeout(now()),
        }
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The next message, or `None` when the connection ends (cleanly or not); never resolves
/// without a connection.
async fn recv<T: Transport>(conn: &mut Option<T>) -> Option<chat_proto::ServerMessage> {
    match conn {
        Some(conn) => conn.recv().await.and_then(Result::ok),
        None => std::future::pending().await,
    }
}

/// The future's output; never resolves without one.
async fn opt<F: Future + Unpin>(future: &mut Option<F>) -> F::Output {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
