// Which node's WebSocket to connect to next, and how long to wait first (as chat-client's
// rotation.rs): round robin from the node that last worked. A failed attempt moves to the next
// URL at once; only when every URL failed in a row (a full round) does the client back off,
// doubling the wait each round up to MAX_BACKOFF. A lost connection moves to the next URL
// after the shortest wait, so the node that just died is tried last. No timers, no sockets.

export const MIN_BACKOFF = 100;
export const MAX_BACKOFF = 5000;

export class Rotation {
  /** Round robin over `count` URLs (at least one). */
  constructor(count) {
    this.count = Math.max(1, count);
    this.at = 0; // the URL in use or being tried
    this.failed = 0; // attempts failed in a row since the round began
    this.backoff = MIN_BACKOFF; // the wait before the next round, before jitter
  }

  /** A connection was welcomed: the next round starts from the shortest wait. */
  connected() {
    this.failed = 0;
    this.backoff = MIN_BACKOFF;
  }

  /**
   * The attempt at `at` failed: moves to the next URL. Returns the wait in ms before the next
   * attempt (before jitter): 0 within a round, the doubled back-off once the round is complete.
   */
  fail() {
    this.at = (this.at + 1) % this.count;
    this.failed += 1;
    if (this.failed < this.count) return 0;
    this.failed = 0;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF);
    return this.backoff;
  }

  /** The connection up at `at` was lost: a round starts at the next URL. Returns the wait. */
  lost() {
    this.at = (this.at + 1) % this.count;
    this.failed = 0;
    return this.backoff;
  }
}

/**
 * The URLs a page tries: its own node's first, then the peers the server named (`/peers`),
 * each once, ignoring anything that is not a ws:// or wss:// URL.
 */
export function nodeUrls(own, peers) {
  const urls = [own];
  for (const peer of Array.isArray(peers) ? peers : []) {
    if (typeof peer === "string" && /^wss?:\/\/[^\s]+$/.test(peer) && !urls.includes(peer)) urls.push(peer);
  }
  return urls;
}
