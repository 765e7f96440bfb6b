//! Logging setup: one `tracing` subscriber for the whole process.
//!
//! Text lines look like redis-sentinel's (`<pid>:X <dd Mon yyyy hh:mm:ss.mmm>
//! <#|*|-|.> <message>`, as Redis writes it); `log-format json` switches to
//! tracing-subscriber's JSON lines. With `logfile` set, everything goes to that
//! file and **nothing** reaches stderr (as with Redis): the sink type has no
//! stderr variant, and a panic hook routes panic messages into the log.
//!
//! Level mapping (Sentinel -> tracing): warning -> WARN, notice -> INFO,
//! verbose -> DEBUG, debug -> TRACE; `nothing` turns logging off.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::Arc;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::ServerConfig;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("Can't open the log file: {path}: {source}")]
    OpenFile { path: String, source: io::Error },
    #[error("Invalid log level '{0}'")]
    BadLevel(String),
    #[error("a global logger is already installed")]
    AlreadySet,
}

/// Where log lines go. Deliberately no stderr variant.
#[derive(Clone, Debug)]
pub enum LogSink {
    Stdout,
    File(Arc<File>),
}

impl LogSink {
    /// `logfile ""` = stdout (like redis-sentinel); otherwise the file, opened
    /// for append (relative paths resolve against the current dir, i.e. `dir`).
    pub fn from_config(cfg: &ServerConfig) -> Result<LogSink, LogError> {
        if cfg.logfile.is_empty() {
            return Ok(LogSink::Stdout);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.logfile)
            .map_err(|source| LogError::OpenFile {
                path: cfg.logfile.clone(),
                source,
            })?;
        Ok(LogSink::File(Arc::new(file)))
    }
}

pub enum SinkWriter {
    Stdout(io::Stdout),
    File(Arc<File>),
}

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            SinkWriter::Stdout(s) => s.write(buf),
            SinkWriter::File(f) => (&**f).write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            SinkWriter::Stdout(s) => s.flush(),
            SinkWriter::File(f) => (&**f).flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = SinkWriter;
    fn make_writer(&'a self) -> SinkWriter {
        match self {
            LogSink::Stdout => SinkWriter::Stdout(io::stdout()),
            LogSink::File(f) => SinkWriter::File(f.clone()),
        }
    }
}

/// Sentinel `loglevel` -> the most verbose tracing level shown.
pub fn level_filter(loglevel: &str) -> Result<LevelFilter, LogError> {
    Ok(match loglevel.to_ascii_lowercase().as_str() {
        "debug" => LevelFilter::TRACE,
        "verbose" => LevelFilter::DEBUG,
        "notice" => LevelFilter::INFO,
        "warning" => LevelFilter::WARN,
        "nothing" => LevelFilter::OFF,
        other => return Err(LogError::BadLevel(other.to_string())),
    })
}

/// The level character redis prints: `.` debug, `-` verbose, `*` notice, `#` warning.
fn level_char(level: &Level) -> char {
    match *level {
        Level::ERROR | Level::WARN => '#',
        Level::INFO => '*',
        Level::DEBUG => '-',
        Level::TRACE => '.',
    }
}

/// Redis-style text lines.
pub struct SentinelFormat {
    pid: u32,
}

impl SentinelFormat {
    pub fn new() -> Self {
        SentinelFormat {
            pid: std::process::id(),
        }
    }
}

impl Default for SentinelFormat {
    fn default() -> Self {
        Self::new()
    }
}

/// The `message` field of an event, alone.
pub(super) struct MessageOnly(pub(super) String);

impl tracing::field::Visit for MessageOnly {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl<S, N> FormatEvent<S, N> for SentinelFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(
            writer,
            "{}:X {} {} ",
            self.pid,
            timestamp(),
            level_char(event.metadata().level())
        )?;
        // Only the message: structured fields (event channel, master) are for
        // the JSON format; the text line must read like redis-sentinel's.
        let mut visitor = MessageOnly(String::new());
        event.record(&mut visitor);
        writeln!(writer, "{}", visitor.0)
    }
}

/// Now, in local time (None if the C library cannot say), with the
/// milliseconds and the seconds since the epoch.
pub(super) fn local_now() -> (Option<libc::tm>, u32, u64) {
    // Log timestamps are wall-clock by nature; this is an edge.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    // SAFETY: localtime_r only writes into the provided, zero-initialised struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    (ok.then_some(tm), now.subsec_millis(), now.as_secs())
}

/// The month's abbreviation, as `%h` prints it.
pub(super) fn month(tm: &libc::tm) -> &'static str {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .get(usize::try_from(tm.tm_mon).unwrap_or(0))
        .copied()
        .unwrap_or("Jan")
}

/// `21 Nov 2026 23:40:01.123` in local time, like redis' log lines.
fn timestamp() -> String {
    let (tm, millis, secs) = local_now();
    let Some(tm) = tm else {
        return format!("{secs}.{millis:03}");
    };
    let month = month(&tm);
    let mut s = String::with_capacity(24);
    let _ = write!(
        s,
        "{:02} {} {} {:02}:{:02}:{:02}.{:03}",
        tm.tm_mday,
        month,
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        millis
    );
    s
}

/// The level filter plus openraft's own logs. openraft reports every failed
/// RPC and retry (`RPCError`, `update progress error`, `backoff mode: ...`,
/// vote timeouts) at warning or error level, and its info lines print whole
/// Raft states: they are library internals, shown only at `verbose`
/// (warnings and errors) and `debug` (info). The daemon reports what an
/// operator needs itself (`+raft-peer-down` / `-raft-peer-down`, refused
/// RPCs). Only its storage and state-machine errors, which stop the node,
/// stay visible at every level.
fn env_filter(level: LevelFilter) -> tracing_subscriber::EnvFilter {
    let raft = if level == LevelFilter::OFF {
        "off"
    } else if level >= LevelFilter::TRACE {
        "openraft=info"
    } else if level >= LevelFilter::DEBUG {
        "openraft=warn"
    } else {
        "openraft=off,openraft::storage=error,openraft::core::sm=error"
    };
    // The default directive applies only to an empty filter string, so the
    // global level is spelled out next to openraft's.
    tracing_subscriber::EnvFilter::builder()
        .parse_lossy(format!("{level},{raft}"))
        .add_directive(level.into())
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    /// Counts the lines a subscriber at `loglevel` writes for `f`.
    fn lines_at(loglevel: &str, f: impl FnOnce()) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let cfg = ServerConfig {
            logfile: path.to_string_lossy().into_owned(),
            loglevel: loglevel.into(),
            ..ServerConfig::default()
        };
        tracing::subscriber::with_default(build(&cfg).unwrap(), f);
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn openraft_noise() {
        tracing::error!(target: "openraft::replication", "RPCError");
        tracing::warn!(target: "openraft::engine::handler::replication_handler", "update progress error");
        tracing::warn!(target: "openraft::replication", "backoff mode: drain events");
        tracing::error!(target: "openraft::core::raft_core", "while requesting vote");
        tracing::info!(target: "openraft::core::raft_core", "state");
        tracing::error!(target: "openraft::storage::callback", "LogFlush error");
        tracing::warn!("+raft-peer-down 1 127.0.0.1:1 connection refused");
    }

    #[test]
    fn openraft_internals_are_verbose_lines() {
        let notice = lines_at("notice", openraft_noise);
        assert_eq!(notice.len(), 2, "{notice:?}");
        assert!(notice[0].ends_with("LogFlush error"), "{notice:?}");
        assert!(notice[1].ends_with("+raft-peer-down 1 127.0.0.1:1 connection refused"));
        assert_eq!(lines_at("warning", openraft_noise).len(), 2);
        assert_eq!(lines_at("verbose", openraft_noise).len(), 6);
        assert_eq!(lines_at("debug", openraft_noise).len(), 7);
        assert!(lines_at("nothing", openraft_noise).is_empty());
    }
}

/// Builds the subscriber described by the config without installing it.
/// The process's subscriber: lines to `logfile` (or standard output), and
/// with `syslog-enabled` each line's message to syslog as well (as Redis
/// does both).
pub fn build(cfg: &ServerConfig) -> Result<Box<dyn Subscriber + Send + Sync>, LogError> {
    build_at(cfg, std::path::Path::new(super::syslog::DEV_LOG))
}

/// [`build`], with the syslog socket at `syslog_path`.
pub(crate) fn build_at(
    cfg: &ServerConfig,
    syslog_path: &std::path::Path,
) -> Result<Box<dyn Subscriber + Send + Sync>, LogError> {
    use tracing_subscriber::layer::SubscriberExt;
    let filter = level_filter(&cfg.loglevel)?;
    let sink = LogSink::from_config(cfg)?;
    let syslog = cfg
        .syslog_enabled
        .then(|| super::syslog::Syslog::new(syslog_path, &cfg.syslog_ident, &cfg.syslog_facility));
    if cfg.log_format.eq_ignore_ascii_case("json") {
        Ok(Box::new(
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(env_filter(filter))
                .with_ansi(false)
                .with_writer(sink)
                .finish()
                .with(syslog),
        ))
    } else {
        Ok(Box::new(
            tracing_subscriber::fmt()
                .event_format(SentinelFormat::new())
                .with_env_filter(env_filter(filter))
                .with_writer(sink)
                .finish()
                .with(syslog),
        ))
    }
}

/// Installs the process-wide logger and the panic hook: a panic in any
/// thread or task is logged, then ends the process (status 134, SIGABRT),
/// whatever the build profile. Whatever the panic interrupted (a link, the
/// driver, the Raft plumbing, a lock held mid-change) leaves the daemon's
/// state in doubt, and a daemon that kept answering would answer from it;
/// the orchestrator restarts a daemon that exits.
pub fn init(cfg: &ServerConfig) -> Result<(), LogError> {
    let subscriber = build(cfg)?;
    tracing::subscriber::set_global_default(subscriber).map_err(|_| LogError::AlreadySet)?;
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("panic: {info}");
        tracing::error!("a panic stops the daemon: its state can no longer be trusted");
        eprintln!("raftinel: panic: {info}; stopping");
        std::process::abort();
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::FromRawFd;

    fn cfg_with_file(path: &std::path::Path, level: &str) -> ServerConfig {
        ServerConfig {
            logfile: path.to_string_lossy().into_owned(),
            loglevel: level.into(),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn levels_map_like_sentinel() {
        assert_eq!(level_filter("notice").unwrap(), LevelFilter::INFO);
        assert_eq!(level_filter("WARNING").unwrap(), LevelFilter::WARN);
        assert_eq!(level_filter("verbose").unwrap(), LevelFilter::DEBUG);
        assert_eq!(level_filter("debug").unwrap(), LevelFilter::TRACE);
        assert_eq!(level_filter("nothing").unwrap(), LevelFilter::OFF);
        assert!(level_filter("loud").is_err());
    }

    #[test]
    fn text_lines_go_to_the_logfile_in_redis_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let sub = build(&cfg_with_file(&path, "notice")).unwrap();
        tracing::subscriber::with_default(sub, || {
            tracing::warn!("+sdown master mymaster 127.0.0.1 6379");
            tracing::info!("+slave slave 127.0.0.1:6380");
            tracing::debug!("hidden at notice");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let pid = std::process::id().to_string();
        assert!(lines[0].starts_with(&format!("{pid}:X ")), "{}", lines[0]);
        assert!(
            lines[0].ends_with(" # +sdown master mymaster 127.0.0.1 6379"),
            "{}",
            lines[0]
        );
        assert!(lines[1].ends_with(" * +slave slave 127.0.0.1:6380"));
        // `<pid>:X dd Mon yyyy hh:mm:ss.mmm <c> ...`: 5 space-separated time fields.
        let fields: Vec<&str> = lines[0].split(' ').collect();
        assert_eq!(fields[2].len(), 3, "month: {}", lines[0]);
        assert_eq!(fields[4].len(), 12, "time: {}", lines[0]);
    }

    #[test]
    fn json_lines_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let mut cfg = cfg_with_file(&path, "notice");
        cfg.log_format = "json".into();
        let sub = build(&cfg).unwrap();
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(
                channel = "+odown",
                "+odown master m 127.0.0.1 1 #quorum 2/2"
            );
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["fields"]["channel"], "+odown");
    }

    /// With a logfile, nothing may reach fd 2: redirect fd 2 to a pipe while
    /// logging at every level, then check the pipe stayed empty.
    #[test]
    fn logfile_set_means_nothing_on_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let sub = build(&cfg_with_file(&path, "debug")).unwrap();
        let mut fds = [0; 2];
        // SAFETY: plain fd juggling on fds we own; fd 2 is restored below.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK);
        }
        let saved = unsafe { libc::dup(2) };
        assert!(saved >= 0);
        unsafe { libc::dup2(fds[1], 2) };
        tracing::subscriber::with_default(sub, || {
            tracing::error!("e");
            tracing::warn!("w");
            tracing::info!("i");
            tracing::debug!("d");
            tracing::trace!("t");
        });
        unsafe {
            libc::dup2(saved, 2);
            libc::close(saved);
            libc::close(fds[1]);
        }
        let mut reader = unsafe { File::from_raw_fd(fds[0]) };
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf);
        assert!(
            buf.is_empty(),
            "stderr got {:?}",
            String::from_utf8_lossy(&buf)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 5, "{text}");
    }
}
