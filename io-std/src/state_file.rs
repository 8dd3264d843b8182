//! State files a node writes in its data directory (the Messenger export, the history client's state, the
//! peer cache, keys): each carries a format version and a checksum, is written atomically, and a damaged
//! one is refused with an error that names it, never half-loaded and never overwritten.
//!
//! Layout (all integers big-endian):
//!
//! | bytes | field                                                             |
//! |-------|-------------------------------------------------------------------|
//! | 8     | magic `STATUSSF`                                                  |
//! | 2     | format version ([`FORMAT_VERSION`])                               |
//! | 2     | flags, 0                                                          |
//! | 8     | payload length                                                    |
//! | 32    | SHA-256 of the 20 bytes above followed by the payload             |
//! | n     | payload                                                           |
//!
//! Writing ([`write()`]): a fresh temporary file beside the target (mode 0600), written and fsynced, renamed
//! over the target, then the directory fsynced, so a crash leaves either the old file or the new one.
//!
//! [`DataDirLock`] keeps a second process off a data directory: an OS advisory lock on a lock file, which
//! the OS releases when the process ends (a crash leaves no stale lock).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The first eight bytes of every state file.
pub const MAGIC: [u8; 8] = *b"STATUSSF";
/// The format version written, and the only one read.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 8 + 2 + 2 + 8 + 32;

/// Why a state file's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The file is empty.
    Empty,
    /// Shorter than the header, or than the length the header gives.
    Truncated {
        /// Bytes expected at least.
        expected: u64,
        /// Bytes there.
        actual: u64,
    },
    /// Longer than the length the header gives.
    TrailingBytes,
    /// Not a state file (the magic is wrong).
    BadMagic,
    /// A format version this program does not read.
    UnsupportedVersion(u16),
    /// Flags this program does not know.
    UnknownFlags(u16),
    /// The payload is larger than the reader allows.
    TooLarge {
        /// The most allowed.
        max: usize,
    },
    /// The checksum does not match: the file is damaged.
    ChecksumMismatch,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Empty => f.write_str("the file is empty"),
            FormatError::Truncated { expected, actual } => {
                write!(f, "truncated: {actual} bytes, expected {expected}")
            }
            FormatError::TrailingBytes => f.write_str("unexpected bytes after the payload"),
            FormatError::BadMagic => f.write_str("not a status state file (bad magic)"),
            FormatError::UnsupportedVersion(v) => write!(
                f,
                "format version {v}, this program reads version {FORMAT_VERSION}"
            ),
            FormatError::UnknownFlags(x) => write!(f, "unknown flags {x:#06x}"),
            FormatError::TooLarge { max } => write!(f, "payload larger than {max} bytes"),
            FormatError::ChecksumMismatch => f.write_str("checksum mismatch: the file is damaged"),
        }
    }
}

impl std::error::Error for FormatError {}

/// A refused state file: which file, and why. Carried inside the [`io::Error`] (kind `InvalidData`)
/// that [`read`] returns.
#[derive(Debug)]
pub struct StateFileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: FormatError,
}

impl fmt::Display for StateFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; refusing to load it (the file is left as it is: restore it from a backup, or move it \
             away to start without it)",
            self.path.display(),
            self.error
        )
    }
}

impl std::error::Error for StateFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

fn digest(head: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(head);
    h.update(payload);
    h.finalize().into()
}

/// `payload` framed as a state file.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    let sum = digest(&out, payload);
    out.extend_from_slice(&sum);
    out.extend_from_slice(payload);
    out
}

/// The payload of a state file's bytes, checked; at most `max` bytes of payload.
pub fn decode(bytes: &[u8], max: usize) -> Result<&[u8], FormatError> {
    if bytes.is_empty() {
        return Err(FormatError::Empty);
    }
    if bytes.len() < HEADER_LEN {
        // A prefix of the magic is a truncated state file; anything else is not one at all.
        let n = bytes.len().min(MAGIC.len());
        if bytes[..n] != MAGIC[..n] {
            return Err(FormatError::BadMagic);
        }
        return Err(FormatError::Truncated {
            expected: HEADER_LEN as u64,
            actual: bytes.len() as u64,
        });
    }
    let (head, rest) = bytes.split_at(20);
    let (sum, payload) = rest.split_at(32);
    if head[..8] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let version = u16::from_be_bytes([head[8], head[9]]);
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion(version));
    }
    let flags = u16::from_be_bytes([head[10], head[11]]);
    if flags != 0 {
        return Err(FormatError::UnknownFlags(flags));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&head[12..20]);
    let len = u64::from_be_bytes(len);
    if len > max as u64 {
        return Err(FormatError::TooLarge { max });
    }
    match (payload.len() as u64).cmp(&len) {
        std::cmp::Ordering::Less => {
            return Err(FormatError::Truncated {
                expected: HEADER_LEN as u64 + len,
                actual: bytes.len() as u64,
            })
        }
        std::cmp::Ordering::Greater => return Err(FormatError::TrailingBytes),
        std::cmp::Ordering::Equal => {}
    }
    if digest(head, payload)[..] != sum[..] {
        return Err(FormatError::ChecksumMismatch);
    }
    Ok(payload)
}

/// `path: error`, keeping the error's kind.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Read and check the state file at `path`: `Ok(None)` if it does not exist; the payload (at most
/// `max` bytes) if it is sound; otherwise an error naming the file (a [`StateFileError`] inside an
/// [`io::Error`] of kind `InvalidData` when the content is refused). The file is only read.
pub fn read(path: &Path, max: usize) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(at(path, e)),
    };
    // Read at most one byte past the largest sound file, so a huge file cannot make us read without bound.
    let limit = (HEADER_LEN as u64).saturating_add(max as u64).saturating_add(1);
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| at(path, e))?;
    let refuse = |error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            StateFileError {
                path: path.to_path_buf(),
                error,
            },
        )
    };
    if bytes.len() as u64 == limit {
        return Err(refuse(FormatError::TooLarge { max }));
    }
    let payload = decode(&bytes, max).map_err(refuse)?;
    Ok(Some(Zeroizing::new(payload.to_vec())))
}

/// Write `payload` as the state file at `path`, atomically and durably (see the module documentation),
/// readable by the owner only.
pub fn write(path: &Path, payload: &[u8]) -> io::Result<()> {
    write_atomic(path, &Zeroizing::new(encode(payload)))
}

/// Write `bytes` as they are (no header: for files people edit, such as a contacts list) to `path`, with
/// the same atomic and durable replacement as [`write()`], readable by the owner only.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    // The mode applies only to a file being created: a leftover temporary file (from a crash, or made
    // by someone else) is removed first, so secrets never land in a file with looser permissions.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(&tmp, e)),
        _ => {}
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(|e| at(&tmp, e))?;
    f.write_all(bytes).map_err(|e| at(&tmp, e))?;
    f.sync_all().map_err(|e| at(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| at(path, e))?;
    sync_dir(path)
}

/// Make a rename in `path`'s directory durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| at(dir, e))
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened for fsync here; the rename itself is atomic.
        let _unused = path;
        Ok(())
    }
}

/// An exclusive, advisory lock on a data directory (the file [`DataDirLock::FILE_NAME`] in it), held
/// until dropped; the OS releases it when the process ends, crash included.
#[derive(Debug)]
pub struct DataDirLock {
    // Holding the open file holds the lock.
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// The lock file's name in the data directory.
    pub const FILE_NAME: &'static str = "status-node.lock";

    /// Take the lock on `dir`, or fail at once (kind `WouldBlock`, an error naming the lock file) if
    /// another process holds it.
    pub fn acquire(dir: &Path) -> io::Result<Self> {
        let path = dir.join(Self::FILE_NAME);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| at(&path, e))?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => Ok(DataDirLock { _file: file, path }),
            Err(fs4::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{}: the data directory {} is in use by another process (it holds this lock)",
                    path.display(),
                    dir.display()
                ),
            )),
            Err(fs4::TryLockError::Error(e)) => Err(at(&path, e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Read a secret key file: a state file whose payload is the 32-byte secret, or (written by hand, e.g.
/// from `status-node keygen`) a text file holding just the 64 hex characters. `Ok(None)` if it does not
/// exist; anything else is an error naming the file, which is left as it is.
pub fn read_key(path: &Path) -> io::Result<Option<status_sansio::crypto::SecretKey>> {
    // A hand-written key: 64 hex characters, an optional 0x prefix, whitespace around.
    const MAX_TEXT: usize = 256;
    let raw = match read_prefix(path, MAX_TEXT + 1)? {
        Some(raw) => raw,
        None => return Ok(None),
    };
    if !raw.is_empty() && !raw.starts_with(&MAGIC[..raw.len().min(MAGIC.len())]) {
        if let Some(key) = std::str::from_utf8(&raw)
            .ok()
            .and_then(status_sansio::demo::parse_key)
        {
            return Ok(Some(key));
        }
    }
    let payload = match read(path, 32)? {
        Some(p) => p,
        None => return Ok(None),
    };
    status_sansio::crypto::secret_from_bytes(&payload)
        .map(Some)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a valid secp256k1 secret key", path.display()),
            )
        })
}

/// Write a secret key file (see [`read_key`]) atomically, readable by the owner only.
pub fn write_key(path: &Path, key: &status_sansio::crypto::SecretKey) -> io::Result<()> {
    write(path, &key.to_bytes()[..])
}

/// At most `max` bytes from the start of `path`; `None` if it does not exist.
fn read_prefix(path: &Path, max: usize) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(at(path, e)),
    };
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(max as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| at(path, e))?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests;
