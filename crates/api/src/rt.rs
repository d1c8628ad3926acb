//! Runtimes for the network work of the app's operations: each on a thread of its own, so
//! that a caller inside an async runtime (a Tauri command) never blocks that runtime.

use linli_sync::relay_client::SyncError;

use crate::ApiError;

/// Runs `f` with a runtime of its own on a thread of its own: the caller may be a task of an
/// async runtime (a Tauri command), inside which another runtime cannot block.
pub(crate) fn on_own_runtime<T: Send>(
    f: impl FnOnce(&tokio::runtime::Runtime) -> Result<T, ApiError> + Send,
) -> Result<T, ApiError> {
    std::thread::scope(|scope| {
        scope.spawn(|| f(&runtime()?)).join().unwrap_or_else(|_| {
            Err(ApiError::Sync(SyncError::Protocol(
                "a sync thread panicked".into(),
            )))
        })
    })
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ApiError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ApiError::Sync(SyncError::Protocol(format!("cannot start a runtime: {e}"))))
}
