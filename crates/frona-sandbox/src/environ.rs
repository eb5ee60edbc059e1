//! frona's own environment: one zeroizing snapshot taken at start, and the wipe of stripped
//! values from the memory block that `/proc/<pid>/environ` serves.
//!
//! Values are kept as bytes in [`Zeroizing`] buffers so that a credential read from the
//! environment is cleared from frona's heap when the snapshot is dropped.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use zeroize::Zeroizing;

/// Every variable of the process environment at capture time. `Debug` shows names only.
pub struct EnvSnapshot {
    vars: Vec<(OsString, Zeroizing<Vec<u8>>)>,
}

impl EnvSnapshot {
    /// Captures the current process environment.
    pub fn capture() -> Self {
        Self::from_pairs(std::env::vars_os().map(|(n, v)| (n, v.into_vec())))
    }

    /// Builds a snapshot from explicit pairs (tests, `env check` on a given environment).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (OsString, Vec<u8>)>) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(n, v)| (n, Zeroizing::new(v)))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Names and values, in environment order.
    pub fn iter(&self) -> impl Iterator<Item = (&OsStr, &[u8])> {
        self.vars.iter().map(|(n, v)| (n.as_os_str(), v.as_slice()))
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl fmt::Debug for EnvSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvSnapshot")
            .field(
                "names",
                &self.vars.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Overwrites, in place, the values of the named variables in the process's original
/// environment block, so that `/proc/<pid>/environ` no longer shows them. Returns how many
/// entries were wiped. The names stay (with empty values): nothing reads them afterwards, and
/// leaving the entry avoids reshuffling libc's `environ` array.
///
/// Take [`EnvSnapshot::capture`] first: afterwards the values are gone.
///
/// # Safety
///
/// The process must be single-threaded, or no other thread may read or change the environment
/// (`getenv`, `setenv`, `std::env`) while this runs: it writes libc's `environ` strings in place.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub unsafe fn wipe_process_environ<'a>(names: impl IntoIterator<Item = &'a OsStr>) -> usize {
    unsafe extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    let names: HashSet<&[u8]> = names.into_iter().map(OsStrExt::as_bytes).collect();
    if names.is_empty() {
        return 0;
    }
    let mut wiped = 0;
    // SAFETY: `environ` is libc's NULL-terminated array of pointers to NUL-terminated
    // "NAME=value" strings. frona never calls setenv/putenv, and the caller guarantees (this
    // function's contract) that no other thread touches the environment, so every entry stays
    // valid while we walk it.
    // We only overwrite bytes strictly inside each string (before its terminating NUL), which
    // keeps every entry a valid C string.
    unsafe {
        let mut cursor = environ;
        if cursor.is_null() {
            return 0;
        }
        while !(*cursor).is_null() {
            let entry = *cursor;
            let len = libc::strlen(entry);
            let bytes = std::slice::from_raw_parts(entry.cast::<u8>(), len);
            if let Some(eq) = bytes.iter().position(|&b| b == b'=')
                && names.contains(&bytes[..eq])
            {
                for i in eq + 1..len {
                    std::ptr::write_volatile(entry.add(i), 0);
                }
                wiped += 1;
            }
            cursor = cursor.add(1);
        }
    }
    wiped
}

/// Elsewhere the original block is not exposed through `/proc`; nothing to wipe.
///
/// # Safety
///
/// None needed here; `unsafe` so that callers are written the same way on every platform.
#[cfg(not(target_os = "linux"))]
#[allow(unsafe_code)]
pub unsafe fn wipe_process_environ<'a>(_names: impl IntoIterator<Item = &'a OsStr>) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_not_values() {
        let snap = EnvSnapshot::from_pairs([(OsString::from("TOKEN"), b"hunter2-value".to_vec())]);
        let debug = format!("{snap:?}");
        assert!(debug.contains("TOKEN"));
        assert!(!debug.contains("hunter2"));
    }

    #[test]
    fn get_finds_by_name() {
        let snap = EnvSnapshot::from_pairs([(OsString::from("A"), b"1".to_vec())]);
        assert_eq!(snap.get("A"), Some(&b"1"[..]));
        assert_eq!(snap.get("B"), None);
    }
}
