//! Safe wrappers around the few libc calls the spawner needs: glibc's
//! `posix_spawn` with its file actions and attributes, and `pidfd_open`.
//!
//! Why not std or tokio's `Command`: a child that needs an extra fd (the IPC
//! channel on fd 3) needs `pre_exec`, which makes std `fork` the daemon
//! instead of using `posix_spawn`. `fork` copies the daemon's page tables and
//! makes every page it writes afterwards fault once (copy-on-write), which
//! made starting many processes measurably slower than plain spawns (see
//! `bench/README.md`). glibc's `posix_spawn` runs the child on the daemon's
//! memory (`CLONE_VM | CLONE_VFORK`) until it execs, and its file actions
//! cover everything the child needs: `dup2` for fds 0-3 and `chdir`.
//!
//! These functions return the error number instead of setting `errno`; the
//! wrappers turn it into [`io::Error`]. Everything here is Linux with glibc
//! (2.34 or newer, for `posix_spawn_file_actions_addclosefrom_np`).

use std::ffi::{CStr, CString};
use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::libc;
use nix::sys::signal::SigSet;

/// Turns a `posix_spawn*` return value (0 or an error number) into a result.
fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

/// What the child does before it execs, in the order added. Borrows every fd
/// it names, so they stay open until the spawn.
pub(super) struct FileActions<'fd> {
    raw: libc::posix_spawn_file_actions_t,
    fds: PhantomData<BorrowedFd<'fd>>,
}

impl std::fmt::Debug for FileActions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileActions").finish_non_exhaustive()
    }
}

#[allow(unsafe_code)]
impl<'fd> FileActions<'fd> {
    pub(super) fn new() -> io::Result<Self> {
        let mut raw = MaybeUninit::uninit();
        // SAFETY: `raw` is writable memory of the right type; init fills it
        // in, and it is only read after init reported success.
        check(unsafe { libc::posix_spawn_file_actions_init(raw.as_mut_ptr()) })?;
        Ok(Self {
            // SAFETY: initialised by the successful call above.
            raw: unsafe { raw.assume_init() },
            fds: PhantomData,
        })
    }

    /// `dup2(fd, target)` in the child; the copy is not close-on-exec.
    pub(super) fn dup2(&mut self, fd: BorrowedFd<'fd>, target: RawFd) -> io::Result<()> {
        // SAFETY: `self.raw` was initialised by `new`; the call only records
        // two integers in it.
        check(unsafe {
            libc::posix_spawn_file_actions_adddup2(&mut self.raw, fd.as_raw_fd(), target)
        })
    }

    /// `open(path, flags)` onto `target` in the child.
    pub(super) fn open(
        &mut self,
        target: RawFd,
        path: &CStr,
        flags: libc::c_int,
    ) -> io::Result<()> {
        // SAFETY: `self.raw` was initialised by `new`; `path` is a valid C
        // string, which glibc copies.
        check(unsafe {
            libc::posix_spawn_file_actions_addopen(&mut self.raw, target, path.as_ptr(), flags, 0)
        })
    }

    /// Closes every fd from `low` up in the child (one `close_range`).
    pub(super) fn close_from(&mut self, low: RawFd) -> io::Result<()> {
        // SAFETY: `self.raw` was initialised by `new`; the call only records
        // an integer in it.
        check(unsafe { libc::posix_spawn_file_actions_addclosefrom_np(&mut self.raw, low) })
    }

    /// `chdir(dir)` in the child.
    pub(super) fn chdir(&mut self, dir: &CStr) -> io::Result<()> {
        // SAFETY: `self.raw` was initialised by `new`; `dir` is a valid C
        // string, which glibc copies.
        check(unsafe { libc::posix_spawn_file_actions_addchdir_np(&mut self.raw, dir.as_ptr()) })
    }
}

#[allow(unsafe_code)]
impl Drop for FileActions<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised by `new` and destroyed only here, once.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut self.raw);
        }
    }
}

/// How the child starts: leading its own session, and so its own process
/// group (pgid = pid, where stop and kill signals go), with no signal
/// blocked and every signal at its default action. std resets only the mask
/// and `SIGPIPE`; resetting all of them is what Node (libuv) did for
/// FinalPM's children, so a daemon started under `nohup` does not pass an
/// ignored `SIGHUP` on. glibc walks all signals in the child either way.
///
/// A session rather than only a group: Linux's autogroup scheduling shares
/// CPU between sessions, so children kept in the daemon's session would
/// together get the weight of one program. Under load that starved a
/// restart's new processes behind the busy old ones (4 Node workers took
/// ~1.2 s to listen on 2 busy cores, ~0.3 s in sessions of their own).
pub(super) struct Attributes {
    raw: libc::posix_spawnattr_t,
}

impl std::fmt::Debug for Attributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attributes").finish_non_exhaustive()
    }
}

#[allow(unsafe_code)]
impl Attributes {
    pub(super) fn session_leader() -> io::Result<Self> {
        let mut raw = MaybeUninit::uninit();
        // SAFETY: as for the file actions: init fills in writable memory,
        // which is only read after it reported success.
        check(unsafe { libc::posix_spawnattr_init(raw.as_mut_ptr()) })?;
        let mut attrs = Self {
            // SAFETY: initialised by the successful call above.
            raw: unsafe { raw.assume_init() },
        };
        let flags = libc::c_int::from(libc::POSIX_SPAWN_SETSID)
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF;
        // SAFETY: `attrs.raw` is initialised; the calls copy plain values.
        unsafe {
            check(libc::posix_spawnattr_setflags(
                &mut attrs.raw,
                flags as libc::c_short,
            ))?;
            check(libc::posix_spawnattr_setsigmask(
                &mut attrs.raw,
                SigSet::empty().as_ref(),
            ))?;
            check(libc::posix_spawnattr_setsigdefault(
                &mut attrs.raw,
                SigSet::all().as_ref(),
            ))?;
        }
        Ok(attrs)
    }
}

#[allow(unsafe_code)]
impl Drop for Attributes {
    fn drop(&mut self) {
        // SAFETY: initialised by `session_leader` and destroyed only here.
        unsafe {
            libc::posix_spawnattr_destroy(&mut self.raw);
        }
    }
}

/// Starts `path` with `argv` and exactly the environment `envp` ("NAME=value"
/// strings). Returns when the child has exec'd; a failed file action or
/// exec is returned as its error (glibc reaps that child itself).
#[allow(unsafe_code)]
pub(super) fn spawn(
    path: &CStr,
    actions: &FileActions<'_>,
    attrs: &Attributes,
    argv: &[CString],
    envp: &[CString],
) -> io::Result<libc::pid_t> {
    fn pointers(strings: &[CString]) -> Vec<*mut libc::c_char> {
        // posix_spawn's signature says `mut`, but it never writes to them.
        strings
            .iter()
            .map(|s| s.as_ptr().cast_mut())
            .chain(std::iter::once(std::ptr::null_mut()))
            .collect()
    }
    let argv = pointers(argv);
    let envp = pointers(envp);
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is valid for the call: `path` and the strings
    // behind `argv`/`envp` are borrowed C strings, both arrays end in a null
    // pointer, and `actions`/`attrs` are initialised. posix_spawn is safe to
    // call from a multi-threaded process (unlike fork followed by arbitrary
    // code) and reads nothing of ours after it returns.
    check(unsafe {
        libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            &actions.raw,
            &attrs.raw,
            argv.as_ptr(),
            envp.as_ptr(),
        )
    })?;
    Ok(pid)
}

/// A pidfd for our own child `pid` (close-on-exec). The child cannot have
/// been reaped yet, so the pid cannot have been reused by another process.
#[allow(unsafe_code)]
pub(super) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("pidfd_open: bad fd"))?;
    // SAFETY: `fd` was just created for us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
