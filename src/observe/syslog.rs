//! `syslog-enabled yes`: every log line that passes `loglevel` also goes to
//! the local syslog socket, as Redis sends it through the C library's
//! syslog(3) (`openlog(ident, LOG_PID | LOG_NDELAY | LOG_NOWAIT, facility)`):
//! one datagram `<PRI>Mmm dd hh:mm:ss ident[pid]: message` to `/dev/log`, the
//! message alone (no pid, date or level character: syslog adds its own), at
//! severity warning, notice, info or debug for Sentinel's warning, notice,
//! verbose and debug lines.
//!
//! Unlike syslog(3), a receiver that is missing or full never blocks the
//! daemon: the socket is non-blocking, a line it cannot take is dropped and
//! counted, and a socket whose receiver went away is reopened on the next
//! line (so a syslog daemon started later is picked up). Nothing is logged
//! about the socket itself: it is the log.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::log::{local_now, month, MessageOnly};

/// The local syslog socket (glibc's `_PATH_LOG`).
pub const DEV_LOG: &str = "/dev/log";

/// The facility code of `syslog-facility` (`user`, `local0`..`local7`);
/// `local0`, Redis's default, for anything else (the loader refuses other
/// names).
pub fn facility_code(name: &str) -> u8 {
    match name.to_ascii_lowercase().as_str() {
        "user" => 1,
        n => n
            .strip_prefix("local")
            .and_then(|d| d.parse::<u8>().ok())
            .filter(|d| *d <= 7)
            .map_or(16, |d| 16 + d),
    }
}

/// The syslog severity of a line: Redis's LL_WARNING, LL_NOTICE,
/// LL_VERBOSE and LL_DEBUG map to LOG_WARNING, LOG_NOTICE, LOG_INFO and
/// LOG_DEBUG (see `log::level_char` for the tracing levels).
fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR | Level::WARN => 4,
        Level::INFO => 5,
        Level::DEBUG => 6,
        Level::TRACE => 7,
    }
}

/// The syslog sink: a tracing layer above the line formatter.
pub struct Syslog {
    path: PathBuf,
    ident: String,
    facility: u8,
    pid: u32,
    sock: Mutex<Option<UnixDatagram>>,
    dropped: AtomicU64,
}

impl Syslog {
    /// A sink sending to `path` (the socket is opened at the first line).
    pub fn new(path: impl Into<PathBuf>, ident: &str, facility: &str) -> Syslog {
        Syslog {
            path: path.into(),
            ident: ident.to_string(),
            facility: facility_code(facility),
            pid: std::process::id(),
            sock: Mutex::new(None),
            dropped: AtomicU64::new(0),
        }
    }

    /// Lines not delivered (no receiver, or its queue full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The datagram for `message` at `level`, as syslog(3) writes it to a
    /// local socket.
    fn datagram(&self, level: &Level, message: &str) -> String {
        let prio = u16::from(self.facility) * 8 + u16::from(severity(level));
        let (tm, _, secs) = local_now();
        let stamp = match tm {
            Some(tm) => format!(
                "{} {:>2} {:02}:{:02}:{:02}",
                month(&tm),
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec
            ),
            None => secs.to_string(),
        };
        format!("<{prio}>{stamp} {}[{}]: {message}", self.ident, self.pid)
    }

    fn open(&self) -> Option<UnixDatagram> {
        let s = UnixDatagram::unbound().ok()?;
        s.connect(&self.path).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    }

    /// Sends one line; reopens the socket once if its receiver went away.
    pub fn send(&self, level: &Level, message: &str) {
        let datagram = self.datagram(level, message);
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..2 {
            if sock.is_none() {
                *sock = self.open();
            }
            let Some(s) = sock.as_ref() else { break };
            match s.send(datagram.as_bytes()) {
                Ok(_) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => *sock = None,
            }
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl<S: Subscriber> Layer<S> for Syslog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = MessageOnly(String::new());
        event.record(&mut message);
        self.send(event.metadata().level(), &message.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;
    use std::time::Duration;

    fn receiver(dir: &tempfile::TempDir) -> (PathBuf, UnixDatagram) {
        let path = dir.path().join("log");
        let r = UnixDatagram::bind(&path).unwrap();
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (path, r)
    }

    fn recv(r: &UnixDatagram) -> String {
        let mut buf = vec![0u8; 65536];
        let n = r.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn facilities_as_redis_names_them() {
        assert_eq!(facility_code("user"), 1);
        assert_eq!(facility_code("local0"), 16);
        assert_eq!(facility_code("LOCAL7"), 23);
        assert_eq!(facility_code("local8"), 16);
    }

    /// Lines that pass `loglevel` reach the socket as syslog(3) sends them:
    /// priority, date, ident and pid, the message alone.
    #[test]
    fn lines_reach_the_socket_as_syslog_sends_them() {
        let dir = tempfile::tempdir().unwrap();
        let (path, r) = receiver(&dir);
        let file = dir.path().join("s.log");
        let cfg = ServerConfig {
            logfile: file.to_string_lossy().into_owned(),
            syslog_enabled: true,
            syslog_ident: "sentinel-a".into(),
            syslog_facility: "local3".into(),
            ..ServerConfig::default()
        };
        let sub = super::super::log::build_at(&cfg, &path).unwrap();
        tracing::subscriber::with_default(sub, || {
            tracing::warn!("+sdown master mymaster 127.0.0.1 6379");
            tracing::info!("+slave slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379");
            tracing::debug!("hidden at notice");
        });
        let pid = std::process::id();
        let first = recv(&r);
        // local3 = 19: 19 * 8 + 4 (warning), then + 5 (notice).
        assert!(first.starts_with("<156>"), "{first}");
        assert!(
            first.ends_with(&format!(
                " sentinel-a[{pid}]: +sdown master mymaster 127.0.0.1 6379"
            )),
            "{first}"
        );
        // `Mmm dd hh:mm:ss`, the day padded with a space.
        let stamp = &first[5..20];
        assert_eq!(stamp.len(), 15, "{first}");
        assert_eq!((&stamp[3..4], &stamp[6..7], &stamp[9..10]), (" ", " ", ":"));
        let second = recv(&r);
        assert!(second.starts_with("<157>"), "{second}");
        r.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert!(r.recv(&mut buf).is_err(), "the debug line was filtered");
        // The log file has the same lines, in Redis's format.
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains(" # +sdown master mymaster 127.0.0.1 6379"),
            "{text}"
        );
    }

    /// No receiver, or one that never reads: lines are dropped and counted,
    /// the caller never waits; a receiver that comes back is found again.
    #[test]
    fn a_missing_or_full_receiver_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let s = Syslog::new(&path, "redis", "local0");
        s.send(&Level::WARN, "nobody listens");
        assert_eq!(s.dropped(), 1);
        let r = UnixDatagram::bind(&path).unwrap();
        for i in 0..20_000 {
            s.send(&Level::INFO, &format!("line {i} {}", "x".repeat(200)));
        }
        assert!(s.dropped() > 1, "a full queue drops lines");
        let mut buf = vec![0u8; 4096];
        let n = r.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains(": line 0 "));
        // The receiver goes and another binds the same path.
        drop(r);
        std::fs::remove_file(&path).unwrap();
        let r = UnixDatagram::bind(&path).unwrap();
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send(&Level::WARN, "back");
        assert!(recv(&r).ends_with("]: back"));
    }
}
