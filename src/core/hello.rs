//! Validation of incoming hello messages.
//!
//! Hellos arrive from any client able to PUBLISH on a monitored node's
//! `__sentinel__:hello` channel or to send us a fake PUBLISH, so they are
//! untrusted: redis-sentinel parses them with `atoi` and accepts whatever
//! splits into 8 fields. Here every field is checked strictly before anything
//! is touched (no epoch is adopted from a hello that is otherwise refused), and
//! refusals are counted so the runtime can export them.

use std::net::IpAddr;

/// Above this a payload cannot be a real hello (a real one is ~150 bytes; the
/// bound still leaves room for long master names).
pub const MAX_HELLO_LEN: usize = 2048;
const MAX_HOST_LEN: usize = 255;

/// A hello that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub ip: String,
    pub port: u16,
    pub runid: String,
    pub current_epoch: u64,
    pub master_name: String,
    pub master_ip: String,
    pub master_port: u16,
    pub master_config_epoch: u64,
}

/// Why a hello was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloReject {
    #[error("payload too long")]
    Oversized,
    #[error("not 8 comma-separated fields")]
    FieldCount,
    #[error("invalid address")]
    BadAddress,
    #[error("invalid port")]
    BadPort,
    #[error("invalid run id")]
    BadRunId,
    #[error("invalid epoch")]
    BadEpoch,
    #[error("unknown master")]
    UnknownMaster,
    #[error("carries our own run id")]
    OwnRunId,
}

/// An address field: an IP literal, or (only with resolve-hostnames) a
/// plausible hostname.
pub fn valid_host(s: &str, resolve_hostnames: bool) -> bool {
    if s.is_empty() || s.len() > MAX_HOST_LEN {
        return false;
    }
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    resolve_hostnames
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

fn port(s: &str) -> Result<u16, HelloReject> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HelloReject::BadPort);
    }
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(HelloReject::BadPort),
    }
}

fn epoch(s: &str) -> Result<u64, HelloReject> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HelloReject::BadEpoch);
    }
    s.parse::<u64>().map_err(|_| HelloReject::BadEpoch)
}

/// Parses and validates a hello payload. `is_master` tells whether a master
/// name is monitored; `myid` is our own run id (a hello claiming it is either
/// our own echo or a spoof).
pub fn parse(
    payload: &str,
    myid: &str,
    resolve_hostnames: bool,
    is_master: impl Fn(&str) -> bool,
) -> Result<Hello, HelloReject> {
    if payload.len() > MAX_HELLO_LEN {
        return Err(HelloReject::Oversized);
    }
    let f: Vec<&str> = payload.split(',').collect();
    let [ip, sport, runid, cur, mname, mip, mport, cfg] = f.as_slice() else {
        return Err(HelloReject::FieldCount);
    };
    if !valid_host(ip, resolve_hostnames) || !valid_host(mip, resolve_hostnames) {
        return Err(HelloReject::BadAddress);
    }
    let sport = port(sport)?;
    let mport = port(mport)?;
    if runid.len() != 40 || !runid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HelloReject::BadRunId);
    }
    if runid.eq_ignore_ascii_case(myid) {
        return Err(HelloReject::OwnRunId);
    }
    let current_epoch = epoch(cur)?;
    let master_config_epoch = epoch(cfg)?;
    if !is_master(mname) {
        return Err(HelloReject::UnknownMaster);
    }
    Ok(Hello {
        ip: ip.to_string(),
        port: sport,
        runid: runid.to_string(),
        current_epoch,
        master_name: mname.to_string(),
        master_ip: mip.to_string(),
        master_port: mport,
        master_config_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "1111111111111111111111111111111111111111";
    const PEER: &str = "2864fe5b5ffed532dfe28f2e9b67801fcaf7b633";

    fn p(s: &str) -> Result<Hello, HelloReject> {
        parse(s, ME, false, |m| m == "mymaster")
    }

    #[test]
    fn accepts_a_real_hello() {
        let h = p(&format!(
            "127.0.0.1,46100,{PEER},3,mymaster,127.0.0.1,41100,2"
        ))
        .unwrap();
        assert_eq!(h.port, 46100);
        assert_eq!(h.current_epoch, 3);
        assert_eq!(h.master_config_epoch, 2);
        assert_eq!(h.master_port, 41100);
        let h = p(&format!("::1,46100,{PEER},0,mymaster,::1,41100,0")).unwrap();
        assert_eq!(h.ip, "::1");
    }

    #[test]
    fn rejects_every_hostile_form() {
        use HelloReject::*;
        let cases: Vec<(String, HelloReject)> = vec![
            (
                format!("127.0.0.1,46100,{PEER},0,mymaster,127.0.0.1,41100"),
                FieldCount,
            ),
            (
                format!("127.0.0.1,46100,{PEER},0,mymaster,127.0.0.1,41100,0,9"),
                FieldCount,
            ),
            (String::new(), FieldCount),
            (
                format!("127.0.0.1,0,{PEER},0,mymaster,127.0.0.1,41100,0"),
                BadPort,
            ),
            (
                format!("127.0.0.1,70000,{PEER},0,mymaster,127.0.0.1,41100,0"),
                BadPort,
            ),
            (
                format!("127.0.0.1,-5,{PEER},0,mymaster,127.0.0.1,41100,0"),
                BadPort,
            ),
            (
                format!("127.0.0.1,12ab,{PEER},0,mymaster,127.0.0.1,41100,0"),
                BadPort,
            ),
            (
                format!("127.0.0.1,46100,{PEER},0,mymaster,127.0.0.1,99999,0"),
                BadPort,
            ),
            (
                format!("127.0.0.1,46100,{PEER},x1,mymaster,127.0.0.1,41100,0"),
                BadEpoch,
            ),
            (
                format!("127.0.0.1,46100,{PEER},-1,mymaster,127.0.0.1,41100,0"),
                BadEpoch,
            ),
            (
                format!("127.0.0.1,46100,{PEER},0,mymaster,127.0.0.1,41100,"),
                BadEpoch,
            ),
            (
                format!(
                    "127.0.0.1,46100,{PEER},99999999999999999999999,mymaster,127.0.0.1,41100,0"
                ),
                BadEpoch,
            ),
            (
                format!("127.0.0.1,46100,{PEER},0,other,127.0.0.1,41100,0"),
                UnknownMaster,
            ),
            (
                format!("127.0.0.1,46100,{ME},0,mymaster,127.0.0.1,41100,0"),
                OwnRunId,
            ),
            (
                "127.0.0.1,46100,abc,0,mymaster,127.0.0.1,41100,0".into(),
                BadRunId,
            ),
            (
                format!(
                    "127.0.0.1,46100,{},0,mymaster,127.0.0.1,41100,0",
                    "z".repeat(40)
                ),
                BadRunId,
            ),
            (
                format!("evil.example,46100,{PEER},0,mymaster,127.0.0.1,41100,0"),
                BadAddress,
            ),
            (
                format!(",46100,{PEER},0,mymaster,127.0.0.1,41100,0"),
                BadAddress,
            ),
            (
                format!(
                    "127.0.0.1,46100,{PEER},0,mymaster,{},41100,0",
                    "a".repeat(300)
                ),
                BadAddress,
            ),
            (
                format!(
                    "127.0.0.1,46100,{PEER},0,{},127.0.0.1,41100,0",
                    "m".repeat(5000)
                ),
                Oversized,
            ),
        ];
        for (payload, want) in cases {
            assert_eq!(p(&payload), Err(want), "payload {payload:.80}");
        }
    }

    #[test]
    fn hostnames_only_with_resolve_hostnames() {
        let s = format!("sentinel-0.svc,46100,{PEER},0,mymaster,redis-0.svc,41100,0");
        assert!(parse(&s, ME, true, |_| true).is_ok());
        assert_eq!(parse(&s, ME, false, |_| true), Err(HelloReject::BadAddress));
    }
}
