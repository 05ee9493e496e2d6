//! Headless Chromium, driven through chromedriver (WebDriver), for the web console's tests.
//!
//! Each [`Browser`] starts its own chromedriver on a free loopback port, in a process group of
//! its own, and a Chromium with a fresh profile directory; dropping it kills the group, so a
//! failed test leaves no browser behind. The flags keep Chromium from calling home (background
//! networking, component updates, sync, QUIC): its connections out are refused on these
//! machines, and a test must not depend on them anyway.
//!
//! The browser is Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`; `BIGFS_CHROMIUM` and `BIGFS_CHROMEDRIVER` override them). Where
//! they are missing the test fails saying what to install: `scripts/test.sh` installs them.
//! Screenshots go to `target/console-screenshots/` so that they outlive the test.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::ports::free_port;

/// How long a page may take to show what a test waits for.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless Chromium session. See the module documentation.
pub struct Browser {
    client: Client,
    driver: Child,
    _profile: TempDir,
}

fn program(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    if !path.is_file() {
        panic!(
            "the console's browser tests need headless Chromium and its WebDriver: {} is \
             missing. Install them with `apt-get install -y chromium chromium-driver` (Debian), \
             or run the suite with scripts/test.sh, which installs what is missing; {env} \
             points at another binary.",
            path.display()
        );
    }
    path
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a 1360×900 window.
    pub async fn start() -> Browser {
        let chromium = program("BIGFS_CHROMIUM", CHROMIUM);
        let chromedriver = program("BIGFS_CHROMEDRIVER", CHROMEDRIVER);
        let port = free_port();
        let mut cmd = Command::new(&chromedriver);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so that Drop can kill chromedriver and the browsers it started.
            .process_group(0);
        let mut driver = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = driver.try_wait() {
                panic!("chromedriver exited at start ({status})");
            }
            assert!(
                started.elapsed() < PAGE_TIMEOUT,
                "chromedriver does not listen on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1360,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://{addr}"))
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session through chromedriver: {e}"));
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// The WebDriver session, for what the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Runs `script` (a function body; its arguments are `arguments[i]`) in the page.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("run {script:?} in the page: {e}"))
    }

    /// The text of the first element matching `css`, or `None` if there is none.
    pub async fn text(&self, css: &str) -> Option<String> {
        let script = "const e = document.querySelector(arguments[0]); return e && e.textContent;";
        self.run(script, vec![json!(css)])
            .await
            .as_str()
            .map(str::to_string)
    }

    /// The attribute `name` of the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let script =
            "const e = document.querySelector(arguments[0]); return e && e.getAttribute(arguments[1]);";
        self.run(script, vec![json!(css), json!(name)])
            .await
            .as_str()
            .map(str::to_string)
    }

    /// Clicks the first element matching `css` (as a user's click: WebDriver's, not a script's).
    pub async fn click(&self, css: &str) {
        let element = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"));
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Polls `check` until it returns `Some`; after [`PAGE_TIMEOUT`] saves a screenshot named
    /// after `what` and panics with the page's text.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if started.elapsed() > PAGE_TIMEOUT {
                let shot = self.screenshot(&format!("failed-{}", slug(what))).await;
                let page = self.text("body").await.unwrap_or_default();
                panic!(
                    "after {PAGE_TIMEOUT:?} the page does not show {what}; screenshot {}; its \
                     text:\n{page}",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the first element matching `css` has a text that `want` accepts; returns it.
    pub async fn wait_text(&self, what: &str, css: &str, want: impl Fn(&str) -> bool) -> String {
        self.wait_for(what, || async {
            self.text(css).await.filter(|text| want(text))
        })
        .await
    }

    /// Saves a PNG of the window as `target/console-screenshots/NAME.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("take a screenshot: {e}"));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        eprintln!("bigfs-tests: screenshot {}", path.display());
        path
    }

    /// Ends the session (Chromium exits); Drop then stops chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group: chromedriver and every Chromium process it started.
        // SAFETY: kill(2) has no memory-safety preconditions; the group is our child's.
        unsafe { libc::kill(-(self.driver.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

/// Where screenshots go: `console-screenshots/` in the cargo target directory.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("console-screenshots")
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}
