//! The frames the original JavaScript client (CometServerApi.js 4.02) sends,
//! written out literally, and the replies it expects.

use serde_json::{json, Value};

use crate::both_engines;
use crate::client::*;
use crate::common::*;

both_engines!(the_js_client_frames_work_verbatim);

async fn the_js_client_frames_work_verbatim(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("15", 7, "user_key_7").await;
    api.set_data("15", 7, "{\"name\":\"Ann\"}").await;
    api.set_history("15", "web_chat", 10).await;

    // getUrl(): 'ws://'+node+'/ws/sesion='+user_key+'&myid='+user_id+'&devid='+dev_id+"&v="+version+"&uuid="+uuid+"&api=js"
    let uuid_a = "Db_YTZOMMQc902yluqo7mLns3RXWFz2t";
    let mut a = Comet::open(
        &ws_url(
            &app,
            &format!("sesion=user_key_7&myid=7&devid=15&v=4.02&uuid={uuid_a}&api=js"),
        ),
        "15",
        uuid_a,
    )
    .await;
    assert_eq!(a.info["authorized"], true, "{}", a.info);
    let uuid_b = "qwertyuiopasdfghjklzxcvbnm123456";
    let mut b = Comet::open(
        &ws_url(
            &app,
            &format!("sesion=undefined&myid=undefined&devid=15&v=4.02&uuid={uuid_b}&api=js"),
        ),
        "15",
        uuid_b,
    )
    .await;
    assert_eq!(b.info["authorized"], false, "{}", b.info);

    // send_curent_subscription(): "subscription\n" + subscription_array.join("\n")
    b.send("subscription\nweb_chat\ntrack_online").await;
    b.sync().await;
    a.send("subscription\nweb_chat\ntrack_online").await;
    let e = b
        .expect("a's arrival", |v| {
            is_track(v, "track_online", "subscription", uuid_a)
        })
        .await;
    assert_eq!(e["data"], json!({"user_id": 7, "uuid": uuid_a}));

    // web_pipe_send(): "web_pipe2\n"+pipe_name+"\n"+event_name+"\n*\n"+JSON.stringify(msg)
    a.send("web_pipe2\nweb_chat\nmessage\n*\n{\"text\":\"hi\"}")
        .await;
    let m = b
        .expect("the chat message", |v| v["pipe"] == "web_chat")
        .await;
    assert_eq!(m["event"], "message");
    assert_eq!(m["user_id"], 7);
    // The client JSON.parse()s a string `data`; it must be the sent JSON.
    let data = m["data"].as_str().expect("data is the message text");
    assert_eq!(
        serde_json::from_str::<Value>(data).expect("the JSON the client sent"),
        json!({"text": "hi"})
    );
    // The "#web_chat" delivery report is pipe "_answer_to_web_chat".
    let r = a.expect_event("_answer_to_web_chat", "answer").await;
    assert_eq!(r["data"]["number_messages"], 1, "{r}");
    a.assert_none("an echo", |v| v["pipe"] == "web_chat").await;

    // get_pipe_log(): "pipe_log\n"+pipe_name+"\n"+marker+"\n"
    b.send("pipe_log\nweb_chat\nm1\n").await;
    let h = b.expect("history", |v| v["marker"] == "m1").await;
    assert_eq!(h["pipe"], "web_chat", "{h}");
    assert_eq!(h["event"], "message", "{h}");
    assert_eq!(h["user_id"], 7, "{h}");
    assert_eq!(h["history"], true, "{h}");
    assert_eq!(h["data"], "{\"text\":\"hi\"}", "{h}");

    // count_users_in_pipe(): "pipe_count\n"+pipe_name+"\n"+marker+"\n"
    b.send("pipe_count\nweb_chat\nm2\n").await;
    let r = b.expect("count", |v| v["marker"] == "m2").await;
    assert_eq!(
        r,
        json!({"pipe": "_answer_pipe_count", "event": "user_in_pipe", "marker": "m2",
               "data": {"user_in_pipe": 2}})
    );

    // getTrackPipeUsers(): "track_pipe_users\n"+pipe_name+"\n"+marker
    b.send("track_pipe_users\ntrack_online\n0123456789").await;
    let r = b.expect("users", |v| v["marker"] == "0123456789").await;
    assert_eq!(
        r,
        json!({"pipe": "_answer", "event": "answer", "marker": "0123456789",
               "data": [{"user_id": 7, "uuid": uuid_a}]})
    );

    // getUserData(): "user_data\n"+marker+"\n"+user_id
    b.send("user_data\n9876543210\n7").await;
    let r = b.expect("user data", |v| v["marker"] == "9876543210").await;
    assert_eq!(r["data"]["user_id"], 7, "{r}");
    assert_eq!(r["data"]["user_data"], "{\"name\":\"Ann\"}", "{r}");

    // User status, as sent by the original's user_status command.
    b.send("user_status\n7").await;
    let r = b.expect_event("_answer_user_status", "user_status_7").await;
    assert!(r["data"]["last_online_time"].is_number(), "{r}");

    // statistics, sent 5 s after connecting.
    b.send(
        "statistics\n{\"url\":\"http://localhost/chat.html\",\"dev_id\":\"15\",\"version\":\"4.02\"}",
    )
    .await;
    b.assert_none("a reply to statistics", |v| v["pipe"] == "sys")
        .await;

    a.close().await;
    b.close().await;
    app.stop().await;
}
