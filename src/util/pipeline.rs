//! A bounded, ordered pipeline: items pulled from an iterator by a few worker threads, their
//! results handed to one consumer in input order, with at most `window` items between the
//! oldest unconsumed one and the newest taken, so memory stays bounded however long the
//! stream (the gateway job runs every listed object through one).

use std::collections::BTreeMap;
use std::sync::{mpsc, Condvar, Mutex, PoisonError};

/// How far workers may run ahead of the consumer, and how many there are.
#[derive(Debug, Clone, Copy)]
pub struct PipelineShape {
    pub workers: usize,
    /// Items taken but not yet consumed, at most (at least `workers`).
    pub window: usize,
}

/// What the workers share: the source, and how far it has been taken and consumed.
struct Progress<I> {
    source: I,
    taken: usize,
    consumed: usize,
    /// The source is exhausted or the consumer stopped: take nothing more.
    closed: bool,
}

/// Closes the pipeline when dropped: on every way out of a worker or the consumer, a panic
/// included, so that no worker waits for room that will never come.
struct Closer<'a, I> {
    progress: &'a Mutex<Progress<I>>,
    room: &'a Condvar,
}

impl<I> Drop for Closer<'_, I> {
    fn drop(&mut self) {
        let mut p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        p.closed = true;
        self.room.notify_all();
    }
}

/// Runs `work` on every item of `source` on `shape.workers` threads and `consume` on each
/// result in input order, on the calling thread. The first `Err` of `consume` stops the
/// pipeline (items in progress finish, nothing more is taken) and is returned. A panic in
/// `work` or `consume` closes the pipeline and is raised again once every worker has ended.
pub fn ordered_pipeline<I, T, R, E>(
    source: I,
    shape: PipelineShape,
    work: impl Fn(T) -> R + Sync,
    mut consume: impl FnMut(R) -> Result<(), E>,
) -> Result<(), E>
where
    I: Iterator<Item = T> + Send,
    R: Send,
{
    let workers = shape.workers.max(1);
    let window = shape.window.max(workers);
    let progress = Mutex::new(Progress {
        source,
        taken: 0,
        consumed: 0,
        closed: false,
    });
    let room = Condvar::new();
    let (results, finished) = mpsc::channel::<(usize, R)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let results = results.clone();
            let (progress, room, work) = (&progress, &room, &work);
            scope.spawn(move || {
                let _close = Closer { progress, room };
                loop {
                    let (index, item) = {
                        let mut p = progress.lock().expect("pipeline lock");
                        while !p.closed && p.taken >= p.consumed + window {
                            p = room.wait(p).expect("pipeline lock");
                        }
                        if p.closed {
                            return;
                        }
                        match p.source.next() {
                            Some(item) => {
                                p.taken += 1;
                                (p.taken - 1, item)
                            }
                            // the Closer ends the others' waits
                            None => return,
                        }
                    };
                    if results.send((index, work(item))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(results);
        let _close = Closer {
            progress: &progress,
            room: &room,
        };

        let mut early: BTreeMap<usize, R> = BTreeMap::new();
        let mut next = 0;
        let mut outcome = Ok(());
        for (index, result) in finished.iter() {
            if outcome.is_err() {
                continue; // draining what was in progress
            }
            early.insert(index, result);
            while let Some(result) = early.remove(&next) {
                next += 1;
                if let Err(e) = consume(result) {
                    outcome = Err(e);
                    early.clear();
                    break;
                }
            }
            let mut p = progress.lock().expect("pipeline lock");
            p.consumed = next;
            p.closed |= outcome.is_err();
            room.notify_all();
        }
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn results_arrive_in_order_with_bounded_lead() {
        let taken = AtomicUsize::new(0);
        let mut seen = Vec::new();
        let mut max_lead = 0;
        let source = (0..500u64).inspect(|_| {
            taken.fetch_add(1, Ordering::SeqCst);
        });
        ordered_pipeline(
            source,
            PipelineShape {
                workers: 4,
                window: 16,
            },
            |i| {
                // later items finish first now and then
                std::thread::sleep(Duration::from_micros((i % 7) * 200));
                i * 3
            },
            |r| {
                seen.push(r);
                max_lead = max_lead.max(taken.load(Ordering::SeqCst) - (seen.len() - 1));
                Ok::<_, ()>(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..500).map(|i| i * 3).collect::<Vec<_>>());
        assert!(max_lead <= 16, "workers ran {max_lead} items ahead");
    }

    #[test]
    fn a_consumer_error_stops_taking_items() {
        let taken = AtomicUsize::new(0);
        let source = (0..10_000).inspect(|_| {
            taken.fetch_add(1, Ordering::SeqCst);
        });
        let mut consumed = 0;
        let err = ordered_pipeline(
            source,
            PipelineShape {
                workers: 3,
                window: 8,
            },
            |i: u32| i,
            |r| {
                consumed += 1;
                if r == 20 {
                    Err("stop")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(err, Err("stop"));
        assert_eq!(consumed, 21);
        assert!(taken.load(Ordering::SeqCst) <= 21 + 8);
    }

    #[test]
    fn a_panic_in_work_or_consume_is_raised_and_never_hangs() {
        let shape = PipelineShape {
            workers: 3,
            window: 4,
        };
        let in_work = std::panic::catch_unwind(|| {
            ordered_pipeline(
                0..1_000u32,
                shape,
                |i| {
                    assert_ne!(i, 7, "work fails on item 7");
                    i
                },
                |_| Ok::<_, ()>(()),
            )
        });
        assert!(in_work.is_err());
        let in_consume = std::panic::catch_unwind(|| {
            ordered_pipeline(
                0..1_000u32,
                shape,
                |i| i,
                |i| {
                    assert_ne!(i, 7, "consume fails on item 7");
                    Ok::<_, ()>(())
                },
            )
        });
        assert!(in_consume.is_err());
    }

    #[test]
    fn an_empty_source_ends_at_once() {
        let mut n = 0;
        ordered_pipeline(
            std::iter::empty::<u8>(),
            PipelineShape {
                workers: 2,
                window: 2,
            },
            |i| i,
            |_| {
                n += 1;
                Ok::<_, ()>(())
            },
        )
        .unwrap();
        assert_eq!(n, 0);
    }
}
