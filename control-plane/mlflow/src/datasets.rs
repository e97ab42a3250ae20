//! The data sets logged on a run (`mlflow.log_input`, the `log-inputs` call) and where their
//! rows are among the organisation's artifacts.
//!
//! MLflow keeps a data set's name, digest, source, schema and profile, never its rows: the
//! source says where the rows were (`{"url": "https://…/train.csv"}`, `{"uri":
//! "s3://…/train.csv"}`, a local path, or only the code that built it). wisp fetches
//! nothing from outside, so the rows are found among the artifacts it holds:
//!
//! 1. a source that is one of this server's artifact URLs (the `mlflow-artifacts` download
//!    path, or an `mlflow-artifacts:` URI) names the artifact itself;
//! 2. otherwise the run's artifacts are searched for a file of the source's file name (the
//!    usual `mlflow.log_artifact("train.csv")` next to `mlflow.log_input(dataset)`).
//!
//! The data set's profile (`num_rows`) lets the caller check the file is the data set.

use serde_json::Value;

use crate::artifacts::{self, StoredFile};
use crate::db::Reader;
use crate::tracking::Run;
use crate::{MlflowError, MlflowResult};

/// The tag of a data set input that says what it was used for (`training`, `eval`).
const CONTEXT_TAG: &str = "mlflow.data.context";
/// The path of the artifact download endpoint, in a source URL.
const DOWNLOAD_PATH: &str = "/api/2.0/mlflow-artifacts/artifacts/";

/// A data set logged on a run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedDataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    /// The source's `url`, `uri` or `path`, if it has one.
    pub location: Option<String>,
    /// `mlflow.data.context`, if tagged.
    pub context: Option<String>,
    /// The profile's `num_rows`, if it has one.
    pub rows: Option<u64>,
}

/// Where a logged data set's rows are.
#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    /// In this artifact.
    Found(StoredFile),
    /// Not in wisp: why, for the caller.
    NotStored(String),
    /// Several of the run's artifacts have the source's file name.
    Ambiguous(Vec<String>),
}

impl LoggedDataset {
    fn from_input(input: &Value) -> Option<Self> {
        let dataset = input.get("dataset")?;
        let text = |key: &str| dataset.get(key).and_then(Value::as_str).map(str::to_owned);
        // `source` and `profile` are JSON documents inside strings.
        let embedded = |key: &str| -> Option<Value> {
            match dataset.get(key)? {
                Value::String(json) => serde_json::from_str(json).ok(),
                other => Some(other.clone()),
            }
        };
        let source = embedded("source");
        let location = ["url", "uri", "path"].iter().find_map(|key| {
            source
                .as_ref()?
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let context = input
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|tag| tag.get("key").and_then(Value::as_str) == Some(CONTEXT_TAG))
            .and_then(|tag| tag.get("value").and_then(Value::as_str))
            .map(str::to_owned);
        Some(Self {
            name: text("name")?,
            digest: text("digest").unwrap_or_default(),
            source_type: text("source_type").unwrap_or_default(),
            location,
            context,
            rows: embedded("profile").and_then(|p| p.get("num_rows")?.as_u64()),
        })
    }
}

/// The data sets logged on `run`, in the order they were logged.
pub fn logged(run: &Run) -> Vec<LoggedDataset> {
    run.inputs
        .dataset_inputs
        .iter()
        .filter_map(LoggedDataset::from_input)
        .collect()
}

/// The data set `name` of `run` (with `context` and `digest` when given); the last one
/// logged when several match.
pub fn find(
    run: &Run,
    name: &str,
    context: Option<&str>,
    digest: Option<&str>,
) -> MlflowResult<LoggedDataset> {
    logged(run)
        .into_iter()
        .rev()
        .find(|d| {
            d.name == name
                && context.is_none_or(|c| d.context.as_deref() == Some(c))
                && digest.is_none_or(|g| d.digest == g)
        })
        .ok_or_else(|| {
            MlflowError::not_found(format!(
                "Run '{}' has no logged dataset named {name:?}{}",
                run.info.run_id,
                context
                    .map(|c| format!(" in context {c:?}"))
                    .unwrap_or_default()
            ))
        })
}

/// Where the rows of `dataset`, logged on `run`, are among the organisation's artifacts.
pub async fn rows(
    conn: &Reader,
    org_id: &str,
    run: &Run,
    dataset: &LoggedDataset,
) -> MlflowResult<Rows> {
    let Some(location) = dataset.location.as_deref() else {
        return Ok(Rows::NotStored(format!(
            "the dataset {:?} was logged without a file location (source type {:?}); log the file with mlflow.log_artifact on the same run, or send its path as artifact_path",
            dataset.name, dataset.source_type
        )));
    };
    if let Some(path) = artifact_path_of(location) {
        return Ok(match artifacts::get(conn, org_id, &path).await? {
            Some(file) => Rows::Found(file),
            None => Rows::NotStored(format!("the artifact {location:?} does not exist")),
        });
    }
    let file_name = file_name(location);
    let root = artifacts::path_of_uri(&run.info.artifact_uri).unwrap_or_default();
    let mut candidates: Vec<StoredFile> = if file_name.is_empty() || root.is_empty() {
        Vec::new()
    } else {
        artifacts::files_under(conn, org_id, &root)
            .await?
            .into_iter()
            .filter(|f| f.path.rsplit('/').next() == Some(file_name))
            .collect()
    };
    Ok(match candidates.len() {
        0 => Rows::NotStored(format!(
            "the dataset {:?} came from {location:?}, which wisp does not hold, and the run has no artifact named {file_name:?}; log the file with mlflow.log_artifact on the same run",
            dataset.name
        )),
        1 => Rows::Found(candidates.remove(0)),
        _ => Rows::Ambiguous(
            candidates
                .into_iter()
                .map(|f| relative(&root, &f.path))
                .collect(),
        ),
    })
}

/// The artifact a location names, if it is one of this server's artifact URLs.
fn artifact_path_of(location: &str) -> Option<String> {
    if location.starts_with(artifacts::SCHEME) {
        return artifacts::path_of_uri(location);
    }
    let url = url::Url::parse(location).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let (_, encoded) = url.path().split_once(DOWNLOAD_PATH)?;
    let decoded = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?;
    artifacts::normalize(&decoded)
        .ok()
        .filter(|p| !p.is_empty())
}

/// The last segment of a path or URL, without a query or fragment.
fn file_name(location: &str) -> &str {
    let path = location.split(['?', '#']).next().unwrap_or_default();
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

fn relative(root: &str, path: &str) -> String {
    path.strip_prefix(root)
        .map(|p| p.trim_start_matches('/'))
        .unwrap_or(path)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(name: &str, source: Value, context: Option<&str>) -> Value {
        json!({
            "tags": context.map(|c| vec![json!({"key": CONTEXT_TAG, "value": c})]).unwrap_or_default(),
            "dataset": {
                "name": name,
                "digest": "d1",
                "source_type": "http",
                "source": source.to_string(),
                "schema": "{}",
                "profile": "{\"num_rows\": 150, \"num_elements\": 750}",
            }
        })
    }

    #[test]
    fn a_logged_input_reads_as_mlflow_writes_it() {
        let parsed = LoggedDataset::from_input(&input(
            "iris",
            json!({"url": "https://example.com/iris.csv"}),
            Some("training"),
        ))
        .unwrap();
        assert_eq!(parsed.name, "iris");
        assert_eq!(
            parsed.location.as_deref(),
            Some("https://example.com/iris.csv")
        );
        assert_eq!(parsed.context.as_deref(), Some("training"));
        assert_eq!(parsed.rows, Some(150));
        assert!(LoggedDataset::from_input(&json!({"tags": []})).is_none());
    }

    #[test]
    fn this_servers_artifact_urls_name_the_artifact() {
        assert_eq!(
            artifact_path_of(
                "http://127.0.0.1:8080/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/data/my%20train.csv"
            )
            .as_deref(),
            Some("1/abc/artifacts/data/my train.csv")
        );
        assert_eq!(
            artifact_path_of("mlflow-artifacts:/1/abc/artifacts/train.csv").as_deref(),
            Some("1/abc/artifacts/train.csv")
        );
        assert_eq!(artifact_path_of("https://example.com/train.csv"), None);
        assert_eq!(
            artifact_path_of("http://h/api/2.0/mlflow-artifacts/artifacts/../x"),
            None
        );
        assert_eq!(artifact_path_of("s3://bucket/train.csv"), None);
        assert_eq!(file_name("s3://bucket/data/train.csv?v=1"), "train.csv");
        assert_eq!(file_name("/home/me/train.csv"), "train.csv");
    }
}
