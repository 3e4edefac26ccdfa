//! Lock files that cannot go stale.
//!
//! A lock is an advisory `flock` on a file beside the socket. The kernel drops
//! it when its holder dies, however it dies (`kill -9` included), so a leftover
//! file never blocks anybody: the next taker simply locks it again. Removing the
//! file on release opens a classic race (someone opened the old file, we unlink
//! it, they lock a file nobody else can see), so after locking, a taker checks
//! that the path still names the inode it locked, and retries if not.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// A held lock; released (and its file removed) on drop.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    lock: Option<Flock<File>>,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it; `holder` is the pid it wrote, if any.
    #[error("{} is held by process {}", path.display(), holder.map_or_else(|| "unknown".to_owned(), |p| p.to_string()))]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The pid recorded in the file.
        holder: Option<u32>,
    },
    /// The lock was still held when the deadline passed.
    #[error("timed out waiting for {}", path.display())]
    TimedOut {
        /// The lock file.
        path: PathBuf,
    },
    /// The file could not be opened or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl LockFile {
    /// Takes the lock now or fails with [`LockError::Held`].
    pub fn try_acquire(path: &Path) -> Result<Self, LockError> {
        loop {
            let file = open(path)?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    if let Some(lock) = Self::check_same_file(path, lock)? {
                        return Ok(lock);
                    }
                }
                Err((mut file, Errno::EWOULDBLOCK)) => {
                    return Err(LockError::Held {
                        path: path.to_owned(),
                        holder: read_pid(&mut file),
                    });
                }
                Err((_, errno)) => return Err(io_err(path, errno.into())),
            }
        }
    }

    /// Waits for the lock until `timeout` passes. Polls at a few milliseconds:
    /// this runs only while a daemon is being launched, never in the daemon.
    pub fn acquire_with_timeout(path: &Path, timeout: Duration) -> Result<Self, LockError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            match Self::try_acquire(path) {
                Err(LockError::Held { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(LockError::Held { path, .. }) => return Err(LockError::TimedOut { path }),
                other => return other,
            }
        }
    }

    fn check_same_file(path: &Path, lock: Flock<File>) -> Result<Option<Self>, LockError> {
        let held = lock.metadata().map_err(|e| io_err(path, e))?;
        match std::fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => Ok(Some(Self {
                path: path.to_owned(),
                lock: Some(lock),
            })),
            // Removed or replaced between open and lock: try again on the new file.
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path, e)),
        }
    }

    /// Records our pid in the file, so "already running" can name the holder.
    pub fn write_pid(&mut self) -> io::Result<()> {
        let Some(lock) = self.lock.as_mut() else {
            return Ok(());
        };
        let file: &mut File = lock;
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_data()
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Unlink while still holding the lock: a waiter that opened this inode
        // will notice it is gone (check_same_file) and start over.
        let _ = std::fs::remove_file(&self.path);
        drop(self.lock.take());
    }
}

fn open(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err(path, e))
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn io_err(path: &Path, source: io::Error) -> LockError {
    LockError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_taker_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let mut first = LockFile::try_acquire(&path).unwrap();
        first.write_pid().unwrap();
        match LockFile::try_acquire(&path) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
    }

    #[test]
    fn release_removes_the_file_and_frees_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        drop(LockFile::try_acquire(&path).unwrap());
        assert!(!path.exists());
        let again = LockFile::try_acquire(&path).unwrap();
        assert!(path.exists());
        drop(again);
    }

    #[test]
    fn leftover_file_of_a_dead_holder_is_not_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        std::fs::write(&path, "999999\n").unwrap();
        let lock = LockFile::try_acquire(&path).unwrap();
        assert_eq!(lock.path(), path);
    }

    #[test]
    fn waiting_taker_gets_the_lock_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = LockFile::try_acquire(&path).unwrap();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                LockFile::acquire_with_timeout(&path, Duration::from_secs(5)).map(|_| ())
            })
        };
        std::thread::sleep(Duration::from_millis(30));
        drop(first);
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn timeout_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let _first = LockFile::try_acquire(&path).unwrap();
        let err = LockFile::acquire_with_timeout(&path, Duration::from_millis(30)).unwrap_err();
        assert!(matches!(err, LockError::TimedOut { .. }), "{err:?}");
    }
}
