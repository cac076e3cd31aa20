//! `weir demo`: the orders event generator and a throwaway local broker, so the
//! orders scenario runs end to end on a machine with no Kafka installed.

pub mod broker;
pub mod orders;
