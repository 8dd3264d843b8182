pub mod waku_net;
