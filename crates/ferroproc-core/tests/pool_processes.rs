//! The pool engine with real worker processes: results in order and as they finish,
//! workers that die under a task (killed, exiting, timed out), retries, task limits,
//! close and terminate, and a stress run with workers SIGKILLed at random.
//!
//! Workers are the test binary re-executed (see `pool_support`); no Python is involved.
//! A task's payload tells the worker what to do (square its index, sleep, exit, kill
//! itself, raise), and the worker logs every task it starts, so a test can tell how often
//! each task really ran. Every wait is bounded and fails the test when it runs out; every
//! test runs under a watchdog; nothing asserts how long anything took.
#![cfg(not(loom))]

mod common;
mod pool_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::watchdog;
use ferroproc_core::pool::{Event, Gathered, Outcome, PoolConfig, PoolError, Value};
use ferroproc_core::process::ExitStatus;
use pool_support::*;

const KILLED: ExitStatus = ExitStatus::Signaled(libc::SIGKILL);

fn workers(count: usize) -> PoolConfig {
    PoolConfig {
        workers: count,
        ..PoolConfig::default()
    }
}

/// The pid of the worker that last started task `index`, by the log.
fn last_runner(log: &[Logged], index: u64) -> i32 {
    log.iter()
        .rev()
        .find_map(|record| match *record {
            Logged::Started { pid, index: i } if i == index => Some(pid),
            _ => None,
        })
        .unwrap_or_else(|| panic!("task {index} never started"))
}

/// Closes the pool, waits for it to finish and checks that every worker was reaped.
fn close_and_finish(pool: &Pool) {
    pool.engine.close();
    pool.wait_finished();
    let finished = pool
        .events()
        .iter()
        .filter(|e| **e == Event::Finished)
        .count();
    assert_eq!(finished, 1, "{:?}", pool.events());
    assert_eq!(pool.unreaped(), Vec::<i32>::new(), "workers left unreaped");
}

// ----- results ---------------------------------------------------------------------------

const ORDER_TEST: &str = "a_thousand_tasks_return_in_order_and_each_finishes_once";

#[test]
fn a_thousand_tasks_return_in_order_and_each_finishes_once() {
    run_worker_if_child();
    let _watchdog = watchdog(ORDER_TEST);
    let pool = Pool::start(ORDER_TEST, workers(2));
    let ordered = pool.job(true);
    pool.submit_all(&ordered, squares(0..1000));
    let unordered = pool.job(false);
    pool.submit_all(&unordered, squares(1000..2000));

    pool.wait(&ordered);
    let expected: Vec<Vec<u8>> = (0..1000).map(squared).collect();
    assert_eq!(
        ordered.take_all(),
        Some(Gathered::AllReturned(values(expected)))
    );

    pool.wait(&unordered);
    let outcomes = outcomes_as_finished(&unordered);
    assert_eq!(outcomes.len(), 1000);
    for (index, outcome) in outcomes {
        assert_eq!(
            outcome,
            Outcome::Returned(squared(1000 + index as u64).into())
        );
    }
    assert_eq!(unordered.finished(), 1000);

    let starts = starts(&pool.log());
    assert_eq!(starts.len(), 2000);
    assert!(starts.values().all(|&n| n == 1), "a task ran twice");
    assert_eq!(pool.exits(), vec![], "a worker exited");
    close_and_finish(&pool);
}

const RAISE_TEST: &str = "raising_and_exiting_tasks_fail_alone";

#[test]
fn raising_and_exiting_tasks_fail_alone() {
    run_worker_if_child();
    let _watchdog = watchdog(RAISE_TEST);
    let pool = Pool::start(RAISE_TEST, workers(1));
    let first = pool.pids()[0];
    let job = pool.job(false);
    let commands = [
        Command::Square { busy_us: 0 },
        Command::Raise,
        Command::Square { busy_us: 0 },
        Command::Exit { code: 3 },
        Command::Square { busy_us: 0 },
    ];
    let payloads = (0..).zip(&commands).map(|(i, c)| task(i, c)).collect();
    pool.submit_all(&job, payloads);
    pool.wait(&job);
    let outcomes = outcomes_as_finished(&job);
    let expected = BTreeMap::from([
        (0, Outcome::Returned(squared(0).into())),
        (1, Outcome::Raised(raised_message(1))),
        (2, Outcome::Returned(squared(2).into())),
        (
            3,
            Outcome::WorkerLost {
                pid: first,
                status: ExitStatus::Exited(3),
            },
        ),
        (4, Outcome::Returned(squared(4).into())),
    ]);
    assert_eq!(outcomes, expected);
    assert_eq!(pool.exits(), vec![(0, first, ExitStatus::Exited(3), true)]);
    assert!(starts(&pool.log()).values().all(|&n| n == 1));

    // A fail-fast job is ready at its first failure, and gathers to it.
    let fail_fast = pool.job(true);
    pool.submit_all(&fail_fast, vec![task(10, &Command::Raise)]);
    pool.wait(&fail_fast);
    assert_eq!(
        fail_fast.take_all(),
        Some(Gathered::Failed(Outcome::Raised(raised_message(10))))
    );
    close_and_finish(&pool);
}

// ----- workers that die under a task -----------------------------------------------------

const KILL_TEST: &str = "a_worker_killed_mid_task_fails_only_that_task";

#[test]
fn a_worker_killed_mid_task_fails_only_that_task() {
    run_worker_if_child();
    let _watchdog = watchdog(KILL_TEST);
    const VICTIM: u64 = 20;
    let pool = Pool::start(KILL_TEST, workers(2));
    let job = pool.job(false);
    let payloads = (0..50)
        .map(|i| match i {
            // Dies once at least one task waits behind it in its inbox.
            VICTIM => task(i, &Command::Kill { queued: 1 }),
            _ => task(i, &Command::Square { busy_us: 0 }),
        })
        .collect();
    pool.submit_all(&job, payloads);
    pool.wait(&job);

    let log = pool.log();
    let dying: Vec<(i32, u64)> = log
        .iter()
        .filter_map(|record| match *record {
            Logged::Dying { pid, queued } => Some((pid, queued)),
            _ => None,
        })
        .collect();
    let [(victim, queued)] = dying[..] else {
        panic!("expected one dying worker, log says {dying:?}")
    };
    assert!(queued >= 1, "no task was queued behind the killed one");
    eprintln!("worker {victim} died with {queued} tasks queued behind its own");

    let outcomes = outcomes_as_finished(&job);
    assert_eq!(outcomes.len(), 50);
    for (index, outcome) in &outcomes {
        let index = *index as u64;
        if index == VICTIM {
            let lost = Outcome::WorkerLost {
                pid: victim,
                status: KILLED,
            };
            assert_eq!(outcome, &lost);
        } else {
            assert_eq!(
                outcome,
                &Outcome::Returned(squared(index).into()),
                "task {index}"
            );
        }
    }
    // The tasks queued behind the victim were handed on, not run twice.
    let starts = starts(&log);
    assert_eq!(starts.len(), 50);
    assert!(starts.values().all(|&n| n == 1), "a task ran twice");

    // The engine asks for a replacement, which the pump starts; it gets later work.
    pool.pump_until("the replacement", || pool.pids().len() == 3);
    let exits = pool.exits();
    assert!(
        matches!(exits[..], [(_, pid, KILLED, true)] if pid == victim),
        "{exits:?}"
    );
    let replacement = pool.pids()[2];
    let later = pool.job(false);
    let payloads = (100..120)
        .map(|i| task(i, &Command::Square { busy_us: 2_000 }))
        .collect();
    pool.submit_all(&later, payloads);
    pool.wait(&later);
    let expected = (100..120).map(squared).collect();
    assert_eq!(
        later.take_all(),
        Some(Gathered::AllReturned(values(expected)))
    );
    let by_replacement = pool
        .log()
        .iter()
        .filter(
            |r| matches!(r, Logged::Started { pid, index } if *pid == replacement && *index >= 100),
        )
        .count();
    assert!(
        by_replacement > 0,
        "the replacement ran none of the later tasks"
    );
    close_and_finish(&pool);
}

const RETRY_TEST: &str = "a_retried_task_survives_one_worker_death";

#[test]
fn a_retried_task_survives_one_worker_death() {
    run_worker_if_child();
    let _watchdog = watchdog(RETRY_TEST);
    const ONCE: u64 = 5;
    const ALWAYS: u64 = 7;
    let pool = Pool::start(
        RETRY_TEST,
        PoolConfig {
            retries: 1,
            ..workers(2)
        },
    );
    let marker = pool.dir().join("died-once");
    let job = pool.job(false);
    let payloads = (0..10)
        .map(|i| match i {
            ONCE => task(
                i,
                &Command::DieOnce {
                    marker: marker.clone(),
                },
            ),
            ALWAYS => task(i, &Command::Kill { queued: 0 }),
            _ => task(i, &Command::Square { busy_us: 0 }),
        })
        .collect();
    pool.submit_all(&job, payloads);
    pool.wait(&job);
    assert!(marker.exists());

    let log = pool.log();
    let outcomes = outcomes_as_finished(&job);
    assert_eq!(outcomes.len(), 10);
    for (index, outcome) in &outcomes {
        let index = *index as u64;
        if index == ALWAYS {
            // Retried once, then failed with the second worker it killed.
            let lost = Outcome::WorkerLost {
                pid: last_runner(&log, ALWAYS),
                status: KILLED,
            };
            assert_eq!(outcome, &lost);
        } else {
            assert_eq!(
                outcome,
                &Outcome::Returned(squared(index).into()),
                "task {index}"
            );
        }
    }
    let starts = starts(&log);
    assert_eq!(starts[&ONCE], 2);
    assert_eq!(starts[&ALWAYS], 2);
    assert!(starts
        .iter()
        .all(|(index, &n)| n == 1 || [ONCE, ALWAYS].contains(index)));
    pool.pump_until("three replacements", || pool.pids().len() == 5);
    let exits = pool.exits();
    assert_eq!(exits.len(), 3, "{exits:?}");
    assert!(exits.iter().all(|e| e.2 == KILLED && e.3), "{exits:?}");
    close_and_finish(&pool);
}

const TIMEOUT_TEST: &str = "a_task_past_its_timeout_is_killed_and_times_out";

#[test]
fn a_task_past_its_timeout_is_killed_and_times_out() {
    run_worker_if_child();
    let _watchdog = watchdog(TIMEOUT_TEST);
    let timeout = Duration::from_millis(200);
    let pool = Pool::start(
        TIMEOUT_TEST,
        PoolConfig {
            task_timeout: Some(timeout),
            ..workers(2)
        },
    );
    let job = pool.job(false);
    let mut payloads = vec![task(0, &Command::Sleep { ms: 30_000 })];
    payloads.extend(squares(1..20));
    let started = Instant::now();
    pool.submit_all(&job, payloads);
    // Bounded well below the sleep: only the timeout can make the job ready in time.
    pool.wait(&job);
    eprintln!("timed out after {:?}", started.elapsed());

    let sleeper = last_runner(&pool.log(), 0);
    let outcomes = outcomes_as_finished(&job);
    assert_eq!(outcomes.len(), 20);
    for (index, outcome) in &outcomes {
        let index = *index as u64;
        if index == 0 {
            let timed_out = Outcome::TimedOut {
                pid: sleeper,
                timeout,
            };
            assert_eq!(outcome, &timed_out);
        } else {
            assert_eq!(
                outcome,
                &Outcome::Returned(squared(index).into()),
                "task {index}"
            );
        }
    }
    assert!(starts(&pool.log()).values().all(|&n| n == 1));
    pool.pump_until("the replacement", || pool.pids().len() == 3);
    assert!(
        matches!(pool.exits()[..], [(_, pid, KILLED, true)] if pid == sleeper),
        "{:?}",
        pool.exits()
    );
    close_and_finish(&pool);
}

// ----- task limits, close, terminate -----------------------------------------------------

const LIMIT_TEST: &str = "workers_at_their_task_limit_are_replaced";

#[test]
fn workers_at_their_task_limit_are_replaced() {
    run_worker_if_child();
    let _watchdog = watchdog(LIMIT_TEST);
    let pool = Pool::start(
        LIMIT_TEST,
        PoolConfig {
            max_tasks_per_worker: Some(3),
            ..workers(2)
        },
    );
    let job = pool.job(false);
    pool.submit_all(&job, squares(0..10));
    pool.wait(&job);
    let expected = (0..10).map(squared).collect();
    assert_eq!(
        job.take_all(),
        Some(Gathered::AllReturned(values(expected)))
    );

    let log = pool.log();
    assert!(starts(&log).values().all(|&n| n == 1));
    let mut per_worker: BTreeMap<i32, usize> = BTreeMap::new();
    for record in &log {
        if let Logged::Started { pid, .. } = record {
            *per_worker.entry(*pid).or_insert(0) += 1;
        }
    }
    assert!(per_worker.values().all(|&n| n <= 3), "{per_worker:?}");
    // Ten tasks, three per worker, two slots: at least two workers left and were replaced.
    assert!(per_worker.len() >= 4, "{per_worker:?}");
    let before_close = pool.exits();
    assert!(before_close.len() >= 2, "{before_close:?}");
    for (_, pid, status, replace) in &before_close {
        assert_eq!((*status, *replace), (ExitStatus::Exited(0), true));
        assert_eq!(per_worker.get(pid), Some(&3), "worker {pid} left early");
    }
    close_and_finish(&pool);
    assert!(pool.exits().iter().all(|e| e.2 == ExitStatus::Exited(0)));
}

const CLOSE_TEST: &str = "close_stops_idle_workers_and_finishes";

#[test]
fn close_stops_idle_workers_and_finishes() {
    run_worker_if_child();
    let _watchdog = watchdog(CLOSE_TEST);
    let pool = Pool::start(CLOSE_TEST, workers(2));
    let started = pool.pids();
    close_and_finish(&pool);
    let mut exits = pool.exits();
    exits.sort_unstable_by_key(|e| e.0);
    let expected: Vec<_> = (0..2)
        .map(|slot| (slot, started[slot], ExitStatus::Exited(0), false))
        .collect();
    assert_eq!(exits, expected);
    assert!(pool.engine.is_closed());
    let refused = pool
        .engine
        .submit(&pool.job(false), TOKEN, 0, squares(0..1));
    assert!(matches!(refused, Err(PoolError::NotRunning)), "{refused:?}");

    // Closed with work in flight: the work completes first.
    let busy = Pool::start(CLOSE_TEST, workers(2));
    let job = busy.job(false);
    let payloads = (0..20)
        .map(|i| task(i, &Command::Square { busy_us: 1_000 }))
        .collect();
    busy.submit_all(&job, payloads);
    close_and_finish(&busy);
    let expected = (0..20).map(squared).collect();
    assert_eq!(
        job.take_all(),
        Some(Gathered::AllReturned(values(expected)))
    );
    assert!(busy
        .exits()
        .iter()
        .all(|e| (e.2, e.3) == (ExitStatus::Exited(0), false)));
}

const TERMINATE_TEST: &str = "terminate_cancels_running_tasks_and_reaps_every_worker";

#[test]
fn terminate_cancels_running_tasks_and_reaps_every_worker() {
    run_worker_if_child();
    let _watchdog = watchdog(TERMINATE_TEST);
    let pool = Pool::start(TERMINATE_TEST, workers(2));
    let job = pool.job(false);
    let payloads = (0..4)
        .map(|i| task(i, &Command::Sleep { ms: 30_000 }))
        .collect();
    pool.submit_all(&job, payloads);
    pool.pump_until("both workers to start a task", || {
        starts(&pool.log()).len() == 2
    });
    pool.engine.terminate();
    // Cancelled by terminate itself, before any worker is gone.
    assert!(job.is_ready());
    let outcomes = outcomes_as_finished(&job);
    assert_eq!(outcomes.len(), 4);
    assert!(outcomes.values().all(|o| *o == Outcome::Cancelled));
    pool.wait_finished();
    let exits = pool.exits();
    assert_eq!(exits.len(), 2, "{exits:?}");
    assert!(exits.iter().all(|e| (e.2, e.3) == (KILLED, false)));
    assert_eq!(pool.pids().len(), 2, "a worker was replaced");
    assert_eq!(pool.unreaped(), Vec::<i32>::new());
    let refused = pool
        .engine
        .submit(&pool.job(false), TOKEN, 0, squares(0..1));
    assert!(matches!(refused, Err(PoolError::NotRunning)), "{refused:?}");
}

// ----- stress ----------------------------------------------------------------------------

const STRESS_TEST: &str = "random_worker_kills_lose_or_duplicate_no_task";

#[test]
fn random_worker_kills_lose_or_duplicate_no_task() {
    run_worker_if_child();
    let _watchdog = watchdog(STRESS_TEST);
    const WORKERS: usize = 4;
    const ROUNDS: u64 = 10;
    const PER_ROUND: u64 = 200;
    const TOTAL: u64 = ROUNDS * PER_ROUND;
    let seed = seed();
    let pool = Pool::start(STRESS_TEST, workers(WORKERS));
    let job = pool.job(false);
    let submitted = AtomicBool::new(false);

    // One thread submits the tasks in rounds and kills a worker after each; this one
    // replaces the dead meanwhile.
    let killed: Vec<i32> = std::thread::scope(|scope| {
        let killer = scope.spawn(|| {
            let mut killed = Vec::new();
            for round in 0..ROUNDS {
                let first = round * PER_ROUND;
                let payloads = (first..first + PER_ROUND)
                    .map(|i| task(i, &Command::Square { busy_us: 50 }))
                    .collect();
                pool.engine
                    .submit(&job, TOKEN, 0, payloads)
                    .expect("submit");
                let pause = mix(seed ^ round) % 4_000;
                std::thread::sleep(Duration::from_micros(pause));
                // A live worker at random (a dead one waits for its replacement).
                let give_up = Instant::now() + WAIT;
                let mut attempt = 0;
                loop {
                    let slot = (mix(seed.wrapping_add(round * 1000 + attempt)) % 4) as usize;
                    if let Some(pid) = pool.kill_slot(slot) {
                        killed.push(pid);
                        break;
                    }
                    assert!(Instant::now() < give_up, "no live worker to kill");
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            job.seal();
            submitted.store(true, Ordering::Release);
            killed
        });
        pool.pump_until("the stress job", || {
            submitted.load(Ordering::Acquire) && job.is_ready()
        });
        killer.join().unwrap()
    });
    assert_eq!(killed.len(), ROUNDS as usize);
    let killed_set: BTreeSet<i32> = killed.iter().copied().collect();

    let outcomes = outcomes_as_finished(&job);
    assert_eq!(outcomes.len(), TOTAL as usize, "tasks lost");
    let mut lost = 0;
    for (index, outcome) in &outcomes {
        match outcome {
            Outcome::Returned(value) => assert_eq!(value, &squared(*index as u64).into()),
            Outcome::WorkerLost { pid, status } => {
                assert!(killed_set.contains(pid), "task {index} lost to {pid}");
                assert_eq!(*status, KILLED);
                lost += 1;
            }
            other => panic!("task {index}: {other:?}"),
        }
    }
    assert!(lost <= killed.len(), "{lost} tasks lost to {killed:?}");

    // Each task that returned ran exactly once; each lost one at most once.
    let starts = starts(&pool.log());
    for (index, outcome) in &outcomes {
        let ran = starts.get(&(*index as u64)).copied().unwrap_or(0);
        if outcome.is_success() {
            assert_eq!(ran, 1, "task {index} returned after {ran} runs");
        } else {
            assert!(ran <= 1, "task {index} ran {ran} times");
        }
    }

    close_and_finish(&pool);
    let exits = pool.exits();
    let kills: BTreeSet<i32> = exits
        .iter()
        .filter(|e| e.2 == KILLED)
        .map(|e| e.1)
        .collect();
    assert_eq!(kills, killed_set, "{exits:?}");
    assert!(exits
        .iter()
        .all(|e| e.2 == KILLED || e.2 == ExitStatus::Exited(0)));
    eprintln!(
        "{} kills, {lost} tasks lost, {} workers started",
        killed.len(),
        pool.pids().len()
    );
}

// ----- engine bugs found by these tests ----------------------------------------------------

const SEAL_TEST: &str = "a_notifying_job_sealed_after_its_tasks_finished_reports_ready";

/// Regression: sealing can make a job ready (its tasks all finished before it was sealed,
/// as when a task finishes while the embedder re-takes the GIL after `submit`).
/// `Engine::seal` must then report `Event::JobReady`, or a callback never runs.
#[test]
fn a_notifying_job_sealed_after_its_tasks_finished_reports_ready() {
    run_worker_if_child();
    let _watchdog = watchdog(SEAL_TEST);
    let pool = Pool::start(SEAL_TEST, workers(1));
    let job = pool.job(true);
    pool.engine
        .submit(&job, TOKEN, 0, squares(0..1))
        .expect("submit");
    pool.pump_until("the task", || job.finished() == 1);
    // The embedder seals right after submitting, but the task may finish in between:
    // sealing through the engine reports the readiness all the same.
    pool.engine.seal(&job);
    assert!(job.is_ready());
    let deadline = Instant::now() + Duration::from_secs(2);
    let event = pool.engine.next_event(Some(deadline));
    assert_eq!(event, Some(Event::JobReady(job.id())));
    close_and_finish(&pool);
}

const SHUTDOWN_TEST: &str = "shutdown_with_live_workers_returns";

/// Regression: `Engine::shutdown` (and so dropping an engine) with workers still
/// registered kills them and returns. The collector stops before it settles their exits,
/// so the supervisor must stop once they are all reaped, not wait for them to leave.
#[test]
fn shutdown_with_live_workers_returns() {
    run_worker_if_child();
    let _watchdog = watchdog(SHUTDOWN_TEST);
    let pool = Arc::new(Pool::start(SHUTDOWN_TEST, workers(2)));
    let (done, returned) = std::sync::mpsc::channel();
    let shutting_down = Arc::clone(&pool);
    std::thread::spawn(move || {
        shutting_down.shutdown();
        let _ = done.send(());
    });
    returned
        .recv_timeout(WAIT)
        .expect("Engine::shutdown hung with live workers");
}

const STALE_TEST: &str = "a_replacement_asked_for_before_the_pool_finished_does_not_hang_it";

/// Regression: a replacement asked for before the pool was closed may arrive after
/// `Finished` ("every worker gone"); `add_worker` must refuse it (the embedder then kills
/// what it started), so a `shutdown` right after `Finished` cannot be left waiting for it.
#[test]
fn a_replacement_asked_for_before_the_pool_finished_does_not_hang_it() {
    run_worker_if_child();
    let _watchdog = watchdog(STALE_TEST);
    let pool = Arc::new(Pool::start(
        STALE_TEST,
        PoolConfig {
            max_tasks_per_worker: Some(1),
            ..workers(1)
        },
    ));
    let job = pool.job(false);
    pool.submit_all(&job, squares(0..1));
    // The worker returns its one task and exits at its limit: the engine asks for a
    // replacement, which the embedder has not started yet when the pool is closed.
    while !matches!(pool.next_event(), Event::WorkerExited { replace: true, .. }) {}
    assert!(job.is_ready());
    pool.engine.close();
    assert_eq!(pool.next_event(), Event::Finished);
    let late = pool.try_spawn(0);
    eprintln!("add_worker after Finished: {late:?}");
    let (done, returned) = std::sync::mpsc::channel();
    let shutting_down = Arc::clone(&pool);
    std::thread::spawn(move || {
        shutting_down.shutdown();
        let _ = done.send(());
    });
    returned
        .recv_timeout(WAIT)
        .expect("Engine::shutdown hung after a late replacement");
}

/// Expected values, as the engine hands them back.
fn values(bytes: Vec<Vec<u8>>) -> Vec<Value> {
    bytes.into_iter().map(Value::from).collect()
}
