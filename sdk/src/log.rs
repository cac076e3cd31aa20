//! Logging from inside a plugin. In wasm the line goes to the host log, tagged
//! with the plugin's name and version; natively (tests) it is kept for
//! [`crate::testing::take_logs`] and echoed to stderr.

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong but processing continues.
    Warn,
    /// Something failed.
    Error,
}

/// Writes `message` to the host log at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::wasm_export::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    native::log(level, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native {
    use super::Level;
    use std::cell::RefCell;

    thread_local! {
        static CAPTURED: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn log(level: Level, message: &str) {
        eprintln!("[plugin {level:?}] {message}");
        CAPTURED.with_borrow_mut(|lines| lines.push((level, message.to_string())));
    }

    pub(crate) fn take() -> Vec<(Level, String)> {
        CAPTURED.with_borrow_mut(std::mem::take)
    }
}
