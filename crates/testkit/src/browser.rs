//! A real browser for tests: Debian's headless Chromium driven over WebDriver by its
//! `chromedriver`, with JavaScript off (the console must work without it).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};

/// The WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser window, closed (and its processes killed) on drop.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Whether Chromium and its driver are installed (`apt-get install chromium
    /// chromium-driver`).
    pub fn available() -> bool {
        Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists()
    }

    /// Starts chromedriver on a free port and opens a headless window `width` wide.
    pub async fn start(width: u32, height: u32) -> anyhow::Result<Self> {
        use std::os::unix::process::CommandExt as _;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting chromedriver (apt-get install chromium chromium-driver)")?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let profile = tempfile::tempdir()?;
        let mut browser = Self {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(v) = browser.call("GET", "/status", None).await
                && v["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ready {
            bail!("chromedriver did not become ready");
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--hide-scrollbars", "--force-device-scale-factor=1",
                         format!("--window-size={width},{height}"),
                         format!("--user-data-dir={}", browser._profile.path().display())],
                "prefs": {"profile.managed_default_content_settings.javascript": 2}
            }
        }}});
        let v = browser.call("POST", "/session", Some(caps)).await?;
        browser.session = v["sessionId"]
            .as_str()
            .context("no session id from chromedriver")?
            .to_owned();
        browser.resize(width, height).await?;
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, bytes) = tokio::time::timeout(
            Duration::from_secs(60),
            crate::request(self.addr, method, path, &[], Bytes::from(body)),
        )
        .await
        .with_context(|| format!("chromedriver did not answer {method} {path} within 60 s"))??;
        let v: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("chromedriver answered {status} without JSON"))?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {}", v["value"]);
        }
        Ok(v.get("value").cloned().unwrap_or(v))
    }

    async fn session(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body).await
    }

    /// Sets the window's size (a 375 px phone, a desktop).
    pub async fn resize(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.session(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await
        .map(drop)
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.session("POST", "/url", Some(json!({"url": url})))
            .await
            .map(drop)
    }

    async fn string(&self, path: &str) -> anyhow::Result<String> {
        let v = self.session("GET", path, None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Where the window is now.
    pub async fn url(&self) -> anyhow::Result<String> {
        self.string("/url").await
    }

    /// The page's HTML as it is now.
    pub async fn source(&self) -> anyhow::Result<String> {
        self.string("/source").await
    }

    /// The page's title.
    pub async fn title(&self) -> anyhow::Result<String> {
        self.string("/title").await
    }

    async fn element(&self, css: &str) -> anyhow::Result<String> {
        let v = self
            .session(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .with_context(|| format!("finding {css}"))?;
        Ok(v[ELEMENT].as_str().context("no element id")?.to_owned())
    }

    /// The ids of every element matching `css`.
    async fn elements(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let v = self
            .session(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
            .collect())
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> anyhow::Result<usize> {
        Ok(self.elements(css).await?.len())
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let id = self.element(css).await?;
        self.string(&format!("/element/{id}/text")).await
    }

    /// The texts of every element matching `css`.
    pub async fn texts(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for id in self.elements(css).await? {
            out.push(self.string(&format!("/element/{id}/text")).await?);
        }
        Ok(out)
    }

    /// Clears the field matching `css` and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let id = self.element(css).await?;
        self.session("POST", &format!("/element/{id}/clear"), Some(json!({})))
            .await?;
        self.session(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await
        .map(drop)
    }

    /// Chooses the option of value `value` in the select matching `css`.
    pub async fn choose(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let id = self
            .element(&format!("{css} option[value=\"{value}\"]"))
            .await?;
        self.session("POST", &format!("/element/{id}/click"), Some(json!({})))
            .await
            .map(drop)
    }

    /// Clicks the first element matching `css`, a link or a submit button, and waits until
    /// the page it opens has replaced this one.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let old = self.element("html").await?;
        let id = self.element(css).await?;
        self.session("POST", &format!("/element/{id}/click"), Some(json!({})))
            .await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline {
            match self
                .session("GET", &format!("/element/{old}/name"), None)
                .await
            {
                Err(e) if e.to_string().contains("stale element") => return Ok(()),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        bail!("clicking {css} opened no new page within 20 s")
    }

    /// Forgets every cookie (a new visitor).
    pub async fn clear_cookies(&self) -> anyhow::Result<()> {
        self.session("DELETE", "/cookie", None).await.map(drop)
    }

    /// Writes the whole page (as far as the window shows it) as a PNG.
    pub async fn screenshot(&self, to: &Path) -> anyhow::Result<()> {
        let v = self.session("GET", "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().context("no screenshot")?)?;
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(to, png)?;
        Ok(())
    }

    /// Closes the window.
    pub async fn quit(mut self) {
        let _ = self.session("DELETE", "", None).await;
        self.kill();
    }

    fn kill(&mut self) {
        // The driver and the browsers it started share its process group.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if matches!(self.driver.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}
