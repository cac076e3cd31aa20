//! `tag-v1`: the `tag` test plugin for the hot-swap tests (see `tests/plugins/tag.rs`).

const TAG: &str = "v1";
const BEHAVIOUR: Behaviour = Behaviour::Tag;

include!("../../tag.rs");
