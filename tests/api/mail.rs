use lumire_engine::mail::Mailer;
use lumire_tests::TestApp;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A minimal SMTP sink that accepts one message and hands back its DATA.
async fn smtp_sink() -> (u16, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut lines = BufReader::new(r).lines();
        w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            if in_data {
                if line == "." {
                    in_data = false;
                    w.write_all(b"250 queued\r\n").await.unwrap();
                } else {
                    data.push_str(&line);
                    data.push('\n');
                }
                continue;
            }
            let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250 sink\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => {
                    w.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                }
                _ => b"250 ok\r\n",
            };
            w.write_all(reply).await.unwrap();
        }
        data
    });
    (port, handle)
}

#[tokio::test]
async fn outbox_mail_is_delivered_over_smtp_and_marked_sent() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let (port, sink) = smtp_sink().await;
    let mailer = Mailer::new(
        Some(&format!("smtp://127.0.0.1:{port}")),
        "LumireCRM <no-reply@lumire.test>",
    )
    .unwrap();
    let sent = mailer.run_once(&app.db).await.unwrap();
    assert_eq!(sent, 1);
    let data = sink.await.unwrap();
    assert!(data.contains("Verify your e-mail address"), "{data}");
    assert!(data.contains(&owner.email), "{data}");
    let status: String = sqlx::query_scalar("SELECT status FROM mail_outbox WHERE to_addr = $1")
        .bind(&owner.email)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(status, "sent");
    // Nothing left to send.
    assert_eq!(mailer.run_once(&app.db).await.unwrap(), 0);
}

#[tokio::test]
async fn without_smtp_mail_stays_in_the_outbox_and_is_logged_once() {
    let app = TestApp::spawn().await;
    let owner = app.register_owner().await;
    let mailer = Mailer::new(None, "LumireCRM <no-reply@lumire.test>").unwrap();
    assert_eq!(mailer.run_once(&app.db).await.unwrap(), 1);
    assert_eq!(mailer.run_once(&app.db).await.unwrap(), 0);
    let (status, logged): (String, Option<String>) =
        sqlx::query_as("SELECT status, logged_at FROM mail_outbox WHERE to_addr = $1")
            .bind(&owner.email)
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_eq!(status, "pending");
    assert!(logged.is_some());
}
