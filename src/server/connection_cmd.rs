//! The connection and server commands: PING, AUTH, HELLO, ROLE, INFO and
//! SHUTDOWN, one struct each. `parse` checks the arguments and produces the
//! argument errors; `execute` is the only part that reads or changes state.

use tokio::time::Instant;

use super::client::valid_client_name;
use super::cmd::{arity_err, err, syntax, Session};
use super::info;
use super::Server;
use crate::resp::string2ll;
use crate::resp::Frame;

/// `PING [message]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping<'a> {
    pub message: Option<&'a [u8]>,
}

impl<'a> Ping<'a> {
    pub fn parse(argv: &'a [Vec<u8>]) -> Result<Self, Frame> {
        if argv.len() > 2 {
            return Err(arity_err("ping"));
        }
        Ok(Ping {
            message: argv.get(1).map(Vec::as_slice),
        })
    }

    pub fn execute(self, sess: &Session) -> Frame {
        // A RESP2 subscriber gets its PING answered in the shape of a message.
        if sess.proto == 2 && sess.subscriptions() > 0 {
            let msg = self.message.unwrap_or_default();
            return Frame::Array(vec![Frame::bulk("pong"), Frame::bulk(msg)]);
        }
        match self.message {
            Some(m) => Frame::bulk(m),
            None => Frame::simple("PONG"),
        }
    }
}

/// `ROLE`: a sentinel and the masters it monitors.
pub fn role(server: &Server) -> Frame {
    let names = server.core.lock().master_names();
    Frame::Array(vec![
        Frame::bulk("sentinel"),
        Frame::Array(names.into_iter().map(Frame::bulk).collect()),
    ])
}

/// `INFO [section ...]`.
pub fn info(server: &Server, sections: &[Vec<u8>]) -> Frame {
    Frame::Bulk(info::render(server, sections).into_bytes())
}

/// `AUTH [username] password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth<'a> {
    /// `None`: the one-argument form, for the default user.
    pub user: Option<&'a [u8]>,
    pub password: &'a [u8],
}

impl<'a> Auth<'a> {
    pub fn parse(argv: &'a [Vec<u8>]) -> Result<Self, Frame> {
        match argv {
            [_, pass] => Ok(Auth {
                user: None,
                password: pass,
            }),
            [_, user, pass] => Ok(Auth {
                user: Some(user),
                password: pass,
            }),
            _ if argv.len() > 3 => Err(syntax()),
            _ => Err(arity_err("auth")),
        }
    }

    pub fn execute(self, server: &Server, sess: &mut Session) -> Frame {
        let user = match self.user {
            Some(u) => u,
            None if server.acl().default_nopass() => {
                return err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
            }
            None => b"default",
        };
        if authenticate(server, sess, user, self.password, "auth") {
            Frame::ok()
        } else {
            wrongpass()
        }
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello<'a> {
    /// 2 or 3; `None` keeps the current protocol.
    pub proto: Option<u8>,
    pub auth: Option<(&'a [u8], &'a [u8])>,
    pub setname: Option<&'a [u8]>,
}

impl<'a> Hello<'a> {
    pub fn parse(argv: &'a [Vec<u8>]) -> Result<Self, Frame> {
        let mut hello = Hello {
            proto: None,
            auth: None,
            setname: None,
        };
        if let Some(v) = argv.get(1) {
            let Some(v) = string2ll(v) else {
                return Err(err(
                    "ERR Protocol version is not an integer or out of range",
                ));
            };
            match v {
                2 => hello.proto = Some(2),
                3 => hello.proto = Some(3),
                _ => return Err(err("NOPROTO unsupported protocol version")),
            }
        }
        let mut rest = argv.get(2..).unwrap_or_default();
        while let Some((opt, after)) = rest.split_first() {
            match after {
                [user, pass, tail @ ..] if opt.eq_ignore_ascii_case(b"AUTH") => {
                    hello.auth = Some((user, pass));
                    rest = tail;
                }
                [name, tail @ ..] if opt.eq_ignore_ascii_case(b"SETNAME") => {
                    if !valid_client_name(name) {
                        return Err(err(
                            "ERR Client names cannot contain spaces, newlines or special characters.",
                        ));
                    }
                    hello.setname = Some(name);
                    rest = tail;
                }
                _ => {
                    return Err(err(format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(opt)
                    )))
                }
            }
        }
        Ok(hello)
    }

    pub fn execute(self, server: &Server, sess: &mut Session) -> Frame {
        if let Some((u, p)) = self.auth {
            if !authenticate(server, sess, u, p, "hello") {
                return wrongpass();
            }
        }
        if !sess.authenticated && super::cmd::auth_required(server) {
            return err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        }
        if let Some(n) = self.setname {
            sess.handle.state().name = n.to_vec();
        }
        if let Some(proto) = self.proto {
            sess.proto = proto;
            sess.handle.state().resp = proto;
        }
        Frame::Map(vec![
            (Frame::bulk("server"), Frame::bulk("redis")),
            (Frame::bulk("version"), Frame::bulk("7.0.15")),
            (Frame::bulk("proto"), Frame::Integer(i64::from(sess.proto))),
            (Frame::bulk("id"), Frame::Integer(sess.handle.id as i64)),
            (Frame::bulk("mode"), Frame::bulk("sentinel")),
            (Frame::bulk("modules"), Frame::Array(vec![])),
        ])
    }
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown;

impl Shutdown {
    pub fn parse(argv: &[Vec<u8>]) -> Result<Self, Frame> {
        let (mut nosave, mut save, mut abort, mut other) = (false, false, false, false);
        for a in argv.iter().skip(1) {
            let a = a.to_ascii_lowercase();
            match a.as_slice() {
                b"nosave" => nosave = true,
                b"save" => save = true,
                b"now" | b"force" => other = true,
                b"abort" => abort = true,
                _ => return Err(syntax()),
            }
        }
        if (abort && (nosave || save || other)) || (nosave && save) {
            return Err(syntax());
        }
        if abort {
            return Err(err("ERR No shutdown in progress."));
        }
        Ok(Shutdown)
    }

    /// Sentinel mode never saves: SAVE is treated as NOSAVE, and there is no
    /// config flush. No reply: the connection closes with the daemon.
    pub fn execute(self, server: &Server) {
        tracing::warn!("User requested shutdown...");
        server.shutdown.cancel();
    }
}

fn wrongpass() -> Frame {
    err("WRONGPASS invalid username-password pair or user is disabled.")
}

/// ACL authentication; on failure logs an `auth` entry like Redis.
fn authenticate(
    server: &Server,
    sess: &mut Session,
    user: &[u8],
    pass: &[u8],
    object: &str,
) -> bool {
    let name = String::from_utf8_lossy(user).into_owned();
    let now = Instant::now();
    let mut acl = server.acl();
    let ok = acl
        .users
        .get(&name)
        .is_some_and(|u| u.enabled && u.check_password(pass));
    if ok {
        sess.authenticated = true;
        sess.user = name.clone();
        sess.handle.state().user = name;
    } else {
        let info = sess.handle.info_line(now);
        acl.add_log("auth", "toplevel", object, &name, info, now);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Vec<u8>> {
        s.split(' ').map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn hello_options_and_their_errors() {
        let a = argv("HELLO 3 AUTH u p SETNAME me");
        assert_eq!(
            Hello::parse(&a),
            Ok(Hello {
                proto: Some(3),
                auth: Some((b"u", b"p")),
                setname: Some(b"me"),
            })
        );
        let e = |s: &str| Hello::parse(&argv(s)).unwrap_err();
        assert_eq!(e("HELLO 4"), err("NOPROTO unsupported protocol version"));
        assert_eq!(
            e("HELLO x"),
            err("ERR Protocol version is not an integer or out of range")
        );
        assert_eq!(
            e("HELLO 3 AUTH u"),
            err("ERR Syntax error in HELLO option 'AUTH'")
        );
    }

    #[test]
    fn auth_and_shutdown_shapes() {
        assert_eq!(Auth::parse(&argv("AUTH a b c")), Err(syntax()));
        assert_eq!(
            Auth::parse(&argv("AUTH pw")),
            Ok(Auth {
                user: None,
                password: b"pw"
            })
        );
        assert_eq!(Shutdown::parse(&argv("SHUTDOWN nosave now")), Ok(Shutdown));
        assert_eq!(
            Shutdown::parse(&argv("SHUTDOWN save nosave")),
            Err(syntax())
        );
        assert_eq!(
            Shutdown::parse(&argv("SHUTDOWN abort")),
            Err(err("ERR No shutdown in progress."))
        );
        assert_eq!(Ping::parse(&argv("PING a b")), Err(arity_err("ping")));
    }
}
