//! Scheduled jobs of feature plugins (`run-job`). Each job of a manifest runs every
//! `every-seconds` for each tenant that enabled the plugin. The schedule lives in
//! `plugin_job_runs`, one row per tenant, plugin and job: an engine process claims a due row by
//! moving its `next_run_at` forward in one conditional update, so with several processes each
//! run happens once. Run by the engine's job loop; tests call [`run_once`].

use chrono::{Duration, Utc};
use serde_json::Value;

use crate::app::AppState;
use crate::http::error::ApiResult;
use crate::util::fmt_time;

/// Most job runs one round starts.
const BATCH: i64 = 50;

/// The tenants that enabled `plugin`.
async fn enabled_tenants(st: &AppState, plugin: &str) -> ApiResult<Vec<String>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, feature_flags FROM tenants WHERE feature_flags LIKE $1")
            .bind(format!("%{}%", super::flag_name(plugin)))
            .fetch_all(st.db.pool())
            .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, flags)| {
            let v: Value = serde_json::from_str(flags).unwrap_or(Value::Null);
            super::http::enabled(&v, plugin)
        })
        .map(|(id, _)| id)
        .collect())
}

/// Makes sure every (enabled tenant, plugin, job) has a schedule row, then runs the due ones.
/// Returns the runs made.
pub async fn run_once(st: &AppState) -> ApiResult<usize> {
    let now = Utc::now();
    let mut runs = 0;
    for p in st.plugins.installed() {
        if p.manifest.jobs.is_empty() {
            continue;
        }
        let tenants = enabled_tenants(st, &p.manifest.name).await?;
        for job in &p.manifest.jobs {
            for tenant in &tenants {
                sqlx::query(
                    "INSERT INTO plugin_job_runs (tenant_id, plugin, job, next_run_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant_id, plugin, job) DO NOTHING",
                )
                .bind(tenant)
                .bind(&p.manifest.name)
                .bind(&job.name)
                .bind(fmt_time(now))
                .execute(st.db.pool())
                .await?;
            }
            let due: Vec<(String, String)> = sqlx::query_as(
                "SELECT tenant_id, next_run_at FROM plugin_job_runs
                 WHERE plugin = $1 AND job = $2 AND next_run_at <= $3 ORDER BY next_run_at LIMIT $4",
            )
            .bind(&p.manifest.name)
            .bind(&job.name)
            .bind(fmt_time(now))
            .bind(BATCH)
            .fetch_all(st.db.pool())
            .await?;
            for (tenant, next) in due {
                if !tenants.contains(&tenant) {
                    continue;
                }
                let following = now + Duration::seconds(i64::from(job.every_seconds.max(1)));
                // The claim: only the process whose update sees the old `next_run_at` runs it.
                let claimed = sqlx::query(
                    "UPDATE plugin_job_runs SET next_run_at = $5, last_started_at = $6
                     WHERE tenant_id = $1 AND plugin = $2 AND job = $3 AND next_run_at = $4",
                )
                .bind(&tenant)
                .bind(&p.manifest.name)
                .bind(&job.name)
                .bind(&next)
                .bind(fmt_time(following))
                .bind(fmt_time(now))
                .execute(st.db.pool())
                .await?
                .rows_affected()
                    == 1;
                if !claimed {
                    continue;
                }
                let error = match st.plugins.run_job(p, &tenant, &job.name).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.chars().take(1000).collect::<String>()),
                    Err(f) => Some(format!(
                        "plugin {} {} (run-job) {f}",
                        p.manifest.name, p.manifest.version
                    )),
                };
                if let Some(e) = &error {
                    tracing::warn!(plugin = %p.manifest.name, job = %job.name, tenant = %tenant, error = %e, "plugin job failed");
                }
                sqlx::query(
                    "UPDATE plugin_job_runs SET last_finished_at = $4, last_error = $5, runs = runs + 1
                     WHERE tenant_id = $1 AND plugin = $2 AND job = $3",
                )
                .bind(&tenant)
                .bind(&p.manifest.name)
                .bind(&job.name)
                .bind(fmt_time(Utc::now()))
                .bind(&error)
                .execute(st.db.pool())
                .await?;
                runs += 1;
            }
        }
    }
    Ok(runs)
}
