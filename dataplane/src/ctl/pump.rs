//! The loop shared by the admin API's live streams (`Capture`, `TraceWatch`): send the
//! `started` event, then every tick take what the workers produced and send it, a `stats`
//! event about every second, and a last `stats` when the count or the duration is reached
//! or the source shuts down. The client going away ends it at once (no last event).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often a `stats` event goes out.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// When a stream ends by itself.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Stop after this many items (0: no limit).
    pub count: u64,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// What a stream sends and where it comes from.
pub trait Source {
    /// The stream's event type.
    type Event;
    /// Takes up to `max` items, as events.
    fn take(&mut self, max: usize) -> Vec<Self::Event>;
    /// True when the source shuts down (the dataplane is stopping).
    fn closed(&self) -> bool;
    /// A `stats` event: `sent` items so far; `last` with why it ended.
    fn stats(&self, sent: u64, last: bool, reason: &str) -> Self::Event;
}

/// Feeds `tx` from `source`, `started` first, taking at most `max` items every `every`,
/// until `limits` are reached, the source closes or the client goes away.
pub async fn pump<S: Source>(
    tx: mpsc::Sender<Result<S::Event, tonic::Status>>,
    started: S::Event,
    mut source: S,
    limits: Limits,
    every: Duration,
    max: usize,
) {
    if tx.send(Ok(started)).await.is_err() {
        return;
    }
    let deadline = limits.duration.map(|d| Instant::now() + d);
    let count = limits.count;
    let mut sent = 0u64;
    let mut next_stats = Instant::now() + STATS_EVERY;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tx.closed() => return,
        }
        let want = if count == 0 {
            max
        } else {
            (count - sent).min(max as u64) as usize
        };
        for e in source.take(want) {
            if tx.send(Ok(e)).await.is_err() {
                return;
            }
            sent += 1;
        }
        if count > 0 && sent >= count {
            break "count";
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break "duration";
        }
        if source.closed() {
            break "shutdown";
        }
        if Instant::now() >= next_stats {
            next_stats = Instant::now() + STATS_EVERY;
            if tx.send(Ok(source.stats(sent, false, ""))).await.is_err() {
                return;
            }
        }
    };
    let _ = tx.send(Ok(source.stats(sent, true, reason))).await;
}
