//! Headless Chromium through chromedriver, one browser at a time (the machine
//! has two cores). Needs Debian's `chromium` and `chromium-driver`. Every
//! browser test is `#[ignore]`d with that reason, so a plain `cargo test` says
//! in its summary that they did not run; `cargo test -- --include-ignored` (as
//! `.ci/run`) runs them, and then a missing browser is a failure.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

// A tokio mutex: the guard is held across awaits, and each test has its own runtime.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

pub struct Options {
    pub javascript: bool,
    /// Where downloads land.
    pub downloads: Option<PathBuf>,
    pub width: u32,
    pub height: u32,
    /// Pages see `prefers-color-scheme: dark`.
    pub dark: bool,
    /// Chromium's `--host-resolver-rules`, e.g. `MAP app.test 127.0.0.1`: a
    /// plain-HTTP origin that is not localhost (not a secure context).
    pub host_rules: Option<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Options { javascript: true, downloads: None, width: 1280, height: 900, dark: false, host_rules: None }
    }
}

/// A fresh headless browser. The tests that call it run only when asked for
/// (`--include-ignored`), so a machine without Chromium is a failure here.
/// (`Option` keeps the tests' `let Some(b) = ... else` shape.)
pub async fn browser(test: &str, options: Options) -> Option<Browser> {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        panic!(
            "{test}: {CHROMIUM} or {CHROMEDRIVER} is missing: apt-get install chromium chromium-driver \
             (.ci/run installs them)"
        );
    }
    let turn = ONE_AT_A_TIME.lock().await;
    let profile = std::env::temp_dir().join(format!("tf-chrome-{}-{}", std::process::id(), fastrand::u64(..)));
    let mut args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--no-first-run".into(),
        "--disable-quic".into(),
        format!("--window-size={},{}", options.width, options.height),
        format!("--user-data-dir={}", profile.display()),
    ];
    if options.dark {
        // Blink's preferred colour scheme: 0 is dark.
        args.push("--blink-settings=preferredColorScheme=0".into());
    }
    if let Some(rules) = options.host_rules {
        args.push(format!("--host-resolver-rules={rules}"));
    }
    if options.width < 500 {
        args.push("--force-device-scale-factor=1".into());
    }
    let mut prefs = serde_json::Map::new();
    if !options.javascript {
        prefs.insert("profile.managed_default_content_settings.javascript".into(), json!(2));
    }
    if let Some(dir) = &options.downloads {
        prefs.insert("download.default_directory".into(), json!(dir));
        prefs.insert("download.prompt_for_download".into(), json!(false));
    }
    let chrome = json!({"binary": CHROMIUM, "args": args, "prefs": prefs});
    let caps = json!({"browserName": "chrome", "goog:chromeOptions": chrome});
    let caps = caps.as_object().unwrap().clone();
    // A free port is free only until someone takes it: a server a test has
    // just started can bind the port picked for chromedriver first (then
    // chromedriver exits, and the server answers). Then: another port.
    let mut attempt = 0;
    let (client, driver) = loop {
        attempt += 1;
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Its own process group, which the browser it starts joins: dropping
        // the Browser (even when a test fails) kills both.
        let mut driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let connected = loop {
            match ClientBuilder::new(HttpConnector::new()).capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break Ok(c),
                Err(e) if driver.try_wait().ok().flatten().is_some() => break Err(e),
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => break Err(e),
            }
        };
        match connected {
            Ok(c) => break (c, driver),
            Err(e) if attempt < 3 => {
                let _ = (driver.kill(), driver.wait());
                eprintln!("{test}: chromedriver on port {port}: {e}; another port");
            }
            Err(e) => panic!("no browser session: {e}"),
        }
    };
    client.set_window_size(options.width, options.height).await.unwrap();
    Some(Browser { client, driver, profile, _turn: turn })
}

impl Browser {
    /// Saves a screenshot under `target/screenshots/`.
    pub async fn screenshot(&self, name: &str) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Scrolls to an image (drawings load lazily, as a reader reaches them)
    /// and waits until it has loaded, asserting it loaded as a picture.
    /// WebDriver runs its scripts even where the page's own are switched off.
    pub async fn wait_loaded(&self, img: &fantoccini::elements::Element) {
        let arg = vec![serde_json::to_value(img).unwrap()];
        self.client.execute("arguments[0].scrollIntoView()", arg.clone()).await.unwrap();
        let loaded = async {
            loop {
                let state = self
                    .client
                    .execute("return [arguments[0].complete, arguments[0].naturalWidth]", arg.clone())
                    .await
                    .unwrap();
                if state[0] == true {
                    return state[1].as_u64().unwrap_or(0);
                }
                tokio::task::yield_now().await;
            }
        };
        let width = tokio::time::timeout(Duration::from_secs(15), loaded).await.expect("the image loads");
        let src = img.attr("src").await.unwrap().unwrap_or_default();
        assert!(width > 0, "{src} loaded as a picture");
    }

    /// Runs axe-core (the npm package; `.ci/run` installs it) on the page as
    /// it is now, and returns its violations as `rule: target…` lines.
    pub async fn axe(&self) -> Vec<String> {
        let path = std::env::var("AXE_CORE_JS").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/axe/node_modules/axe-core/axe.min.js").to_string()
        });
        let source = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}: npm install --prefix target/axe axe-core (.ci/run installs it)"));
        self.client.execute(&source, vec![]).await.unwrap();
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then((r) => done(r.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)))
                   .catch((e) => done([`axe failed: ${e}`]));",
                vec![],
            )
            .await
            .unwrap();
        serde_json::from_value(result).unwrap()
    }

    /// `document.documentElement.scrollWidth` and `innerWidth`.
    pub async fn widths(&self) -> (f64, f64) {
        let v = self.client.execute("return [document.documentElement.scrollWidth, innerWidth]", vec![]).await.unwrap();
        (v[0].as_f64().unwrap(), v[1].as_f64().unwrap())
    }

    /// Ends the WebDriver session (the browser quits); `Drop` stops the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
