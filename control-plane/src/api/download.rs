//! A stored blob as an `application/octet-stream` response, streamed from the object
//! store: what the MLflow artifact API and the dashboard's artifact download both answer.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::blob::ObjectStore;

/// The blob `sha256` as a `200` with its length; an error if the store fails or has no
/// such blob (a file whose bytes are gone is the platform's fault, never the caller's).
pub(crate) async fn blob_response(
    blobs: &dyn ObjectStore,
    sha256: &str,
) -> anyhow::Result<Response> {
    let (size, chunks) = blobs
        .open(sha256)
        .await?
        .ok_or_else(|| anyhow::anyhow!("blob {sha256} is missing"))?;
    let body = Body::from_stream(chunks.map(|chunk| chunk.map_err(std::io::Error::other)));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        body,
    )
        .into_response())
}
