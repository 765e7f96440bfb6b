//! ACL and its subcommands on top of `acl` (users, rules, log).

use tokio::time::Instant;

use super::acl::{Acl, User};
use super::cmd::{arity_err, channel_args, err, help, lower, Session};
use super::table;
use super::Server;
use crate::resp::string2ll;
use crate::resp::Frame;

const ACL_HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn getuser_reply(u: &User) -> Frame {
    let (cmds, keys, chans) = User::selector_fields(&u.root);
    let selectors = u
        .selectors
        .iter()
        .map(|s| {
            let (c, k, ch) = User::selector_fields(s);
            Frame::Map(vec![
                (Frame::bulk("commands"), Frame::bulk(c)),
                (Frame::bulk("keys"), Frame::bulk(k)),
                (Frame::bulk("channels"), Frame::bulk(ch)),
            ])
        })
        .collect();
    Frame::Map(vec![
        (
            Frame::bulk("flags"),
            Frame::Set(u.flag_names().into_iter().map(Frame::bulk).collect()),
        ),
        (
            Frame::bulk("passwords"),
            Frame::Array(u.passwords.iter().map(Frame::bulk).collect()),
        ),
        (Frame::bulk("commands"), Frame::bulk(cmds)),
        (Frame::bulk("keys"), Frame::bulk(keys)),
        (Frame::bulk("channels"), Frame::bulk(chans)),
        (Frame::bulk("selectors"), Frame::Array(selectors)),
    ])
}

pub(super) fn acl(server: &Server, sess: &mut Session, sub: &str, argv: &[Vec<u8>]) -> Frame {
    match sub {
        "help" => help(ACL_HELP),
        "whoami" => Frame::bulk(&sess.user),
        "users" => Frame::Array(server.acl().users.keys().map(Frame::bulk).collect()),
        "list" => Frame::Array(
            server
                .acl()
                .users
                .values()
                .map(|u| Frame::bulk(u.describe()))
                .collect(),
        ),
        "getuser" => acl_getuser(server, argv),
        "setuser" => acl_setuser(server, sess, argv),
        "deluser" => acl_deluser(server, sess, argv),
        "cat" => match argv.get(2) {
            None => Frame::Array(table::CATEGORIES.iter().map(|c| Frame::bulk(*c)).collect()),
            Some(c) => match super::acl::category_commands(&String::from_utf8_lossy(c)) {
                Some(v) => Frame::Array(v.into_iter().map(Frame::bulk).collect()),
                None => err(format!(
                    "ERR Unknown category '{}'",
                    String::from_utf8_lossy(c)
                )),
            },
        },
        "genpass" => acl_genpass(argv),
        "dryrun" => acl_dryrun(server, argv),
        "log" => acl_log(server, argv),
        "load" => acl_load(server),
        "save" => acl_save(server),
        _ => err(format!("ERR unknown subcommand '{sub}'. Try ACL HELP.")),
    }
}

fn acl_getuser(server: &Server, argv: &[Vec<u8>]) -> Frame {
    let arg = |i: usize| argv.get(i).map(|a| a.as_slice()).unwrap_or_default();
    let name = String::from_utf8_lossy(arg(2)).into_owned();
    match server.acl().users.get(&name) {
        Some(u) => getuser_reply(u),
        None => Frame::NullBulk,
    }
}

fn acl_setuser(server: &Server, sess: &mut Session, argv: &[Vec<u8>]) -> Frame {
    let arg = |i: usize| argv.get(i).map(|a| a.as_slice()).unwrap_or_default();
    let name = String::from_utf8_lossy(arg(2)).into_owned();
    if name.contains(' ') || name.contains('\0') {
        return err("ERR Usernames can't contain spaces or null characters");
    }
    let mut acl = server.acl();
    let mut u = acl
        .users
        .get(&name)
        .cloned()
        .unwrap_or_else(|| User::new(&name));
    for op in argv.iter().skip(3) {
        if let Err(e) = u.apply(op) {
            return err(format!(
                "ERR Error in ACL SETUSER modifier '{}': {}",
                String::from_utf8_lossy(op),
                e
            ));
        }
    }
    // Like ACLKillPubsubClientsIfNeeded: clients of this user whose
    // subscriptions are no longer allowed are disconnected.
    for c in server.registry.all() {
        let st = c.state();
        if st.user != name {
            continue;
        }
        let lost = st.channels.iter().any(|ch| !u.can_use_channel(ch, false))
            || st.patterns.iter().any(|p| !u.can_use_channel(p, true));
        drop(st);
        if lost {
            if c.id == sess.handle.id {
                sess.close_after_reply = true;
            } else {
                server.registry.kill(&c);
            }
        }
    }
    acl.users.insert(name, u);
    drop(acl);
    sync_users_to_config(server);
    Frame::ok()
}

fn acl_deluser(server: &Server, sess: &mut Session, argv: &[Vec<u8>]) -> Frame {
    let mut acl = server.acl();
    let mut deleted = 0;
    for n in argv.iter().skip(2) {
        let n = String::from_utf8_lossy(n).into_owned();
        if n == "default" {
            return err("ERR The 'default' user cannot be removed");
        }
    }
    for n in argv.iter().skip(2) {
        let n = String::from_utf8_lossy(n).into_owned();
        if acl.users.remove(&n).is_some() {
            deleted += 1;
            // Clients authenticated as a deleted user are disconnected.
            for c in server.registry.all() {
                if c.state().user == n {
                    if c.id == sess.handle.id {
                        sess.close_after_reply = true;
                    } else {
                        server.registry.kill(&c);
                    }
                }
            }
        }
    }
    drop(acl);
    sync_users_to_config(server);
    Frame::Integer(deleted)
}

fn acl_genpass(argv: &[Vec<u8>]) -> Frame {
    let bits = match argv.get(2) {
        None => 256,
        Some(b) => match string2ll(b) {
            None => return err("ERR value is not an integer or out of range"),
            Some(b) if !(1..=4096).contains(&b) => {
                return err("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096")
            }
            Some(b) => b as usize,
        },
    };
    use rand::RngCore;
    let chars = bits.div_ceil(4);
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut s = hex::encode(bytes);
    s.truncate(chars);
    Frame::bulk(s)
}

fn acl_dryrun(server: &Server, argv: &[Vec<u8>]) -> Frame {
    let arg = |i: usize| argv.get(i).map(|a| a.as_slice()).unwrap_or_default();
    let name = String::from_utf8_lossy(arg(2)).into_owned();
    let acl = server.acl();
    let Some(u) = acl.users.get(&name) else {
        return err(format!("ERR User '{name}' not found"));
    };
    let inner = argv.get(3..).unwrap_or_default();
    let Some(r) = table::lookup_argv(inner) else {
        return err(format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(arg(3))
        ));
    };
    let arity = r.spec().arity;
    let argc = inner.len() as i32;
    if (arity > 0 && arity != argc) || argc < -arity {
        return arity_err(&r.fullname());
    }
    if !u.can_run(r.id, inner) {
        return Frame::bulk(format!(
            "This user has no permissions to run the '{}' command",
            r.fullname()
        ));
    }
    if let Some(bad) = channel_args(&r, inner)
        .into_iter()
        .find(|(c, p)| !u.can_use_channel(c, *p))
    {
        return Frame::bulk(format!(
            "This user has no permissions to access the '{}' channel",
            String::from_utf8_lossy(bad.0)
        ));
    }
    Frame::ok()
}

fn acl_load(server: &Server) -> Frame {
    let Some(path) = server.acl().aclfile.clone() else {
        return err(NO_ACLFILE);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            return err(format!(
                "ERR Error loading ACLs, opening file '{path}': {}",
                io_error_text(&e)
            ))
        }
    };
    match Acl::parse_file(&text, &path) {
        Ok(users) => {
            server.acl().users = users;
            Frame::ok()
        }
        Err(e) => err(format!("ERR {e}")),
    }
}

fn acl_save(server: &Server) -> Frame {
    let (path, lines) = {
        let acl = server.acl();
        let Some(path) = acl.aclfile.clone() else {
            return err(NO_ACLFILE);
        };
        let lines: String = acl.users.values().map(|u| u.describe() + "\n").collect();
        (path, lines)
    };
    let tmp = format!("{path}.tmp-{}", std::process::id());
    let res = std::fs::write(&tmp, lines).and_then(|_| std::fs::rename(&tmp, &path));
    match res {
        Ok(()) => Frame::ok(),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("ACL SAVE to {path} failed: {e}");
            err("ERR There was an error trying to save the ACLs. Please check the server logs for more information")
        }
    }
}

/// Without an aclfile, users live in the config file: keep the `user` lines
/// of the server config current so the next config rewrite persists them,
/// as Redis's CONFIG REWRITE (and so SENTINEL FLUSHCONFIG) does.
fn sync_users_to_config(server: &Server) {
    let (lines, has_file) = {
        let acl = server.acl();
        (acl.config_lines(), acl.aclfile.is_some())
    };
    if !has_file {
        server
            .config
            .lock()
            .expect("the server configuration lock is poisoned")
            .users = lines;
    }
}

/// strerror-style text of an I/O error (without Rust's "(os error N)").
pub(crate) fn io_error_text(e: &std::io::Error) -> String {
    let t = e.to_string();
    match t.rfind(" (os error ") {
        Some(i) => t[..i].to_string(),
        None => t,
    }
}

fn acl_log(server: &Server, argv: &[Vec<u8>]) -> Frame {
    let mut count = usize::MAX;
    if let Some(a) = argv.get(2) {
        if lower(a) == "reset" {
            server.acl().log.clear();
            return Frame::ok();
        }
        match string2ll(a) {
            Some(n) if n >= 0 => count = n as usize,
            _ => return err("ERR value is not an integer or out of range"),
        }
    }
    let now = Instant::now();
    let acl = server.acl();
    Frame::Array(
        acl.log
            .iter()
            .take(count)
            .map(|e| {
                let age = now.saturating_duration_since(e.updated).as_millis() as f64 / 1000.0;
                Frame::Map(vec![
                    (Frame::bulk("count"), Frame::Integer(e.count as i64)),
                    (Frame::bulk("reason"), Frame::bulk(&e.reason)),
                    (Frame::bulk("context"), Frame::bulk(&e.context)),
                    (Frame::bulk("object"), Frame::bulk(&e.object)),
                    (Frame::bulk("username"), Frame::bulk(&e.username)),
                    (Frame::bulk("age-seconds"), Frame::Double(age)),
                    (
                        Frame::bulk("client-info"),
                        Frame::bulk(e.client_info.trim_end()),
                    ),
                ])
            })
            .collect(),
    )
}
