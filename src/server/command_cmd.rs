//! COMMAND and its subcommands over the sentinel-mode command table.

use super::cmd::{err, help, lower, syntax};
use super::table;
use crate::resp::Frame;

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Prints this help.",
];

pub(super) fn command(sub: &str, argv: &[Vec<u8>]) -> Frame {
    match sub {
        "" => super::cmd_docs::all_info(),
        "help" => help(COMMAND_HELP),
        "count" => Frame::Integer(table::COMMANDS.len() as i64),
        "list" => command_list(argv),
        "info" => match argv.get(2..) {
            Some(names) if !names.is_empty() => Frame::Array(
                names
                    .iter()
                    .map(|n| super::cmd_docs::info_of(n).unwrap_or(Frame::NullBulk))
                    .collect(),
            ),
            _ => super::cmd_docs::all_info(),
        },
        "docs" => match argv.get(2..) {
            Some(names) if !names.is_empty() => Frame::Map(
                names
                    .iter()
                    .filter_map(|n| {
                        super::cmd_docs::docs_of(n).map(|d| (Frame::Bulk(n.clone()), d))
                    })
                    .collect(),
            ),
            _ => super::cmd_docs::all_docs(),
        },
        "getkeys" | "getkeysandflags" => {
            let inner = argv.get(2..).unwrap_or_default();
            if table::lookup_argv(inner).is_none() {
                err("ERR Invalid command specified")
            } else {
                // No sentinel-mode command takes keys.
                err("ERR The command has no key arguments")
            }
        }
        _ => err(format!("ERR unknown subcommand '{sub}'. Try COMMAND HELP.")),
    }
}

fn command_list(argv: &[Vec<u8>]) -> Frame {
    let names: Vec<String> = table::all_ids().map(|r| r.fullname()).collect();
    let filtered: Vec<String> = match argv.len() {
        2 => names,
        5 if lower(&argv[2]) == "filterby" => {
            let val = &argv[4];
            match lower(&argv[3]).as_str() {
                "module" => Vec::new(),
                "aclcat" => {
                    super::acl::category_commands(&String::from_utf8_lossy(val)).unwrap_or_default()
                }
                "pattern" => names
                    .into_iter()
                    .filter(|n| super::glob::matches(val, n.as_bytes(), true))
                    .collect(),
                _ => return syntax(),
            }
        }
        _ => return syntax(),
    };
    Frame::Array(filtered.into_iter().map(Frame::bulk).collect())
}
