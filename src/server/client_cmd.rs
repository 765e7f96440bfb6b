//! CLIENT and its subcommands (Redis 7.0 semantics; sentinel mode has no
//! keys, so tracking and caching are bookkeeping that CLIENT TRACKINGINFO,
//! CLIENT LIST and CLIENT GETREDIR report).

use tokio::time::{Duration, Instant};

use super::client::{valid_client_name, ClientType};
use super::cmd::{err, help, lower, syntax, ReplyMode, Session};
use super::Server;
use crate::resp::string2ll;
use crate::resp::Frame;

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

pub(super) fn client(server: &Server, sess: &mut Session, sub: &str, argv: &[Vec<u8>]) -> Frame {
    let now = Instant::now();
    match sub {
        "help" => help(CLIENT_HELP),
        "id" => Frame::Integer(sess.handle.id as i64),
        "info" => Frame::Verbatim(*b"txt", sess.handle.info_line(now).into_bytes()),
        "list" => client_list(server, argv, now),
        "kill" => client_kill(server, sess, argv),
        "getname" => client_getname(sess),
        "setname" => client_setname(sess, argv),
        "reply" => client_reply(sess, argv),
        "no-evict" => client_no_evict(sess, argv),
        "pause" => client_pause(server, argv, now),
        "unpause" => client_unpause(server),
        "unblock" => client_unblock(argv),
        "getredir" => client_getredir(sess),
        "caching" => client_caching(sess, argv),
        "tracking" => client_tracking(server, sess, argv),
        "trackinginfo" => client_trackinginfo(sess),
        _ => err(format!("ERR unknown subcommand '{sub}'. Try CLIENT HELP.")),
    }
}

fn client_getname(sess: &mut Session) -> Frame {
    let n = sess.handle.state().name.clone();
    if n.is_empty() {
        Frame::NullBulk
    } else {
        Frame::Bulk(n)
    }
}

fn client_setname(sess: &mut Session, argv: &[Vec<u8>]) -> Frame {
    let arg = |i: usize| argv.get(i).map(|a| a.as_slice()).unwrap_or_default();
    let n = arg(2);
    if !valid_client_name(n) {
        return err("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    sess.handle.state().name = n.to_vec();
    Frame::ok()
}

fn client_reply(sess: &mut Session, argv: &[Vec<u8>]) -> Frame {
    let arg = |i: usize| argv.get(i).map(|a| a.as_slice()).unwrap_or_default();
    match lower(arg(2)).as_str() {
        "on" => {
            sess.reply = ReplyMode::On;
            Frame::ok()
        }
        "off" => {
            sess.reply = ReplyMode::Off;
            Frame::ok()
        }
        "skip" => {
            if sess.reply != ReplyMode::Off {
                sess.reply = ReplyMode::SkipNext;
            }
            Frame::ok()
        }
        _ => syntax(),
    }
}

fn client_no_evict(sess: &mut Session, argv: &[Vec<u8>]) -> Frame {
    let arg = |i: usize| argv.get(i).map(|a| a.as_slice()).unwrap_or_default();
    match lower(arg(2)).as_str() {
        "on" => {
            sess.handle.state().no_evict = true;
            Frame::ok()
        }
        "off" => {
            sess.handle.state().no_evict = false;
            Frame::ok()
        }
        _ => syntax(),
    }
}

fn client_pause(server: &Server, argv: &[Vec<u8>], now: Instant) -> Frame {
    let arg = |i: usize| argv.get(i).map(|a| a.as_slice()).unwrap_or_default();
    let Some(ms) = string2ll(arg(2)) else {
        return err("ERR timeout is not an integer or out of range");
    };
    if ms < 0 {
        return err("ERR timeout is negative");
    }
    let all = match argv.get(3).map(|a| lower(a)) {
        None => true,
        Some(m) if m == "all" => true,
        Some(m) if m == "write" => false,
        Some(_) => return err("ERR CLIENT PAUSE mode must be WRITE or ALL"),
    };
    if argv.len() > 4 {
        return err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(arg(1))
        ));
    }
    server.set_pause(Some((now + Duration::from_millis(ms as u64), all)));
    Frame::ok()
}

fn client_unpause(server: &Server) -> Frame {
    server.set_pause(None);
    Frame::ok()
}

fn client_unblock(argv: &[Vec<u8>]) -> Frame {
    let arg = |i: usize| argv.get(i).map(|a| a.as_slice()).unwrap_or_default();
    if string2ll(arg(2)).is_none() {
        return err("ERR value is not an integer or out of range");
    }
    if let Some(r) = argv.get(3) {
        let r = lower(r);
        if r != "timeout" && r != "error" {
            return err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
        }
    }
    if argv.len() > 4 {
        return syntax();
    }
    // Nothing in sentinel mode ever blocks.
    Frame::Integer(0)
}

fn client_getredir(sess: &mut Session) -> Frame {
    let t = sess.handle.state().tracking.clone();
    Frame::Integer(if t.on { t.redirect } else { -1 })
}

fn client_caching(sess: &mut Session, argv: &[Vec<u8>]) -> Frame {
    let arg = |i: usize| argv.get(i).map(|a| a.as_slice()).unwrap_or_default();
    let t = sess.handle.state().tracking.clone();
    if !t.on || !(t.optin || t.optout) {
        return err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
    }
    match lower(arg(2)).as_str() {
        "yes" if t.optin => {
            sess.handle.state().tracking.caching = Some(true);
            Frame::ok()
        }
        "yes" => {
            err("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
        }
        "no" if t.optout => {
            sess.handle.state().tracking.caching = Some(false);
            Frame::ok()
        }
        "no" => err("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."),
        _ => syntax(),
    }
}

fn client_trackinginfo(sess: &mut Session) -> Frame {
    let t = sess.handle.state().tracking.clone();
    let mut flags = Vec::new();
    if !t.on {
        flags.push("off");
    } else {
        flags.push("on");
        if t.bcast {
            flags.push("bcast");
        }
        if t.optin {
            flags.push("optin");
            if t.caching == Some(true) {
                flags.push("caching-yes");
            }
        }
        if t.optout {
            flags.push("optout");
            if t.caching == Some(false) {
                flags.push("caching-no");
            }
        }
        if t.noloop {
            flags.push("noloop");
        }
    }
    Frame::Map(vec![
        (
            Frame::bulk("flags"),
            Frame::Set(flags.into_iter().map(Frame::bulk).collect()),
        ),
        (
            Frame::bulk("redirect"),
            Frame::Integer(if t.on { t.redirect } else { -1 }),
        ),
        (
            Frame::bulk("prefixes"),
            Frame::Array(t.prefixes.iter().map(Frame::bulk).collect()),
        ),
    ])
}

fn client_tracking(server: &Server, sess: &mut Session, argv: &[Vec<u8>]) -> Frame {
    let on = match argv.get(2).map(|a| lower(a)).as_deref() {
        Some("on") => true,
        Some("off") => false,
        _ => return syntax(),
    };
    let mut t = super::client::Tracking {
        on,
        ..Default::default()
    };
    let mut j = 3;
    while j < argv.len() {
        let opt = argv.get(j).map(|a| lower(a)).unwrap_or_default();
        let more = argv.len() - j - 1;
        match opt.as_str() {
            "redirect" if more >= 1 => {
                j += 1;
                let Some(id) = argv.get(j).and_then(|a| string2ll(a)) else {
                    return err("ERR value is not an integer or out of range");
                };
                if id != sess.handle.id as i64 && server.registry.get(id as u64).is_none() {
                    return err("ERR The client ID you want redirect to does not exist");
                }
                t.redirect = id;
            }
            "bcast" => t.bcast = true,
            "optin" => t.optin = true,
            "optout" => t.optout = true,
            "noloop" => t.noloop = true,
            "prefix" if more >= 1 => {
                j += 1;
                if let Some(p) = argv.get(j) {
                    t.prefixes.push(p.clone());
                }
            }
            _ => return syntax(),
        }
        j += 1;
    }
    if on {
        let cur = sess.handle.state().tracking.clone();
        if !t.bcast && !t.prefixes.is_empty() {
            return err("ERR PREFIX option requires BCAST mode to be enabled");
        }
        if cur.on && cur.bcast != t.bcast {
            return err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.");
        }
        if t.bcast && (t.optin || t.optout) {
            return err("ERR OPTIN and OPTOUT are not compatible with BCAST");
        }
        if t.optin && t.optout {
            return err("ERR You can't specify both OPTIN mode and OPTOUT mode");
        }
        if (t.optin && cur.optout) || (t.optout && cur.optin) {
            return err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.");
        }
        if cur.on {
            // Enabling again adds to the current mode, like enableTracking.
            t.bcast |= cur.bcast;
            t.optin |= cur.optin;
            t.optout |= cur.optout;
            t.noloop |= cur.noloop;
            let mut prefixes = cur.prefixes;
            for p in t.prefixes.drain(..) {
                if !prefixes.contains(&p) {
                    prefixes.push(p);
                }
            }
            t.prefixes = prefixes;
            t.caching = cur.caching;
        }
        sess.handle.state().tracking = t;
    } else {
        sess.handle.state().tracking = Default::default();
    }
    Frame::ok()
}

fn client_list(server: &Server, argv: &[Vec<u8>], now: Instant) -> Frame {
    let mut type_filter = None;
    let mut ids: Option<Vec<u64>> = None;
    if argv.len() == 4 && lower(&argv[2]) == "type" {
        match ClientType::parse(&argv[3]) {
            Some(t) => type_filter = Some(t),
            None => {
                return err(format!(
                    "ERR Unknown client type '{}'",
                    String::from_utf8_lossy(&argv[3])
                ))
            }
        }
    } else if argv.len() > 3 && lower(&argv[2]) == "id" {
        let mut v = Vec::new();
        for a in argv.iter().skip(3) {
            match string2ll(a) {
                Some(id) if id >= 1 => v.push(id as u64),
                _ => return err("ERR Invalid client ID"),
            }
        }
        ids = Some(v);
    } else if argv.len() != 2 {
        return syntax();
    }
    let mut text = String::new();
    for c in server.registry.all() {
        if type_filter.is_some_and(|t| c.client_type() != t) {
            continue;
        }
        if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) {
            continue;
        }
        text.push_str(&c.info_line(now));
    }
    Frame::Verbatim(*b"txt", text.into_bytes())
}

fn client_kill(server: &Server, sess: &mut Session, argv: &[Vec<u8>]) -> Frame {
    if argv.len() == 3 {
        // Old form: CLIENT KILL addr:port.
        let addr = String::from_utf8_lossy(&argv[2]).into_owned();
        let Some(c) = server.registry.all().into_iter().find(|c| c.addr == addr) else {
            return err("ERR No such client");
        };
        if c.id == sess.handle.id {
            sess.close_after_reply = true;
        } else {
            server.registry.kill(&c);
        }
        return Frame::ok();
    }
    let (mut id, mut ctype, mut addr, mut laddr, mut user) = (None, None, None, None, None);
    let mut skipme = true;
    let mut j = 2;
    while j < argv.len() {
        let (Some(opt), Some(val)) = (argv.get(j), argv.get(j + 1)) else {
            return syntax();
        };
        match lower(opt).as_str() {
            "id" => match string2ll(val) {
                Some(v) if v >= 1 => id = Some(v as u64),
                _ => return err("ERR client-id should be greater than 0"),
            },
            "type" => match ClientType::parse(val) {
                Some(t) => ctype = Some(t),
                None => {
                    return err(format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(val)
                    ))
                }
            },
            "addr" => addr = Some(String::from_utf8_lossy(val).into_owned()),
            "laddr" => laddr = Some(String::from_utf8_lossy(val).into_owned()),
            "user" => {
                let name = String::from_utf8_lossy(val).into_owned();
                if !server.acl().users.contains_key(&name) {
                    return err(format!("ERR No such user '{name}'"));
                }
                user = Some(name);
            }
            "skipme" => match lower(val).as_str() {
                "yes" => skipme = true,
                "no" => skipme = false,
                _ => return syntax(),
            },
            _ => return syntax(),
        }
        j += 2;
    }
    let mut killed = 0;
    for c in server.registry.all() {
        if id.is_some_and(|id| c.id != id)
            || ctype.is_some_and(|t| c.client_type() != t)
            || addr.as_ref().is_some_and(|a| &c.addr != a)
            || laddr.as_ref().is_some_and(|a| &c.laddr != a)
            || user.as_ref().is_some_and(|u| &c.state().user != u)
        {
            continue;
        }
        if c.id == sess.handle.id {
            if skipme {
                continue;
            }
            sess.close_after_reply = true;
        } else {
            server.registry.kill(&c);
        }
        killed += 1;
    }
    Frame::Integer(killed)
}
