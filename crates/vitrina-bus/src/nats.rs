//! The broker between the processes of a deployment: NATS JetStream.
//!
//! One stream, [`STREAM`], carries two subjects per deployment (named by its log's id, so
//! deployments sharing a NATS server never hear each other):
//! - `vitrina.{log}.log`: the log's commits as the activity processes stored them (their events
//!   with sequences, and the head each follows). Api replicas' followers hear them as they do
//!   the embedded store's commit feed: a hint that lets them apply a commit milliseconds
//!   after it, never the truth: a follower that misses one reads the log (ADR 0012).
//! - `vitrina.{log}.changes`: [`Change`]s to state outside the log (catalogue, experiments,
//!   erasures), each a hint to re-read the store.
//!
//! Publishing never blocks a request: commits go through a bounded queue to one task that
//! sends what gathered as one message; a full queue or a broker that is down costs freshness
//! (the followers' next read of the log), never an event.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use vitrina_core::{
    changes::Change,
    ports::{CommitListener, Committed},
    ActivityType, LogEvent, ProductId, UserId,
};

/// The stream's name.
pub const STREAM: &str = "VITRINA";
/// The stream's subjects: every deployment's.
const SUBJECTS: &str = "vitrina.>";
/// Messages are kept this long: long enough for a replica that reconnects to hear what it
/// missed, short enough to keep the broker small (the log is the record).
const MAX_AGE: Duration = Duration::from_secs(600);
/// Commits waiting to be published, at most; past it they are dropped (counted).
const QUEUE: usize = 65_536;
/// Commits taken from the queue at once.
const PER_MESSAGE: usize = 1_024;
/// Events in one message at most: with ids of up to 128 characters a message stays well
/// under NATS's default payload limit of 1 MiB (a larger commit is split: its events are
/// numbered consecutively, so each part follows the one before).
const MESSAGE_EVENTS: usize = 1_000;
/// After a consumer fails, it is created again this much later.
const RETRY: Duration = Duration::from_millis(500);

/// Why the broker could not be reached or set up.
#[derive(Debug, thiserror::Error)]
#[error("NATS at {url}: {message}")]
pub struct BrokerError {
    url: String,
    message: String,
}

/// A connection to the deployment's NATS JetStream.
pub struct Broker {
    js: jetstream::Context,
    commits: mpsc::Sender<Committed>,
    /// This deployment's subjects.
    log_subject: String,
    changes_subject: String,
}

impl Broker {
    /// Connects to `url` (`nats://host:4222`) and makes sure the stream exists; `log` names
    /// the deployment's log (letters and digits).
    pub async fn connect(url: &str, log: &str) -> Result<Arc<Self>, BrokerError> {
        let fail = |e: &dyn std::fmt::Display| BrokerError { url: url.into(), message: e.to_string() };
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| fail(&e))?;
        let js = jetstream::new(client);
        js.create_or_update_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec![SUBJECTS.into()],
            max_age: MAX_AGE,
            max_bytes: 1 << 30,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        })
        .await
        .map_err(|e| fail(&e))?;
        let log_subject = format!("vitrina.{log}.log");
        let (commits, rx) = mpsc::channel(QUEUE);
        tokio::spawn(publish_commits(js.clone(), log_subject.clone(), rx));
        let changes_subject = format!("vitrina.{log}.changes");
        Ok(Arc::new(Self { js, commits, log_subject, changes_subject }))
    }

    /// Queues a stored commit for the followers (never waits; a full queue drops it).
    pub fn publish_commit(&self, commit: Committed) {
        if self.commits.try_send(commit).is_err() {
            metrics::counter!("vitrina_bus_commits_dropped_total").increment(1);
        }
    }

    /// Tells the other processes of a change (waits for the broker's acknowledgement, at
    /// most a few seconds; a failure is logged: the others re-read periodically).
    pub async fn publish_change(&self, change: &Change) {
        let payload = serde_json::to_vec(change).expect("a change serialises");
        let sent = async {
            self.js.publish(self.changes_subject.clone(), payload.into()).await?.await?;
            Ok::<_, async_nats::Error>(())
        };
        match tokio::time::timeout(Duration::from_secs(3), sent).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, ?change, "telling the other processes of a change failed")
            }
            Err(_) => tracing::warn!(?change, "telling the other processes of a change timed out"),
        }
    }

    /// Hears the commits published from now on (re-subscribing after a broker restart) until
    /// the returned task is aborted. Each is handed to `listener`.
    pub fn follow_commits(self: &Arc<Self>, listener: CommitListener) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            me.consume(&me.log_subject, |payload| {
                match decode_commits(payload) {
                    Ok(commits) => commits.into_iter().for_each(&listener),
                    Err(e) => {
                        tracing::warn!(error = %e, "a commit message from the broker could not be read")
                    }
                }
                true
            })
            .await
        })
    }

    /// Hears the changes published from now on into `tx`, for as long as `tx` is open.
    pub fn follow_changes(self: &Arc<Self>, tx: mpsc::UnboundedSender<Change>) {
        let me = self.clone();
        tokio::spawn(async move {
            me.consume(&me.changes_subject, |payload| match serde_json::from_slice::<Change>(payload) {
                Ok(change) => tx.send(change).is_ok(),
                Err(e) => {
                    tracing::warn!(error = %e, "a change message from the broker could not be read");
                    !tx.is_closed()
                }
            })
            .await
        });
    }

    /// An ordered consumer of `subject` from now on, created again whenever it fails, until
    /// `handle` answers `false` (no one listens any more).
    async fn consume(&self, subject: &str, mut handle: impl FnMut(&[u8]) -> bool) {
        let kind = if subject == self.log_subject { "commits" } else { "changes" };
        let mut failing = false;
        loop {
            match self.messages(subject).await {
                Ok(mut messages) => {
                    if failing {
                        tracing::info!(subject, "hearing the broker again");
                        failing = false;
                    }
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(m) => {
                                metrics::counter!("vitrina_bus_heard_total", "kind" => kind).increment(1);
                                if !handle(&m.payload) {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(subject, error = %e, "the broker's consumer failed");
                                break;
                            }
                        }
                    }
                }
                Err(e) if !failing => {
                    tracing::warn!(subject, error = %e, "cannot consume from the broker; retrying");
                    failing = true;
                }
                Err(_) => {}
            }
            metrics::counter!("vitrina_bus_resubscriptions_total").increment(1);
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn messages(&self, subject: &str) -> Result<consumer::pull::Ordered, async_nats::Error> {
        let stream = self.js.get_stream(STREAM).await?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject.into(),
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await?;
        Ok(consumer.messages().await?)
    }
}

/// Sends what is queued, up to [`PER_MESSAGE`] commits a message, until the broker is dropped.
async fn publish_commits(js: jetstream::Context, subject: String, mut rx: mpsc::Receiver<Committed>) {
    let mut batch = Vec::new();
    let mut failing = false;
    while rx.recv_many(&mut batch, PER_MESSAGE).await > 0 {
        for message in messages(std::mem::take(&mut batch)) {
            publish(&js, &subject, encode_commits(&message), &mut failing).await;
        }
    }
}

/// Splits commits into messages of at most [`MESSAGE_EVENTS`] events.
fn messages(commits: Vec<Committed>) -> Vec<Vec<Committed>> {
    let mut out: Vec<Vec<Committed>> = vec![Vec::new()];
    let mut size = 0;
    for commit in commits {
        let mut after = commit.after;
        let mut events = commit.events.into_iter().peekable();
        while events.peek().is_some() {
            if size == MESSAGE_EVENTS {
                out.push(Vec::new());
                size = 0;
            }
            let part: Vec<LogEvent> = events.by_ref().take(MESSAGE_EVENTS - size).collect();
            size += part.len();
            let next = part.last().map_or(after, |e| e.seq);
            out.last_mut().expect("one message at least").push(Committed { after, events: part });
            after = next;
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

async fn publish(js: &jetstream::Context, subject: &str, payload: Vec<u8>, failing: &mut bool) {
    let sent = async {
        js.publish(subject.to_string(), payload.into()).await?.await?;
        Ok::<_, async_nats::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(2), sent).await {
        Ok(Ok(())) => {
            if *failing {
                tracing::info!("publishing commits to the broker again");
                *failing = false;
            }
        }
        failed => {
            metrics::counter!("vitrina_bus_publish_failures_total").increment(1);
            if !*failing {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                tracing::warn!(%error, "publishing commits to the broker failed; replicas read them from the log");
                *failing = true;
            }
        }
    }
}

/// One event on the wire: sequence, visitor, product, type, time (ms), rating value.
#[derive(Serialize, Deserialize)]
struct WireEvent(u64, String, Option<String>, String, i64, Option<f32>);

#[derive(Serialize, Deserialize)]
struct WireCommit {
    after: u64,
    events: Vec<WireEvent>,
}

fn encode_commits(commits: &[Committed]) -> Vec<u8> {
    let wire: Vec<WireCommit> = commits
        .iter()
        .map(|c| WireCommit {
            after: c.after,
            events: c
                .events
                .iter()
                .map(|e| {
                    WireEvent(
                        e.seq,
                        e.user_id.as_str().into(),
                        e.product_id.as_ref().map(|p| p.as_str().into()),
                        e.activity_type.as_str().into(),
                        e.ts_ms,
                        e.value,
                    )
                })
                .collect(),
        })
        .collect();
    serde_json::to_vec(&wire).expect("commits serialise")
}

fn decode_commits(payload: &[u8]) -> Result<Vec<Committed>, String> {
    let wire: Vec<WireCommit> = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    wire.into_iter()
        .map(|c| {
            let events = c
                .events
                .into_iter()
                .map(|WireEvent(seq, user, product, kind, ts_ms, value)| {
                    Ok(LogEvent {
                        seq,
                        user_id: UserId::parse(&user).map_err(|e| e.to_string())?,
                        product_id: product
                            .map(|p| ProductId::parse(&p))
                            .transpose()
                            .map_err(|e| e.to_string())?,
                        activity_type: kind.parse::<ActivityType>().map_err(|e| format!("{e:?}"))?,
                        ts_ms,
                        value,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Committed { after: c.after, events })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_round_trip_through_the_wire_format() {
        let event = |seq, product: Option<&str>, kind| LogEvent {
            seq,
            user_id: UserId::parse("u-1").unwrap(),
            product_id: product.map(|p| ProductId::parse(p).unwrap()),
            activity_type: kind,
            ts_ms: 1_700_000_000_000 + seq as i64,
            value: (kind == ActivityType::Rating).then_some(4.5),
        };
        let commits = vec![
            Committed { after: 6, events: vec![event(7, Some("p-1"), ActivityType::View)] },
            Committed {
                after: 7,
                events: vec![
                    event(8, Some("p-2"), ActivityType::Rating),
                    event(9, None, ActivityType::Search),
                ],
            },
        ];
        let back = decode_commits(&encode_commits(&commits)).unwrap();
        assert_eq!(back.len(), 2);
        for (a, b) in commits.iter().zip(&back) {
            assert_eq!(a.after, b.after);
            assert_eq!(a.events, b.events);
        }
        assert!(decode_commits(br#"[{"after":1,"events":[[2,"bad id!",null,"view",0,null]]}]"#).is_err());
    }

    fn commit(after: u64) -> Committed {
        let event = LogEvent {
            seq: after + 1,
            user_id: UserId::parse("u-1").unwrap(),
            product_id: None,
            activity_type: ActivityType::Search,
            ts_ms: 0,
            value: None,
        };
        Committed { after, events: vec![event] }
    }

    #[tokio::test]
    async fn a_deployment_hears_its_own_commits_and_changes_and_no_other_deployments() {
        let Some(url) = vitrina_store::testing::service_url(vitrina_store::testing::NATS_URL) else { return };
        let log = format!(
            "test{}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        );
        let ours = Broker::connect(&url, &log).await.unwrap();
        let theirs = Broker::connect(&url, &format!("{log}other")).await.unwrap();
        let (tx, mut commits) = mpsc::unbounded_channel();
        ours.follow_commits(Box::new(move |c| {
            let _ = tx.send(c);
        }));
        let (tx, mut changes) = mpsc::unbounded_channel();
        ours.follow_changes(tx);
        // The consumers hear what is published once they exist: publish until heard.
        let mut after = 0;
        loop {
            theirs.publish_commit(commit(1_000_000 + after));
            ours.publish_commit(commit(after));
            if let Ok(Some(heard)) = tokio::time::timeout(Duration::from_millis(200), commits.recv()).await {
                assert!(heard.after < 1_000_000, "another deployment's commit was heard");
                assert_eq!(heard.events, commit(heard.after).events);
                break;
            }
            after += 1;
        }
        theirs.publish_commit(commit(2_000_000));
        ours.publish_commit(commit(999_999));
        while let Some(heard) = commits.recv().await {
            assert!(heard.after < 1_000_000, "another deployment's commit was heard");
            if heard.after == 999_999 {
                break;
            }
        }
        let erased = Change::Erased { user: UserId::parse("u-2").unwrap(), through: 7, partly: true };
        loop {
            theirs.publish_change(&Change::Experiments).await;
            ours.publish_change(&erased).await;
            if let Ok(Some(heard)) = tokio::time::timeout(Duration::from_millis(200), changes.recv()).await {
                assert_eq!(heard, erased, "only this deployment's changes are heard");
                break;
            }
        }
    }

    #[test]
    fn large_commits_are_split_into_messages_that_each_follow_the_one_before() {
        let events = |from: u64, n: u64| -> Vec<LogEvent> {
            (from..from + n).map(|seq| commit(seq - 1).events.remove(0)).collect()
        };
        let commits = vec![
            Committed { after: 10, events: events(11, 2_500) },
            Committed { after: 2_510, events: events(2_511, 10) },
        ];
        let messages = messages(commits);
        let sizes: Vec<usize> = messages.iter().map(|m| m.iter().map(|c| c.events.len()).sum()).collect();
        assert_eq!(sizes, vec![1_000, 1_000, 510]);
        let parts: Vec<&Committed> = messages.iter().flatten().collect();
        let mut head = 10;
        for part in parts {
            assert_eq!(part.after, head, "each part follows the one before");
            assert_eq!(part.events[0].seq, head + 1);
            head = part.events.last().unwrap().seq;
        }
        assert_eq!(head, 2_520);
    }
}
