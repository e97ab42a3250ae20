//! wisp's storage layer, the bottom of the control plane: nothing here knows an
//! organisation, a model or a request.
//!
//! - [`db`]: libSQL in every mode (embedded file, `:memory:`, remote, embedded replica),
//!   versioned migrations, the [`db::Reader`]/[`db::Writer`] handles that keep reads from
//!   writing, the one transaction, and the memos of hot rows.
//! - [`blob`]: the content-addressed object store (local filesystem, S3), staging of
//!   uploads, commit intents, and which blobs are still referenced.

pub mod blob;
pub mod db;
