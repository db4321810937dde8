//! The scheduler owns time: interval, start stagger, jitter, timeout and bounded concurrency.
//!
//! Each target runs in its own task on a fixed grid of planned starts: `first + k × interval`,
//! where `first` is a stagger derived from the target's key, so restarts do not bunch every
//! target at t=0. Each start is moved by a random jitter, then waits for one of
//! `max_concurrency` slots shared by all targets. Ticks missed while waiting are skipped, not
//! bunched. Targets are reconciled by [`TargetKey`] when the set of targets changes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Schedule;
use crate::metrics::Metrics;
use crate::probe::{Detail, Failure, Outcome, Target, TargetKey};

/// How long after its deadline a probe is given before it is abandoned as a timeout. Probes
/// are expected to honour their deadline; this backstop catches the ones that do not.
pub const GRACE: Duration = Duration::from_millis(100);

/// Something the scheduler can run: a key to reconcile by, a schedule, and one attempt.
///
/// Equality decides whether a target whose key stays across a reconcile has changed.
pub trait Probe: Clone + PartialEq + Send + Sync + 'static {
    fn key(&self) -> TargetKey;
    fn schedule(&self) -> Schedule;
    /// One attempt that should give up at `deadline`.
    fn run(&self, deadline: Instant) -> impl Future<Output = Outcome> + Send;
}

impl Probe for Target {
    fn key(&self) -> TargetKey {
        Target::key(self)
    }

    fn schedule(&self) -> Schedule {
        Target::schedule(self)
    }

    fn run(&self, deadline: Instant) -> impl Future<Output = Outcome> + Send {
        Target::run(self, deadline)
    }
}

/// Where the scheduler reports what happened: [`Metrics`] in the agent, a recorder in tests.
pub trait Sink: Send + Sync + 'static {
    /// A target is probed for the first time.
    fn started(&self, key: &TargetKey);
    /// One attempt finished.
    fn record(&self, key: &TargetKey, outcome: &Outcome);
    /// An attempt started `lag` after its planned start.
    fn lag(&self, lag: Duration);
    /// A target is gone for good.
    fn forget(&self, key: &TargetKey);
}

impl Sink for Metrics {
    fn started(&self, key: &TargetKey) {
        Metrics::start(self, key);
    }

    fn record(&self, key: &TargetKey, outcome: &Outcome) {
        Metrics::record(self, key, outcome);
    }

    fn lag(&self, lag: Duration) {
        self.observe_lag(lag);
    }

    fn forget(&self, key: &TargetKey) {
        Metrics::forget(self, key);
    }
}

/// The running targets, one task each.
pub struct Scheduler<P: Probe, S: Sink> {
    running: HashMap<TargetKey, Running<P>>,
    permits: Arc<Semaphore>,
    limit: usize,
    sink: Arc<S>,
}

struct Running<P> {
    target: P,
    task: JoinHandle<()>,
}

impl<P: Probe, S: Sink> Scheduler<P, S> {
    /// A scheduler with no targets; at most `max_concurrency` probes run at once.
    pub fn new(max_concurrency: usize, sink: Arc<S>) -> Self {
        let limit = clamp_limit(max_concurrency);
        let permits = Arc::new(Semaphore::new(limit));
        Scheduler {
            running: HashMap::new(),
            permits,
            limit,
            sink,
        }
    }

    /// Makes `targets` the running set, by key: removed targets stop and their series are
    /// forgotten, new ones start, changed ones restart and keep their series, unchanged ones
    /// run on undisturbed. With duplicate keys, the last target wins.
    pub async fn reconcile(&mut self, targets: Vec<P>) {
        let wanted: HashMap<TargetKey, P> = targets.into_iter().map(|t| (t.key(), t)).collect();
        let gone: Vec<TargetKey> = self
            .running
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            self.stop(&key).await;
            self.sink.forget(&key);
            tracing::info!(target = %key.id, hop = %key.hop, "stopped probing");
        }
        for (key, target) in wanted {
            match self.running.get(&key) {
                Some(running) if running.target == target => {}
                Some(_) => {
                    self.stop(&key).await;
                    tracing::info!(target = %key.id, hop = %key.hop, "restarting: its configuration changed");
                    self.spawn(key, target);
                }
                None => {
                    self.sink.started(&key);
                    tracing::info!(
                        target = %key.id,
                        hop = %key.hop,
                        "probing every {:?}",
                        target.schedule().interval
                    );
                    self.spawn(key, target);
                }
            }
        }
    }

    /// The keys of the running targets.
    pub fn keys(&self) -> impl Iterator<Item = &TargetKey> {
        self.running.keys()
    }

    /// Changes how many probes may run at once. A lower limit takes effect as running probes
    /// finish.
    pub fn set_max_concurrency(&mut self, max_concurrency: usize) {
        let limit = clamp_limit(max_concurrency);
        if limit > self.limit {
            self.permits.add_permits(limit - self.limit);
        } else if limit < self.limit {
            self.withdraw(self.limit - limit);
        }
        self.limit = limit;
    }

    /// Withdraws `n` slots: the free ones now, the others as probes give them back.
    fn withdraw(&self, n: usize) {
        let owed = n - self.permits.forget_permits(n);
        let Ok(owed) = u32::try_from(owed) else {
            return;
        };
        if owed > 0 {
            let permits = Arc::clone(&self.permits);
            // Ends with an error when the semaphore is closed at shutdown.
            tokio::spawn(async move {
                if let Ok(taken) = permits.acquire_many_owned(owed).await {
                    taken.forget();
                }
            });
        }
    }

    /// Stops every target and aborts the probes in flight; series are kept for a last scrape.
    pub async fn shutdown(&mut self) {
        self.permits.close();
        let keys: Vec<TargetKey> = self.running.keys().cloned().collect();
        for key in keys {
            self.stop(&key).await;
        }
    }

    fn spawn(&mut self, key: TargetKey, target: P) {
        let task = tokio::spawn(run_target(
            target.clone(),
            Arc::clone(&self.permits),
            Arc::clone(&self.sink),
        ));
        self.running.insert(key, Running { target, task });
    }

    /// Aborts a target's task and waits until it is gone, so it cannot record after this.
    async fn stop(&mut self, key: &TargetKey) {
        if let Some(running) = self.running.remove(key) {
            running.task.abort();
            let _ = running.task.await;
        }
    }
}

impl<P: Probe, S: Sink> Drop for Scheduler<P, S> {
    fn drop(&mut self) {
        self.permits.close();
        for running in self.running.values() {
            running.task.abort();
        }
    }
}

fn clamp_limit(max_concurrency: usize) -> usize {
    max_concurrency.clamp(1, Semaphore::MAX_PERMITS)
}

/// One target's loop: wait for the planned start plus jitter, get a slot, probe, record.
async fn run_target<P: Probe, S: Sink>(target: P, permits: Arc<Semaphore>, sink: Arc<S>) {
    let key = target.key();
    let schedule = target.schedule();
    let mut planned = Instant::now() + stagger(&key, schedule.interval);
    loop {
        let start = planned + jitter(schedule.jitter);
        tokio::time::sleep_until(start).await;
        let Ok(permit) = permits.acquire().await else {
            return;
        };
        let began = Instant::now();
        sink.lag(began.saturating_duration_since(start));
        let outcome = attempt(&target, began, schedule.timeout).await;
        drop(permit);
        if let Some(outcome) = outcome {
            sink.record(&key, &outcome);
        }
        planned = next_tick(planned, schedule.interval, Instant::now());
    }
}

/// Runs one probe in its own task, so a panic stays there, with a backstop for a probe that
/// overruns its deadline. `None` when the probe panicked: there is nothing it observed.
async fn attempt<P: Probe>(target: &P, began: Instant, timeout: Duration) -> Option<Outcome> {
    let deadline = began + timeout;
    let probe = target.clone();
    let mut task = AbortOnDrop(tokio::spawn(async move { probe.run(deadline).await }));
    match tokio::time::timeout_at(deadline + GRACE, &mut task.0).await {
        Ok(Ok(outcome)) => Some(outcome),
        Ok(Err(err)) => {
            let key = target.key();
            tracing::error!(target = %key.id, hop = %key.hop, "probe crashed: {err}");
            None
        }
        Err(_) => {
            let key = target.key();
            tracing::warn!(target = %key.id, hop = %key.hop, "probe overran its deadline; abandoned");
            Some(Outcome {
                result: Err(Failure::Timeout),
                duration: began.elapsed(),
                detail: Detail::None,
            })
        }
    }
}

/// Aborts the probe task when the attempt is dropped: on the backstop timeout, or when the
/// target itself is stopped mid-probe.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The first planned start of `key`, as an offset into its interval: a hash of the key, so it
/// is the same after every restart, and different targets spread over the interval.
pub fn stagger(key: &TargetKey, interval: Duration) -> Duration {
    let nanos = interval.as_nanos().max(1);
    let offset = u128::from(hash(key)) % nanos;
    Duration::from_nanos(u64::try_from(offset).unwrap_or(0))
}

/// FNV-1a over the key, then a splitmix64 finalizer so that the low bits, which the modulo
/// keeps, depend on every byte. Stable across Rust releases, unlike `DefaultHasher`.
fn hash(key: &TargetKey) -> u64 {
    let bytes = key.hop.as_str().bytes().chain([b'/']).chain(key.id.bytes());
    let mut h = bytes.fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A random delay in `[0, max]`.
fn jitter(max: Duration) -> Duration {
    let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if max == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::random_range(0..=max))
}

/// The first planned start after `planned` that is still ahead of `now`: ticks missed while
/// waiting for a slot or a slow probe are skipped, never run back to back.
pub fn next_tick(planned: Instant, interval: Duration, now: Instant) -> Instant {
    let interval = interval.max(Duration::from_millis(1));
    let mut next = planned + interval;
    while next <= now {
        next += interval;
    }
    next
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::probe::Hop;

    /// What the fake probe and the recording sink saw, in order, with the (paused) time.
    #[derive(Debug, Clone, PartialEq)]
    enum Event {
        Probed {
            id: String,
            at: Instant,
            deadline: Instant,
        },
        Recorded {
            id: String,
            at: Instant,
            result: Result<(), Failure>,
        },
        Lag(Duration),
        Started(String),
        Forgot(String),
    }

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<Event>>>);

    impl Log {
        fn push(&self, event: Event) {
            self.0.lock().unwrap().push(event);
        }

        fn events(&self) -> Vec<Event> {
            self.0.lock().unwrap().clone()
        }

        fn probes_of(&self, id: &str) -> Vec<(Instant, Instant)> {
            let probes = self.events().into_iter().filter_map(|e| match e {
                Event::Probed {
                    id: i,
                    at,
                    deadline,
                } if i == id => Some((at, deadline)),
                _ => None,
            });
            probes.collect()
        }

        fn records_of(&self, id: &str) -> Vec<(Instant, Result<(), Failure>)> {
            let records = self.events().into_iter().filter_map(|e| match e {
                Event::Recorded { id: i, at, result } if i == id => Some((at, result)),
                _ => None,
            });
            records.collect()
        }

        fn lags(&self) -> Vec<Duration> {
            let lags = self.events().into_iter().filter_map(|e| match e {
                Event::Lag(lag) => Some(lag),
                _ => None,
            });
            lags.collect()
        }
    }

    impl Sink for Log {
        fn started(&self, key: &TargetKey) {
            self.push(Event::Started(key.id.clone()));
        }

        fn record(&self, key: &TargetKey, outcome: &Outcome) {
            let (id, at, result) = (key.id.clone(), Instant::now(), outcome.result);
            self.push(Event::Recorded { id, at, result });
        }

        fn lag(&self, lag: Duration) {
            self.push(Event::Lag(lag));
        }

        fn forget(&self, key: &TargetKey) {
            self.push(Event::Forgot(key.id.clone()));
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Behavior {
        Take(Duration),
        /// Ignores its deadline and never returns.
        Hang,
        Panic,
    }

    #[derive(Clone)]
    struct Fake {
        id: String,
        schedule: Schedule,
        behavior: Behavior,
        log: Log,
        /// Set when a hung probe's future is dropped, i.e. the probe was aborted.
        dropped: Arc<AtomicBool>,
    }

    impl PartialEq for Fake {
        fn eq(&self, other: &Fake) -> bool {
            (&self.id, self.schedule, self.behavior) == (&other.id, other.schedule, other.behavior)
        }
    }

    struct SetOnDrop(Arc<AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl Probe for Fake {
        fn key(&self) -> TargetKey {
            TargetKey {
                hop: Hop::Dns,
                id: self.id.clone(),
            }
        }

        fn schedule(&self) -> Schedule {
            self.schedule
        }

        async fn run(&self, deadline: Instant) -> Outcome {
            let (id, at) = (self.id.clone(), Instant::now());
            self.log.push(Event::Probed { id, at, deadline });
            let guard = SetOnDrop(Arc::clone(&self.dropped));
            match self.behavior {
                Behavior::Take(d) => tokio::time::sleep(d).await,
                Behavior::Hang => std::future::pending::<()>().await,
                Behavior::Panic => panic!("probe bug"),
            }
            std::mem::forget(guard);
            Outcome {
                result: Ok(()),
                duration: Duration::ZERO,
                detail: Detail::None,
            }
        }
    }

    fn schedule(interval_ms: u64, timeout_ms: u64, jitter_ms: u64) -> Schedule {
        Schedule {
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
            jitter: Duration::from_millis(jitter_ms),
        }
    }

    fn fake(log: &Log, id: &str, schedule: Schedule, behavior: Behavior) -> Fake {
        let dropped = Arc::new(AtomicBool::new(false));
        Fake {
            id: id.to_string(),
            schedule,
            behavior,
            log: log.clone(),
            dropped,
        }
    }

    fn key(id: &str) -> TargetKey {
        TargetKey {
            hop: Hop::Dns,
            id: id.to_string(),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Tokio timers have millisecond granularity: a wake-up may come up to 1 ms late.
    fn assert_near(actual: Duration, expected: Duration) {
        let diff = actual.abs_diff(expected);
        assert!(diff <= ms(2), "{actual:?} is not about {expected:?}");
    }

    #[test]
    fn stagger_is_stable_and_spreads_targets_over_the_interval() {
        let interval = Duration::from_secs(10);
        let mut per_second = [0; 10];
        for i in 0..1000 {
            let offset = stagger(&key(&format!("target-{i}")), interval);
            assert!(offset < interval);
            assert_eq!(offset, stagger(&key(&format!("target-{i}")), interval));
            per_second[offset.as_secs() as usize] += 1;
        }
        assert!(
            per_second.iter().all(|&n| (60..=140).contains(&n)),
            "{per_second:?}"
        );
    }

    #[test]
    fn missed_ticks_are_skipped() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(1);
        assert_eq!(next_tick(t0, interval, t0 + ms(300)), t0 + ms(1000));
        assert_eq!(next_tick(t0, interval, t0 + ms(1000)), t0 + ms(2000));
        assert_eq!(next_tick(t0, interval, t0 + ms(3500)), t0 + ms(4000));
    }

    #[tokio::test(start_paused = true)]
    async fn starts_follow_the_staggered_grid_plus_jitter() {
        let log = Log::default();
        let mut scheduler = Scheduler::new(4, Arc::new(log.clone()));
        let t0 = Instant::now();
        scheduler
            .reconcile(vec![fake(
                &log,
                "a",
                schedule(1000, 500, 200),
                Behavior::Take(ms(10)),
            )])
            .await;
        tokio::time::sleep(Duration::from_millis(10_500)).await;

        let first = t0 + stagger(&key("a"), Duration::from_secs(1));
        let starts = log.probes_of("a");
        assert!(starts.len() >= 9, "{starts:?}");
        let mut jitters = Vec::new();
        for (k, (at, deadline)) in starts.iter().enumerate() {
            let planned = first + Duration::from_secs(k as u64);
            let jitter = at.duration_since(planned);
            assert!(
                *at >= planned && jitter <= ms(201),
                "start {k}: jitter {jitter:?}"
            );
            assert_eq!(
                *deadline - *at,
                ms(500),
                "start {k}: deadline is start + timeout"
            );
            jitters.push(jitter);
        }
        jitters.dedup();
        assert!(jitters.len() > 1, "jitter is random: {jitters:?}");
    }

    /// Two keys whose first planned starts, in a 10 s interval, are less than 1 s apart.
    fn close_pair() -> (String, String, Duration) {
        let interval = Duration::from_secs(10);
        for i in 0..100 {
            for j in 0..100 {
                let (a, b) = (format!("t{i}"), format!("t{j}"));
                let (sa, sb) = (stagger(&key(&a), interval), stagger(&key(&b), interval));
                if sb > sa && sb - sa > ms(100) && sb - sa < ms(900) {
                    return (a, b, sb - sa);
                }
            }
        }
        panic!("no close pair among 100 keys");
    }

    #[tokio::test(start_paused = true)]
    async fn lag_is_the_wait_for_a_concurrency_slot() {
        let (early, late, gap) = close_pair();
        let log = Log::default();
        let mut scheduler = Scheduler::new(1, Arc::new(log.clone()));
        let slow = fake(
            &log,
            &early,
            schedule(10_000, 5_000, 0),
            Behavior::Take(ms(2_000)),
        );
        let quick = fake(
            &log,
            &late,
            schedule(10_000, 5_000, 0),
            Behavior::Take(ms(1)),
        );
        let first = Instant::now() + stagger(&key(&early), Duration::from_secs(10));
        scheduler.reconcile(vec![slow, quick]).await;
        tokio::time::sleep_until(first + ms(2_500)).await;

        let lags = log.lags();
        assert_eq!(lags.len(), 2, "{lags:?}");
        assert_near(lags[0], Duration::ZERO);
        assert_near(lags[1], ms(2_000) - gap);
        let (early_start, _) = log.probes_of(&early)[0];
        let (late_start, _) = log.probes_of(&late)[0];
        assert_near(late_start - early_start, ms(2_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_overruns_its_deadline_is_a_timeout_and_is_aborted() {
        let log = Log::default();
        let mut scheduler = Scheduler::new(4, Arc::new(log.clone()));
        let hung = fake(&log, "hung", schedule(10_000, 1_000, 0), Behavior::Hang);
        let dropped = Arc::clone(&hung.dropped);
        scheduler.reconcile(vec![hung]).await;
        tokio::time::sleep(Duration::from_secs(10)).await;

        let (started, deadline) = log.probes_of("hung")[0];
        assert_eq!(deadline, started + ms(1_000));
        let (recorded, result) = log.records_of("hung")[0];
        assert_eq!(result, Err(Failure::Timeout));
        assert_near(recorded - started, ms(1_000) + GRACE);
        assert!(dropped.load(Ordering::SeqCst), "the hung probe was aborted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_probe_stops_nothing() {
        let log = Log::default();
        let mut scheduler = Scheduler::new(1, Arc::new(log.clone()));
        let broken = fake(&log, "broken", schedule(1_000, 500, 0), Behavior::Panic);
        let fine = fake(&log, "fine", schedule(1_000, 500, 0), Behavior::Take(ms(1)));
        scheduler.reconcile(vec![broken, fine]).await;
        tokio::time::sleep(Duration::from_millis(5_500)).await;

        assert!(
            log.probes_of("broken").len() >= 5,
            "the broken target is still scheduled"
        );
        assert_eq!(log.records_of("broken"), vec![]);
        assert!(log.records_of("fine").len() >= 5);
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_adds_removes_and_restarts_by_key() {
        let log = Log::default();
        let mut scheduler = Scheduler::new(4, Arc::new(log.clone()));
        let every_second = schedule(1_000, 500, 0);
        let take = Behavior::Take(ms(1));
        let (a, b) = (
            fake(&log, "a", every_second, take),
            fake(&log, "b", every_second, take),
        );
        let kept = fake(&log, "kept", every_second, take);
        scheduler.reconcile(vec![a, b, kept.clone()]).await;
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        let kept_task = scheduler.running[&key("kept")].task.id();

        let faster_b = fake(&log, "b", schedule(250, 100, 0), take);
        let c = fake(&log, "c", every_second, take);
        scheduler.reconcile(vec![kept, faster_b, c]).await;
        let changed_at = Instant::now();
        let a_probes = log.probes_of("a").len();
        tokio::time::sleep(Duration::from_millis(3_000)).await;

        let events = log.events();
        let started: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e, Event::Started(_)))
            .collect();
        assert_eq!(started.len(), 4, "a, b, kept once, then c: {started:?}");
        assert!(events.contains(&Event::Started("c".into())));
        let forgot: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e, Event::Forgot(_)))
            .collect();
        assert_eq!(
            forgot,
            [&Event::Forgot("a".into())],
            "only the removed target is forgotten"
        );
        assert_eq!(log.probes_of("a").len(), a_probes, "a is no longer probed");
        let b_after = log
            .probes_of("b")
            .into_iter()
            .filter(|(at, _)| *at >= changed_at)
            .count();
        assert!(
            b_after >= 10,
            "b runs on its new 250 ms interval: {b_after}"
        );
        assert!(log.probes_of("c").len() >= 2);
        assert_eq!(
            scheduler.running[&key("kept")].task.id(),
            kept_task,
            "kept is undisturbed"
        );
        let mut keys: Vec<&TargetKey> = scheduler.keys().collect();
        keys.sort();
        assert_eq!(keys, [&key("b"), &key("c"), &key("kept")]);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_aborts_probes_in_flight() {
        let log = Log::default();
        let mut scheduler = Scheduler::new(4, Arc::new(log.clone()));
        let hung = fake(&log, "hung", schedule(10_000, 9_000, 0), Behavior::Hang);
        let dropped = Arc::clone(&hung.dropped);
        scheduler.reconcile(vec![hung]).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(log.probes_of("hung").len(), 1);
        assert!(!dropped.load(Ordering::SeqCst));

        scheduler.shutdown().await;

        assert!(
            dropped.load(Ordering::SeqCst),
            "the probe in flight was aborted"
        );
        assert_eq!(scheduler.keys().count(), 0);
        assert_eq!(log.records_of("hung"), vec![]);
    }

    #[tokio::test(start_paused = true)]
    async fn max_concurrency_can_grow_and_shrink() {
        let mut scheduler: Scheduler<Fake, Log> = Scheduler::new(1, Arc::new(Log::default()));
        scheduler.set_max_concurrency(3);
        assert_eq!(scheduler.permits.available_permits(), 3);
        let held = Arc::clone(&scheduler.permits)
            .acquire_many_owned(2)
            .await
            .unwrap();
        scheduler.set_max_concurrency(1);
        assert_eq!(scheduler.permits.available_permits(), 0);
        drop(held);
        tokio::task::yield_now().await;
        assert_eq!(
            scheduler.permits.available_permits(),
            1,
            "the lower limit took effect"
        );
    }
}
