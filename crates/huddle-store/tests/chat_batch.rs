//! The chat group-commit writer on a real SQLite file: concurrent chats in
//! several channels get gap-free ids per channel and the senders' read
//! positions; a chat for a missing channel answers `None`, and one chat that
//! cannot be stored fails alone without costing the others their ids; gated
//! chats are stored only for senders their gate admits.

use std::collections::BTreeMap;

use huddle_store::{
    ChannelGrant, ChannelMemberRecord, ChannelRecord, ChatGate, Db, DbOptions, MemberRecord,
    UserRecord, WorkspaceRecord,
};
use tokio::task::JoinSet;

async fn fresh_db() -> (Db, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "huddle-chat-batch-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/t.db", dir.display());
    let db = Db::connect(&url, &DbOptions::default())
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    (db, dir)
}

fn user(id: &str) -> UserRecord {
    UserRecord {
        id: id.into(),
        email: format!("{id}@example.com"),
        name: id.into(),
        password_hash: "x".into(),
        avatar: None,
        lang: None,
        app_settings: "{}".into(),
        activated: true,
        created_at: 0,
        updated_at: 0,
    }
}

fn channel(id: &str) -> ChannelRecord {
    ChannelRecord {
        id: id.into(),
        workspace_id: "w".into(),
        name: id.into(),
        description: None,
        creator_id: "u0".into(),
        is_private: false,
        created_at: 0,
        updated_at: 0,
        last_chat_id: 0,
    }
}

async fn setup(db: &Db, senders: usize, channels: &[&str]) {
    for i in 0..senders {
        db.insert_user(&user(&format!("u{i}"))).await.expect("user");
    }
    let w = WorkspaceRecord {
        id: "w".into(),
        name: "w".into(),
        avatar: None,
        creator_id: "u0".into(),
        can_users_invite: false,
        created_at: 0,
        updated_at: 0,
    };
    db.create_workspace(&w, "admin").await.expect("workspace");
    for i in 1..senders {
        db.add_member(&MemberRecord {
            workspace_id: "w".into(),
            user_id: format!("u{i}"),
            role: "user".into(),
            joined_at: 0,
        })
        .await
        .expect("member");
    }
    for c in channels {
        db.create_channel(&channel(c), &[]).await.expect("channel");
    }
}

#[tokio::test]
async fn concurrent_chats_get_gap_free_ids_and_read_positions() {
    let (db, dir) = fresh_db().await;
    let channels = ["ca", "cb", "cc"];
    setup(&db, 8, &channels).await;
    let mut set = JoinSet::new();
    for n in 0..600usize {
        let db = db.clone();
        set.spawn(async move {
            let ch = ["ca", "cb", "cc"][n % 3];
            let sender = format!("u{}", n % 8);
            let r = db
                .insert_chat(ch, "TEXT", &format!("m{n}"), &sender, 1, None)
                .await
                .map(|s| s.map(|s| s.record));
            (ch, sender, n, r)
        });
    }
    let mut ids: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut last_of: BTreeMap<(&str, String), i64> = BTreeMap::new();
    while let Some(done) = set.join_next().await {
        let (ch, sender, n, r) = done.expect("task");
        let c = r.expect("stored").expect("channel exists");
        assert_eq!(
            (c.channel_id.as_str(), c.content.as_str()),
            (ch, &*format!("m{n}"))
        );
        ids.entry(ch).or_default().push(c.id);
        let e = last_of.entry((ch, sender)).or_insert(0);
        *e = (*e).max(c.id);
    }
    for ch in channels {
        let mut got = ids.remove(ch).unwrap_or_default();
        got.sort_unstable();
        assert_eq!(got, (1..=200).collect::<Vec<i64>>(), "channel {ch}");
        let stored = db.chats_before(ch, i64::MAX, 500).await.expect("history");
        assert_eq!(stored.len(), 200);
        assert_eq!(
            db.channel_by_id(ch)
                .await
                .expect("q")
                .map(|c| c.last_chat_id),
            Some(200)
        );
    }
    for ((ch, sender), last) in last_of {
        assert_eq!(db.read_position(ch, &sender).await.expect("read"), last);
    }
    db.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_bad_chat_fails_alone_and_a_missing_channel_answers_none() {
    let (db, dir) = fresh_db().await;
    setup(&db, 2, &["ca"]).await;
    let mut set = JoinSet::new();
    for n in 0..40usize {
        let db = db.clone();
        set.spawn(async move {
            // A sender with no account cannot get a read position (foreign key):
            // the whole transaction of its batch fails.
            let (ch, sender) = match n {
                7 => ("ca", "ghost"),
                13 => ("no-such-channel", "u1"),
                _ => ("ca", if n % 2 == 0 { "u0" } else { "u1" }),
            };
            let r = db.insert_chat(ch, "TEXT", "hi", sender, 1, None).await;
            (n, r.map(|s| s.map(|s| s.record)))
        });
    }
    let mut ids = Vec::new();
    while let Some(done) = set.join_next().await {
        let (n, r) = done.expect("task");
        match n {
            7 => assert!(r.is_err(), "the ghost's chat must fail: {r:?}"),
            13 => assert!(matches!(r, Ok(None)), "missing channel: {r:?}"),
            _ => ids.push(r.expect("stored").expect("channel exists").id),
        }
    }
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=38).collect::<Vec<i64>>(),
        "no id lost to the failure"
    );
    db.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A test rule: workspace members see public channels, channel members private ones.
fn members_only(g: &ChannelGrant<'_>) -> bool {
    g.workspace_role.is_some() && (g.channel_role.is_some() || !g.is_private)
}

#[tokio::test]
async fn gated_chats_are_admitted_per_sender_within_their_batch() {
    let (db, dir) = fresh_db().await;
    setup(&db, 3, &["ca"]).await;
    db.insert_user(&user("outsider")).await.expect("user");
    let private = ChannelRecord {
        is_private: true,
        ..channel("cp")
    };
    let member = ChannelMemberRecord {
        channel_id: "cp".into(),
        user_id: "u1".into(),
        role: "user".into(),
        joined_at: 0,
    };
    db.create_channel(&private, &[member])
        .await
        .expect("channel");
    let mut set = JoinSet::new();
    for n in 0..100usize {
        let db = db.clone();
        set.spawn(async move {
            // (channel, sender, namespace workspace, admitted?)
            let (ch, sender, within, ok) = match n % 5 {
                0 => ("cp", "u1", Some("w"), true), // a member of the private channel
                1 => ("cp", "u2", Some("w"), false), // a workspace member, not of cp
                2 => ("ca", "outsider", None, false), // not in the workspace
                3 => ("ca", "u2", Some("other"), false), // ca is not in that workspace
                _ => ("ca", "u2", None, true),      // public channel, member
            };
            let gate = ChatGate {
                within: within.map(str::to_owned),
                allow: members_only,
            };
            let r = db
                .insert_chat(ch, "TEXT", &format!("m{n}"), sender, 1, Some(gate))
                .await;
            (ch, ok, r)
        });
    }
    let mut ids: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    while let Some(done) = set.join_next().await {
        let (ch, ok, r) = done.expect("task");
        let stored = r.expect("no store error");
        if ok {
            let s = stored.expect("admitted");
            assert_eq!(s.workspace_id, "w");
            ids.entry(ch).or_default().push(s.record.id);
        } else {
            assert!(stored.is_none(), "refused, got {stored:?}");
        }
    }
    for ch in ["ca", "cp"] {
        let mut got = ids.remove(ch).unwrap_or_default();
        got.sort_unstable();
        assert_eq!(
            got,
            (1..=20).collect::<Vec<i64>>(),
            "channel {ch}: only admitted chats take ids"
        );
        let stored = db.chats_before(ch, i64::MAX, 500).await.expect("history");
        assert_eq!(stored.len(), 20, "channel {ch}");
    }
    db.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
