//! The domain event bus. [`InProcessBus`] is the embedded default: a bounded broadcast
//! channel inside the process. A NATS JetStream bus implements the same
//! [`EventBus`](vitrina_core::ports::EventBus) port for distributed runs.

pub mod nats;

use async_trait::async_trait;
use tokio::sync::broadcast;
use vitrina_core::{
    events::DomainEvent,
    ports::{EventBus, Subscription},
};

/// Broadcast bus within one process. A subscriber that falls more than `capacity` events
/// behind skips the oldest ones (and keeps going) rather than slowing down publishers.
pub struct InProcessBus {
    sender: broadcast::Sender<DomainEvent>,
}

impl InProcessBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, event: DomainEvent) {
        // No subscriber is not an error: the event log, not the bus, is the source of truth.
        let _ = self.sender.send(event);
    }

    fn subscribe(&self) -> Box<dyn Subscription> {
        Box::new(InProcessSubscription { receiver: self.sender.subscribe() })
    }
}

struct InProcessSubscription {
    receiver: broadcast::Receiver<DomainEvent>,
}

#[async_trait]
impl Subscription for InProcessSubscription {
    async fn next(&mut self) -> Option<DomainEvent> {
        loop {
            match self.receiver.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_sees_events_published_after_it_subscribed() {
        let bus = InProcessBus::new(16);
        bus.publish(DomainEvent::system("Early", None, serde_json::json!({})));
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        bus.publish(DomainEvent::system("ModelTrainingStarted", None, serde_json::json!({"job": 1})));
        assert_eq!(a.next().await.unwrap().kind, "ModelTrainingStarted");
        assert_eq!(b.next().await.unwrap().payload["job"], 1);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_skips_ahead_instead_of_failing() {
        let bus = InProcessBus::new(2);
        let mut s = bus.subscribe();
        for i in 0..5 {
            bus.publish(DomainEvent::system("E", None, serde_json::json!(i)));
        }
        assert_eq!(s.next().await.unwrap().payload, 3);
        drop(bus);
        assert_eq!(s.next().await.unwrap().payload, 4);
        assert!(s.next().await.is_none());
    }
}
