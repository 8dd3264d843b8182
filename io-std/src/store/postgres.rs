//! [`PostgresStore`]: the mailserver archive in PostgreSQL (docs/protocol/status-transport-usage.md §4.2,
//! storage key), and [`TempServer`], a throwaway local PostgreSQL server for tests and benchmarks.
//!
//! Why PostgreSQL: an operator who already runs PostgreSQL gets the archive on a server that is backed up,
//! replicated and inspected with the usual tools, shared by several mailserver processes, and not tied to
//! the node's disk. The embedded [`RedbStore`](super::RedbStore) stays the default.
//!
//! The table is status-go's (`mailserver/migrations`): `envelopes (id BYTEA, data BYTEA, topic BYTEA,
//! bloom BIT(512))`, `id` being the 40-byte key `sent ‖ hash ‖ topic` (the same layout as status-go's
//! `DBKey`), so an archive written by either program can be served by the other. `bytea` compares
//! bytewise, so key order is time order and every operation is one range over the primary key:
//! a history page is `id >= start AND id < end ORDER BY id LIMIT n`, pruning is `id < sent‖0…`.
//!
//! Deviations from status-go: `id` is the primary key (status-go: `UNIQUE NOT NULL`; both give the
//! unique index `ON CONFLICT (id)` needs, and an existing status-go table is used as it is); status-go's
//! secondary indexes on `(id, bloom)`, `(id, topic)` and `(topic)` are not created, because topics are
//! matched by the server machine on the key's last four bytes, not in SQL. The `topic` and `bloom`
//! columns are still filled (from the key) so the table stays interchangeable.
//!
//! Writes run with `synchronous_commit = off`, like the redb store's eventual durability: a crash may lose
//! the last envelopes (peers still hold them) but never corrupts the table; pruning commits durably.
//! A broken connection is re-opened on the next call. Only unencrypted connections are supported (a
//! local socket, or a tunnel for a remote server).
//!
//! The `postgres` client runs its own single-threaded tokio runtime and panics if called (or dropped)
//! inside another runtime's worker: async drivers must own a `PostgresStore` on a blocking thread (the
//! tokio driver runs every store on a dedicated thread).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use postgres::{Client, Config, NoTls, Statement};
use status_sansio::mailserver::server::KEY_LEN;
use status_sansio::waku::Topic;

use super::{cut, Store};

/// Schema set-up, idempotent; serialised by an advisory lock so that concurrent first starts do not race
/// on `CREATE TABLE IF NOT EXISTS`.
const MIGRATION: &str = "
    SELECT pg_advisory_xact_lock(7158437368011);
    CREATE TABLE IF NOT EXISTS envelopes (
        id BYTEA NOT NULL PRIMARY KEY,
        data BYTEA NOT NULL,
        topic BYTEA NOT NULL,
        bloom BIT(512) NOT NULL
    );
";

const PUT: &str = "INSERT INTO envelopes (id, data, topic, bloom) VALUES ($1, $2, $3, $4::text::bit(512)) \
                   ON CONFLICT (id) DO NOTHING";
/// Only 40-byte ids count: rows of another shape (status-go's 36-byte keys from before 2020) would
/// otherwise take places in the `LIMIT`, and a short page means the end of the range to the mailserver.
const RANGE: &str = "SELECT id, data FROM envelopes WHERE id >= $1 AND id < $2 AND octet_length(id) = 40 \
                     ORDER BY id LIMIT $3";
const PRUNE: &str = "DELETE FROM envelopes WHERE id < $1";
const COUNT: &str = "SELECT count(*) FROM envelopes";
const DATA_BYTES: &str = "SELECT COALESCE(SUM(octet_length(data)), 0)::BIGINT FROM envelopes";
/// The oldest rows first, a batch at a time, with the bytes each frees.
const EVICT: &str = "DELETE FROM envelopes WHERE id IN (SELECT id FROM envelopes ORDER BY id LIMIT $1) \
                     RETURNING octet_length(data)::BIGINT";
/// The data sizes of the oldest rows, to know how many to evict.
const OLDEST: &str = "SELECT octet_length(data)::BIGINT FROM envelopes ORDER BY id LIMIT $1";

/// The error ended the session: the socket closed, or the server is shutting the session down (the
/// client may not have noticed the close yet when it reports the server's message).
fn connection_lost(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.is_closed()
        || e.code().is_some_and(|c| {
            [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(c)
        })
}

fn pg_err(e: postgres::Error) -> io::Error {
    io::Error::other(format!("postgres: {e}"))
}

/// The Go-form bloom of the key's topic as a `BIT(512)` literal (most significant bit of each byte
/// first, as status-go writes it).
fn bloom_bits(key: &[u8; KEY_LEN]) -> String {
    let topic = Topic([key[36], key[37], key[38], key[39]]);
    topic.bloom_go().0.iter().map(|b| format!("{b:08b}")).collect()
}

struct Conn {
    client: Client,
    put: Statement,
    range: Statement,
    prune: Statement,
    count: Statement,
    data_bytes: Statement,
    evict: Statement,
    oldest: Statement,
}

impl Conn {
    fn open(config: &Config) -> io::Result<Conn> {
        let mut client = config.connect(NoTls).map_err(pg_err)?;
        client
            .batch_execute("SET synchronous_commit = off")
            .map_err(pg_err)?;
        let mut tx = client.transaction().map_err(pg_err)?;
        tx.batch_execute(MIGRATION).map_err(pg_err)?;
        tx.commit().map_err(pg_err)?;
        Ok(Conn {
            put: client.prepare(PUT).map_err(pg_err)?,
            range: client.prepare(RANGE).map_err(pg_err)?,
            prune: client.prepare(PRUNE).map_err(pg_err)?,
            count: client.prepare(COUNT).map_err(pg_err)?,
            data_bytes: client.prepare(DATA_BYTES).map_err(pg_err)?,
            evict: client.prepare(EVICT).map_err(pg_err)?,
            oldest: client.prepare(OLDEST).map_err(pg_err)?,
            client,
        })
    }
}

/// The mailserver archive in a PostgreSQL table. See the [module docs](self).
pub struct PostgresStore {
    config: Config,
    // `Store::range` and `len` take `&self`; the client needs `&mut`. Never contended: one driver owns it.
    conn: Mutex<Option<Conn>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the configuration: it may hold a password.
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connect with a libpq-style connection string, either a URL
    /// (`postgres://user:password@host:port/db`, a Unix socket directory percent-encoded as the host) or
    /// `key=value` pairs (`host=/run/postgresql dbname=mail`), and create the table if it is missing.
    /// Blocking: call it outside any async runtime (or on a blocking thread).
    pub fn connect(params: &str) -> io::Result<Self> {
        let mut config: Config = params
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("postgres: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let conn = Conn::open(&config)?;
        Ok(PostgresStore {
            config,
            conn: Mutex::new(Some(conn)),
        })
    }

    /// Bytes the table takes on the server, indexes and TOAST included (`pg_total_relation_size`).
    pub fn table_bytes(&self) -> io::Result<u64> {
        let n: i64 = self.with(|c| {
            c.client
                .query_one("SELECT pg_total_relation_size('envelopes')", &[])?
                .try_get(0)
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Run `f` on a live connection, re-opening it first if the last one broke, and once more on a fresh
    /// connection if it breaks during `f` (every operation here is idempotent).
    fn with<T>(&self, mut f: impl FnMut(&mut Conn) -> Result<T, postgres::Error>) -> io::Result<T> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| io::Error::other("postgres: connection lock poisoned"))?;
        let mut retried = false;
        loop {
            let conn = match guard.take() {
                Some(c) if !c.client.is_closed() => guard.insert(c),
                _ => guard.insert(Conn::open(&self.config)?),
            };
            match f(conn) {
                Ok(v) => return Ok(v),
                Err(e) if !retried && (conn.client.is_closed() || connection_lost(&e)) => {
                    retried = true;
                    *guard = None;
                }
                Err(e) => return Err(pg_err(e)),
            }
        }
    }
}

impl Store for PostgresStore {
    fn put(&mut self, key: [u8; KEY_LEN], value: Bytes) -> io::Result<()> {
        let bloom = bloom_bits(&key);
        self.with(|c| {
            c.client
                .execute(&c.put, &[&&key[..], &&value[..], &&key[36..], &bloom])
                .map(drop)
        })
    }

    fn put_batch(&mut self, entries: Vec<([u8; KEY_LEN], Bytes)>) -> io::Result<()> {
        self.with(|c| {
            let mut tx = c.client.transaction()?;
            for (key, value) in &entries {
                let bloom = bloom_bits(key);
                tx.execute(&c.put, &[&&key[..], &&value[..], &&key[36..], &bloom])?;
            }
            tx.commit()
        })
    }

    fn range(
        &self,
        start: [u8; KEY_LEN],
        end: [u8; KEY_LEN],
        limit: usize,
    ) -> io::Result<Vec<([u8; KEY_LEN], Bytes)>> {
        if start >= end || limit == 0 {
            return Ok(vec![]);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.with(|c| c.client.query(&c.range, &[&&start[..], &&end[..], &limit]))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: &[u8] = row.try_get(0).map_err(pg_err)?;
            let data: &[u8] = row.try_get(1).map_err(pg_err)?;
            // Filtered in SQL already (a row of another shape is skipped, as in RedbStore).
            let Ok(key) = <[u8; KEY_LEN]>::try_from(id) else {
                continue;
            };
            out.push((key, Bytes::copy_from_slice(data)));
        }
        Ok(out)
    }

    fn prune(&mut self, before: u32) -> io::Result<()> {
        let c = cut(before);
        self.with(|conn| {
            let mut tx = conn.client.transaction()?;
            tx.batch_execute("SET LOCAL synchronous_commit = on")?;
            tx.execute(&conn.prune, &[&&c[..]])?;
            tx.commit()
        })
    }

    fn len(&self) -> io::Result<usize> {
        let n: i64 = self.with(|c| c.client.query_one(&c.count, &[])?.try_get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn data_bytes(&self) -> io::Result<u64> {
        let n: i64 = self.with(|c| c.client.query_one(&c.data_bytes, &[])?.try_get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn evict_to(&mut self, max: u64) -> io::Result<()> {
        const BATCH: i64 = 1000;
        let mut total = self.data_bytes()?;
        while total > max {
            // How many of the oldest rows must go (at most a batch), then delete exactly those.
            let sizes: Vec<i64> = self.with(|c| {
                c.client
                    .query(&c.oldest, &[&BATCH])?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect()
            })?;
            if sizes.is_empty() {
                break;
            }
            let mut n = 0i64;
            let mut left = total;
            for s in &sizes {
                if left <= max {
                    break;
                }
                left = left.saturating_sub(u64::try_from(*s).unwrap_or(0));
                n += 1;
            }
            let freed: Vec<i64> = self.with(|c| {
                c.client
                    .query(&c.evict, &[&n])?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect()
            })?;
            let freed: u64 = freed.iter().map(|s| u64::try_from(*s).unwrap_or(0)).sum();
            if freed == 0 {
                break;
            }
            total = total.saturating_sub(freed);
        }
        Ok(())
    }
}

/// A throwaway PostgreSQL server in a temporary directory, listening only on a Unix socket there, for
/// tests and benchmarks. It is stopped and its directory removed on drop.
///
/// It looks for `initdb` and `pg_ctl` in `$PG_BIN`, then the newest `/usr/lib/postgresql/*/bin`
/// (Debian), then `PATH`, and installs PostgreSQL from the OS packages (`apt-get`) when it finds none.
/// `initdb` refuses to run as root, so under root the server runs as the
/// `postgres` user (created by the OS package) through `runuser`, in a directory under `/tmp`. The server runs with `fsync=off`:
/// it is for tests, not for data.
pub struct TempServer {
    dir: PathBuf,
    bin: PathBuf,
    as_user: Option<String>,
    port: u16,
}

impl fmt::Debug for TempServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempServer").field("dir", &self.dir).finish()
    }
}

static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);
static SHARED: Mutex<Weak<TempServer>> = Mutex::new(Weak::new());

/// Superuser name of temporary servers.
const TEMP_USER: &str = "status";

/// Find the server binaries; if there are none, install PostgreSQL from the OS packages once (Debian's
/// `apt-get`, directly as root or through `sudo -n`), as a test that needs a server must start it rather
/// than skip.
fn find_pg_bin() -> io::Result<PathBuf> {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    match locate_pg_bin() {
        Ok(d) => Ok(d),
        Err(e) if std::env::var_os("PG_BIN").is_none() => {
            INSTALL.call_once(install_postgresql);
            locate_pg_bin().map_err(|_| e)
        }
        Err(e) => Err(e),
    }
}

fn install_postgresql() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c.output().map(|o| o.status.success()).unwrap_or(false)
    };
    let ok =
        apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "--no-install-recommends", "postgresql"]);
    if !ok {
        eprintln!("TempServer: installing PostgreSQL with apt-get failed");
    }
}

fn locate_pg_bin() -> io::Result<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(d) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        return if has(&d) {
            Ok(d)
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("PG_BIN={} has no initdb and pg_ctl", d.display()),
            ))
        };
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has(d))
        .collect();
    debian.sort();
    if let Some((_, d)) = debian.pop() {
        return Ok(d);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| has(d))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "PostgreSQL not found (no initdb/pg_ctl in $PG_BIN, /usr/lib/postgresql/*/bin or PATH); \
                 install it, e.g. apt-get install postgresql",
            )
        })
}

fn output_of(cmd: &mut Command) -> io::Result<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_root() -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self is owned by the effective user.
    match std::fs::metadata("/proc/self") {
        Ok(m) => Ok(m.uid() == 0),
        Err(_) => Ok(output_of(Command::new("id").arg("-u"))?.trim() == "0"),
    }
}

fn pg_command(bin: &Path, as_user: &Option<String>, tool: &str, dir: &Path) -> Command {
    let path = bin.join(tool);
    let mut c = match as_user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(path);
            c
        }
        None => Command::new(path),
    };
    // The invoking directory may be unreadable for the server's user.
    c.current_dir(dir);
    c
}

/// Stop and remove servers left by test processes that died without dropping theirs (an abort, a kill).
fn reap_orphans(base: &Path, bin: &Path, as_user: &Option<String>) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("status-pg-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = e.path();
        let mut stop = pg_command(bin, as_user, "pg_ctl", &dir);
        stop.arg("-D")
            .arg(dir.join("data"))
            .args(["-w", "-m", "immediate", "stop"]);
        let _ = output_of(&mut stop);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

impl TempServer {
    /// Create a cluster in a new temporary directory and start it. Fails (never silently) if
    /// PostgreSQL is missing or does not start.
    pub fn start() -> io::Result<TempServer> {
        let bin = find_pg_bin()?;
        let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
        let root = is_root()?;
        // Under root the server's user must reach the directory: /tmp always lets it (a custom TMPDIR
        // might not), and keeps the socket path short.
        let base = if root {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("status-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let as_user_name = root.then(|| "postgres".to_string());
        reap_orphans(&base, &bin, &as_user_name);
        std::fs::create_dir_all(&dir)?;
        let as_user = if root {
            let uid = output_of(Command::new("id").args(["-u", "postgres"])).map_err(|e| {
                io::Error::other(format!(
                    "running as root, and initdb refuses root, but there is no 'postgres' user: {e}"
                ))
            })?;
            let gid = output_of(Command::new("id").args(["-g", "postgres"]))?;
            let parse = |s: String| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|e| io::Error::other(format!("id: {e}")))
            };
            std::os::unix::fs::chown(&dir, Some(parse(uid)?), Some(parse(gid)?))?;
            as_user_name
        } else {
            None
        };
        let server = TempServer {
            dir,
            bin,
            as_user,
            port: 5432,
        };
        let data = server.dir.join("data");
        let log = server.dir.join("server.log");
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            TEMP_USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]);
        output_of(&mut initdb)?;
        let opts = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -p {} -c fsync=off -c full_page_writes=off",
            server.dir.display(),
            server.port
        );
        let mut start = server.command("pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &opts, "start"]);
        if let Err(e) = output_of(&mut start) {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(io::Error::other(format!("{e}\nserver log:\n{log}")));
        }
        Ok(server)
    }

    /// One server per process, shared by whoever holds it; started on first use and stopped when the
    /// last holder drops it.
    pub fn shared() -> io::Result<Arc<TempServer>> {
        let mut slot = SHARED
            .lock()
            .map_err(|_| io::Error::other("temporary server lock poisoned"))?;
        if let Some(s) = slot.upgrade() {
            return Ok(s);
        }
        let s = Arc::new(TempServer::start()?);
        *slot = Arc::downgrade(&s);
        Ok(s)
    }

    fn command(&self, tool: &str) -> Command {
        pg_command(&self.bin, &self.as_user, tool, &self.dir)
    }

    /// Connection URL for database `db` (the socket directory percent-encoded as the host).
    pub fn url(&self, db: &str) -> String {
        let host: String = self
            .dir
            .to_string_lossy()
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => char::from(b).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("postgres://{TEMP_USER}@{host}:{}/{db}", self.port)
    }

    /// Create a fresh, uniquely named database and return its connection URL.
    pub fn create_database(&self) -> io::Result<String> {
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = Client::connect(&self.url("postgres"), NoTls).map_err(pg_err)?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(pg_err)?;
        Ok(self.url(&name))
    }

    /// The directory holding the cluster and its socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempServer {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-m", "immediate", "stop"]);
        let _ = output_of(&mut stop);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
