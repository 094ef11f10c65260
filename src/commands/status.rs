//! `deis-backup status [--json]`: each job's last run, as its owner wrote it to etcd.

use super::{human_bytes, load_settings, EXIT_NOT_AVAILABLE};
use crate::config::LoadOptions;
use crate::etcd::EtcdClient;
use crate::jobs::status::{status_key, JobStatus};
use crate::store::JobKind;
use anyhow::Context;
use std::process::ExitCode;

/// Prints the `status/<job>` keys; exit 2 when no etcd is configured (they live there).
pub fn status(options: &LoadOptions, json: bool) -> anyhow::Result<ExitCode> {
    let settings = load_settings(options)?;
    if settings.etcd.endpoints.is_empty() {
        eprintln!(
            "deis-backup: status: the jobs' status keys live in etcd; give --etcd URL (or ETCD)."
        );
        return Ok(ExitCode::from(EXIT_NOT_AVAILABLE));
    }
    let prefix = status_key(&settings.etcd.prefix, "");
    let listing = crate::runtime::block_on(async {
        tokio::time::timeout(settings.timeouts.request.get(), async {
            let client = EtcdClient::connect_with(&settings.etcd, &settings.timeouts).await?;
            client.get_prefix(&prefix).await
        })
        .await
    })
    .map_err(|_| anyhow::anyhow!("etcd did not answer in time"))
    .and_then(|r| r.map_err(anyhow::Error::from))
    .with_context(|| format!("cannot read {prefix}* from etcd"))?;
    let mut statuses = serde_json::Map::new();
    for kind in JobKind::ALL {
        let key = status_key(&settings.etcd.prefix, kind.as_str());
        let value = listing
            .nodes
            .iter()
            .find(|n| n.key == key)
            .map(|n| serde_json::from_slice::<JobStatus>(&n.value));
        let entry = match value {
            None => serde_json::Value::Null,
            Some(Ok(status)) => serde_json::to_value(status).expect("status serializes"),
            Some(Err(e)) => serde_json::json!({ "unreadable": e.to_string() }),
        };
        statuses.insert(kind.to_string(), entry);
    }
    if json {
        println!("{}", serde_json::Value::Object(statuses));
        return Ok(ExitCode::SUCCESS);
    }
    for (job, entry) in &statuses {
        match serde_json::from_value::<JobStatus>(entry.clone()) {
            Ok(s) => println!(
                "{job:<9} {:<8} {} finished {} on {}, {} written{}",
                s.result.as_str(),
                s.run_id,
                s.finished_at.format("%Y-%m-%d %H:%M:%SZ"),
                s.host,
                human_bytes(s.bytes_written),
                s.error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
            Err(_) if entry.is_null() => println!("{job:<9} no run recorded"),
            Err(_) => println!("{job:<9} unreadable status: {entry}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
