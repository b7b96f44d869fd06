//! A few connections shared by many askers, their requests answered in
//! batches.
//!
//! A request waits in a queue while other askers hold every connection;
//! whoever gets a connection next takes every waiting request that fits
//! with its own and serves them in one go. So the sessions that wait share
//! round trips: under load (ten sessions, each needing a message another
//! session just appended) a connection sends one command for all of them
//! instead of one each. More than one connection lets a request be served
//! while a long batch runs on another (the server answers each connection
//! on its own); the connection given back last is handed out first, so a
//! new one is opened only when all open ones are busy.
//!
//! No I/O here: the caller's `serve` does it, so the queueing is tested on
//! its own.

use std::sync::Mutex;

use tokio::sync::oneshot::{self, error::TryRecvError};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The connections (`C`, at most `n` of them in use at once) and the
/// requests (`Q`, each to be answered with an `A`) waiting for them.
pub(crate) struct Batches<C, Q, A> {
    free: Semaphore,
    /// The connections no holder has, the one given back last on top: a
    /// holder gets a connection already logged in before an unused one.
    idle: Mutex<Vec<C>>,
    waiting: Mutex<Vec<Waiter<Q, A>>>,
}

/// One connection, held: given back when dropped.
pub(crate) struct Held<'b, C: Default> {
    conn: C,
    idle: &'b Mutex<Vec<C>>,
    _permit: SemaphorePermit<'b>,
}

impl<C: Default> std::ops::Deref for Held<'_, C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.conn
    }
}

impl<C: Default> std::ops::DerefMut for Held<'_, C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.conn
    }
}

impl<C: Default> Drop for Held<'_, C> {
    fn drop(&mut self) {
        lock(self.idle).push(std::mem::take(&mut self.conn));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request taken into a batch; [`Waiter::answer`] sends its answer.
pub(crate) struct Waiter<Q, A> {
    pub(crate) request: Q,
    answer: oneshot::Sender<A>,
}

impl<Q, A> Waiter<Q, A> {
    /// Answers the asker (gone already when its session ended: the answer
    /// is dropped).
    pub(crate) fn answer(self, answer: A) {
        let _ = self.answer.send(answer);
    }
}

impl<C: Default, Q, A> Batches<C, Q, A> {
    /// `n` connections (at least one), each made by its first holder.
    pub(crate) fn new(n: usize) -> Self {
        let n = n.max(1);
        Batches {
            free: Semaphore::new(n),
            idle: Mutex::new((0..n).map(|_| C::default()).collect()),
            waiting: Mutex::default(),
        }
    }
}

impl<C: Default, Q: Clone, A> Batches<C, Q, A> {
    /// A connection alone, for a command that is not batched.
    pub(crate) async fn lock(&self) -> Held<'_, C> {
        // The semaphore is never closed, and a permit leaves a connection
        // idle (one each).
        let permit = self.free.acquire().await.expect("never closed");
        let conn = lock(&self.idle).pop().unwrap_or_default();
        Held {
            conn,
            idle: &self.idle,
            _permit: permit,
        }
    }

    /// Asks `request`: answered by whichever holder of the connection takes
    /// it into a batch first, which may be this call. `fits` tells which
    /// waiting requests can go in one batch with this one (it holds for
    /// `request` itself). `serve` gets the
    /// connection and the batch (this request among them) and must answer
    /// every waiter in it; one it drops unanswered is answered
    /// `unanswered()`.
    pub(crate) async fn ask(
        &self,
        request: Q,
        fits: impl Fn(&Q) -> bool,
        serve: impl AsyncFnOnce(&mut C, Vec<Waiter<Q, A>>),
        unanswered: impl FnOnce() -> A,
    ) -> A {
        let (answer, mut answered) = oneshot::channel();
        self.queue().push(Waiter {
            request: request.clone(),
            answer,
        });
        let (mut conn, batch) = loop {
            let conn = self.lock().await;
            let mut batch = match answered.try_recv() {
                // A holder before this one served it.
                Ok(answer) => return answer,
                // Still waiting: it is taken below with the others.
                Err(TryRecvError::Empty) => Vec::new(),
                // Taken by a holder that stopped before answering (its
                // session ended): asked again, in this batch.
                Err(TryRecvError::Closed) => {
                    let (answer, again) = oneshot::channel();
                    answered = again;
                    vec![Waiter {
                        request: request.clone(),
                        answer,
                    }]
                }
            };
            batch.extend(self.take(&fits));
            if !batch.is_empty() {
                break (conn, batch);
            }
            // Taken by the holder of another connection while this one
            // waited: its answer is awaited without holding a connection,
            // and asked again if that holder stops before answering.
            drop(conn);
            if let Ok(answer) = (&mut answered).await {
                return answer;
            }
        };
        serve(&mut *conn, batch).await;
        drop(conn);
        answered.await.unwrap_or_else(|_| unanswered())
    }

    /// Takes the waiting requests that fit; drops those whose asker is gone.
    fn take(&self, fits: &impl Fn(&Q) -> bool) -> Vec<Waiter<Q, A>> {
        let mut waiting = self.queue();
        waiting.retain(|w| !w.answer.is_closed());
        let (taken, left) = waiting.drain(..).partition(|w| fits(&w.request));
        *waiting = left;
        taken
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Waiter<Q, A>>> {
        lock(&self.waiting)
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.queue().len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The connection of these tests: the batches it served, as requests.
    type Served = Vec<Vec<u32>>;

    async fn serve_doubled(served: &mut Served, batch: Vec<Waiter<u32, u32>>) {
        served.push(batch.iter().map(|w| w.request).collect());
        for w in batch {
            let n = w.request;
            w.answer(n * 2);
        }
    }

    async fn queued(batches: &Batches<Served, u32, u32>, n: usize) {
        while batches.waiting() < n {
            tokio::task::yield_now().await;
        }
    }

    /// Gives back `first` and lets the asker that gets it take every
    /// waiting request, then gives back `second`, whose asker finds nothing
    /// left to ask, and lets that asker run.
    async fn hand_over_both(
        batches: &Batches<Served, u32, u32>,
        first: Held<'_, Served>,
        second: Held<'_, Served>,
    ) {
        drop(first);
        while batches.waiting() > 0 {
            tokio::task::yield_now().await;
        }
        drop(second);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }

    fn ask(batches: &Arc<Batches<Served, u32, u32>>, n: u32) -> tokio::task::JoinHandle<u32> {
        let batches = batches.clone();
        tokio::spawn(async move { batches.ask(n, |_| true, serve_doubled, || 0).await })
    }

    #[tokio::test]
    async fn requests_that_wait_for_the_connection_are_served_in_one_batch() {
        let batches = Arc::new(Batches::new(1));
        let held = batches.lock().await;
        let asks: Vec<_> = (1..=5).map(|n| ask(&batches, n)).collect();
        queued(&batches, 5).await;
        drop(held);
        let mut answers = Vec::new();
        for a in asks {
            answers.push(a.await.unwrap());
        }
        assert_eq!(answers, [2, 4, 6, 8, 10]);
        let served = batches.lock().await;
        assert_eq!(
            served.len(),
            1,
            "one batch, not one command each: {:?}",
            *served
        );
        let mut first = served[0].clone();
        first.sort();
        assert_eq!(first, [1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn requests_that_do_not_fit_wait_for_a_batch_of_their_own() {
        let batches: Arc<Batches<Served, u32, u32>> = Arc::new(Batches::new(1));
        let held = batches.lock().await;
        let odd_or_even = |n: u32| {
            let batches = batches.clone();
            tokio::spawn(async move {
                batches
                    .ask(n, move |q| q % 2 == n % 2, serve_doubled, || 0)
                    .await
            })
        };
        let asks: Vec<_> = (1..=4).map(odd_or_even).collect();
        queued(&batches, 4).await;
        drop(held);
        for (n, a) in (1..=4).zip(asks) {
            assert_eq!(a.await.unwrap(), n * 2);
        }
        let mut served = batches.lock().await.clone();
        for batch in &mut served {
            batch.sort();
        }
        served.sort();
        assert_eq!(served, [vec![1, 3], vec![2, 4]]);
    }

    #[tokio::test]
    async fn a_request_whose_holder_stopped_is_asked_again() {
        let batches: Arc<Batches<Served, u32, u32>> = Arc::new(Batches::new(1));
        let held = batches.lock().await;
        // The first holder takes both requests and never answers: its
        // session ends mid-command.
        let stuck = {
            let batches = batches.clone();
            tokio::spawn(async move {
                batches
                    .ask(
                        1,
                        |_| true,
                        async |_: &mut Served, _batch: Vec<Waiter<u32, u32>>| {
                            std::future::pending::<()>().await
                        },
                        || 0,
                    )
                    .await
            })
        };
        queued(&batches, 1).await;
        let second = ask(&batches, 2);
        queued(&batches, 2).await;
        drop(held);
        while batches.waiting() > 0 {
            tokio::task::yield_now().await;
        }
        stuck.abort();
        assert_eq!(second.await.unwrap(), 4);
        assert_eq!(*batches.lock().await, [vec![2]]);
    }

    #[tokio::test]
    async fn a_request_is_served_on_another_connection_while_one_is_held() {
        let batches = Arc::new(Batches::new(2));
        let held = batches.lock().await;
        // With one connection this would wait for `held`: the guard only
        // turns that hang into a failure.
        let answer = tokio::time::timeout(std::time::Duration::from_secs(30), ask(&batches, 3))
            .await
            .expect("served while the other connection is held")
            .unwrap();
        assert_eq!(answer, 6);
        assert!(held.is_empty(), "the held connection served nothing");
        assert_eq!(*batches.lock().await, [vec![3]]);
    }

    #[tokio::test]
    async fn a_holder_whose_request_another_connection_took_serves_no_empty_batch() {
        let batches: Arc<Batches<Served, u32, u32>> = Arc::new(Batches::new(2));
        let (first, second) = (batches.lock().await, batches.lock().await);
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let asks: Vec<_> = [1, 2]
            .into_iter()
            .map(|n| {
                let (batches, release) = (batches.clone(), release.clone());
                tokio::spawn(async move {
                    let serve = async |served: &mut Served, batch: Vec<Waiter<u32, u32>>| {
                        served.push(batch.iter().map(|w| w.request).collect());
                        drop(release.acquire().await);
                        for w in batch {
                            let n = w.request;
                            w.answer(n * 2);
                        }
                    };
                    batches.ask(n, |_| true, serve, || 0).await
                })
            })
            .collect();
        queued(&batches, 2).await;
        // One asker gets the first connection and takes both requests; it
        // holds them until released. The other gets the second with nothing
        // left to ask.
        hand_over_both(&batches, first, second).await;
        release.add_permits(2);
        let mut answers = Vec::new();
        for a in asks {
            answers.push(a.await.unwrap());
        }
        assert_eq!(answers, [2, 4]);
        let (a, b) = (batches.lock().await, batches.lock().await);
        let mut served: Vec<Vec<u32>> = a.iter().chain(b.iter()).cloned().collect();
        served.iter_mut().for_each(|batch| batch.sort());
        assert_eq!(served, [vec![1, 2]], "one batch, and no empty one");
    }

    #[tokio::test]
    async fn a_request_another_connections_holder_took_and_dropped_is_asked_again() {
        let batches: Arc<Batches<Served, u32, u32>> = Arc::new(Batches::new(2));
        let (first, second) = (batches.lock().await, batches.lock().await);
        // The first asker takes both requests and never answers: its
        // session ends mid-command.
        let stuck = {
            let batches = batches.clone();
            tokio::spawn(async move {
                let pending = async |_: &mut Served, _batch: Vec<Waiter<u32, u32>>| {
                    std::future::pending::<()>().await
                };
                batches.ask(1, |_| true, pending, || 0).await
            })
        };
        queued(&batches, 1).await;
        let second_ask = ask(&batches, 2);
        queued(&batches, 2).await;
        // The second asker gets the other connection with nothing to ask.
        hand_over_both(&batches, first, second).await;
        stuck.abort();
        let answer = tokio::time::timeout(std::time::Duration::from_secs(30), second_ask)
            .await
            .expect("answered")
            .unwrap();
        assert_eq!(answer, 4, "asked again, not the fallback");
    }

    #[tokio::test]
    async fn the_connection_given_back_last_is_handed_out_first() {
        let batches: Batches<Served, u32, u32> = Batches::new(3);
        batches.lock().await.push(vec![1]);
        let again = batches.lock().await;
        assert_eq!(*again, [vec![1]], "the used connection, not a new one");
        let other = batches.lock().await;
        assert!(
            other.is_empty(),
            "a second holder gets a connection of its own"
        );
        drop((again, other));
    }

    #[tokio::test]
    async fn a_waiter_left_unanswered_gets_the_fallback() {
        let batches: Batches<Served, u32, u32> = Batches::new(1);
        let dropped = async |_: &mut Served, batch: Vec<Waiter<u32, u32>>| drop(batch);
        assert_eq!(batches.ask(7, |_| true, dropped, || 99).await, 99);
    }
}
