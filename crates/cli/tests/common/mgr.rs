//! A manager process on a private database, for tests that need no root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::*;

/// Four hosts of 4 cores in a ring of 100 Mbit/s links.
pub const RING: &str = "name: ring\nhosts:\n  - {name: a, role: vnode, cpu: 4, memory: 8Gi, slivers: 32}\n  - {name: b, role: vnode, cpu: 4, memory: 8Gi, slivers: 32}\n  - {name: c, role: vnode, cpu: 4, memory: 8Gi, slivers: 32}\n  - {name: d, role: vnode, cpu: 4, memory: 8Gi, slivers: 32}\nlinks:\n  - {endpoints: [a, b], bandwidth: 100Mbit}\n  - {endpoints: [b, c], bandwidth: 100Mbit}\n  - {endpoints: [c, d], bandwidth: 100Mbit}\n  - {endpoints: [d, a], bandwidth: 100Mbit}\n";

pub fn two_nodes(name: &str, bw: &str) -> String {
    format!(
        "name: {name}\nnodes:\n  - {{name: x, cpu: 1}}\n  - {{name: y, cpu: 1}}\nlinks:\n  - {{name: l, bandwidth: {bw}, endpoints: [{{node: x}}, {{node: y}}]}}\n"
    )
}

/// A manager process on a private database; killed (by PID) when dropped.
pub struct Manager {
    pub dir: PathBuf,
    child: Option<Child>,
    pub url: String,
    lease: Vec<String>,
}

impl Manager {
    pub fn start(dir: &Path, extra: &[&str]) -> Manager {
        std::fs::write(dir.join("substrate.yaml"), RING).unwrap();
        let mut m = Manager {
            dir: dir.to_path_buf(),
            child: None,
            url: String::new(),
            lease: extra.iter().map(|s| s.to_string()).collect(),
        };
        m.spawn("127.0.0.1:0");
        m
    }

    pub fn spawn(&mut self, listen: &str) {
        let addr = self.dir.join("addr");
        let _ = std::fs::remove_file(&addr);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("manager.log")).unwrap();
        let child = Command::new(EXE)
            .args(["manager", "--listen", listen, "--db"])
            .arg(self.dir.join("m.db"))
            .arg("--substrate")
            .arg(self.dir.join("substrate.yaml"))
            .arg("--addr-file")
            .arg(&addr)
            .args(&self.lease)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_until("the manager listens", Duration::from_secs(15), || {
            std::fs::read_to_string(&addr).map(|a| !a.trim().is_empty()).unwrap_or(false)
        });
        self.url = format!("https://{}", std::fs::read_to_string(&addr).unwrap().trim());
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        let listen = self.url.trim_start_matches("https://").to_string();
        self.spawn(&listen);
    }

    pub fn cli(&self, token: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(EXE);
        c.args(args)
            .arg("--manager")
            .arg(&self.url)
            .arg("--ca-cert")
            .arg(self.dir.join("tls/cert.pem"))
            .arg("--token-file")
            .arg(token)
            .env("HOME", &self.dir)
            .env_remove("NETSLICE_TOKEN")
            .env_remove("XDG_CONFIG_HOME")
            .stdin(Stdio::null());
        c
    }

    pub fn admin(&self) -> PathBuf {
        self.dir.join("operator.token")
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = run(&mut self.cli(&self.admin(), args));
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("manager.log")).unwrap_or_default()
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl Manager {
    /// A developer's token file (the user is added by the operator).
    pub fn user(&self, who: &str) -> PathBuf {
        let f = self.dir.join(format!("{who}.token"));
        let out = run(&mut self.cli(&self.admin(), &["user", "add", who, "--save-token", f.to_str().unwrap()]));
        assert!(out.status.success(), "{}", text(&out));
        f
    }

    /// An HTTPS client that trusts this manager's certificate.
    pub fn http(&self) -> reqwest::Client {
        netslice_api::http::client(Some(&self.dir.join("tls/cert.pem")), Duration::from_secs(30)).unwrap()
    }

    /// The secret in a token file.
    pub fn secret(&self, token: &Path) -> String {
        std::fs::read_to_string(token).unwrap().trim().to_string()
    }
}
