pub mod engine_net;
pub mod waku_net;
