//! levee as a real bump in the wire: two network namespaces made by this test,
//! each joined by a veth pair to a `net_af_packet` port of levee. Ping and a TCP
//! transfer between the namespaces must pass through levee. Everything the test
//! creates it removes, also when it fails.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn sh(args: &[&str]) -> std::process::Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Namespaces, veth pairs and the levee process; torn down on drop.
struct Lab {
    client_ns: String,
    server_ns: String,
    client_root_if: String,
    server_root_if: String,
    levee: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.levee.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting a namespace deletes the veth end inside it, and with it the peer.
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for ifname in [&self.client_root_if, &self.server_root_if] {
            let _ = Command::new("ip")
                .args(["link", "del", ifname])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn mac_of(ns: &str, ifname: &str) -> String {
    let out = sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "cat",
        &format!("/sys/class/net/{ifname}/address"),
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// Start a Python server in `ns`; returns once it printed "listening".
fn serve(ns: &str, script: &str) -> (Child, std::io::BufReader<std::process::ChildStdout>) {
    let mut server = in_ns(ns, &["python3", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("server");
    let mut stdout = std::io::BufReader::new(server.stdout.take().expect("stdout"));
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut ready).expect("server ready");
    assert_eq!(ready.trim(), "listening", "the TCP server did not start");
    (server, stdout)
}

const CLIENT_IP: &str = "10.77.0.1";
const SERVER_IP: &str = "10.77.0.2";

/// Two namespaces joined to levee's two `net_af_packet` ports by veth pairs.
fn lab(tag: &str) -> Lab {
    let id = std::process::id() % 100_000;
    let tag = tag.chars().next().unwrap_or('x');
    let lab = Lab {
        client_ns: format!("lv{tag}c{id}"),
        server_ns: format!("lv{tag}s{id}"),
        client_root_if: format!("lv{tag}c{id}b"),
        server_root_if: format!("lv{tag}s{id}b"),
        levee: None,
    };
    let (client_if, server_if) = (format!("lv{tag}c{id}a"), format!("lv{tag}s{id}a"));
    let (client_ip, server_ip) = (CLIENT_IP, SERVER_IP);

    for (ns, inner, outer, ip) in [
        (&lab.client_ns, &client_if, &lab.client_root_if, client_ip),
        (&lab.server_ns, &server_if, &lab.server_root_if, server_ip),
    ] {
        sh(&["ip", "netns", "add", ns]);
        sh(&[
            "ip", "link", "add", inner, "type", "veth", "peer", "name", outer,
        ]);
        sh(&["ip", "link", "set", inner, "netns", ns]);
        sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "ip",
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            inner,
        ]);
        sh(&["ip", "netns", "exec", ns, "ip", "link", "set", inner, "up"]);
        sh(&["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
        // Frames cross levee as plain packets: no segmentation or checksum offload
        // that only a veth peer could finish.
        sh(&[
            "ip", "netns", "exec", ns, "ethtool", "-K", inner, "tx", "off", "tso", "off", "gso",
            "off",
        ]);
        sh(&["ip", "link", "set", outer, "up"]);
        sh(&["ethtool", "-K", outer, "gro", "off", "rx", "off"]);
    }
    // Static neighbour entries: the test is about forwarding, not ARP timing.
    let (client_mac, server_mac) = (
        mac_of(&lab.client_ns, &client_if),
        mac_of(&lab.server_ns, &server_if),
    );
    sh(&[
        "ip",
        "netns",
        "exec",
        &lab.client_ns,
        "ip",
        "neigh",
        "replace",
        server_ip,
        "lladdr",
        &server_mac,
        "dev",
        &client_if,
        "nud",
        "permanent",
    ]);
    sh(&[
        "ip",
        "netns",
        "exec",
        &lab.server_ns,
        "ip",
        "neigh",
        "replace",
        client_ip,
        "lladdr",
        &client_mac,
        "dev",
        &server_if,
        "nud",
        "permanent",
    ]);

    lab
}

impl Lab {
    /// Start `levee run` inline between the namespaces with `extra` configuration,
    /// and wait until a ping crosses it.
    fn start_levee(&mut self, dir: &std::path::Path, extra: &str) {
        let config = write_config(
            dir,
            "levee.toml",
            &format!(
                r#"
                mode = "inline"
                [dpdk]
                eal_args = {TEST_EAL_ARGS}
                mempool_size = 4096
                [[pair]]
                outside = "net_af_packet0,iface={}"
                inside = "net_af_packet1,iface={}"
                {extra}
                "#,
                self.client_root_if, self.server_root_if
            ),
        );
        self.levee = Some(
            levee()
                .args(["run", "--json", "--config"])
                .arg(&config)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start levee"),
        );

        // Wait until levee forwards (its ports come up within a second or two).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = in_ns(&self.client_ns, &["ping", "-c", "1", "-W", "1", SERVER_IP])
                .output()
                .expect("ping")
                .status
                .success();
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no ping reply through levee within 20 s"
            );
        }
    }

    /// Stop levee (SIGINT) and return its JSON summary.
    fn stop_levee(&mut self) -> serde_json::Value {
        let child = self.levee.take().expect("levee running");
        sh(&["kill", "-INT", &child.id().to_string()]);
        let out = child.wait_with_output().expect("levee exits");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "levee: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim()).expect("summary")
    }
}

#[test]
fn ping_and_tcp_pass_through_levee_between_namespaces() {
    let mut lab = lab("plain");
    let dir = tempfile::tempdir().expect("tempdir");
    lab.start_levee(dir.path(), "");
    let server_ip = SERVER_IP;
    let ping = in_ns(
        &lab.client_ns,
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", server_ip],
    )
    .output()
    .expect("ping");
    let ping_out = String::from_utf8_lossy(&ping.stdout);
    assert!(
        ping.status.success() && ping_out.contains(" 0% packet loss"),
        "ping through levee: {ping_out}"
    );

    // A TCP transfer of 2 MiB, checked end to end by digest.
    let server_script = r#"
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1); s.settimeout(30)
print("listening", flush=True)
c, _ = s.accept(); c.settimeout(30); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b); n += len(b)
print(n, h.hexdigest(), flush=True)
"#;
    // The client connects once the server listens.
    let (mut server, mut server_stdout) = serve(&lab.server_ns, server_script);
    let client_script = format!(
        r#"
import hashlib, os, socket
data = os.urandom(2 * 1024 * 1024)
s = socket.create_connection(("{server_ip}", 5001), timeout=30)
s.sendall(data); s.close()
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
"#
    );
    let client = in_ns(&lab.client_ns, &["python3", "-c", &client_script])
        .output()
        .expect("client");
    let server_out = {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = server.try_wait().expect("server status") {
                let mut s = String::new();
                use std::io::Read;
                server_stdout.read_to_string(&mut s).expect("read");
                assert!(status.success(), "server failed: {s}");
                break s;
            }
            if Instant::now() > deadline {
                let _ = server.kill();
                panic!("TCP server did not finish");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let client_out = String::from_utf8_lossy(&client.stdout);
    assert!(
        client.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert_eq!(
        server_out.trim(),
        client_out.trim(),
        "bytes received differ from bytes sent"
    );

    // Stop levee and check it saw the traffic in both directions.
    let summary = lab.stop_levee();
    assert!(
        u(&summary, "/workers/0/inbound/tx_packets") > 1000,
        "client->server packets: {summary}"
    );
    assert!(
        u(&summary, "/workers/0/outbound/tx_packets") > 100,
        "server->client packets: {summary}"
    );
}

/// SYN authentication in front of a real Linux server, with a real Linux client
/// that never connected before: its first SYN is answered by levee's challenge,
/// its stack answers with the RST that verifies it, and its retransmitted SYN
/// reaches the server; its next connections are not challenged again.
#[test]
fn syn_authentication_lets_a_real_linux_client_connect_through_levee() {
    let mut lab = lab("auth");
    let dir = tempfile::tempdir().expect("tempdir");
    lab.start_levee(
        dir.path(),
        &format!(
            r#"
            [pipeline]
            protected = ["{SERVER_IP}/32"]
            [[rules.signature]]
            id = 9
            destination = "{SERVER_IP}/32"
            protocol = "tcp"
            tcp_flags = "S/SA"
            action = "syn-authentication"
            "#
        ),
    );
    let server_script = r#"
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5002)); s.listen(16); s.settimeout(30)
print("listening", flush=True)
for _ in range(5):
    c, _ = s.accept(); c.settimeout(10)
    c.sendall(c.recv(100).upper()); c.close()
print("served 5", flush=True)
"#;
    let (mut server, mut server_stdout) = serve(&lab.server_ns, server_script);
    let mut line = String::new();
    // Five connections, each with the 3 s connect timeout of a patient user.
    let client_script = format!(
        r#"
import socket, time
for i in range(5):
    t = time.monotonic()
    s = socket.create_connection(("{SERVER_IP}", 5002), timeout=3)
    connected = time.monotonic() - t
    s.sendall(b"hello %d" % i)
    print(s.recv(100).decode(), round(connected * 1000), flush=True)
    s.close()
"#
    );
    let client = in_ns(&lab.client_ns, &["python3", "-c", &client_script])
        .output()
        .expect("client");
    let client_out = String::from_utf8_lossy(&client.stdout).to_string();
    assert!(
        client.status.success(),
        "the client could not connect through SYN authentication: {client_out}{}",
        String::from_utf8_lossy(&client.stderr)
    );
    let replies: Vec<&str> = client_out.lines().collect();
    assert_eq!(replies.len(), 5, "{client_out}");
    for (i, r) in replies.iter().enumerate() {
        assert!(r.starts_with(&format!("HELLO {i} ")), "{client_out}");
    }
    line.clear();
    std::io::BufRead::read_line(&mut server_stdout, &mut line).expect("server done");
    assert_eq!(line.trim(), "served 5");
    let _ = server.wait();

    let summary = lab.stop_levee();
    let defences = &summary["pipeline"]["defences"];
    // One challenge (the first SYN), answered by the client's own stack: the
    // server never saw that SYN; every later SYN came from a verified source.
    assert_eq!(u(defences, "/challenges"), 1, "{defences}");
    assert_eq!(u(defences, "/challenges_unsent"), 0, "{defences}");
    assert_eq!(u(defences, "/verified"), 1, "{defences}");
    assert_eq!(
        u(
            &summary,
            "/pipeline/directions/inbound/dropped/syn_challenge/packets"
        ),
        1,
        "{summary}"
    );
    assert_eq!(
        u(
            &summary,
            "/pipeline/directions/inbound/dropped/challenge_answer/packets"
        ),
        1,
        "{summary}"
    );
    eprintln!("connect times (ms): {client_out}");
}
