//! Requests for the same destination that arrive together leave together, in one call.
//!
//! A gRPC call per 64 KiB chunk costs a node more than storing or reading the chunk, so small
//! chunk requests queue per destination (a replication chain, a node) and are sent in batches.
//! No request waits for company: a batch leaves at once while fewer than
//! [`BATCHES_IN_FLIGHT`] are under way for its destination, and the requests that arrive
//! meanwhile leave together in the next one. The metadata server groups concurrent commits
//! the same way (one transaction and one flush for the commits that arrive together).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

/// Batches under way at once for one destination.
const BATCHES_IN_FLIGHT: usize = 2;

/// Queues of requests `T`, answered with `R`, by destination key.
pub struct BatchQueues<T, R> {
    queues: Arc<Mutex<HashMap<String, Queue<T, R>>>>,
}

impl<T, R> Default for BatchQueues<T, R> {
    fn default() -> Self {
        Self {
            queues: Arc::default(),
        }
    }
}

impl<T, R> Clone for BatchQueues<T, R> {
    fn clone(&self) -> Self {
        Self {
            queues: Arc::clone(&self.queues),
        }
    }
}

/// A request waiting for a batch, and where its answer goes.
type Waiting<T, R> = (T, oneshot::Sender<R>);

struct Queue<T, R> {
    waiting: VecDeque<Waiting<T, R>>,
    /// Tasks sending batches from this queue.
    senders: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<T: Send + 'static, R: Send + 'static> BatchQueues<T, R> {
    /// Queues `request` for destination `key` and waits for its answer, at most `deadline`
    /// (queueing included: a request never waits longer than that behind other batches).
    /// `send` sends a batch of at most `max` requests to that destination and answers each, in
    /// order; it runs on a task of its own, started here when fewer than [`BATCHES_IN_FLIGHT`]
    /// are under way.
    pub async fn submit<F, Fut>(
        &self,
        key: String,
        request: T,
        max: usize,
        deadline: Duration,
        send: F,
    ) -> Result<R, Unanswered>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let start_sender = {
            let mut queues = lock(&self.queues);
            let queue = queues.entry(key.clone()).or_insert_with(|| Queue {
                waiting: VecDeque::new(),
                senders: 0,
            });
            queue.waiting.push_back((request, tx));
            let start = queue.senders < BATCHES_IN_FLIGHT;
            queue.senders += usize::from(start);
            start
        };
        if start_sender {
            let sender = Sender {
                queues: self.clone(),
                key,
                max,
                left: false,
            };
            tokio::spawn(sender.run(send));
        }
        // Giving up drops `rx`: a request still queued is then never sent.
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(Unanswered::SenderGone),
            Err(_) => Err(Unanswered::TimedOut),
        }
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Its deadline passed, queued or sent.
    TimedOut,
    /// The task sending its batch ended first (its runtime shut down).
    SenderGone,
}

/// The task that sends the batches of one destination's queue. However it ends (also cancelled
/// with its runtime), it gives up its place, and the last sender of a queue removes it, failing
/// the requests still waiting, so that no caller waits for ever.
struct Sender<T, R> {
    queues: BatchQueues<T, R>,
    key: String,
    max: usize,
    /// Whether it has given up its place in the queue's count.
    left: bool,
}

impl<T, R> Sender<T, R> {
    /// Sends the requests waiting for its destination in batches, until none are left.
    async fn run<F, Fut>(mut self, send: F)
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: Future<Output = Vec<R>>,
    {
        while let Some(batch) = self.next_batch() {
            let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            for (reply, answer) in replies.into_iter().zip(send(requests).await) {
                // A receiver gone has given up on its request.
                let _ = reply.send(answer);
            }
        }
    }

    /// Up to a batch of the requests waiting, leaving out those whose caller has given up. When
    /// none are left the sender leaves, under the same lock, so that a request queued meanwhile
    /// finds the sender count without it and starts a sender of its own.
    fn next_batch(&mut self) -> Option<Vec<Waiting<T, R>>> {
        let all = Arc::clone(&self.queues.queues);
        let mut queues = lock(&all);
        let queue = queues.get_mut(&self.key)?;
        queue.waiting.retain(|(_, reply)| !reply.is_closed());
        if queue.waiting.is_empty() {
            self.leave(&mut queues);
            return None;
        }
        let n = queue.waiting.len().min(self.max);
        Some(queue.waiting.drain(..n).collect())
    }

    fn leave(&mut self, queues: &mut HashMap<String, Queue<T, R>>) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        if let Some(queue) = queues.get_mut(&self.key) {
            queue.senders -= 1;
            if queue.senders == 0 {
                // Dropping the replies still waiting answers their callers with `None`.
                queues.remove(&self.key);
            }
        }
    }
}

impl<T, R> Drop for Sender<T, R> {
    fn drop(&mut self) {
        let queues = Arc::clone(&self.queues.queues);
        self.leave(&mut lock(&queues));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures::future::join_all;

    use super::*;

    #[derive(Default)]
    struct Calls {
        batches: Mutex<Vec<usize>>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    #[tokio::test]
    async fn each_caller_gets_its_own_answer_from_bounded_batches() {
        let queues = BatchQueues::<u32, u32>::default();
        let calls = Arc::new(Calls::default());
        let requests = (0..100u32).map(|i| {
            let calls = Arc::clone(&calls);
            let send = move |batch: Vec<u32>| {
                let calls = Arc::clone(&calls);
                async move {
                    let now = calls.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    calls.most_in_flight.fetch_max(now, Ordering::SeqCst);
                    lock(&calls.batches).push(batch.len());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    calls.in_flight.fetch_sub(1, Ordering::SeqCst);
                    batch.into_iter().map(|n| n * 2).collect()
                }
            };
            // Two destinations, so that one's batches never hold the other's requests.
            queues.submit(
                format!("node{}", i % 2),
                i,
                16,
                Duration::from_secs(60),
                send,
            )
        });
        let answers = join_all(requests).await;

        for (i, answer) in (0..).zip(answers) {
            assert_eq!(answer, Ok(i * 2));
        }
        let batches = lock(&calls.batches).clone();
        assert_eq!(batches.iter().sum::<usize>(), 100);
        assert!(batches.iter().all(|&n| n <= 16), "{batches:?}");
        // Requests that arrived while batches were under way went together.
        assert!(batches.len() < 20, "{batches:?}");
        let most = calls.most_in_flight.load(Ordering::SeqCst);
        assert!(most <= 2 * BATCHES_IN_FLIGHT, "{most} batches at once");
        assert!(lock(&queues.queues).is_empty(), "senders left their queues");
    }

    #[tokio::test]
    async fn callers_hear_of_short_answers_and_of_their_deadline() {
        let queues = BatchQueues::<u32, u32>::default();
        // Answers nothing: each caller must hear that, not wait for ever.
        let send = |_batch: Vec<u32>| async { Vec::new() };
        let minute = Duration::from_secs(60);
        let answers =
            join_all((0..5).map(|i| queues.submit("n".into(), i, 16, minute, send))).await;
        assert_eq!(answers, vec![Err(Unanswered::SenderGone); 5]);

        // A destination that never answers: the first batch hangs, and the requests queued
        // behind it give up at their own deadline, not one batch's deadline after another.
        let hang = |_batch: Vec<u32>| std::future::pending::<Vec<u32>>();
        let short = Duration::from_millis(50);
        let waits = join_all((0..40).map(|i| queues.submit("hung".into(), i, 4, short, hang)));
        // Bounded, so that a queue without deadlines fails here instead of hanging the test.
        let answers = tokio::time::timeout(Duration::from_secs(5), waits)
            .await
            .expect("callers waited past their deadline");
        assert_eq!(answers, vec![Err(Unanswered::TimedOut); 40]);
    }
}
