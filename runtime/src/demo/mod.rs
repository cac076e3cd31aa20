//! `weir demo`: the event generators (orders; user changes for profiles) and
//! a throwaway local broker, so the scenarios run end to end on a machine
//! with no Kafka installed.

pub mod broker;
pub mod orders;
pub mod profiles;
pub mod random;
pub mod related;
