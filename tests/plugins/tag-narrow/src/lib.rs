//! `tag-narrow`: the `tag` test plugin for the hot-swap tests (see `tests/plugins/tag.rs`).

const TAG: &str = "v4-narrow";
const BEHAVIOUR: Behaviour = Behaviour::Narrow;

include!("../../tag.rs");
