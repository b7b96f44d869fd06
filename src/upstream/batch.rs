//! One connection shared by many askers, its requests answered in batches.
//!
//! A request waits in a queue while another asker holds the connection;
//! whoever gets the connection next takes every waiting request that fits
//! with its own and serves them in one go. So the sessions that wait for an
//! account's fetch connection share its round trips: under load (ten
//! sessions, each needing a message another session just appended) the
//! connection sends one command for all of them instead of one each.
//!
//! No I/O here: the caller's `serve` does it, so the queueing is tested on
//! its own.

use std::sync::Mutex;

use tokio::sync::oneshot::{self, error::TryRecvError};

/// The connection (`C`) and the requests (`Q`, each to be answered with an
/// `A`) waiting for it.
pub(crate) struct Batches<C, Q, A> {
    conn: tokio::sync::Mutex<C>,
    waiting: Mutex<Vec<Waiter<Q, A>>>,
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

impl<C: Default, Q, A> Default for Batches<C, Q, A> {
    fn default() -> Self {
        Batches {
            conn: tokio::sync::Mutex::default(),
            waiting: Mutex::default(),
        }
    }
}

impl<C, Q: Clone, A> Batches<C, Q, A> {
    /// The connection alone, for a command that is not batched.
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, C> {
        self.conn.lock().await
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
        let mut conn = self.conn.lock().await;
        let mut batch = match answered.try_recv() {
            // A holder before this one served it.
            Ok(answer) => return answer,
            // Still waiting: it is taken below with the others.
            Err(TryRecvError::Empty) => Vec::new(),
            // Taken by a holder that stopped before answering (its session
            // ended): asked again, in this batch.
            Err(TryRecvError::Closed) => {
                let (answer, again) = oneshot::channel();
                answered = again;
                vec![Waiter { request, answer }]
            }
        };
        batch.extend(self.take(&fits));
        serve(&mut conn, batch).await;
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
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
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

    fn ask(batches: &Arc<Batches<Served, u32, u32>>, n: u32) -> tokio::task::JoinHandle<u32> {
        let batches = batches.clone();
        tokio::spawn(async move { batches.ask(n, |_| true, serve_doubled, || 0).await })
    }

    #[tokio::test]
    async fn requests_that_wait_for_the_connection_are_served_in_one_batch() {
        let batches = Arc::new(Batches::default());
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
            "one batch, not one command each: {served:?}"
        );
        let mut first = served[0].clone();
        first.sort();
        assert_eq!(first, [1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn requests_that_do_not_fit_wait_for_a_batch_of_their_own() {
        let batches: Arc<Batches<Served, u32, u32>> = Arc::new(Batches::default());
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
        let batches: Arc<Batches<Served, u32, u32>> = Arc::new(Batches::default());
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
    async fn a_waiter_left_unanswered_gets_the_fallback() {
        let batches: Batches<Served, u32, u32> = Batches::default();
        let dropped = async |_: &mut Served, batch: Vec<Waiter<u32, u32>>| drop(batch);
        assert_eq!(batches.ask(7, |_| true, dropped, || 99).await, 99);
    }
}
