//! The `status-node` program.
fn main() {}
