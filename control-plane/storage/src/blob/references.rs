//! Which blobs are still referenced: by a model version (its file or graph), a batch job's
//! input or a result chunk, an MLflow artifact, or a pending upload's intent. A blob none of
//! them names may be deleted.

use libsql::params;

use crate::db::{self, DbError, Reader};

/// Of `digests`, those nothing refers to any more: no version (of any organisation), no
/// batch job input or result chunk, no MLflow artifact (a version made from an MLflow
/// `.onnx` artifact shares its blob), no request committing it now
/// ([`crate::blob::intents`]).
pub async fn unreferenced(conn: &Reader, digests: &[String]) -> Result<Vec<String>, DbError> {
    let mut out = Vec::new();
    for digest in digests {
        let rows = conn
            .query(
                "SELECT 1 FROM model_versions WHERE sha256 = ?1 OR graph_sha256 = ?1
                 UNION ALL SELECT 1 FROM batch_jobs WHERE input_sha256 = ?1
                 UNION ALL SELECT 1 FROM batch_chunks WHERE sha256 = ?1
                 UNION ALL SELECT 1 FROM mlflow_artifacts WHERE sha256 = ?1
                 UNION ALL SELECT 1 FROM blob_intents WHERE sha256 = ?1
                 LIMIT 1",
                params![digest.as_str()],
            )
            .await?;
        if db::first_row(rows).await?.is_none() {
            out.push(digest.clone());
        }
    }
    Ok(out)
}
