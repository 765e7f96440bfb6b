//! Observability: the one place where a core `Event` becomes a log line, a
//! metric and a pub/sub message; logging setup; the admin HTTP listener
//! serving Prometheus `/metrics`; the script runner.
//!
//! The core decides *that* an event happens, formats its payload and carries
//! the typed facts about it (the master, the instance kind); [`emit`] is the
//! only code that knows what an event turns into, and it reads nothing else.
//! Whether a notification script runs is the core's decision too (an
//! `Action::RunScript` after the event).

pub mod admin;
pub mod log;
pub mod scripts;
pub mod syslog;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::core::{Event, EventKind, InstanceKind, Level};

/// Where events are published for pub/sub clients (the RESP server's hub).
pub trait Publish {
    /// Publishes `message` on `channel`; returns the number of receivers.
    fn publish(&self, channel: &str, message: &[u8]) -> usize;
}

/// Logs, counts and publishes an event.
pub fn emit(ev: &Event, to: &dyn Publish) {
    let channel = ev.kind.channel();
    let master = ev.master.as_deref().unwrap_or("");
    log_event(ev, master);
    metrics::counter!(
        "raftinel_events_total",
        "event" => channel,
        "master" => master.to_string()
    )
    .increment(1);
    track_down_state(ev, master);
    if ev.kind.level() != Level::Debug {
        to.publish(channel, ev.message.as_bytes());
    }
}

/// The log line is `<type> <payload>`, as redis-sentinel writes it, then
/// the event's detail in parentheses when it has one.
fn log_event(ev: &Event, master: &str) {
    let channel = ev.kind.channel();
    let line = match ev.detail.as_deref() {
        Some(d) => format!("{channel} {} ({d})", ev.message),
        None => format!("{channel} {}", ev.message),
    };
    match ev.kind.level() {
        Level::Warning => tracing::warn!(event = channel, master, "{line}"),
        Level::Notice => tracing::info!(event = channel, master, "{line}"),
        Level::Verbose => tracing::debug!(event = channel, master, "{line}"),
        Level::Debug => tracing::trace!(event = channel, master, "{line}"),
    }
}

/// SDOWN/ODOWN of masters as gauges (1 while down), driven by the events
/// themselves so the metric and the event stream can never disagree.
fn track_down_state(ev: &Event, master: &str) {
    if master.is_empty() {
        return;
    }
    let of_master = ev.subject.is_none_or(|k| k == InstanceKind::Master);
    let (name, value) = match ev.kind {
        EventKind::Sdown if of_master => ("raftinel_master_sdown", 1.0),
        EventKind::SdownCleared if of_master => ("raftinel_master_sdown", 0.0),
        EventKind::Odown => ("raftinel_master_odown", 1.0),
        EventKind::OdownCleared => ("raftinel_master_odown", 0.0),
        EventKind::Unmonitor | EventKind::ResetMaster | EventKind::Monitor => {
            metrics::gauge!("raftinel_master_sdown", "master" => master.to_string()).set(0.0);
            metrics::gauge!("raftinel_master_odown", "master" => master.to_string()).set(0.0);
            return;
        }
        _ => return,
    };
    metrics::gauge!(name, "master" => master.to_string()).set(value);
}

/// The process-wide Prometheus recorder, installed on first use. `None` if
/// another recorder was installed first (metrics then go there).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .clone()
}

/// Values read when `/metrics` is asked for (not driven by events).
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub masters: usize,
    pub current_epoch: u64,
    pub hello_rejected: u64,
    pub scripts_running: usize,
    pub scripts_queued: usize,
}

/// The `/metrics` body: sets the gauges, then renders what `handle`
/// recorded (empty without a recorder of ours).
pub fn render_metrics(handle: Option<&PrometheusHandle>, g: Gauges) -> String {
    metrics::gauge!("raftinel_masters").set(g.masters as f64);
    metrics::gauge!("raftinel_current_epoch").set(g.current_epoch as f64);
    metrics::gauge!("raftinel_hello_rejected").set(g.hello_rejected as f64);
    metrics::gauge!("raftinel_scripts_running").set(g.scripts_running as f64);
    metrics::gauge!("raftinel_scripts_queued").set(g.scripts_queued as f64);
    handle.map(PrometheusHandle::render).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, msg: &str, master: Option<&str>) -> Event {
        Event::new(kind, msg.into(), master)
    }

    #[test]
    fn events_count_and_track_down_state() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let mut e = ev(
                EventKind::Sdown,
                "master mymaster 127.0.0.1 6379",
                Some("mymaster"),
            );
            e.subject = Some(InstanceKind::Master);
            metrics::counter!("raftinel_events_total", "event" => e.kind.channel(), "master" => "mymaster").increment(1);
            track_down_state(&e, "mymaster");
            // A replica's SDOWN is not the master's.
            let mut r = ev(
                EventKind::SdownCleared,
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
                Some("mymaster"),
            );
            r.subject = Some(InstanceKind::Replica);
            track_down_state(&r, "mymaster");
            track_down_state(
                &ev(
                    EventKind::Odown,
                    "master mymaster 127.0.0.1 6379 #quorum 2/2",
                    None,
                ),
                "mymaster",
            );
            track_down_state(
                &ev(
                    EventKind::OdownCleared,
                    "master mymaster 127.0.0.1 6379",
                    None,
                ),
                "mymaster",
            );
        });
        let text = handle.render();
        assert!(
            text.contains(r#"raftinel_events_total{event="+sdown",master="mymaster"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"raftinel_master_sdown{master="mymaster"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"raftinel_master_odown{master="mymaster"} 0"#),
            "{text}"
        );
        assert!(
            !text.contains("127.0.0.1"),
            "no addresses in labels: {text}"
        );
    }
}
