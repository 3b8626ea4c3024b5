//! Parking: idle plain-TCP connections kept without a task.
//!
//! A served connection is a tokio task (a 384-byte cell) and its socket's registration with
//! tokio's I/O driver (256 bytes, cache-line aligned): over half of what a connection costs.
//! Most connections of a chat server are idle most of the time, so one that had no traffic
//! but keepalive pings and pongs for a whole
//! [`ServerConfig::park_after`](crate::ServerConfig::park_after) period, with nothing buffered,
//! gives both up. Its socket moves to the [`Lot`]'s own epoll instance (mio; the
//! instance is itself registered with tokio), and what the connection keeps (the socket, the
//! engine connection, its permit and its metrics guard: 88 bytes) into the lot's slab.
//! The lot's one task waits on that epoll instance and on the parked connections' outboxes,
//! each of which holds a waker naming its connection. The first input, end of input or frame
//! queued resumes the connection: its socket back with tokio, a task of its own again.
//!
//! Nothing is missed in between. The outbox is polled with the lot's waker before the socket
//! leaves tokio, and a frame already queued serves the connection again at once; input that
//! arrived before the socket joined the lot's epoll instance is reported when it joins (adding
//! a socket to epoll checks its readiness).

use std::io;
use std::net::TcpStream as StdTcpStream;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use chat_core::Connection;
use mio::unix::SourceFd;
use mio::{Events, Interest, Registry, Token};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};

use crate::metrics::{Metrics, OpenConnection};
use crate::server::{serve_plain, Shared};
use crate::transport::tcp::FrameStream;

/// Readiness events taken from the lot's epoll instance at a time.
const EVENTS: usize = 1024;

/// Connections resumed by the lot's task between two yields to the runtime (a broadcast may
/// wake every parked connection at once: each costs two `epoll_ctl` calls and a spawn).
const RESUMES: usize = 256;

// A ticket is a whole epoll token: a 32-bit key and a 32-bit generation.
#[cfg(not(target_pointer_width = "64"))]
compile_error!("chat-server parks connections under 64-bit epoll tokens");

/// Where idle connections wait without a task: one per server.
pub(crate) struct Lot {
    /// How long a connection is idle before it is parked.
    period: Duration,
    /// The lot's epoll instance, for parking sockets on it from any thread.
    registry: Registry,
    /// The epoll instance itself, until the lot's task takes it.
    epoll: Mutex<Option<mio::Poll>>,
    spaces: Mutex<Spaces>,
    /// Parked connections whose outbox has something for them.
    woken: Mutex<Vec<Ticket>>,
    /// Wakes the lot's task when `woken` gains a ticket.
    notify: Notify,
    /// How many are parked now.
    gauge: Gauge,
    /// How many times one was parked.
    parkings: Counter,
}

impl std::fmt::Debug for Lot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lot")
            .field("period", &self.period)
            .field("parked", &lock(&self.spaces).slab.len())
            .finish_non_exhaustive()
    }
}

/// The parked connections.
struct Spaces {
    slab: Slab<Space>,
    /// Incremented at each parking: a ticket names a key at one generation.
    generation: u32,
    /// No more parking: the server is stopping, or the lot cannot watch its sockets.
    closed: bool,
}

/// A parked connection: what it keeps while it has no task.
struct Space {
    generation: u32,
    stream: StdTcpStream,
    conn: Connection,
    open: OpenConnection,
    permit: OwnedSemaphorePermit,
}

/// A parked connection's name, in its waker and as its epoll token: its key in the slab and
/// the generation it was parked in, so a late wake-up never resumes a connection parked
/// under the same key since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ticket {
    key: u32,
    generation: u32,
}

impl Ticket {
    fn token(self) -> Token {
        Token(((self.generation as usize) << 32) | self.key as usize)
    }

    fn from_token(Token(token): Token) -> Self {
        Self {
            key: token as u32,
            generation: (token >> 32) as u32,
        }
    }
}

/// A parked connection's waker, held by its outbox.
struct Alarm {
    lot: Weak<Lot>,
    ticket: Ticket,
}

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(lot) = self.lot.upgrade() {
            lock(&lot.woken).push(self.ticket);
            lot.notify.notify_one();
        }
    }
}

impl Lot {
    /// A lot parking connections idle for `period`; its task ([`run`]) takes its epoll
    /// instance.
    pub(crate) fn new(period: Duration, metrics: &Metrics) -> io::Result<Self> {
        let epoll = mio::Poll::new()?;
        Ok(Self {
            period,
            registry: epoll.registry().try_clone()?,
            epoll: Mutex::new(Some(epoll)),
            spaces: Mutex::new(Spaces {
                slab: Slab::new(),
                generation: 0,
                closed: false,
            }),
            woken: Mutex::new(Vec::new()),
            notify: Notify::new(),
            gauge: metrics.parked.clone(),
            parkings: metrics.parkings.clone(),
        })
    }

    /// How long a connection is idle before it is parked; `None` once the lot is closed (a
    /// connection served from then on has no idle timer).
    pub(crate) fn period(&self) -> Option<Duration> {
        (!lock(&self.spaces).closed).then_some(self.period)
    }

    /// The epoll instance, once, for the lot's task.
    pub(crate) fn take_epoll(&self) -> Option<mio::Poll> {
        lock(&self.epoll).take()
    }

    /// Parks an idle connection (its task then ends); if the engine has queued something for
    /// it meanwhile, or the lot is closed, serves it again in a new task instead (a socket
    /// that cannot leave tokio ends the connection). Under the lot's lock, so the lot's task
    /// sees the connection parked before any wake-up for it.
    fn park(
        self: &Arc<Self>,
        io: FrameStream<TcpStream>,
        conn: Connection,
        open: OpenConnection,
        permit: OwnedSemaphorePermit,
        shared: &Arc<Shared>,
    ) {
        let mut spaces = lock(&self.spaces);
        let ticket = match u32::try_from(spaces.slab.vacant_key()) {
            Ok(key) if !spaces.closed => {
                spaces.generation = spaces.generation.wrapping_add(1);
                Ticket {
                    key,
                    generation: spaces.generation,
                }
            }
            _ => {
                drop(spaces);
                return spawn_pump(io, conn, open, permit, shared);
            }
        };
        let alarm = Waker::from(Arc::new(Alarm {
            lot: Arc::downgrade(self),
            ticket,
        }));
        if conn.poll_ready(&mut Context::from_waker(&alarm)).is_ready() {
            drop(spaces);
            return spawn_pump(io, conn, open, permit, shared);
        }
        let stream = match io.into_stream().into_std() {
            Ok(stream) => stream,
            Err(error) => {
                // Gone from tokio, and not parked: the connection ends.
                tracing::warn!(session = conn.id().0, %error, "cannot park a connection");
                return;
            }
        };
        let fd = stream.as_raw_fd();
        let parked = self
            .registry
            .register(&mut SourceFd(&fd), ticket.token(), Interest::READABLE);
        if let Err(error) = parked {
            drop(spaces);
            tracing::warn!(session = conn.id().0, %error, "cannot park a connection");
            return resume(stream, conn, open, permit, shared);
        }
        spaces.slab.insert(Space {
            generation: ticket.generation,
            stream,
            conn,
            open,
            permit,
        });
        self.gauge.inc();
        self.parkings.inc();
    }

    /// Serves again the connections named by the first [`RESUMES`] tickets (removed), those
    /// still current.
    fn wake(&self, tickets: &mut Vec<Ticket>, shared: &Arc<Shared>) {
        let mut spaces = lock(&self.spaces);
        let woken: Vec<Space> = tickets
            .drain(..tickets.len().min(RESUMES))
            .filter_map(|ticket| {
                let key = ticket.key as usize;
                let current = spaces
                    .slab
                    .get(key)
                    .is_some_and(|space| space.generation == ticket.generation);
                current.then(|| spaces.slab.remove(key))
            })
            .collect();
        drop(spaces);
        for space in woken {
            self.unpark(space, shared);
        }
    }

    /// Serves a connection taken out of the slab again.
    fn unpark(&self, space: Space, shared: &Arc<Shared>) {
        self.gauge.dec();
        let fd = space.stream.as_raw_fd();
        if let Err(error) = self.registry.deregister(&mut SourceFd(&fd)) {
            tracing::debug!(%error, "a parked socket was not registered");
        }
        resume(space.stream, space.conn, space.open, space.permit, shared);
    }

    /// Closes the lot if nothing is parked (true if closed).
    fn close_if_empty(&self) -> bool {
        let mut spaces = lock(&self.spaces);
        spaces.closed |= spaces.slab.is_empty();
        spaces.closed
    }

    /// Closes the lot and takes every connection still parked in it.
    fn take_all(&self) -> Slab<Space> {
        let mut spaces = lock(&self.spaces);
        spaces.closed = true;
        std::mem::take(&mut spaces.slab)
    }

    /// Closes the lot and every connection still parked in it (the server's grace period is
    /// over).
    fn close(&self) {
        let parked = self.take_all();
        let count = parked.len();
        self.gauge.dec_by(i64::try_from(count).unwrap_or(i64::MAX));
        drop(parked);
        if count > 0 {
            tracing::info!(count, "closed the parked connections");
        }
    }

    /// Closes the lot and serves every connection parked in it again: the lot can no longer
    /// watch them.
    fn evacuate(&self, shared: &Arc<Shared>) {
        for (_, space) in self.take_all() {
            self.unpark(space, shared);
        }
    }
}

/// Serves a connection in a new task, its socket still registered with tokio.
fn spawn_pump(
    io: FrameStream<TcpStream>,
    conn: Connection,
    open: OpenConnection,
    permit: OwnedSemaphorePermit,
    shared: &Arc<Shared>,
) {
    shared
        .tasks
        .spawn(serve_plain(io, conn, open, permit, shared.clone()));
}

/// Parks an idle connection in the server's lot (its task then ends), or, if the server has
/// none, serves it again.
pub(crate) fn park_idle(
    io: FrameStream<TcpStream>,
    conn: Connection,
    open: OpenConnection,
    permit: OwnedSemaphorePermit,
    shared: &Arc<Shared>,
) {
    match &shared.lot {
        Some(lot) => lot.park(io, conn, open, permit, shared),
        None => spawn_pump(io, conn, open, permit, shared),
    }
}

/// Serves a connection whose socket left tokio's I/O driver again: registered anew, in a
/// new task.
fn resume(
    stream: StdTcpStream,
    conn: Connection,
    open: OpenConnection,
    permit: OwnedSemaphorePermit,
    shared: &Arc<Shared>,
) {
    match TcpStream::from_std(stream) {
        Ok(stream) => {
            let io = FrameStream::new(stream, conn.max_frame_len());
            spawn_pump(io, conn, open, permit, shared);
        }
        Err(error) => {
            tracing::warn!(session = conn.id().0, %error, "cannot serve a parked connection");
        }
    }
}

/// The lot's task: serves parked connections again as their input or frames come, until the
/// server stops (then, once none is left, parks no more) or is cancelled (then closes those
/// left). If it cannot watch its epoll instance, it serves them all again and parks no more.
pub(crate) async fn run(lot: Arc<Lot>, epoll: mio::Poll, shared: Arc<Shared>) {
    // SAFETY: the epoll instance owns its descriptor, which stays open and the same until the
    // instance is dropped, with the `AsyncFd` (nothing else closes or replaces it).
    let registered =
        unsafe { AsyncFd::register_with_interest(epoll, tokio::io::Interest::READABLE) };
    let mut epoll = match registered {
        Ok(epoll) => epoll,
        Err(error) => {
            tracing::warn!(%error, "cannot watch parked connections; none will be parked");
            return lot.evacuate(&shared);
        }
    };
    let mut events = Events::with_capacity(EVENTS);
    let mut tickets = Vec::new();
    let mut stopping = false;
    loop {
        // Not biased: a stream of outbox wake-ups does not hold back the sockets' input.
        tokio::select! {
            () = shared.cancel.cancelled() => return lot.close(),
            () = shared.stopping.cancelled(), if !stopping => stopping = true,
            () = lot.notify.notified() => {}
            ready = epoll.readable_mut() => {
                // A poll that finds nothing clears the readiness; one that finds something
                // leaves it, and the next pass looks again.
                let polled = ready.and_then(|mut guard| {
                    let polled = guard.try_io(|epoll| {
                        epoll.get_mut().poll(&mut events, Some(Duration::ZERO))?;
                        if events.is_empty() {
                            Err(io::ErrorKind::WouldBlock.into())
                        } else {
                            Ok(())
                        }
                    });
                    polled.unwrap_or(Ok(()))
                });
                if let Err(error) = polled {
                    tracing::error!(%error, "cannot watch parked connections; none will be parked");
                    return lot.evacuate(&shared);
                }
                tickets.extend(events.iter().map(|event| Ticket::from_token(event.token())));
                events.clear();
            }
        }
        tickets.append(&mut std::mem::take(&mut *lock(&lot.woken)));
        while !tickets.is_empty() {
            lot.wake(&mut tickets, &shared);
            if !tickets.is_empty() {
                tokio::task::yield_now().await;
            }
        }
        tickets.shrink_to(EVENTS);
        if stopping && lot.close_if_empty() {
            return;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a few field or collection updates: a panic cannot leave them
    // inconsistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_its_token() {
        for ticket in [
            Ticket {
                key: 0,
                generation: 0,
            },
            Ticket {
                key: 19_999,
                generation: 7,
            },
            Ticket {
                key: u32::MAX,
                generation: u32::MAX,
            },
        ] {
            assert_eq!(Ticket::from_token(ticket.token()), ticket);
        }
    }

    /// What a parked connection keeps in the lot is memory per idle connection: beside it,
    /// only its waker (an `Arc` of 32 bytes) and what the engine holds for every connection.
    #[test]
    fn a_parked_connection_is_small() {
        let size = size_of::<Space>();
        println!("a parked connection: {size} bytes");
        assert!(size <= 88, "a parked connection is {size} bytes");
        assert_eq!(size_of::<Alarm>(), 16, "an Alarm and its counts: 32 bytes");
    }
}
