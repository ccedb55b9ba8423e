//! The parts of the dataplane both `levee run` and `levee replay` build from a
//! configuration: per-worker rule tables restored from the configured rules, the
//! publisher that changes them later, the pipelines and the report channels.

use std::sync::Arc;

use levee_dataplane::pipeline::{report_channels, Pipeline, ReportSink};
use levee_dataplane::tables::{Prefix, RuleTables, SourceLimit, TablePublisher};

use crate::config::{read_prefix_file, signature_rule, Config};
use crate::mitigate::STATIC_BLOCKLIST_RULE;
use crate::Failure;
use levee_dataplane::wire::TrafficClass;

/// Reports each worker can have in flight besides the one it fills.
const SPARE_REPORTS: usize = 4;

#[derive(Debug)]
pub struct Dataplane {
    pub publisher: TablePublisher,
    pub pipelines: Vec<Pipeline>,
    pub sink: ReportSink,
}

/// Build `workers` pipelines with the configured rules already applied, so the
/// first packet is judged by them.
/// `restore` runs last, with the publisher, so rules recorded before a restart
/// are in the tables before the first packet.
pub fn build(
    config: &Config,
    workers: usize,
    now_ns: u64,
    restore: &mut dyn FnMut(&mut TablePublisher),
) -> Result<Dataplane, Failure> {
    let capacities = config.table_capacities();
    let (mut publisher, mailboxes) = TablePublisher::new(workers, capacities, 4096);
    let rules = &config.rules;
    let usage = |key: &str, e: String| Failure::Usage(anyhow::anyhow!("{key}: {e}"));
    for (i, s) in rules.allowlist.iter().enumerate() {
        let p: Prefix = s
            .parse()
            .map_err(|e: levee_dataplane::tables::TableError| {
                usage(&format!("rules.allowlist[{i}]"), e.to_string())
            })?;
        publisher
            .allow(p)
            .map_err(|e| usage(&format!("rules.allowlist[{i}]"), e.to_string()))?;
    }
    let mut blocked: Vec<(String, Prefix)> = Vec::new();
    for (i, s) in rules.blocklist.iter().enumerate() {
        let p: Prefix = s
            .parse()
            .map_err(|e: levee_dataplane::tables::TableError| {
                usage(&format!("rules.blocklist[{i}]"), e.to_string())
            })?;
        blocked.push((format!("rules.blocklist[{i}]"), p));
    }
    if let Some(path) = &rules.blocklist_file {
        let list = read_prefix_file(path).map_err(|e| usage("rules.blocklist_file", e))?;
        blocked.extend(
            list.into_iter()
                .map(|p| ("rules.blocklist_file".to_owned(), p)),
        );
    }

    let mut tables: Vec<RuleTables> = (0..workers)
        .map(|_| RuleTables::new(capacities, workers as u32))
        .collect();
    let mut mailboxes = mailboxes;
    // Drain as we go: a million-entry blocklist must not wait in memory twice.
    let mut drain = |publisher: &mut TablePublisher, tables: &mut Vec<RuleTables>| {
        while publisher.flush() > 0
            || mailboxes
                .iter_mut()
                .zip(tables.iter_mut())
                .map(|(m, t)| m.drain(t, now_ns, usize::MAX))
                .sum::<usize>()
                > 0
        {}
    };
    for (n, (key, p)) in blocked.into_iter().enumerate() {
        publisher
            .block(p, STATIC_BLOCKLIST_RULE, u64::MAX)
            .map_err(|e| usage(&key, e.to_string()))?;
        if n % 1024 == 1023 {
            drain(&mut publisher, &mut tables);
        }
    }
    let signatures = rules
        .signatures
        .iter()
        .enumerate()
        .map(|(i, s)| {
            signature_rule(s)
                .map_err(|(field, e)| usage(&format!("rules.signature[{i}].{field}"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    publisher
        .set_signatures(signatures)
        .map_err(|e| usage("rules.signature", e.to_string()))?;
    if let Some(limit) = &rules.source_limit {
        let class = TrafficClass::from_name(&limit.class).ok_or_else(|| {
            usage(
                "rules.source_limit.class",
                format!("unknown class {:?}", limit.class),
            )
        })?;
        publisher.set_source_limit(Some(SourceLimit {
            class,
            pps: limit.pps,
            burst: limit.burst.unwrap_or(limit.pps),
            rule_id: u32::MAX,
        }));
    }
    restore(&mut publisher);
    drain(&mut publisher, &mut tables);

    let pipeline_config = config.pipeline_config();
    let (links, sink) = report_channels(
        workers,
        config.pipeline.report_channel_depth,
        SPARE_REPORTS,
        pipeline_config.capacities,
    );
    let protected = Arc::new(config.protected_networks());
    let pipelines = tables
        .into_iter()
        .zip(mailboxes)
        .zip(links)
        .enumerate()
        .map(|(w, ((t, m), l))| {
            Pipeline::new(
                w as u16,
                t,
                Some(m),
                Arc::clone(&protected),
                pipeline_config.clone(),
                Some(l),
            )
        })
        .collect();
    Ok(Dataplane {
        publisher,
        pipelines,
        sink,
    })
}
