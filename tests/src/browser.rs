//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`;
//! `.ci/run` installs them): the W3C protocol is JSON over HTTP, spoken here with reqwest.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

fn which(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        let out = Command::new("sh").args(["-c", &format!("command -v {n}")]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    })
}

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    /// chromedriver on a free port and one headless Chromium session.
    pub async fn start() -> Browser {
        let driver_bin = which(&["chromedriver"]).expect("chromedriver is installed (apt-get install chromium-driver)");
        let chromium =
            which(&["chromium", "chromium-browser"]).expect("chromium is installed (apt-get install chromium)");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,2400", "--no-first-run", "--disable-extensions"]}
        }}});
        let r: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session =
            r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("a WebDriver session: {r}")).to_string();
        Browser { driver, base, session, http }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        r["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_string()
    }

    /// The page source once it contains `text` (a form's answer may still be loading), at most 10 s.
    pub async fn wait_for(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let source = self.source().await;
            if source.contains(text) || std::time::Instant::now() >= deadline {
                return source;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    async fn element(&self, css: &str) -> String {
        let found =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        found
            .as_object()
            .filter(|o| !o.contains_key("error"))
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// An attribute (or property) of the element `css`.
    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let id = self.element(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/property/{name}"), None)
            .await
            .as_str()
            .map(str::to_string)
    }

    /// Replace the value of the input `css` with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        let answer = self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
        assert!(answer.is_null(), "click on {css}: {answer}");
    }

    /// Click a form's button and wait for the page its answer loads (a click returns before the
    /// navigation it starts is done).
    pub async fn submit(&self, css: &str) {
        let script = json!({"script": "window.__credits_before_submit = true; return true;", "args": []});
        self.call(reqwest::Method::POST, "/execute/sync", Some(script)).await;
        self.click(css).await;
        let loaded = json!({"script": "return !window.__credits_before_submit && document.readyState === 'complete';", "args": []});
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.call(reqwest::Method::POST, "/execute/sync", Some(loaded.clone())).await != Value::Bool(true) {
            assert!(std::time::Instant::now() < deadline, "no page loaded after submitting {css}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts a form the page does not offer, as a person crafting one in this browser would: built
    /// in the current page with its session's CSRF token (the page's first `csrf` field) and
    /// `fields`, submitted, and its answer's page waited for.
    pub async fn post_form(&self, action: &str, fields: &[(&str, &str)]) {
        let script = json!({"script": "const [action, fields] = arguments;\n\
            const form = document.createElement('form');\n\
            form.method = 'post'; form.action = action; form.id = '__crafted';\n\
            const add = (name, value) => { const i = document.createElement('input');\n\
              i.type = 'hidden'; i.name = name; i.value = value; form.appendChild(i); };\n\
            add('csrf', document.querySelector('input[name=csrf]').value);\n\
            for (const [name, value] of fields) { add(name, value); }\n\
            const b = document.createElement('button'); b.type = 'submit'; form.appendChild(b);\n\
            document.body.appendChild(form); return true;",
            "args": [action, fields]});
        self.call(reqwest::Method::POST, "/execute/sync", Some(script)).await;
        self.submit("#__crafted button").await;
    }

    /// Every cookie of the current page, HttpOnly ones included (WebDriver sees them all).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let all = self.call(reqwest::Method::GET, "/cookie", None).await;
        all.as_array()?.iter().find(|c| c["name"] == name).and_then(|c| c["value"].as_str()).map(str::to_string)
    }

    /// axe-core's WCAG 2.1 A and AA checks on the current page: the violations, each as
    /// `{id, impact, help, nodes}` (axe-core vendored in tests/assets, injected over WebDriver).
    pub async fn accessibility_violations(&self) -> Vec<Value> {
        const AXE: &str = include_str!("../assets/axe-core/axe.min.js");
        self.call(reqwest::Method::POST, "/timeouts", Some(json!({"script": 60_000}))).await;
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": AXE, "args": []}))).await;
        let script = "const done = arguments[arguments.length - 1];\n\
            axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})\n\
              .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,\n\
                    nodes: v.nodes.map(n => n.target.join(' '))}))))\n\
              .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));";
        let found =
            self.call(reqwest::Method::POST, "/execute/async", Some(json!({"script": script, "args": []}))).await;
        found.as_array().cloned().unwrap_or_else(|| panic!("axe-core ran: {found}"))
    }

    /// Fails when axe-core finds a serious or critical WCAG 2.1 AA violation on the current page.
    pub async fn assert_accessible(&self, what: &str) {
        let serious: Vec<Value> = self
            .accessibility_violations()
            .await
            .into_iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(serious.is_empty(), "{what}: serious accessibility violations: {serious:#?}");
    }

    /// Fails when the current page loaded anything (itself, a stylesheet, an image, a script) from
    /// another origin than `origin`, as the browser's own record of what it fetched says.
    pub async fn assert_same_origin(&self, origin: &str) {
        let script = "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));";
        let loaded =
            self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await;
        let urls: Vec<&str> =
            loaded.as_array().expect("the page's resources").iter().filter_map(Value::as_str).collect();
        assert!(urls.len() > 1, "the page loaded its stylesheet at least: {urls:?}");
        let prefix = format!("{}/", origin.trim_end_matches('/'));
        let foreign: Vec<&&str> = urls.iter().filter(|u| !u.starts_with(&prefix)).collect();
        assert!(foreign.is_empty(), "requests left {origin}: {foreign:?}");
    }

    /// A PNG of the page, written to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let shot = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(shot.as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    /// The session is ended first (WebDriver's `DELETE /session/{id}`): chromedriver then quits
    /// its Chromium. Killed alone it would leave the browser and its renderers running, one
    /// set per test, for as long as the machine runs.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Some(addr) = self.base.strip_prefix("http://")
            && let Ok(mut stream) = std::net::TcpStream::connect(addr)
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                self.session
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
