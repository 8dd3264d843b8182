//! The one shape every machine has, as a trait (docs/architecture.md "One vocabulary").
//!
//! Each machine of the stack keeps its own inherent methods — this trait only names what they have in
//! common, so generic code (a test harness, a driver loop, a fuzz oracle) can drive any of them the same
//! way: feed inputs, fire timers, drain outputs, sleep until the next deadline.
//!
//! ```
//! use status_sansio::{StateMachine, Timestamp};
//!
//! /// Fire every timer up to `until` and collect what comes out: works for any machine.
//! fn run_timers<M: StateMachine>(m: &mut M, mut now: Timestamp, until: Timestamp) -> Vec<M::Output> {
//!     let mut out = Vec::new();
//!     loop {
//!         while let Some(o) = m.poll_output() {
//!             out.push(o);
//!         }
//!         match m.poll_timeout() {
//!             Some(t) if t <= until => {
//!                 now = now.max(t);
//!                 m.handle_timeout(now);
//!             }
//!             _ => return out,
//!         }
//!     }
//! }
//!
//! let mut mvds = status_sansio::mvds::Node::new(Default::default(), &status_sansio::Seed::from_u64(1), Timestamp::ZERO).unwrap();
//! assert!(run_timers(&mut mvds, Timestamp::ZERO, Timestamp::from_millis(10_000)).is_empty()); // nothing to sync yet
//! ```

use crate::time::Timestamp;

/// A sans-IO state machine: inputs and time in, outputs and a deadline out. Implemented by every machine
/// of the stack ([`rlpx::Connection`](crate::rlpx::Connection), [`waku::WakuNode`](crate::waku::WakuNode),
/// [`secure::SecureTransport`](crate::secure::SecureTransport), [`mvds::Node`](crate::mvds::Node),
/// [`chat::messenger::Messenger`](crate::chat::messenger::Messenger),
/// [`mailserver::server::MailServer`](crate::mailserver::server::MailServer),
/// [`mailserver::client::HistoryClient`](crate::mailserver::client::HistoryClient),
/// [`discovery::DnsTreeClient`](crate::discovery::DnsTreeClient),
/// [`discovery::PeerPool`](crate::discovery::PeerPool) and [`node::Engine`](crate::node::Engine)).
pub trait StateMachine {
    /// What is fed in (bytes received, connection changes, commands).
    type Input<'a>;
    /// What comes out (bytes for the layer below, requests, events for the application).
    type Output;
    /// Misuse of the API by the caller (never a peer's fault).
    type Error;

    /// Feed an input. `Err` only for misuse.
    fn handle_input(&mut self, now: Timestamp, input: Self::Input<'_>) -> Result<(), Self::Error>;
    /// Fire every deadline `<= now`; a spurious call is a no-op.
    fn handle_timeout(&mut self, now: Timestamp);
    /// The next output, after every mutation until `None`.
    fn poll_output(&mut self) -> Option<Self::Output>;
    /// The earliest pending deadline.
    fn poll_timeout(&self) -> Option<Timestamp>;
}

macro_rules! state_machine {
    ($ty:ty, $input:ty, $output:ty, $error:ty) => {
        impl StateMachine for $ty {
            type Input<'a> = $input;
            type Output = $output;
            type Error = $error;
            fn handle_input(&mut self, now: Timestamp, input: Self::Input<'_>) -> Result<(), Self::Error> {
                <$ty>::handle_input(self, now, input)
            }
            fn handle_timeout(&mut self, now: Timestamp) {
                <$ty>::handle_timeout(self, now)
            }
            fn poll_output(&mut self) -> Option<Self::Output> {
                <$ty>::poll_output(self)
            }
            fn poll_timeout(&self) -> Option<Timestamp> {
                <$ty>::poll_timeout(self)
            }
        }
    };
}

state_machine!(
    crate::rlpx::Connection,
    crate::rlpx::Input<'a>,
    crate::rlpx::Output,
    crate::rlpx::RlpxError
);
state_machine!(
    crate::waku::WakuNode,
    crate::waku::Input,
    crate::waku::Output,
    crate::waku::WakuError
);
state_machine!(
    crate::secure::SecureTransport,
    crate::secure::Input,
    crate::secure::Output,
    crate::secure::SecureError
);
state_machine!(
    crate::mvds::Node,
    crate::mvds::Input,
    crate::mvds::Output,
    crate::mvds::MvdsError
);
state_machine!(
    crate::chat::messenger::Messenger,
    crate::chat::messenger::Input,
    crate::chat::messenger::Output,
    crate::chat::messenger::MessengerError
);
state_machine!(
    crate::mailserver::server::MailServer,
    crate::mailserver::server::Input,
    crate::mailserver::server::Output,
    crate::mailserver::MailserverError
);
state_machine!(
    crate::mailserver::client::HistoryClient,
    crate::mailserver::client::Input,
    crate::mailserver::client::Output,
    crate::mailserver::MailserverError
);
state_machine!(
    crate::discovery::DnsTreeClient,
    crate::discovery::dnstree::Input,
    crate::discovery::dnstree::Output,
    crate::discovery::DiscoveryError
);
state_machine!(
    crate::discovery::PeerPool,
    crate::discovery::peerpool::Input,
    crate::discovery::peerpool::Output,
    crate::discovery::DiscoveryError
);
state_machine!(
    crate::node::Engine,
    crate::node::Input<'a>,
    crate::node::Output,
    crate::Error
);
