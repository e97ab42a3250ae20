//! Artifact files by path: an organisation's `mlflow-artifacts:/` namespace mapped onto
//! content-addressed object-store blobs.
//!
//! A path is a row `(org, path) -> sha256`; the bytes are a blob like a model file, so a
//! wisp version made from an `.onnx` artifact shares it instead of copying it. Directories
//! are implied by the paths under them, as in object stores.

use crate::db::{Reader, Writer};
use libsql::params;
use serde::Serialize;

use super::{MlflowError, MlflowResult};
use crate::db::{self, DbError};

/// The URI scheme of artifacts proxied through the tracking server.
pub const SCHEME: &str = "mlflow-artifacts:";

/// An entry of a listing, relative to the listed directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileInfo {
    pub path: String,
    pub is_dir: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<i64>,
}

/// A stored file.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    pub path: String,
    pub sha256: String,
    pub size: i64,
}

/// Normalises an artifact path: no leading or doubled `/`, no `.` or `..` segment, no
/// backslash or control character. The empty path is the root.
pub fn normalize(path: &str) -> MlflowResult<String> {
    let invalid = || MlflowError::invalid(format!("Invalid artifact path: {path:?}"));
    if path.contains('\\') || path.chars().any(char::is_control) {
        return Err(invalid());
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" => {}
            "." | ".." => return Err(invalid()),
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// The path inside the artifact namespace of an `mlflow-artifacts:` URI
/// (`mlflow-artifacts:/1/abc/artifacts` or `mlflow-artifacts://host/1/abc/artifacts`).
pub fn path_of_uri(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix(SCHEME)?;
    let rest = match rest.strip_prefix("//") {
        // An authority names the server; the path follows it.
        Some(with_host) => with_host.split_once('/').map(|(_, p)| p).unwrap_or(""),
        None => rest,
    };
    normalize(rest).ok()
}

/// The half-open range of paths strictly under `dir` (`dir/` .. `dir0`; `0` follows `/`).
fn under(dir: &str) -> (String, String) {
    if dir.is_empty() {
        (String::new(), "\u{10FFFF}".to_owned())
    } else {
        (format!("{dir}/"), format!("{dir}0"))
    }
}

/// Records `path` as the blob `sha256`; returns the blob it replaced, if any.
pub async fn put(
    conn: &Writer,
    org_id: &str,
    path: &str,
    sha256: &str,
    size: i64,
) -> MlflowResult<Option<String>> {
    let previous = get(conn, org_id, path).await?.map(|f| f.sha256);
    conn.execute(
        "INSERT INTO mlflow_artifacts (org_id, path, sha256, size_bytes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (org_id, path) DO UPDATE SET sha256 = excluded.sha256,
            size_bytes = excluded.size_bytes, created_at = excluded.created_at",
        params![org_id, path, sha256, size, db::now()],
    )
    .await
    .map_err(DbError::from)?;
    Ok(previous.filter(|p| p != sha256))
}

/// The file at `path`, if there is one.
pub async fn get(conn: &Reader, org_id: &str, path: &str) -> MlflowResult<Option<StoredFile>> {
    let rows = conn
        .query(
            "SELECT path, sha256, size_bytes FROM mlflow_artifacts WHERE org_id = ?1 AND path = ?2",
            params![org_id, path],
        )
        .await
        .map_err(DbError::from)?;
    Ok(db::first_row(rows)
        .await?
        .map(|row| -> Result<StoredFile, DbError> {
            Ok(StoredFile {
                path: row.get(0)?,
                sha256: row.get(1)?,
                size: row.get(2)?,
            })
        })
        .transpose()?)
}

/// Every file under `dir`, recursively, by path.
pub async fn files_under(conn: &Reader, org_id: &str, dir: &str) -> MlflowResult<Vec<StoredFile>> {
    let (from, to) = under(dir);
    let rows = conn
        .query(
            "SELECT path, sha256, size_bytes FROM mlflow_artifacts
             WHERE org_id = ?1 AND path >= ?2 AND path < ?3 ORDER BY path",
            params![org_id, from, to],
        )
        .await
        .map_err(DbError::from)?;
    Ok(db::collect(rows, |row| {
        Ok(StoredFile {
            path: row.get(0)?,
            sha256: row.get(1)?,
            size: row.get(2)?,
        })
    })
    .await?)
}

/// The immediate children of `dir` (files with their sizes, and directories), by name.
/// Listing a file gives the file itself, as MLflow's server does.
pub async fn list(conn: &Reader, org_id: &str, dir: &str) -> MlflowResult<Vec<FileInfo>> {
    if !dir.is_empty()
        && let Some(file) = get(conn, org_id, dir).await?
    {
        let name = file.path.rsplit('/').next().unwrap_or_default().to_owned();
        return Ok(vec![FileInfo {
            path: name,
            is_dir: false,
            file_size: Some(file.size),
        }]);
    }
    let prefix = under(dir).0;
    let mut out: Vec<FileInfo> = Vec::new();
    for file in files_under(conn, org_id, dir).await? {
        let relative = &file.path[prefix.len()..];
        match relative.split_once('/') {
            Some((child, _)) => {
                if out.last().is_none_or(|last| last.path != child) {
                    out.push(FileInfo {
                        path: child.to_owned(),
                        is_dir: true,
                        file_size: None,
                    });
                }
            }
            None => out.push(FileInfo {
                path: relative.to_owned(),
                is_dir: false,
                file_size: Some(file.size),
            }),
        }
    }
    Ok(out)
}

/// The artifact root of the run or logged model that `path` lies in (the root itself or a
/// path under it), if any. Deletions are allowed there only: a client deletes within a
/// run's artifacts, never a whole experiment's or organisation's namespace. The owner is
/// found from the ids among the path's segments (`<experiment>/<run_id>/artifacts/…`,
/// `<experiment>/models/<model_id>/artifacts/…`), so a run of an experiment with a custom
/// `mlflow-artifacts:` location is found too.
pub async fn owning_root(conn: &Reader, org_id: &str, path: &str) -> MlflowResult<Option<String>> {
    let is_hex = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let candidates = path
        .split('/')
        .filter(|s| is_hex(s) || s.strip_prefix("m-").is_some_and(is_hex))
        // Every id names a lookup: a path of thousands of id-like segments is not a run's.
        .take(8);
    for id in candidates {
        let rows = conn
            .query(
                "SELECT artifact_uri FROM mlflow_runs WHERE org_id = ?1 AND run_uuid = ?2
                 UNION ALL
                 SELECT artifact_uri FROM mlflow_logged_models WHERE org_id = ?1 AND model_id = ?2",
                params![org_id, id],
            )
            .await
            .map_err(DbError::from)?;
        let uris = db::collect(rows, |row| Ok(row.get::<String>(0)?)).await?;
        for uri in uris {
            let Some(root) = path_of_uri(&uri).filter(|r| !r.is_empty()) else {
                continue;
            };
            if path == root || path.starts_with(&format!("{root}/")) {
                return Ok(Some(root));
            }
        }
    }
    Ok(None)
}

/// Deletes the file at `path`, or everything under it; returns the blobs they used.
pub async fn delete(conn: &Writer, org_id: &str, path: &str) -> MlflowResult<Vec<String>> {
    let mut files = files_under(conn, org_id, path).await?;
    if !path.is_empty()
        && let Some(file) = get(conn, org_id, path).await?
    {
        files.push(file);
    }
    if files.is_empty() {
        return Err(MlflowError::not_found(format!(
            "No artifact at path {path:?}"
        )));
    }
    let (from, to) = under(path);
    conn.execute(
        "DELETE FROM mlflow_artifacts WHERE org_id = ?1 AND (path = ?2 OR (path >= ?3 AND path < ?4))",
        params![org_id, path, from, to],
    )
    .await
    .map_err(DbError::from)?;
    let mut digests: Vec<String> = files.into_iter().map(|f| f.sha256).collect();
    digests.sort();
    digests.dedup();
    Ok(digests)
}

/// The ONNX model among the files under `dir`: `model.onnx` if there is one, else the
/// first `.onnx` file by path.
pub async fn find_onnx(conn: &Reader, org_id: &str, dir: &str) -> MlflowResult<Option<StoredFile>> {
    let onnx: Vec<StoredFile> = files_under(conn, org_id, dir)
        .await?
        .into_iter()
        .filter(|f| f.path.ends_with(".onnx"))
        .collect();
    let preferred = onnx
        .iter()
        .position(|f| f.path.rsplit('/').next() == Some("model.onnx"))
        .unwrap_or(0);
    Ok(onnx.into_iter().nth(preferred))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_and_escapes_refused() {
        assert_eq!(normalize("/1//abc/artifacts/").unwrap(), "1/abc/artifacts");
        assert_eq!(normalize("").unwrap(), "");
        for bad in ["../x", "a/../b", "a/./b", "a\\b", "a\nb"] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uris_with_and_without_a_host() {
        assert_eq!(
            path_of_uri("mlflow-artifacts:/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            path_of_uri("mlflow-artifacts://wisp:8080/1/abc").as_deref(),
            Some("1/abc")
        );
        assert_eq!(path_of_uri("s3://bucket/x"), None);
    }
}
