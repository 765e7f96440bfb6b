use super::*;

fn user(rules: &str) -> Result<User, RuleError> {
    let mut u = User::new("t");
    for r in rules.split(' ').filter(|r| !r.is_empty()) {
        u.apply(r.as_bytes())?;
    }
    Ok(u)
}

fn list(rules: &str) -> String {
    user(rules).unwrap().describe()
}

#[test]
fn acl_list_lines_match_redis_7_0() {
    assert_eq!(
        User::default_user().describe(),
        "user default on nopass ~* &* +@all"
    );
    assert_eq!(list(""), "user t off resetchannels -@all");
    assert_eq!(list("+@all -ping"), "user t off resetchannels +@all -ping");
    assert_eq!(
        list("-@all +@connection -ping"),
        "user t off resetchannels -@all +@connection -ping"
    );
    assert_eq!(list("-@all +ping -ping"), "user t off resetchannels -@all");
    assert_eq!(
        list("+@all -@admin +role"),
        "user t off resetchannels +@all -@admin +role"
    );
    assert_eq!(
        list("+client -client|kill"),
        "user t off resetchannels -@all +@connection -hello -command -auth -ping +client -client|kill"
    );
    assert_eq!(
        list("+client|kill +client"),
        "user t off resetchannels -@all +@connection -hello -command -auth -ping +client"
    );
    assert_eq!(
        list("+@connection +@connection -@connection"),
        "user t off resetchannels -@all"
    );
    assert_eq!(
        list("+PING +acl|CAT"),
        "user t off resetchannels -@all +ping +acl|cat"
    );
    assert_eq!(
        list("+@all +@all -@all +@admin"),
        "user t off resetchannels -@all +@admin"
    );
    assert_eq!(
        list("on nopass resetchannels -@all +ping +client|id allchannels ~*"),
        "user t on nopass ~* &* -@all +ping +client|id"
    );
    assert_eq!(
        list("+client|setname +acl|whoami -acl"),
        "user t off resetchannels -@all +client|setname"
    );
    assert_eq!(
        list("+sentinel|help -sentinel|help"),
        "user t off resetchannels -@all"
    );
    assert_eq!(
        list("on >pw ~* &* +@all"),
        "user t on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~* &* +@all"
    );
    assert_eq!(
        list("on >p1 >p2 nopass"),
        "user t on nopass resetchannels -@all"
    );
    assert_eq!(list("on nopass >p1"), "user t on #f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a resetchannels -@all");
    assert_eq!(
        list("on resetkeys allkeys"),
        "user t on ~* resetchannels -@all"
    );
    assert_eq!(
        list("reset"),
        "user t off sanitize-payload resetchannels -@all"
    );
    assert_eq!(
        list("skip-sanitize-payload ~key"),
        "user t off skip-sanitize-payload ~key resetchannels -@all"
    );
    assert_eq!(
        list("&a &b %R~k"),
        "user t off %R~k resetchannels &a &b -@all"
    );
}

#[test]
fn rule_errors_match_redis() {
    assert_eq!(user("+@foo"), Err(RuleError::Unknown));
    assert_eq!(user("foo"), Err(RuleError::Syntax));
    assert_eq!(user("+nosuch"), Err(RuleError::Unknown));
    assert_eq!(user("+client|nosuch"), Err(RuleError::Unknown));
    assert_eq!(user("+client|kill|x"), Err(RuleError::FirstArgOfSubcommand));
    assert_eq!(user("-ping|x"), Err(RuleError::Unknown));
    assert_eq!(user("#abc"), Err(RuleError::BadHash));
    assert_eq!(user("<nonexist"), Err(RuleError::NoSuchPassword));
    assert_eq!(user("allchannels &foo"), Err(RuleError::ChannelsAfterAll));
    assert_eq!(user("allkeys ~foo"), Err(RuleError::KeysAfterAll));
    assert_eq!(
        RuleError::Unknown.to_string(),
        "Unknown command or category name in ACL"
    );
}

#[test]
fn permissions() {
    let u = user("on nopass -@all +ping +client|id &ch*").unwrap();
    let ping = table::lookup_name(b"ping").unwrap().id;
    let role = table::lookup_name(b"role").unwrap().id;
    let cid = table::lookup_name(b"client|id").unwrap().id;
    let ckill = table::lookup_name(b"client|kill").unwrap().id;
    let none: Vec<Vec<u8>> = Vec::new();
    assert!(u.can_run(ping, &none) && u.can_run(cid, &none));
    assert!(!u.can_run(role, &none) && !u.can_run(ckill, &none));
    let f = user("on nopass -@all +ping|x").unwrap();
    let args = |a: &[&str]| a.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    assert!(f.can_run(ping, &args(&["ping", "X"])));
    assert!(!f.can_run(ping, &args(&["ping", "y"])));
    assert!(!f.can_run(ping, &args(&["ping"])));
    let adm = user("on nopass -@all +@admin").unwrap();
    assert!(adm.can_run(table::lookup_name(b"sentinel|help").unwrap().id, &none));
    assert!(u.can_use_channel(b"chan", false));
    assert!(!u.can_use_channel(b"other", false));
    assert!(u.can_use_channel(b"ch*", true));
    assert!(!u.can_use_channel(b"c*", true));
    assert!(u.check_password(b"anything"));
    let p = user("on >secret").unwrap();
    assert!(p.check_password(b"secret") && !p.check_password(b"x"));
}

#[test]
fn aclfile_parsing() {
    let users = Acl::parse_file(
        "user default on nopass ~* &* +@all\n\nuser alice on >pw +@all\n",
        "/x.acl",
    )
    .unwrap();
    assert_eq!(
        users["default"].describe(),
        "user default on nopass ~* &* +@all"
    );
    assert_eq!(
        users["alice"].describe(),
        "user alice on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 resetchannels +@all"
    );
    assert_eq!(
        Acl::parse_file("user alice on\nbogus line\n", "/x.acl").unwrap_err(),
        "/x.acl:2 should start with user keyword followed by the username. WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
    );
    assert_eq!(
        Acl::parse_file("user alice on +nosuch\n", "/x.acl").unwrap_err(),
        "/x.acl:1: Error in applying operation '+nosuch': Unknown command or category name in ACL. WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
    );
    let only = Acl::parse_file("user bob on\n", "/x.acl").unwrap();
    assert_eq!(only["default"], User::default_user());
}

#[test]
fn config_users_and_requirepass() {
    let acl =
        Acl::from_config(&["alice on >pw +@all ~* &*".into()], Some("foo"), None, 128).unwrap();
    assert!(!acl.default_nopass());
    assert!(acl.users["default"].check_password(b"foo"));
    assert!(acl.users["alice"].check_password(b"pw"));
    assert_eq!(
        acl.users["alice"].describe(),
        "user alice on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~* &* +@all"
    );
    let acl = Acl::from_config(&["default on nopass ~* &* +@all".into()], None, None, 128).unwrap();
    assert_eq!(
        acl.users["default"].describe(),
        "user default on nopass sanitize-payload ~* &* +@all"
    );
    assert_eq!(
        category_commands("pubsub").unwrap(),
        vec![
            "unsubscribe",
            "punsubscribe",
            "publish",
            "subscribe",
            "psubscribe"
        ]
    );
}
