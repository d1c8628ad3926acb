//! A `linli-relay` process on 127.0.0.1 for tests, raw requests to it, and a push signed as a
//! hostile member would send it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `linli-relay` binary. `cargo test --workspace` builds it (the relay crate has tests of
/// its own); a narrower `cargo test` builds it here.
pub fn relay_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Test binaries live in target/<profile>/deps; the workspace's binaries one up.
            let exe = std::env::current_exe().expect("the test binary's path");
            let dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>");
            let relay = dir.join(format!("linli-relay{}", std::env::consts::EXE_SUFFIX));
            if !relay.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args(["build", "-p", "linli-relay", "--bin", "linli-relay"])
                    .status()
                    .expect("run cargo build");
                assert!(status.success(), "cannot build linli-relay");
            }
            relay
        })
        .clone()
}

/// A relay process on 127.0.0.1, killed when dropped.
pub struct Relay {
    /// The process.
    pub child: Child,
    /// Its address, `http://127.0.0.1:PORT` (or `https://…#sha256=PIN` with `--tls`).
    pub url: String,
    /// Its data directory.
    pub dir: PathBuf,
}

impl Relay {
    /// Starts `linli-relay --data DIR --listen 127.0.0.1:PORT` (0: any free port) and waits for
    /// its address.
    pub fn start(dir: &Path, port: u16) -> Relay {
        Relay::start_with(dir, port, &[])
    }

    /// The same with more arguments (`--tls`: the address is `https://…#sha256=PIN`).
    pub fn start_with(dir: &Path, port: u16, extra: &[&str]) -> Relay {
        let mut child = Command::new(relay_bin())
            .arg("--data")
            .arg(dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            // A small disk reserve: a machine's temporary directory may have less than the
            // default 1 GB free.
            .args(["--reserve-mb", "16"])
            .args(extra)
            .env("LINLI_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start linli-relay");
        let line = first_line(&mut child, "the relay did not print its address");
        let url = line.trim().rsplit(' ').next().expect("address").to_string();
        assert!(
            url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:"),
            "{line}"
        );
        Relay {
            child,
            url,
            dir: dir.to_path_buf(),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        let addr = self.url.split('#').next().unwrap();
        addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Kills it (SIGKILL) and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first line a child prints (waiting at most 20 s). Its standard output is drained to the
/// end in the background: a server that writes to a closed pipe would stop.
pub fn first_line(child: &mut Child, missing: &str) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx.recv_timeout(Duration::from_secs(20)).expect(missing)
}

/// `POST /v2` on the relay at `url` with `body`, over a plain socket: (status, answer).
pub fn post_raw(url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        s,
        "POST /v2 HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, answer[end + 4..].to_vec())
}

/// A push signed by the device of the store in `dir`, as a hostile member would send it.
pub fn hostile_push(dir: &Path, url: &str, blobs: Vec<linli_wire::relay::NewBlob>) -> u16 {
    let store = linli_store::Store::open(dir, &crate::key()).unwrap();
    let me = store.identity().unwrap();
    let request = linli_wire::relay::Request {
        membership: me.membership,
        counter: store.next_counter().unwrap(),
        body: linli_wire::relay::Body::Push { blobs },
    };
    let bytes = linli_wire::encode(&linli_wire::relay::Signed::sign(&me.key, &request));
    post_raw(url, &bytes).0
}
