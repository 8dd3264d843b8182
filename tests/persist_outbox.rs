//! A durable Messenger's outbox (issue 12): an event whose batch was committed but which a crash kept
//! from coming out (the crash between the driver's commit and its `Persisted`) comes out after the
//! restore; an event whose batch was lost does not, and the message is shown when it arrives again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use status_sansio::chat::messenger::{Event, Input, Messenger, MessengerConfig, Output};
use status_sansio::crypto::SecretKey;
use status_sansio::persist::{Batch, MemoryStore};
use status_sansio::waku::message::NewMessage;
use status_sansio::waku::{self, WakuConfig, WakuNode};
use status_sansio::{Seed, Timestamp};

const CHAT: &str = "outbox";

fn config(n: u64) -> MessengerConfig {
    let key = SecretKey::random(&mut Seed::from_u64(n).rng());
    let mut c = MessengerConfig::new(key, format!("device-{n}"));
    c.durable = true;
    c.contact_code_interval = None;
    c
}

/// A durable Messenger over a Waku node, with its store.
struct Client {
    messenger: Messenger,
    waku: WakuNode,
    store: MemoryStore,
    events: Vec<Event>,
}

impl Client {
    fn new(n: u64, now: Timestamp) -> Client {
        Client::resume(n, now, MemoryStore::new())
    }

    fn resume(n: u64, now: Timestamp, store: MemoryStore) -> Client {
        Client {
            messenger: Messenger::restore(config(n), &Seed::from_u64(n + 100), now, &store).unwrap(),
            waku: WakuNode::new(WakuConfig::default(), &Seed::from_u64(n + 200)).unwrap(),
            store,
            events: vec![],
        }
    }

    /// Carry out outputs, committing and confirming batches, until the first batch for which `stop`
    /// is true (returned unconfirmed, not applied) or until there is nothing left.
    fn pump(
        &mut self,
        now: Timestamp,
        mut stop: impl FnMut(&Batch) -> bool,
    ) -> (Vec<NewMessage>, Option<Batch>) {
        let mut posts = vec![];
        while let Some(o) = self.messenger.poll_output() {
            match o {
                Output::Subscribe { filter, .. } => {
                    let id = self.waku.unused_subscription_id();
                    let subscribe = waku::Input::Subscribe { id, filter };
                    self.waku.handle_input(now, subscribe).unwrap();
                }
                Output::Unsubscribe { .. } => {}
                Output::Transmit(m) => posts.push(*m),
                Output::Event(e) => self.events.push(e),
                Output::Persist(batch) => {
                    if stop(&batch) {
                        return (posts, Some(batch));
                    }
                    self.store.apply(&batch);
                    self.messenger
                        .handle_input(now, Input::Persisted(batch.seq))
                        .unwrap();
                }
                other => panic!("unexpected output {other:?}"),
            }
        }
        (posts, None)
    }

    fn deliver(&mut self, now: Timestamp, post: &NewMessage) {
        let mut env = waku::message::wrap(&mut Seed::from_u64(7).rng(), now.as_secs(), post).unwrap();
        let mut sealer = waku::envelope::PowSealer::new(&env, post.pow_target);
        if let waku::envelope::SealProgress::Done { nonce, .. } = sealer.step(1 << 22) {
            env.nonce = nonce;
        }
        self.waku.handle_input(now, waku::Input::Broadcast(env)).unwrap();
        while let Some(o) = self.waku.poll_output() {
            if let waku::Output::Event(waku::Event::Message(m)) = o {
                self.messenger.handle_input(now, Input::Received(m)).unwrap();
            }
        }
    }

    fn shown(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::MessageReceived {
                    message, own: false, ..
                } => Some(message.text.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Alice posts "hello" in the public chat; Bob has joined it. Returns Bob and Alice's post.
fn setup(now: Timestamp) -> (Client, NewMessage) {
    let mut alice = Client::new(1, now);
    let mut bob = Client::new(2, now);
    for c in [&mut alice, &mut bob] {
        c.messenger
            .handle_input(now, Input::JoinPublicChat(CHAT.into()))
            .unwrap();
        c.pump(now, |_| false);
    }
    let send = Input::SendText {
        chat: CHAT.into(),
        text: "hello".into(),
    };
    alice.messenger.handle_input(now, send).unwrap();
    let (posts, _) = alice.pump(now, |_| false);
    assert_eq!(posts.len(), 1);
    (bob, posts.into_iter().next().unwrap())
}

#[test]
fn an_event_committed_but_not_released_comes_out_after_the_restore() {
    let now = Timestamp::from_secs(1_700_000_000);
    let (mut bob, post) = setup(now);
    bob.deliver(now, &post);
    // The batch that makes the message durable comes out before the event; the driver commits it and
    // crashes before confirming.
    let (_, batch) = bob.pump(now, |_| true);
    let batch = batch.expect("a batch");
    assert!(bob.shown().is_empty(), "the event waits for its batch");
    bob.store.apply(&batch);
    let store = bob.store.clone();
    drop(bob);

    let mut bob = Client::resume(2, now, store);
    bob.pump(now, |_| false);
    assert_eq!(
        bob.shown(),
        vec!["hello".to_string()],
        "given again from the outbox"
    );
    // The message is in the restored log, so a re-delivery is not shown again.
    bob.deliver(now, &post);
    bob.pump(now, |_| false);
    assert_eq!(bob.shown(), vec!["hello".to_string()]);
    assert_eq!(bob.messenger.messages(CHAT).len(), 1);
}

#[test]
fn an_event_whose_batch_was_lost_is_not_given_and_the_message_comes_again() {
    let now = Timestamp::from_secs(1_700_000_000);
    let (mut bob, post) = setup(now);
    bob.deliver(now, &post);
    let (_, batch) = bob.pump(now, |_| true);
    assert!(batch.is_some());
    // The crash comes before the commit: the batch is lost with everything it carried.
    let store = bob.store.clone();
    drop(bob);

    let mut bob = Client::resume(2, now, store);
    bob.pump(now, |_| false);
    assert!(bob.shown().is_empty(), "nothing durable said it was shown");
    assert!(bob.messenger.messages(CHAT).is_empty());
    bob.deliver(now, &post);
    bob.pump(now, |_| false);
    assert_eq!(bob.shown(), vec!["hello".to_string()]);
}

#[test]
fn a_later_batch_empties_the_outbox() {
    let now = Timestamp::from_secs(1_700_000_000);
    let (mut bob, post) = setup(now);
    bob.deliver(now, &post);
    bob.pump(now, |_| false);
    assert_eq!(bob.shown(), vec!["hello".to_string()]);
    // Any later change writes the outbox again, without the event that came out.
    bob.messenger
        .handle_input(now, Input::JoinPublicChat("other".into()))
        .unwrap();
    bob.pump(now, |_| false);
    let store = bob.store.clone();
    let mut bob = Client::resume(2, now, store);
    bob.pump(now, |_| false);
    assert!(bob.shown().is_empty(), "{:?}", bob.shown());
}
