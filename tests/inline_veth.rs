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

#[test]
fn ping_and_tcp_pass_through_levee_between_namespaces() {
    let id = std::process::id() % 100_000;
    let mut lab = Lab {
        client_ns: format!("lvc{id}"),
        server_ns: format!("lvs{id}"),
        client_root_if: format!("lvc{id}b"),
        server_root_if: format!("lvs{id}b"),
        levee: None,
    };
    let (client_if, server_if) = (format!("lvc{id}a"), format!("lvs{id}a"));
    let (client_ip, server_ip) = ("10.77.0.1", "10.77.0.2");

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

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
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
            "#,
            lab.client_root_if, lab.server_root_if
        ),
    );
    lab.levee = Some(
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
        let ok = in_ns(&lab.client_ns, &["ping", "-c", "1", "-W", "1", server_ip])
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
    let mut server = in_ns(&lab.server_ns, &["python3", "-c", server_script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("server");
    // The client connects once the server listens.
    let mut server_stdout = std::io::BufReader::new(server.stdout.take().expect("stdout"));
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut server_stdout, &mut ready).expect("server ready");
    assert_eq!(ready.trim(), "listening", "the TCP server did not start");
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
    let child = lab.levee.take().expect("levee running");
    sh(&["kill", "-INT", &child.id().to_string()]);
    let out = child.wait_with_output().expect("levee exits");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "levee: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("summary");
    assert!(
        u(&summary, "/workers/0/inbound/tx_packets") > 1000,
        "client->server packets: {summary}"
    );
    assert!(
        u(&summary, "/workers/0/outbound/tx_packets") > 100,
        "server->client packets: {summary}"
    );
}
