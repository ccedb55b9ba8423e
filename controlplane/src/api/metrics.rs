//! `GET /metrics`: Prometheus text format (0.0.4). Counters are running totals
//! since start; gauges are the last second or the current state.

use std::fmt::Write as _;

use actix_web::{web, HttpResponse};
use levee_dataplane::packet_io::Direction;
use levee_dataplane::stats::DropReason;
use levee_dataplane::wire::{ParseStatus, TrafficClass};

use super::ApiError;
use crate::live::Live;
use crate::rule::RuleState;

/// Prometheus exposition text, one family at a time.
#[derive(Debug, Default)]
struct Exposition {
    out: String,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

pub async fn get(live: web::Data<Live>) -> Result<HttpResponse, ApiError> {
    let mut m = Exposition::default();
    m.family(
        "levee_info",
        "gauge",
        "The node: version, id and mode (always 1).",
    );
    let mode = format!("{:?}", live.mode).to_lowercase();
    m.sample(
        "levee_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("node_id", &live.node_id),
            ("mode", &mode),
            ("dpdk", &live.dpdk_version),
        ],
        1,
    );
    m.family(
        "levee_start_time_seconds",
        "gauge",
        "When levee started, in seconds since the epoch.",
    );
    m.sample(
        "levee_start_time_seconds",
        &[],
        live.started_at_ms as f64 / 1000.0,
    );
    m.family(
        "levee_rules_unsaved",
        "gauge",
        "Rules in force that the store could not record yet (a full disk); written again each window.",
    );
    m.sample(
        "levee_rules_unsaved",
        &[],
        live.control.view().unsaved_rules,
    );
    m.family(
        "levee_degraded",
        "gauge",
        "1 while /api/v1/health says degraded (a store moved aside at start, a stalled control thread...), else 0.",
    );
    m.sample(
        "levee_degraded",
        &[],
        u8::from(!super::health::reasons(&live).is_empty()),
    );

    {
        // Read from the store before the control plane is held (with no file
        // store, the read itself goes through the control plane).
        let incident_states = live.with_store(|store| match store {
            Some(store) => store.incident_states(),
            None => Ok(Vec::new()),
        })??;
        let view = live.control.view();
        let totals = &view.totals;
        let dirs = Direction::ALL.map(|d| (d.name(), &totals.directions[d as usize]));

        m.family(
            "levee_packets_total",
            "counter",
            "Packets received, by direction and traffic class.",
        );
        for (dir, w) in &dirs {
            for c in TrafficClass::all() {
                if w.class_packets[c.index()] > 0 {
                    m.sample(
                        "levee_packets_total",
                        &[("direction", dir), ("class", c.name())],
                        w.class_packets[c.index()],
                    );
                }
            }
        }
        m.family(
            "levee_bytes_total",
            "counter",
            "Bytes received, by direction and traffic class.",
        );
        for (dir, w) in &dirs {
            for c in TrafficClass::all() {
                if w.class_packets[c.index()] > 0 {
                    m.sample(
                        "levee_bytes_total",
                        &[("direction", dir), ("class", c.name())],
                        w.class_bytes[c.index()],
                    );
                }
            }
        }
        m.family(
            "levee_forwarded_packets_total",
            "counter",
            "Packets forwarded to the peer port, by direction.",
        );
        for (dir, w) in &dirs {
            m.sample(
                "levee_forwarded_packets_total",
                &[("direction", dir)],
                w.forwarded_packets,
            );
        }
        m.family(
            "levee_allowlisted_packets_total",
            "counter",
            "Packets passed by the allowlist, by direction.",
        );
        for (dir, w) in &dirs {
            m.sample(
                "levee_allowlisted_packets_total",
                &[("direction", dir)],
                w.allowlisted,
            );
        }
        m.family(
            "levee_dropped_packets_total",
            "counter",
            "Packets dropped, by direction and reason.",
        );
        for (dir, w) in &dirs {
            for r in DropReason::ALL {
                m.sample(
                    "levee_dropped_packets_total",
                    &[("direction", dir), ("reason", r.name())],
                    w.dropped_packets[r as usize],
                );
            }
        }
        m.family(
            "levee_dropped_bytes_total",
            "counter",
            "Bytes dropped, by direction and reason.",
        );
        for (dir, w) in &dirs {
            for r in DropReason::ALL {
                m.sample(
                    "levee_dropped_bytes_total",
                    &[("direction", dir), ("reason", r.name())],
                    w.dropped_bytes[r as usize],
                );
            }
        }
        m.family(
            "levee_not_parsed_packets_total",
            "counter",
            "Packets whose headers did not parse, by direction and status.",
        );
        for (dir, w) in &dirs {
            for s in ParseStatus::ALL {
                if s != ParseStatus::Ok && w.parse_status[s as usize] > 0 {
                    m.sample(
                        "levee_not_parsed_packets_total",
                        &[("direction", dir), ("status", s.name())],
                        w.parse_status[s as usize],
                    );
                }
            }
        }
        m.family(
            "levee_rule_dropped_packets_total",
            "counter",
            "Packets dropped by each rule.",
        );
        for (rule, (packets, _)) in &totals.rule_drops {
            m.sample(
                "levee_rule_dropped_packets_total",
                &[("rule_id", &rule.to_string())],
                packets,
            );
        }
        m.family(
            "levee_rule_dropped_bytes_total",
            "counter",
            "Bytes dropped by each rule.",
        );
        for (rule, (_, bytes)) in &totals.rule_drops {
            m.sample(
                "levee_rule_dropped_bytes_total",
                &[("rule_id", &rule.to_string())],
                bytes,
            );
        }
        m.family(
            "levee_window_reports_dropped_total",
            "counter",
            "Window reports a worker could not hand to the control plane (full channel).",
        );
        for (worker, n) in &totals.reports_dropped {
            m.sample(
                "levee_window_reports_dropped_total",
                &[("worker", &worker.to_string())],
                n,
            );
        }
        m.family(
            "levee_destinations_overflow_total",
            "counter",
            "Packets to destinations beyond the per-window destination table.",
        );
        m.sample(
            "levee_destinations_overflow_total",
            &[],
            totals.destinations_overflow,
        );

        let d = &totals.defences;
        m.family(
            "levee_syn_challenges_total",
            "counter",
            "SYN authentication challenges written, and those the port could not send.",
        );
        m.sample(
            "levee_syn_challenges_total",
            &[("outcome", "written")],
            d.challenges,
        );
        m.sample(
            "levee_syn_challenges_total",
            &[("outcome", "unsent")],
            d.challenges_unsent,
        );
        m.family(
            "levee_verified_sources_total",
            "counter",
            "Sources verified: by answering a challenge, or by completing a handshake with a protected server.",
        );
        m.sample(
            "levee_verified_sources_total",
            &[("by", "challenge")],
            d.verified,
        );
        m.sample(
            "levee_verified_sources_total",
            &[("by", "handshake")],
            d.handshakes,
        );
        m.family(
            "levee_challenge_failures_total",
            "counter",
            "RSTs toward targets under SYN authentication that answered no challenge.",
        );
        m.sample("levee_challenge_failures_total", &[], d.failed);
        m.family(
            "levee_connection_grace_passes_total",
            "counter",
            "Segments of unknown connections let through while the connection table was younger than its grace.",
        );
        m.sample("levee_connection_grace_passes_total", &[], d.grace_passes);
        m.family(
            "levee_known_source_passes_total",
            "counter",
            "Packets of a target's known sources that passed a rule during its incident.",
        );
        m.sample("levee_known_source_passes_total", &[], d.known_passes);
        m.family(
            "levee_defence_table_refusals_total",
            "counter",
            "Entries the workers' full state tables refused, by table.",
        );
        m.sample(
            "levee_defence_table_refusals_total",
            &[("table", "verified")],
            d.verified_refused,
        );
        m.sample(
            "levee_defence_table_refusals_total",
            &[("table", "connections")],
            d.connections_refused,
        );

        m.family("levee_rules", "gauge", "Rules known to this run, by state.");
        for state in RuleState::ALL {
            let n = view.rules.iter().filter(|r| r.state == state).count();
            m.sample("levee_rules", &[("state", state.name())], n);
        }
        m.family("levee_incidents", "gauge", "Incidents recorded, by state.");
        let mut states = vec![("open".to_owned(), 0u64), ("resolved".to_owned(), 0u64)];
        for (state, n) in incident_states {
            match states.iter_mut().find(|(s, _)| *s == state) {
                Some(e) => e.1 = n,
                None => states.push((state, n)),
            }
        }
        for (state, n) in &states {
            m.sample("levee_incidents", &[("state", state)], n);
        }
        m.family(
            "levee_table_entries",
            "gauge",
            "Entries in each rule table.",
        );
        let fill = &view.tables;
        for (table, entries, _) in fill {
            m.sample("levee_table_entries", &[("table", table)], entries);
        }
        m.family(
            "levee_table_capacity",
            "gauge",
            "Capacity of each rule table.",
        );
        for (table, _, capacity) in fill {
            m.sample("levee_table_capacity", &[("table", table)], capacity);
        }
        m.family(
            "levee_table_refused_total",
            "counter",
            "Table changes refused because a table was full.",
        );
        m.sample("levee_table_refused_total", &[], view.tables_refused_full);
        m.family(
            "levee_store_pruned_total",
            "counter",
            "Rows the store's retention removed (store.keep_days), by kind.",
        );
        for (kind, n) in &view.store_pruned {
            m.sample("levee_store_pruned_total", &[("kind", kind)], n);
        }
        m.family(
            "levee_forensic_captures_removed_total",
            "counter",
            "Forensic captures removed to stay under forensics.max_total_mib.",
        );
        m.sample(
            "levee_forensic_captures_removed_total",
            &[],
            view.forensic_captures_removed,
        );
        m.family(
            "levee_table_backlog",
            "gauge",
            "Table changes waiting for a worker whose mailbox is full.",
        );
        m.sample("levee_table_backlog", &[], view.tables_backlog);
        m.family(
            "levee_known_sources",
            "gauge",
            "Peers the protected hosts exchanged traffic with in peacetime (they pass signatures and rate limits during an attack).",
        );
        m.sample("levee_known_sources", &[], view.known_sources);
        m.family(
            "levee_memory_entries",
            "gauge",
            "What the control plane holds in memory, by kind; each is bounded (docs/DESIGN.md).",
        );
        for (kind, n) in &view.memory {
            m.sample("levee_memory_entries", &[("kind", kind)], n);
        }
        m.sample(
            "levee_memory_entries",
            &[("kind", "resolved_incidents")],
            view.resolved_incidents,
        );
        m.sample(
            "levee_memory_entries",
            &[("kind", "open_incidents")],
            view.open_incidents,
        );
        m.family(
            "levee_watched_targets",
            "gauge",
            "Targets under attack whose traffic the workers account per source.",
        );
        m.sample("levee_watched_targets", &[], view.watched_targets);
        m.family(
            "levee_over_limit_lost_total",
            "counter",
            "Sources over their limit that the workers' reports had no room for (found again in a later window).",
        );
        m.sample("levee_over_limit_lost_total", &[], view.over_limit_lost);
    }

    m.family(
        "levee_pulled_decisions_malformed_total",
        "counter",
        "Decisions pulled from elsewhere (CrowdSec) that could not be read and were left out, by rule origin.",
    );
    if let Ok(malformed) = live.malformed_decisions.lock() {
        for (origin, n) in malformed.iter() {
            m.sample(
                "levee_pulled_decisions_malformed_total",
                &[("origin", origin)],
                n,
            );
        }
    }

    let snapshot = live.snapshot();
    if let Some(p) = snapshot.history.back() {
        m.family(
            "levee_rate_packets_per_second",
            "gauge",
            "Packets per second over the last second, by direction and class.",
        );
        for (dir, rates) in [("inbound", &p.inbound), ("outbound", &p.outbound)] {
            for (class, (pps, _)) in &rates.classes {
                m.sample(
                    "levee_rate_packets_per_second",
                    &[("direction", dir), ("class", class)],
                    pps,
                );
            }
        }
        m.family(
            "levee_rate_bytes_per_second",
            "gauge",
            "Bytes per second over the last second, by direction and class.",
        );
        for (dir, rates) in [("inbound", &p.inbound), ("outbound", &p.outbound)] {
            for (class, (_, bps)) in &rates.classes {
                m.sample(
                    "levee_rate_bytes_per_second",
                    &[("direction", dir), ("class", class)],
                    bps / 8.0,
                );
            }
        }
        m.family(
            "levee_rate_dropped_packets_per_second",
            "gauge",
            "Packets dropped per second over the last second, by direction.",
        );
        for (dir, rates) in [("inbound", &p.inbound), ("outbound", &p.outbound)] {
            m.sample(
                "levee_rate_dropped_packets_per_second",
                &[("direction", dir)],
                rates.dropped_pps,
            );
        }
    }
    m.family(
        "levee_integration_deliveries",
        "gauge",
        "Deliveries of each integration, by state (pending, sending, delivered, failed, skipped).",
    );
    for (integration, state, n) in live.outbox.delivery_counts() {
        m.sample(
            "levee_integration_deliveries",
            &[
                ("integration", &integration.name),
                ("kind", integration.settings.kind()),
                ("state", &state),
            ],
            n,
        );
    }
    m.family(
        "levee_bgp_routes",
        "gauge",
        "Routes each bgp integration's speaker announces for levee (RTBH and FlowSpec); every announcement and withdrawal is a delivery (events bgp.announce, bgp.withdraw).",
    );
    for (integration, n) in live.outbox.bgp_routes() {
        m.sample("levee_bgp_routes", &[("integration", &integration)], n);
    }
    let ports = &snapshot.ports;
    type PortField = fn(&crate::live::PortStatus) -> u64;
    let port_counters: [(&str, &str, PortField); 7] = [
        (
            "levee_port_rx_packets_total",
            "Packets the port received.",
            |p| p.rx_packets,
        ),
        (
            "levee_port_tx_packets_total",
            "Packets the port sent.",
            |p| p.tx_packets,
        ),
        (
            "levee_port_rx_bytes_total",
            "Bytes the port received.",
            |p| p.rx_bytes,
        ),
        ("levee_port_tx_bytes_total", "Bytes the port sent.", |p| {
            p.tx_bytes
        }),
        (
            "levee_port_rx_missed_total",
            "Packets the port dropped for lack of room (rx ring full).",
            |p| p.rx_missed,
        ),
        ("levee_port_rx_errors_total", "Receive errors.", |p| {
            p.rx_errors
        }),
        ("levee_port_tx_errors_total", "Transmit errors.", |p| {
            p.tx_errors
        }),
    ];
    for (name, help, field) in port_counters {
        m.family(name, "counter", help);
        for p in ports {
            m.sample(name, &[("port", &p.name), ("role", &p.role)], field(p));
        }
    }
    m.family("levee_port_link_up", "gauge", "1 if the port's link is up.");
    for p in ports {
        m.sample(
            "levee_port_link_up",
            &[("port", &p.name), ("role", &p.role)],
            u8::from(p.link_up),
        );
    }
    m.family(
        "levee_worker_busy_ratio",
        "gauge",
        "Share of the last second each worker spent on bursts with packets.",
    );
    for w in &snapshot.workers {
        m.sample(
            "levee_worker_busy_ratio",
            &[("lcore", &w.lcore.to_string())],
            w.busy_ratio,
        );
    }
    m.family(
        "levee_worker_burst_cycles",
        "gauge",
        "CPU cycles per burst in each worker's latest window, by percentile.",
    );
    for w in &snapshot.workers {
        let lcore = w.lcore.to_string();
        let c = &w.cycles_per_burst;
        for (pct, v) in [("50", c.p50), ("90", c.p90), ("99", c.p99), ("100", c.max)] {
            m.sample(
                "levee_worker_burst_cycles",
                &[("lcore", &lcore), ("percentile", pct)],
                v,
            );
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.out))
}
