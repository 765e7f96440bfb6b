//! Observability: the one place where a core `Event` becomes a log line, a
//! metric increment and a pub/sub message (and, for warnings, a
//! notification-script run); logging setup; the admin HTTP listener serving
//! Prometheus `/metrics`; the script runner.
//!
//! The core decides *that* an event happens and formats its payload; [`emit`]
//! is the only code that knows what an event turns into.

pub mod admin;
pub mod log;
pub mod scripts;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::core::{Event, EventKind, Level};
use crate::runtime::Shared;

/// Logs, counts, publishes an event and queues the master's
/// notification-script for warnings. Must not be called with
/// the core lock held (it takes it briefly to find the script path).
pub fn emit(shared: &Shared, ev: &Event) {
    let channel = ev.kind.channel();
    let level = ev.kind.level();
    let master = master_of(ev);
    log_event(ev, master);
    metrics::counter!(
        "raftinel_events_total",
        "event" => channel,
        "master" => master.to_string()
    )
    .increment(1);
    track_down_state(ev, master);
    if level != Level::Debug {
        shared.hub.publish(channel, ev.message.as_bytes());
    }
    if level == Level::Warning {
        if let Some(m) = &ev.master {
            let script = shared
                .core
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .notification_script(m)
                .map(str::to_string);
            if let Some(path) = script {
                shared
                    .scripts
                    .enqueue(vec![path, channel.to_string(), ev.message.clone()]);
            }
        }
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

/// The master an event concerns, for a bounded metric label: the event's own
/// master when the core set it, else read from the payload (`master <name> ...`
/// or `... @ <name> <ip> <port>`, or the first word of `+switch-master`).
/// Empty for process-wide events.
pub fn master_of(ev: &Event) -> &str {
    if let Some(m) = &ev.master {
        return m;
    }
    let msg = ev.message.as_str();
    if ev.kind == EventKind::SwitchMaster {
        return msg.split(' ').next().unwrap_or("");
    }
    if let Some(rest) = msg.strip_prefix("master ") {
        return rest.split(' ').next().unwrap_or("");
    }
    if msg.starts_with("slave ") || msg.starts_with("sentinel ") {
        if let Some(pos) = msg.find(" @ ") {
            return msg
                .get(pos + 3..)
                .and_then(|r| r.split(' ').next())
                .unwrap_or("");
        }
    }
    ""
}

/// SDOWN/ODOWN of masters as gauges (1 while down), driven by the events
/// themselves so the metric and the event stream can never disagree.
fn track_down_state(ev: &Event, master: &str) {
    if !ev.message.starts_with("master ") || master.is_empty() {
        return;
    }
    let (name, value) = match ev.kind {
        EventKind::Sdown => ("raftinel_master_sdown", 1.0),
        EventKind::SdownCleared => ("raftinel_master_sdown", 0.0),
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

/// The `/metrics` body: refreshes the gauges read from the core, then renders.
pub fn render_metrics(shared: &Shared) -> String {
    let (masters, epoch, rejected) = {
        let core = shared.core.lock().unwrap_or_else(|e| e.into_inner());
        (
            core.master_names().len(),
            core.current_epoch(),
            core.hello_rejected(),
        )
    };
    metrics::gauge!("raftinel_masters").set(masters as f64);
    metrics::gauge!("raftinel_current_epoch").set(epoch as f64);
    metrics::gauge!("raftinel_hello_rejected").set(rejected as f64);
    metrics::gauge!("raftinel_scripts_running").set(shared.scripts.running_count() as f64);
    metrics::gauge!("raftinel_scripts_queued").set(shared.scripts.queue_len() as f64);
    match &shared.metrics {
        Some(h) => h.render(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, msg: &str, master: Option<&str>) -> Event {
        Event {
            kind,
            message: msg.into(),
            detail: None,
            master: master.map(String::from),
        }
    }

    #[test]
    fn master_label_from_payloads() {
        assert_eq!(
            master_of(&ev(
                EventKind::Sdown,
                "master mymaster 127.0.0.1 6379",
                None
            )),
            "mymaster"
        );
        assert_eq!(
            master_of(&ev(
                EventKind::Slave,
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
                None
            )),
            "mymaster"
        );
        assert_eq!(
            master_of(&ev(
                EventKind::SwitchMaster,
                "mymaster 127.0.0.1 6379 127.0.0.1 6380",
                None
            )),
            "mymaster"
        );
        assert_eq!(master_of(&ev(EventKind::NewEpoch, "3", None)), "");
        assert_eq!(
            master_of(&ev(EventKind::Tilt, "#tilt mode entered", None)),
            ""
        );
        assert_eq!(master_of(&ev(EventKind::NewEpoch, "3", Some("m"))), "m");
    }

    #[test]
    fn events_count_and_track_down_state() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let e = ev(
                EventKind::Sdown,
                "master mymaster 127.0.0.1 6379",
                Some("mymaster"),
            );
            metrics::counter!("raftinel_events_total", "event" => e.kind.channel(), "master" => master_of(&e).to_string()).increment(1);
            track_down_state(&e, "mymaster");
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

    /// The whole path of one event through a real `Shared`: counted in the
    /// global recorder behind `/metrics`, and a warning for a master with a
    /// notification-script queues `<path> <type> <message>`.
    #[tokio::test]
    async fn emit_counts_and_queues_the_notification_script() {
        use crate::config::{MasterState, PersistedState, ServerConfig};
        use crate::core::{CoreOptions, Sentinel};
        let mut m = MasterState::new("scripted", "127.0.0.1", 6379, 2);
        m.notification_script = Some("/bin/true".into());
        let st = PersistedState {
            myid: Some("0123456789abcdef0123456789abcdef01234567".into()),
            masters: vec![m],
            ..PersistedState::default()
        };
        let (core, _) = Sentinel::new(st, CoreOptions::default(), 0);
        let (shared, _rx) = Shared::new(
            core,
            ServerConfig::default(),
            None,
            tokio::time::Instant::now(),
        );
        let sdown = Event::new(
            EventKind::Sdown,
            "master scripted 127.0.0.1 6379".into(),
            Some("scripted"),
        );
        emit(&shared, &sdown);
        // Notice-level events never run the script.
        emit(
            &shared,
            &Event::new(
                EventKind::Slave,
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ scripted 127.0.0.1 6379".into(),
                Some("scripted"),
            ),
        );
        let jobs = shared.scripts.pending();
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0].argv,
            ["/bin/true", "+sdown", "master scripted 127.0.0.1 6379"]
        );
        let text = render_metrics(&shared);
        if shared.metrics.is_some() {
            assert!(
                text.contains(r#"raftinel_events_total{event="+sdown",master="scripted"}"#),
                "{text}"
            );
            assert!(
                text.contains(r#"raftinel_events_total{event="+slave",master="scripted"}"#),
                "{text}"
            );
            assert!(
                text.contains(r#"raftinel_master_sdown{master="scripted"} 1"#),
                "{text}"
            );
            assert!(text.contains("raftinel_masters 1"), "{text}");
            assert!(text.contains("raftinel_current_epoch 0"), "{text}");
        }
    }
}
