//! The web console in a real browser: a `bigfs-gateway` beside a cluster, driven through
//! headless Chromium (see `bigfs_tests::browser`). The page is checked against the CLI: the
//! nodes it shows are those `bigfs nodes` lists, a file uploaded through it is what `bigfs get`
//! reads, a file put with the CLI is what its download link serves, byte for byte.
//!
//! Each test saves screenshots in `target/console-screenshots/` (overview, node-dead, browser,
//! file-details, error-exists, error-deleted, paged, folder-rename-drop): look at them after a
//! change to the page.

use serde_json::{json, Value};

use bigfs_tests::{http_get, pseudo_random, Browser, Cluster, Gateway, KIB, MIB};

use crate::s;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The nodes table as `[id, state]` pairs, in page order.
async fn nodes_on_page(b: &Browser) -> Vec<(String, String)> {
    let script = "return [...document.querySelectorAll('#nodes-table tbody tr[data-node]')]
        .map(r => [r.dataset.node, r.querySelector('.badge').dataset.state]);";
    let rows = b.run(script, vec![]).await;
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let field = |i: usize| r[i].as_str().unwrap_or_default().to_string();
            (field(0), field(1))
        })
        .collect()
}

/// A count in the overview's chunk-health card.
async fn health_count(b: &Browser, name: &str) -> Option<u64> {
    b.text(&format!("#chunk-health [data-count={name}]"))
        .await?
        .replace(',', "")
        .parse()
        .ok()
}

#[test]
fn overview_shows_every_node_and_a_killed_one_turns_dead() {
    let mut c = Cluster::start(3);
    c.must_put_bytes("/seed/data.bin", &pseudo_random(1, 2 * MIB + 5));
    let gw = Gateway::start(&c);
    runtime().block_on(async {
        let b = Browser::start().await;
        b.goto(&format!("{}/", gw.url())).await;

        let mut ids: Vec<String> = c.nodes_json().as_array().unwrap()[..]
            .iter()
            .map(|n| n["id"].as_str().unwrap_or_default().to_string())
            .collect();
        ids.sort();
        let shown = b
            .wait_for("every node alive", || async {
                let rows = nodes_on_page(&b).await;
                let mut alive: Vec<String> = rows
                    .into_iter()
                    .filter(|(_, state)| state == "alive")
                    .map(|(id, _)| id)
                    .collect();
                alive.sort();
                (alive.len() == 3).then_some(alive)
            })
            .await;
        assert_eq!(shown, ids, "the page lists the nodes `bigfs nodes` lists");
        // The same numbers as `bigfs fsck` (the page refreshes every two seconds: wait for it
        // to catch up).
        let fsck = c.must_json(["fsck", "--json"]);
        b.wait_for("the healthy count `bigfs fsck` gives", || async {
            health_count(&b, "healthy")
                .await
                .filter(|&n| Some(n) == fsck["healthy"].as_u64())
        })
        .await;
        b.wait_text("a healthy cluster", "#health-pill", |t| {
            t.starts_with("healthy")
        })
        .await;
        b.screenshot("overview").await;

        // Killed: the page turns it dead by itself, and its chunks are short of a copy (three
        // nodes for three copies: nothing to repair onto).
        let victim = c.node_id(1).to_string();
        c.kill_node(1);
        let badge = format!("#nodes-table tr[data-node={victim}] .badge");
        b.wait_text("the killed node dead", &badge, |t| t == "dead")
            .await;
        b.wait_for("under-replicated chunks", || async {
            health_count(&b, "under_replicated")
                .await
                .filter(|&n| n > 0)
        })
        .await;
        b.wait_text("a degraded cluster", "#health-pill", |t| {
            t.starts_with("degraded") || t.starts_with("healing")
        })
        .await;
        b.screenshot("overview-node-dead").await;

        // Back: the count falls to 0 again without a reload.
        c.restart_node(1);
        b.wait_text("the node alive again", &badge, |t| t == "alive")
            .await;
        b.wait_for("no under-replicated chunk", || async {
            health_count(&b, "under_replicated")
                .await
                .filter(|&n| n == 0)
        })
        .await;
        b.close().await;
    });
    c.check_logs();
}

/// The state line of the `index`th upload row of `name` (0 first).
async fn upload_state(b: &Browser, name: &str, index: usize) -> Option<String> {
    let script = "const rows = document.querySelectorAll(`.upload[data-name=\"${arguments[0]}\"]`);
        const row = rows[arguments[1]]; return row && row.querySelector('.upload-state').textContent;";
    b.run(script, vec![json!(name), json!(index)])
        .await
        .as_str()
        .map(str::to_string)
}

async fn choose_file(b: &Browser, local: &std::path::Path) {
    b.client()
        .find(fantoccini::Locator::Css("#file-input"))
        .await
        .expect("the page has a file input")
        .send_keys(s(local))
        .await
        .expect("choose a file");
}

/// Lets a toast finish sliding in before a screenshot.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
}

/// The text of the newest error toast, once one contains `needle`.
async fn error_toast(b: &Browser, what: &str, needle: &str) -> String {
    b.wait_for(what, || async {
        let script =
            "return [...document.querySelectorAll('.toast.error')].map(t => t.textContent);";
        let toasts = b.run(script, vec![]).await;
        toasts
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .find(|t| t.contains(needle))
            .map(str::to_string)
    })
    .await
}

#[test]
fn upload_through_the_page_and_what_a_bad_action_shows() {
    let c = Cluster::start(3);
    c.must(["mkdir", "/inbox"]);
    let gw = Gateway::start(&c);
    let data = pseudo_random(2, 2 * MIB + 300 * KIB);
    let local = c.write_local("photo.bin", &data);
    let name = local.file_name().unwrap().to_str().unwrap().to_string();
    let remote = format!("/inbox/{name}");
    runtime().block_on(async {
        let b = Browser::start().await;
        b.goto(&format!("{}/#/files/inbox", gw.url())).await;
        b.wait_text("the inbox listing", "#breadcrumb", |t| t.contains("inbox"))
            .await;

        choose_file(&b, &local).await;
        b.wait_for("the upload stored", || async {
            upload_state(&b, &name, 0)
                .await
                .filter(|t| t.starts_with("stored"))
        })
        .await;
        let row = format!("#listing tr[data-path=\"{remote}\"]");
        b.wait_for("the new file listed", || async { b.text(&row).await })
            .await;
        b.screenshot("browser").await;
        c.assert_content(&remote, &data);

        // The same name again, other bytes: refused without a confirmation, and the page says
        // why; the stored file is untouched.
        let other = pseudo_random(3, 700 * KIB);
        let second = c.local_dir("second").join(&name);
        std::fs::write(&second, &other).unwrap();
        choose_file(&b, &second).await;
        let toast = error_toast(&b, "the exists error", "already exists").await;
        assert!(toast.contains(&remote), "{toast}");
        settle().await;
        b.screenshot("error-exists").await;
        c.assert_content(&remote, &data);

        // Confirmed, it replaces the file.
        b.click(".upload.failed .replace").await;
        b.wait_text("the replace dialog", "#modal-title", |t| {
            t.starts_with("Replace")
        })
        .await;
        b.click("#modal-ok").await;
        b.wait_for("the replacement stored", || async {
            upload_state(&b, &name, 1)
                .await
                .filter(|t| t.starts_with("stored"))
        })
        .await;
        c.assert_content(&remote, &other);
        // The listing is drawn again after the upload, with the new size: wait for it before
        // the file goes.
        b.wait_for("the listing redrawn with the new size", || async {
            b.text(&row).await.filter(|text| text.contains("700"))
        })
        .await;

        // Deleting a file someone else removed meanwhile says so.
        c.must(["rm", &remote]);
        b.click(&format!("{row} .delete")).await;
        b.wait_text("the delete dialog", "#modal-title", |t| {
            t.starts_with("Delete")
        })
        .await;
        b.click("#modal-ok").await;
        let toast = error_toast(&b, "the not-found error", "no such file").await;
        assert!(toast.contains(&remote), "{toast}");
        settle().await;
        b.screenshot("error-deleted").await;
        b.close().await;
    });
    c.check_logs();
}

#[test]
fn browse_into_a_nested_directory_and_download_what_the_cli_put() {
    let c = Cluster::start(3);
    let data = pseudo_random(4, 3 * MIB + 123);
    let remote = "/data/nested/deeper/blob.bin";
    c.must_put_bytes(remote, &data);
    // A directory of 450 files, listed a page at a time.
    let many = c.local_dir("many");
    for k in 0..450 {
        std::fs::write(many.join(format!("f{k:03}")), k.to_string()).unwrap();
    }
    c.must(["put", "-r", s(&many), "/data/many"]);
    let gw = Gateway::start(&c);
    runtime().block_on(async {
        let b = Browser::start().await;
        b.goto(&format!("{}/#/files/", gw.url())).await;
        for dir in ["/data", "/data/nested", "/data/nested/deeper"] {
            let link = format!("#listing tr[data-path=\"{dir}\"] a.entry-link");
            b.wait_for(&format!("a link to {dir}"), || async {
                b.text(&link).await
            })
            .await;
            b.click(&link).await;
        }
        b.wait_text("the breadcrumb", "#breadcrumb", |t| {
            t == "root/data/nested/deeper"
        })
        .await;
        // Up through the breadcrumb.
        b.click("#breadcrumb a[href=\"#/files/data/nested\"]").await;
        b.wait_text("the breadcrumb", "#breadcrumb", |t| t == "root/data/nested")
            .await;
        b.goto(&format!("{}/#/files/data/nested/deeper", gw.url()))
            .await;
        let file_link = format!("#listing tr[data-path=\"{remote}\"] a.entry-link");
        b.wait_for("the file's link", || async { b.text(&file_link).await })
            .await;
        b.click(&file_link).await;

        // Its details: four chunks with their nodes, the hash `bigfs stat` shows.
        b.wait_for("four chunks", || async {
            let n = b
                .run(
                    "return document.querySelectorAll('#chunks tbody tr[data-chunk]').length;",
                    vec![],
                )
                .await;
            (n.as_u64() == Some(4)).then_some(())
        })
        .await;
        let stat = c.stat_json(remote);
        let hash = b.text("#file .details .mono").await.unwrap_or_default();
        assert_eq!(Some(hash.as_str()), stat["content_hash"].as_str());
        b.screenshot("file-details").await;

        // The download link serves the bytes, with their length and name.
        let href = b
            .attr("#download-link", "href")
            .await
            .expect("a download link");
        let response = http_get(&format!("{}{href}", gw.url()));
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-length"),
            Some(data.len().to_string().as_str())
        );
        let disposition = response.header("content-disposition").unwrap_or_default();
        assert!(
            disposition.contains("filename=\"blob.bin\""),
            "{disposition}"
        );
        assert!(
            response.body == data,
            "the download differs from what was put"
        );

        // 450 entries: 200 a page.
        b.goto(&format!("{}/#/files/data/many", gw.url())).await;
        b.wait_text("the first page", "#pager", |t| t.contains("1–200 of 450"))
            .await;
        let rows = b
            .run(
                "return document.querySelectorAll('#listing tbody tr[data-path]').length;",
                vec![],
            )
            .await;
        assert_eq!(rows.as_u64(), Some(200));
        b.click("#page-next").await;
        b.wait_text("the second page", "#pager", |t| {
            t.contains("201–400 of 450")
        })
        .await;
        b.screenshot("paged").await;
        b.close().await;
    });
    c.check_logs();
}

/// Answers the open dialog with `value` and confirms it.
async fn answer_dialog(b: &Browser, title_prefix: &str, value: &str) {
    b.wait_text("the dialog", "#modal-title", |t| {
        t.starts_with(title_prefix)
    })
    .await;
    b.run(
        "document.getElementById('modal-input').value = arguments[0];",
        vec![json!(value)],
    )
    .await;
    b.click("#modal-ok").await;
}

#[test]
fn new_folder_rename_and_a_dropped_file() {
    let c = Cluster::start(3);
    c.must_put_bytes("/work/draft.txt", b"first draft");
    let gw = Gateway::start(&c);
    runtime().block_on(async {
        let b = Browser::start().await;
        b.goto(&format!("{}/#/files/work", gw.url())).await;
        b.wait_text("the work listing", "#breadcrumb", |t| t.contains("work"))
            .await;

        // New folder.
        b.click("#new-folder").await;
        answer_dialog(&b, "New folder", "reports").await;
        let folder = "#listing tr[data-path=\"/work/reports\"]";
        b.wait_for("the new folder listed", || async { b.text(folder).await })
            .await;

        // Rename a file.
        b.click("#listing tr[data-path=\"/work/draft.txt\"] .rename").await;
        answer_dialog(&b, "Rename", "final.txt").await;
        let renamed = "#listing tr[data-path=\"/work/final.txt\"]";
        b.wait_for("the renamed file listed", || async { b.text(renamed).await })
            .await;

        // A file dropped on the listing, as a browser hands it over from the desktop.
        let drop = "const data = new DataTransfer();
            data.items.add(new File([arguments[0]], 'dropped.txt', { type: 'text/plain' }));
            const zone = document.getElementById('dropzone');
            for (const type of ['dragenter', 'dragover', 'drop']) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
            }";
        b.run(drop, vec![json!("dropped on the page")]).await;
        let dropped = "#listing tr[data-path=\"/work/dropped.txt\"]";
        b.wait_for("the dropped file listed", || async { b.text(dropped).await })
            .await;
        b.screenshot("folder-rename-drop").await;
        b.close().await;
    });
    assert_eq!(c.must_get("/work/final.txt"), b"first draft");
    assert_eq!(c.must_get("/work/dropped.txt"), b"dropped on the page");
    let listed = c.ls_json("/work");
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(
        names,
        ["/work/reports", "/work/dropped.txt", "/work/final.txt"]
    );
    c.check_logs();
}

/// The status of a raw HTTP/1.1 request to the console, with `headers` as given.
fn raw_status(url: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> u16 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the console");
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {reply:?}"))
}

#[test]
fn the_console_refuses_requests_from_other_sites() {
    let c = Cluster::start(3);
    c.must_put_bytes("/keep/me", b"precious");
    let gw = Gateway::start(&c);
    let url = gw.url();
    let host = url.trim_start_matches("http://").to_string();
    let rename = "/api/rename?path=%2Fkeep%2Fme&name=gone";
    // A form posted by another site: no console header.
    let form = [("Host", host.as_str()), ("Origin", "http://evil.example")];
    assert_eq!(raw_status(&url, "POST", rename, &form), 403);
    // A script of another site that got the header through: its origin gives it away.
    let script = [form[0], form[1], ("X-BigFS-Console", "1")];
    assert_eq!(raw_status(&url, "POST", rename, &script), 403);
    // DNS rebinding: the browser names the other site's host, even for a read.
    let rebound = [("Host", "evil.example:80")];
    assert_eq!(raw_status(&url, "GET", "/api/overview", &rebound), 403);
    assert_eq!(c.must_get("/keep/me"), b"precious");
    // The console's own page may.
    let own = [("Host", host.as_str()), ("X-BigFS-Console", "1")];
    assert_eq!(raw_status(&url, "POST", rename, &own), 200);
    assert_eq!(c.must_get("/keep/gone"), b"precious");
    c.check_logs();
}
