//! Writes made by another process on the same store wake a live session, without polling: on
//! Linux and Android (inotify), a watch on the store's directory reports each write to its
//! files. Writes of this process announce themselves directly (`Store::on_commit`); this is
//! for the command line editing while the app (or `linli sync --watch`) runs. Elsewhere, or if
//! the watch cannot be made, the session looks at the change feed every few seconds instead.

use std::path::Path;
use std::time::Duration;

/// Tells when the files of a store's directory were written to by anyone.
#[derive(Debug)]
pub(crate) struct ForeignWrites {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    /// How often to look at the feed when no watch could be made.
    fallback: Duration,
    /// The shortest time between two wakes: a burst of writes by another process is a wake
    /// every `gap` at most, not one per write (each costs a look at the feed).
    gap: Duration,
    /// When the last wake was.
    last: Option<tokio::time::Instant>,
}

impl ForeignWrites {
    /// Watches the directory of the database file `db`, waking at most every `gap`, or falls
    /// back to a look every `fallback`. Must be called inside a tokio runtime.
    pub(crate) fn watch(db: &Path, gap: Duration, fallback: Duration) -> ForeignWrites {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let fd = db.parent().and_then(|dir| match inotify(dir) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    tracing::debug!(error = %e, "no inotify watch: looking at the feed instead");
                    None
                }
            });
            ForeignWrites {
                fd,
                fallback,
                gap,
                last: None,
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = db;
            ForeignWrites {
                fallback,
                gap,
                last: None,
            }
        }
    }

    /// Waits until a file of the directory may have been written (or, without a watch, for
    /// the fallback period). Several writes that happened meanwhile are one wake.
    pub(crate) async fn written(&mut self) {
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + self.gap).await;
        }
        self.last = Some(tokio::time::Instant::now());
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(fd) = &self.fd {
            loop {
                let Ok(mut ready) = fd.readable().await else {
                    break;
                };
                let mut buf = [0u8; 4096];
                let mut any = false;
                // Drains every event queued: their content does not matter.
                while let Ok(n) = rustix::io::read(fd.get_ref(), &mut buf) {
                    if n == 0 {
                        break;
                    }
                    any = true;
                }
                ready.clear_ready();
                if any {
                    self.last = Some(tokio::time::Instant::now());
                    return;
                }
            }
            // The watch broke: from now on, look now and then.
            self.fd = None;
        }
        tokio::time::sleep(self.fallback).await;
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn inotify(dir: &Path) -> std::io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use rustix::fs::inotify::{CreateFlags, WatchFlags, add_watch, init};
    let fd = init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
    add_watch(&fd, dir, WatchFlags::MODIFY | WatchFlags::CREATE)?;
    // Deprecated for descriptors the caller does not own (the unsafe `register` asks the
    // caller to promise I/O safety); this `OwnedFd` was made here and lives exactly as long as
    // the `AsyncFd` that owns it, which is that promise kept, without `unsafe`.
    #[allow(deprecated)]
    tokio::io::unix::AsyncFd::new(fd)
}
