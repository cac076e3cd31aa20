//! `tag-trap`: the `tag` test plugin for the hot-swap tests (see `tests/plugins/tag.rs`).

const TAG: &str = "v3-trap";
const BEHAVIOUR: Behaviour = Behaviour::Trap;

include!("../../tag.rs");
