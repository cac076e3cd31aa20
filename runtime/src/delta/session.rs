//! One DataFusion session for the process's Delta writes (appends, merges,
//! merge sources and update expressions), built once. Building a session
//! registers every built-in function; each append and merge paid for that
//! again, several times per merge. The session has deltalake's own defaults
//! (`create_session`: identifiers keep their case, strings read as views)
//! and holds no per-table state that outlives an operation except the
//! object stores deltalake registers for the tables it writes.

use deltalake::datafusion::catalog::Session;
use deltalake::datafusion::execution::SessionState;
use deltalake::datafusion::prelude::SessionContext;
use std::sync::{Arc, LazyLock};

static STATE: LazyLock<SessionState> =
    LazyLock::new(|| deltalake::delta_datafusion::create_session().state());

/// The shared session, for deltalake's `with_session_state`.
pub fn state() -> Arc<dyn Session> {
    Arc::new(STATE.clone())
}

/// A context over the shared session, to build inputs and parse expressions.
pub fn context() -> SessionContext {
    SessionContext::new_with_state(STATE.clone())
}
