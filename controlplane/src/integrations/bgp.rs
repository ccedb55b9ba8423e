//! The bgp integration: asking the upstream to drop an attack that fills the
//! link in front of levee. On an incident it announces the target's /32
//! (/128) with the BLACKHOLE community 65535:666 (RFC 7999, RTBH) and/or
//! FlowSpec rules (RFC 8955 / RFC 8956) made from the incident's signatures,
//! and withdraws them after the incident resolved and a hold-down passed
//! (pulse waves come back).
//!
//! levee speaks BGP through a real speaker, GoBGP: `gobgpd` runs beside levee
//! (its own service, its own neighbours and policies) and levee drives its
//! global RIB through the `gobgp` CLI over gobgpd's gRPC API. That RIB is
//! levee's: at every change, and every second without one, levee reconciles it with what the open
//! incidents call for (announces what is missing, withdraws what is not
//! called for), so a restart of levee or of gobgpd, or a session reset,
//! converges by itself; gobgpd re-advertises its RIB to a peer whose session
//! comes back.
//!
//! What is announced is decided here without I/O ([`wanted`]), under the
//! safety rules: only targets inside the protected networks, no prefix
//! shorter than the configured minimum, at most `max_announcements` routes.
//! Every announcement and withdrawal is a row in the delivery log.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Stdio;

use levee_dataplane::named_enum;
use std::sync::Arc;
use std::time::Duration;

use levee_dataplane::tables::Prefix;
use serde::{Deserialize, Serialize};

use super::{BoxFuture, DeliveryContext, Job, Outbox, Outcome, Plan, Sink};
use crate::detect::{AttackType, IncidentEvent};
use crate::rule::{Rule, RuleMatch, RuleState};
use crate::rule_fields::TcpFlags;

/// When an incident's target is announced.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Every incident on a protected target.
    #[default]
    Always,
    /// Incidents whose peak is at least `min_uplink_share` of `uplink_bps`:
    /// the link is at risk, levee alone cannot help.
    UplinkShare,
    /// Incidents of the listed `attack_types`.
    AttackTypes,
    /// Incidents an operator approved (`levee integrations approve`): until
    /// then their routes are staged, listed in the delivery log.
    Approval,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BgpSettings {
    /// The `gobgp` command (path or name).
    #[serde(default = "default_gobgp")]
    pub gobgp: String,
    /// gobgpd's gRPC API, host:port.
    #[serde(default = "default_api")]
    pub api: String,
    /// Announce the target with the BLACKHOLE community.
    #[serde(default = "yes")]
    pub rtbh: bool,
    /// Extra communities on RTBH routes ("ASN:VALUE"), e.g. an upstream's own.
    #[serde(default)]
    pub communities: Vec<String>,
    /// The next hop of IPv4 / IPv6 RTBH routes; none: the speaker's own
    /// address (next-hop self), which every upstream resolves.
    #[serde(default)]
    pub next_hop: Option<String>,
    #[serde(default)]
    pub next_hop_v6: Option<String>,
    /// Announce FlowSpec rules made from the incident's signatures.
    #[serde(default)]
    pub flowspec: bool,
    /// FlowSpec action: rate-limit to this many bytes/s instead of discard
    /// (signatures levee rate-limits or checks are sent only then).
    #[serde(default)]
    pub flowspec_rate_bytes: Option<u64>,
    #[serde(default)]
    pub when: When,
    /// The uplink's capacity in bits/s (for `when = "uplink_share"`).
    #[serde(default)]
    pub uplink_bps: Option<f64>,
    #[serde(default = "default_share")]
    pub min_uplink_share: f64,
    /// Attack type names (for `when = "attack_types"`), e.g. "NTP Amplification".
    #[serde(default)]
    pub attack_types: Vec<String>,
    /// How long after an incident resolved its routes stay announced.
    #[serde(default = "default_hold_down")]
    pub hold_down_seconds: u64,
    /// Routes announced at most (RTBH and FlowSpec together).
    #[serde(default = "default_max")]
    pub max_announcements: usize,
    /// Shortest prefix announced (a carpet-bombed /24 is not blackholed whole
    /// unless allowed here).
    #[serde(default = "default_min_v4")]
    pub min_prefix_v4: u8,
    #[serde(default = "default_min_v6")]
    pub min_prefix_v6: u8,
}

fn default_gobgp() -> String {
    "gobgp".into()
}
fn default_api() -> String {
    "127.0.0.1:50051".into()
}
fn yes() -> bool {
    true
}
fn default_share() -> f64 {
    0.5
}
fn default_hold_down() -> u64 {
    300
}
fn default_max() -> usize {
    64
}
fn default_min_v4() -> u8 {
    32
}
fn default_min_v6() -> u8 {
    128
}

/// RFC 7999's BLACKHOLE.
pub const BLACKHOLE: &str = "65535:666";

fn community_ok(c: &str) -> bool {
    c.split_once(':')
        .is_some_and(|(a, b)| a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok())
}

impl BgpSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.gobgp.trim().is_empty() {
            return Err("gobgp: the gobgp command is required".into());
        }
        match self.api.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return Err(format!("api: {:?} is not host:port", self.api)),
        }
        if !self.rtbh && !self.flowspec {
            return Err("rtbh and flowspec are both off: nothing would be announced".into());
        }
        if let Some(c) = self.communities.iter().find(|c| !community_ok(c)) {
            return Err(format!(
                "communities: {c:?} is not ASN:VALUE (each 0-65535)"
            ));
        }
        for (field, hop, v4) in [
            ("next_hop", &self.next_hop, true),
            ("next_hop_v6", &self.next_hop_v6, false),
        ] {
            if let Some(h) = hop {
                match h.parse::<IpAddr>() {
                    Ok(a) if a.is_ipv4() == v4 => {}
                    _ => {
                        return Err(format!(
                            "{field}: {h:?} is not an IPv{} address",
                            if v4 { 4 } else { 6 }
                        ))
                    }
                }
            }
        }
        if self.flowspec_rate_bytes == Some(0) {
            return Err("flowspec_rate_bytes: 0 is a discard; leave it out".into());
        }
        match self.when {
            When::UplinkShare if !self.uplink_bps.is_some_and(|b| b > 0.0) => {
                return Err("uplink_bps: required (> 0) with when = \"uplink_share\"".into())
            }
            When::AttackTypes if self.attack_types.is_empty() => {
                return Err("attack_types: required with when = \"attack_types\"".into())
            }
            _ => {}
        }
        if !(self.min_uplink_share > 0.0 && self.min_uplink_share <= 1.0) {
            return Err("min_uplink_share: must be in (0, 1]".into());
        }
        if let Some(t) = self
            .attack_types
            .iter()
            .find(|t| AttackType::from_name(t).is_none())
        {
            return Err(format!(
                "attack_types: {t:?} is not an attack type levee names"
            ));
        }
        if self.max_announcements == 0 {
            return Err("max_announcements: must be at least 1".into());
        }
        if self.min_prefix_v4 > 32 || self.min_prefix_v6 > 128 {
            return Err("min_prefix_v4 / min_prefix_v6: at most 32 / 128".into());
        }
        Ok(())
    }
}

/// An incident as the integration sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentState {
    pub id: String,
    pub target: Prefix,
    pub attack_type: AttackType,
    pub vectors: Vec<AttackType>,
    pub peak_bps: f64,
    pub started_at_ms: u64,
    pub resolved_at_ms: Option<u64>,
}

impl IncidentState {
    pub fn of(i: &crate::detect::Incident) -> IncidentState {
        let ms = |ns: u64| ns / 1_000_000;
        IncidentState {
            id: i.id.clone(),
            target: crate::mitigate::target_prefix(&i.target),
            attack_type: i.attack_type,
            vectors: i.vectors.keys().copied().collect(),
            peak_bps: i.peak_bps,
            started_at_ms: ms(i.started_at_ns),
            resolved_at_ms: i.resolved_at_ns.map(ms),
        }
    }
}

/// What levee knows that decides the announcements.
#[derive(Clone, Debug, Default)]
pub struct UpstreamState {
    /// Open incidents and those resolved recently.
    pub incidents: Vec<IncidentState>,
    pub rules: Vec<Rule>,
    pub protected: Vec<Prefix>,
    /// Incidents an operator approved announcing (for `when = "approval"`).
    pub approved: std::collections::HashSet<String>,
}

named_enum! {
    /// An address family of gobgpd's RIB.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Family {
        Ipv4 => "ipv4",
        Ipv6 => "ipv6",
        Ipv4Flowspec => "ipv4-flowspec",
        Ipv6Flowspec => "ipv6-flowspec",
    }
}

impl Family {
    fn flowspec(self) -> bool {
        matches!(self, Family::Ipv4Flowspec | Family::Ipv6Flowspec)
    }
}

/// One route levee wants announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub family: Family,
    /// The NLRI as gobgp's arguments: the prefix, or `match ...` components.
    pub nlri: Vec<String>,
    /// Path attributes as gobgp's arguments (communities, next hop, action).
    pub attrs: Vec<String>,
    pub incident_id: String,
}

impl Route {
    /// How the delivery log names the route.
    pub fn key(&self) -> String {
        format!("{} {}", self.family.name(), self.nlri.join(" "))
    }
}

/// The routes called for now, what the safety rules refused, and when the
/// next hold-down ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Wanted {
    pub routes: Vec<Route>,
    pub refused: Vec<String>,
    /// Routes waiting for an operator's approval.
    pub staged: Vec<Route>,
}

fn covered(protected: &[Prefix], target: &Prefix) -> bool {
    protected
        .iter()
        .any(|p| p.len() <= target.len() && p.contains(target.addr()))
}

/// Flags as a FlowSpec bitmask match: each masked bit set (`=S`) or clear
/// (`!A`).
fn flowspec_flags(f: TcpFlags) -> String {
    TcpFlags::of(f.mask)
        .map(|flag| {
            let op = if f.value & flag.bit != 0 { '=' } else { '!' };
            format!("{op}{}", flag.letter)
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The FlowSpec NLRI of one of levee's signatures, or why it has none.
fn flowspec_match(rule: &Rule) -> Result<(Family, Vec<String>), String> {
    let RuleMatch::Signature {
        destination,
        protocol,
        src_port,
        dst_port,
        tcp_flags,
        non_first_fragments,
        ip_length,
        ip_ttl,
        ..
    } = &rule.matches
    else {
        return Err("not a signature".into());
    };
    if ip_ttl.is_some() {
        return Err(format!(
            "rule {}: its TTL range has no FlowSpec component; announcing it without would drop more",
            rule.id
        ));
    }
    let d: Prefix = destination
        .parse()
        .map_err(|_| format!("rule {}: destination {destination:?}", rule.id))?;
    let family = if d.addr().is_ipv4() {
        Family::Ipv4Flowspec
    } else {
        Family::Ipv6Flowspec
    };
    let mut m = vec!["match".into(), "destination".into(), d.to_string()];
    let proto = match protocol {
        1 => "icmp".to_owned(),
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        47 => "gre".to_owned(),
        58 => "ipv6-icmp".to_owned(),
        n => n.to_string(),
    };
    let key = if family == Family::Ipv4Flowspec {
        "protocol"
    } else {
        "next-header"
    };
    m.extend([key.into(), proto]);
    if let Some(p) = src_port {
        m.extend(["source-port".into(), format!("=={p}")]);
    }
    if let Some(p) = dst_port {
        m.extend(["destination-port".into(), format!("=={p}")]);
    }
    if let Some(f) = tcp_flags
        .as_deref()
        .and_then(|t| t.parse::<TcpFlags>().ok())
    {
        m.extend(["tcp-flags".into(), flowspec_flags(f)]);
    }
    if let Some((lo, hi)) = ip_length {
        m.extend(["packet-length".into(), format!(">={lo}&<={hi}")]);
    }
    if *non_first_fragments {
        m.extend(["fragment".into(), "is-fragment&!first-fragment".into()]);
    }
    Ok((family, m))
}

/// Whether the policy calls for announcing this incident (approval aside).
fn called_for(s: &BgpSettings, i: &IncidentState) -> bool {
    match s.when {
        When::Always | When::Approval => true,
        When::UplinkShare => s
            .uplink_bps
            .is_some_and(|cap| i.peak_bps >= s.min_uplink_share * cap),
        When::AttackTypes => std::iter::once(&i.attack_type)
            .chain(&i.vectors)
            .any(|a| s.attack_types.iter().any(|t| t == a.name())),
    }
}

/// The routes levee wants announced now: no I/O.
pub fn wanted(s: &BgpSettings, state: &UpstreamState, now_ms: u64) -> Wanted {
    let mut w = Wanted::default();
    let hold_ms = s.hold_down_seconds.saturating_mul(1000);
    let mut incidents: Vec<&IncidentState> = state
        .incidents
        .iter()
        .filter(|i| {
            i.resolved_at_ms
                .is_none_or(|r| now_ms < r.saturating_add(hold_ms))
        })
        .filter(|i| called_for(s, i))
        .collect();
    incidents.sort_by_key(|i| (i.started_at_ms, i.id.clone()));
    let mut routes: Vec<Route> = Vec::new();
    for i in incidents {
        let target = i.target;
        if !covered(&state.protected, &target) {
            w.refused.push(format!(
                "{}: {target} is outside the protected networks: never announced",
                i.id
            ));
            continue;
        }
        let v4 = target.addr().is_ipv4();
        let min = if v4 { s.min_prefix_v4 } else { s.min_prefix_v6 };
        if target.len() < min {
            w.refused.push(format!(
                "{}: {target} is shorter than /{min} (min_prefix_v{}): not announced",
                i.id,
                if v4 { 4 } else { 6 }
            ));
            continue;
        }
        if s.rtbh {
            let mut communities = vec![BLACKHOLE.to_owned()];
            communities.extend(s.communities.iter().cloned());
            let mut attrs = vec!["community".into(), communities.join(",")];
            if let Some(h) = if v4 { &s.next_hop } else { &s.next_hop_v6 } {
                attrs.extend(["nexthop".into(), h.clone()]);
            }
            routes.push(Route {
                family: if v4 { Family::Ipv4 } else { Family::Ipv6 },
                nlri: vec![target.to_string()],
                attrs,
                incident_id: i.id.clone(),
            });
        }
        if s.flowspec {
            // A resolved incident's rules ended with it; through its hold-down
            // the upstream keeps what they were (a pulse comes back to them).
            let held = i.resolved_at_ms.is_some();
            for rule in state.rules.iter().filter(|r| {
                r.incident_id == i.id
                    && (r.state.in_force()
                        || held && matches!(r.state, RuleState::Removed | RuleState::Expired))
            }) {
                let RuleMatch::Signature {
                    destination,
                    rate_limit_pps,
                    check,
                    ..
                } = &rule.matches
                else {
                    continue;
                };
                // Only what lies inside the target (a signature is never wider).
                if !destination
                    .parse::<Prefix>()
                    .is_ok_and(|d| covered(&[target], &d))
                {
                    continue;
                }
                let action = match (
                    s.flowspec_rate_bytes,
                    rate_limit_pps.is_some() || check.is_some(),
                ) {
                    (Some(bytes), _) => vec!["then".into(), "rate-limit".into(), bytes.to_string()],
                    (None, false) => vec!["then".into(), "discard".into()],
                    (None, true) => {
                        w.refused.push(format!(
                            "rule {}: levee rate-limits or checks it; a FlowSpec discard would drop its clients too (set flowspec_rate_bytes to send a rate limit)",
                            rule.id
                        ));
                        continue;
                    }
                };
                match flowspec_match(rule) {
                    Ok((family, nlri)) => routes.push(Route {
                        family,
                        nlri,
                        attrs: action,
                        incident_id: i.id.clone(),
                    }),
                    Err(why) => w.refused.push(why),
                }
            }
        }
    }
    // One route per NLRI (two incidents on one target share it).
    let mut seen = std::collections::HashSet::new();
    routes.retain(|r| seen.insert(r.key()));
    if s.when == When::Approval {
        let (go, wait): (Vec<Route>, Vec<Route>) = routes
            .into_iter()
            .partition(|r| state.approved.contains(&r.incident_id));
        routes = go;
        w.staged = wait;
    }
    if routes.len() > s.max_announcements {
        for r in routes.drain(s.max_announcements..) {
            w.refused.push(format!(
                "{} of {}: the cap of {} announcements is reached",
                r.key(),
                r.incident_id,
                s.max_announcements
            ));
        }
    }
    w.routes = routes;
    w
}

/// One change made to the speaker, for the delivery log.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub event: &'static str,
    pub route: String,
    pub incident_id: Option<String>,
    pub result: Result<String, String>,
}

/// The speaker: gobgpd through its CLI.
#[derive(Debug)]
pub struct Bgp {
    settings: BgpSettings,
    /// Routes levee announced, by key (FlowSpec routes are withdrawn by the
    /// NLRI levee gave; gobgp lists them in a form of its own).
    announced: tokio::sync::Mutex<BTreeMap<String, Route>>,
    /// Routes in the speaker's RIB after the last reconciliation (for /metrics).
    pub routes: std::sync::atomic::AtomicU64,
}

impl Bgp {
    pub fn new(settings: BgpSettings) -> Bgp {
        Bgp {
            settings,
            announced: tokio::sync::Mutex::new(BTreeMap::new()),
            routes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    async fn gobgp(&self, args: &[&str]) -> Result<String, String> {
        let (host, port) = self
            .settings
            .api
            .rsplit_once(':')
            .unwrap_or(("127.0.0.1", "50051"));
        let child = tokio::process::Command::new(&self.settings.gobgp)
            .args(["-u", host, "-p", port])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.settings.gobgp))?;
        let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .map_err(|_| "gobgp took over 10 s".to_owned())?
            .map_err(|e| format!("gobgp: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "gobgp {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim(),
                text
            ))
        }
    }

    /// The keys of a family's RIB as gobgp lists them (prefixes for unicast).
    async fn rib(&self, family: Family) -> Result<Vec<String>, String> {
        let text = self
            .gobgp(&["global", "rib", "-a", family.name(), "-j"])
            .await?;
        if text.is_empty() || text == "null" {
            return Ok(Vec::new());
        }
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "gobgp's {} RIB is not the JSON expected: {e}",
                family.name()
            )
        })?;
        Ok(v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default())
    }

    async fn add(&self, r: &Route) -> Result<String, String> {
        let mut args = vec!["global", "rib", "-a", r.family.name(), "add"];
        args.extend(r.nlri.iter().map(String::as_str));
        args.extend(r.attrs.iter().map(String::as_str));
        self.gobgp(&args)
            .await
            .map(|_| format!("announced {}", r.key()))
    }

    async fn del(&self, family: Family, nlri: &[String]) -> Result<String, String> {
        let mut args = vec!["global", "rib", "-a", family.name(), "del"];
        args.extend(nlri.iter().map(String::as_str));
        self.gobgp(&args).await.map(|_| "withdrawn".into())
    }

    /// Make the speaker's RIB what `want` says. The changes made are
    /// returned even when a later step failed (they happened: the log must
    /// say so), with the failure.
    pub async fn reconcile(&self, want: &Wanted) -> (Vec<Change>, Result<(), String>) {
        let mut changes = Vec::new();
        let result = self.reconcile_into(want, &mut changes).await;
        (changes, result)
    }

    async fn reconcile_into(&self, want: &Wanted, changes: &mut Vec<Change>) -> Result<(), String> {
        let mut announced = self.announced.lock().await;
        let desired: BTreeMap<String, &Route> = want.routes.iter().map(|r| (r.key(), r)).collect();
        let mut total = 0u64;
        for family in Family::ALL {
            let present = self.rib(family).await?;
            let ours: Vec<String> = announced
                .iter()
                .filter(|(_, r)| r.family == family)
                .map(|(k, _)| k.clone())
                .collect();
            if family.flowspec() {
                // gobgp lists FlowSpec NLRI in a form of its own: compare counts,
                // and start over when the RIB is not what levee made it.
                if present.len() != ours.len() {
                    if !present.is_empty() {
                        let result = self
                            .gobgp(&["global", "rib", "-a", family.name(), "del", "all"])
                            .await
                            .map(|_| {
                                format!("{} routes levee did not know withdrawn", present.len())
                            });
                        changes.push(Change {
                            event: "bgp.withdraw",
                            route: format!("{} all", family.name()),
                            incident_id: None,
                            result,
                        });
                    }
                    announced.retain(|_, r| r.family != family);
                }
            } else {
                for prefix in &present {
                    let key = format!("{} {prefix}", family.name());
                    if !desired.contains_key(&key) {
                        let result = self.del(family, std::slice::from_ref(prefix)).await;
                        let incident_id = announced.remove(&key).map(|r| r.incident_id);
                        changes.push(Change {
                            event: "bgp.withdraw",
                            route: key,
                            incident_id,
                            result,
                        });
                    }
                }
                // Routes levee made that the speaker lost (it restarted).
                announced.retain(|k, r| {
                    r.family != family
                        || present
                            .iter()
                            .any(|p| *k == format!("{} {p}", family.name()))
                });
            }
            // Withdraw what levee announced and no longer wants.
            let stale: Vec<String> = announced
                .iter()
                .filter(|(k, r)| r.family == family && !desired.contains_key(*k))
                .map(|(k, _)| k.clone())
                .collect();
            for key in stale {
                if let Some(r) = announced.remove(&key) {
                    let result = self.del(family, &r.nlri).await;
                    changes.push(Change {
                        event: "bgp.withdraw",
                        route: key,
                        incident_id: Some(r.incident_id),
                        result,
                    });
                }
            }
            // Announce what is wanted and not there (or there with other attributes).
            for (key, r) in desired.iter().filter(|(_, r)| r.family == family) {
                if announced.get(key).is_some_and(|a| a.attrs == r.attrs) {
                    continue;
                }
                let result = self.add(r).await;
                if result.is_ok() {
                    announced.insert(key.clone(), (*r).clone());
                }
                changes.push(Change {
                    event: "bgp.announce",
                    route: key.clone(),
                    incident_id: Some(r.incident_id.clone()),
                    result,
                });
            }
            total += announced.values().filter(|r| r.family == family).count() as u64;
        }
        self.routes
            .store(total, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Each change made to the speaker as a row of the delivery log.
pub fn log_changes(outbox: &Outbox, integration_id: &str, changes: Vec<Change>) {
    for c in changes {
        let (state, note) = match &c.result {
            Ok(note) => ("delivered", note.clone()),
            Err(e) => ("failed", e.clone()),
        };
        outbox.log(
            integration_id,
            c.event,
            c.incident_id.as_deref(),
            Some(&c.route),
            state,
            &note,
        );
    }
}

/// How often levee's state is looked at: a change is announced at once.
const RECONCILE_EVERY: Duration = Duration::from_millis(100);
/// Without a change, the speaker's RIB is still checked every this many looks
/// (a restarted gobgpd, a route someone else added).
const FULL_CHECK_EVERY: u32 = 10;

/// Reconcile one integration's speaker with levee, for as long as it is
/// enabled; each change goes to the delivery log.
pub async fn follow(outbox: Arc<Outbox>, integration_id: String, sink: Arc<Bgp>) {
    let mut last_error: Option<String> = None;
    let mut last_refused: Vec<String> = Vec::new();
    let mut staged_logged = std::collections::HashSet::new();
    let mut last_routes: Option<Vec<Route>> = None;
    let mut looks = 0u32;
    loop {
        looks = looks.wrapping_add(1);
        let Some(enforcer) = outbox.enforcer() else {
            tokio::time::sleep(RECONCILE_EVERY).await;
            continue;
        };
        let now_ms = crate::clock::wall_ms();
        match enforcer.upstream() {
            Ok(mut state) => {
                if sink.settings.when == When::Approval {
                    state.approved = outbox.approved_announcements(&integration_id);
                }
                let want = wanted(&sink.settings, &state, now_ms);
                for r in &want.staged {
                    if staged_logged.insert(r.key()) {
                        outbox.log(
                            &integration_id,
                            "bgp.staged",
                            Some(&r.incident_id),
                            Some(&r.key()),
                            "skipped",
                            &format!(
                                "staged: announced once approved (levee integrations approve {integration_id} {})",
                                r.incident_id
                            ),
                        );
                    }
                }
                if want.refused != last_refused {
                    for why in want.refused.iter().filter(|w| !last_refused.contains(w)) {
                        outbox.log(
                            &integration_id,
                            "bgp.refused",
                            None,
                            Some(why),
                            "skipped",
                            why,
                        );
                    }
                    last_refused = want.refused.clone();
                }
                let unchanged = last_routes.as_ref() == Some(&want.routes);
                // A speaker that failed is tried again at the next full check.
                if unchanged && !looks.is_multiple_of(FULL_CHECK_EVERY) {
                    tokio::time::sleep(RECONCILE_EVERY).await;
                    continue;
                }
                last_routes = Some(want.routes.clone());
                let (changes, result) = sink.reconcile(&want).await;
                log_changes(&outbox, &integration_id, changes);
                match result {
                    Ok(()) => last_error = None,
                    Err(e) => {
                        // The speaker is down or unreachable: say so once, try on.
                        if last_error.as_deref() != Some(e.as_str()) {
                            tracing::warn!("bgp: {e}");
                            outbox.log(&integration_id, "bgp.reconcile", None, None, "failed", &e);
                            last_error = Some(e);
                        }
                    }
                }
            }
            Err(e) => tracing::debug!("bgp: levee's state not readable: {e}"),
        }
        tokio::time::sleep(RECONCILE_EVERY).await;
    }
}

impl Sink for Bgp {
    /// Announcements follow levee's state (looked at every 100 ms), not
    /// single events: nothing to queue.
    fn plan(&self, _e: &IncidentEvent) -> Vec<Plan> {
        Vec::new()
    }

    fn sample(&self, _node_id: &str) -> Vec<Plan> {
        vec![Plan::send("test", None, serde_json::Value::Null)]
    }

    fn deliver<'a>(
        &'a self,
        _job: &'a Job,
        _cx: &'a DeliveryContext<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match self.gobgp(&["neighbor", "-j"]).await {
                Ok(text) => {
                    let peers: Vec<serde_json::Value> =
                        serde_json::from_str(&text).unwrap_or_default();
                    let up = peers
                        .iter()
                        .filter(|p| {
                            p.pointer("/state/session_state").and_then(|s| s.as_u64()) == Some(6)
                                || p.pointer("/state/session_state").and_then(|s| s.as_str())
                                    == Some("established")
                        })
                        .count();
                    Outcome::Delivered {
                        status: None,
                        note: format!(
                            "gobgpd answers: {} neighbours, {up} established",
                            peers.len()
                        ),
                    }
                }
                Err(error) => Outcome::Failed {
                    status: None,
                    error,
                },
            }
        })
    }
}

#[cfg(test)]
mod tests;
