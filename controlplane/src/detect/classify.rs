//! Attack types (the stable display names of DESIGN.md) from traffic classes.

use levee_dataplane::wire::{Reflector, TrafficClass};
use serde::{Deserialize, Serialize};

/// An attack vector; `Multi-vector` is several at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AttackType {
    #[serde(rename = "UDP Flood")]
    UdpFlood,
    #[serde(rename = "SYN Flood")]
    SynFlood,
    #[serde(rename = "SYN-ACK Flood")]
    SynAckFlood,
    #[serde(rename = "ACK Flood")]
    AckFlood,
    #[serde(rename = "RST Flood")]
    RstFlood,
    #[serde(rename = "ICMP Flood")]
    IcmpFlood,
    #[serde(rename = "IP Fragment Flood")]
    FragmentFlood,
    #[serde(rename = "GRE Flood")]
    GreFlood,
    #[serde(rename = "DNS Amplification")]
    DnsAmplification,
    #[serde(rename = "NTP Amplification")]
    NtpAmplification,
    #[serde(rename = "Memcached Amplification")]
    MemcachedAmplification,
    #[serde(rename = "SSDP Amplification")]
    SsdpAmplification,
    #[serde(rename = "CLDAP Amplification")]
    CldapAmplification,
    #[serde(rename = "Chargen Amplification")]
    ChargenAmplification,
    #[serde(rename = "SNMP Amplification")]
    SnmpAmplification,
    #[serde(rename = "WS-Discovery Amplification")]
    WsDiscoveryAmplification,
    #[serde(rename = "UDP Amplification")]
    UdpAmplification,
    #[serde(rename = "Multi-vector")]
    MultiVector,
}

impl AttackType {
    /// The attack type a display name names.
    pub fn from_name(name: &str) -> Option<AttackType> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
    }

    /// The display name.
    pub fn name(self) -> &'static str {
        match self {
            AttackType::UdpFlood => "UDP Flood",
            AttackType::SynFlood => "SYN Flood",
            AttackType::SynAckFlood => "SYN-ACK Flood",
            AttackType::AckFlood => "ACK Flood",
            AttackType::RstFlood => "RST Flood",
            AttackType::IcmpFlood => "ICMP Flood",
            AttackType::FragmentFlood => "IP Fragment Flood",
            AttackType::GreFlood => "GRE Flood",
            AttackType::DnsAmplification => "DNS Amplification",
            AttackType::NtpAmplification => "NTP Amplification",
            AttackType::MemcachedAmplification => "Memcached Amplification",
            AttackType::SsdpAmplification => "SSDP Amplification",
            AttackType::CldapAmplification => "CLDAP Amplification",
            AttackType::ChargenAmplification => "Chargen Amplification",
            AttackType::SnmpAmplification => "SNMP Amplification",
            AttackType::WsDiscoveryAmplification => "WS-Discovery Amplification",
            AttackType::UdpAmplification => "UDP Amplification",
            AttackType::MultiVector => "Multi-vector",
        }
    }

    /// The vector a traffic class belongs to (`None`: not an attack vector).
    pub fn of_class(class: TrafficClass) -> Option<AttackType> {
        Some(match class {
            TrafficClass::TcpSyn => AttackType::SynFlood,
            TrafficClass::TcpSynAck => AttackType::SynAckFlood,
            // FIN/PSH/URG/null/Xmas floods are flag floods without a handshake: the
            // ACK-flood family.
            TrafficClass::TcpAck | TrafficClass::TcpOther => AttackType::AckFlood,
            TrafficClass::TcpRst => AttackType::RstFlood,
            TrafficClass::Udp => AttackType::UdpFlood,
            TrafficClass::Reflected(r) => match r {
                Reflector::Dns => AttackType::DnsAmplification,
                Reflector::Ntp => AttackType::NtpAmplification,
                Reflector::Memcached => AttackType::MemcachedAmplification,
                Reflector::Ssdp => AttackType::SsdpAmplification,
                Reflector::Cldap => AttackType::CldapAmplification,
                Reflector::Chargen => AttackType::ChargenAmplification,
                Reflector::Snmp => AttackType::SnmpAmplification,
                Reflector::WsDiscovery => AttackType::WsDiscoveryAmplification,
                _ => AttackType::UdpAmplification,
            },
            TrafficClass::Icmp => AttackType::IcmpFlood,
            TrafficClass::Fragment => AttackType::FragmentFlood,
            TrafficClass::Gre => AttackType::GreFlood,
            TrafficClass::OtherIp | TrafficClass::NonIp | TrafficClass::Malformed => return None,
        })
    }

    /// Reflection attacks: the sources are real reflectors answering spoofed
    /// requests, so the sources themselves are not spoofed.
    pub fn is_amplification(self) -> bool {
        matches!(
            self,
            AttackType::DnsAmplification
                | AttackType::NtpAmplification
                | AttackType::MemcachedAmplification
                | AttackType::SsdpAmplification
                | AttackType::CldapAmplification
                | AttackType::ChargenAmplification
                | AttackType::SnmpAmplification
                | AttackType::WsDiscoveryAmplification
                | AttackType::UdpAmplification
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_maps_and_names_are_the_contract() {
        for class in TrafficClass::all() {
            let t = AttackType::of_class(class);
            if let Some(t) = t {
                assert_eq!(
                    serde_json::to_value(t).expect("json"),
                    serde_json::json!(t.name())
                );
            }
        }
        assert_eq!(
            AttackType::of_class(TrafficClass::Reflected(Reflector::Memcached)),
            Some(AttackType::MemcachedAmplification)
        );
        assert_eq!(
            AttackType::of_class(TrafficClass::Reflected(Reflector::Ard)),
            Some(AttackType::UdpAmplification)
        );
        assert_eq!(AttackType::of_class(TrafficClass::Malformed), None);
    }
}
