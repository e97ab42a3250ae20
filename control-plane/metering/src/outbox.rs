//! The write-ahead outbox: usage events appended to a local file before the response is
//! sent, then drained into libSQL in batches by a background task.
//!
//! The outbox is a directory of numbered segment files of JSON lines. An append writes its
//! line with one `write(2)` under a lock and hands the event to the drainer in file order
//! ([`Handoff`], which wakes nobody for an ordinary event). Once written, the event survives the death of the process
//! (kill -9, panic, OOM): the kernel has it. With `fsync` on, the append also waits until
//! the file is synced (calls in flight share one `fdatasync`, group-commit style), so a
//! machine crash or power loss loses nothing either; without it, the window is the time
//! until the drainer's next database commit (at most a quarter of a second).
//!
//! A segment grows to [`SEGMENT_BYTES`], then a new one starts and the drainer deletes the
//! old one once every event in it is committed. At start, [`Outbox::open`] hands back every
//! segment left behind: the caller inserts their events (idempotently, by event id) before
//! serving, then deletes them. A torn last line (the process died mid-write, before the
//! append returned) is skipped: nobody was told that call succeeded.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::event::UsageEvent;
use super::handoff::Handoff;

/// Size at which a segment is sealed and a new one started.
pub const SEGMENT_BYTES: u64 = 4 << 20;

/// Errors of the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the outbox drainer stopped")]
    Closed,
}

/// What the drainer receives, in the order the outbox was written.
// Nearly everything sent is an event: boxing them to shrink the rare variants would cost an
// allocation per call for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Drained {
    /// An event now in the outbox file.
    Event(UsageEvent),
    /// Every event of this segment came before: delete it once they are committed.
    Sealed(PathBuf),
    /// Answer once everything before is committed.
    Flush(oneshot::Sender<()>),
}

struct Segment {
    file: Arc<File>,
    path: PathBuf,
    number: u64,
    len: u64,
}

struct Writer {
    segment: Segment,
    /// Appends written so far, across segments.
    written: u64,
}

/// The outbox: cheap to share, appends from any task.
pub struct Outbox {
    dir: PathBuf,
    fsync: bool,
    writer: Mutex<Writer>,
    /// How many appends are known to be synced (only maintained with `fsync`).
    synced: tokio::sync::Mutex<u64>,
    drained: Arc<Handoff>,
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.drained.close();
    }
}

/// Segments found at start, oldest first, with their events.
pub struct Leftovers {
    pub segments: Vec<PathBuf>,
    pub events: Vec<UsageEvent>,
}

impl Outbox {
    /// Opens the outbox in `dir`, returning the events left behind by a previous process
    /// and the queue the drainer takes from (batches of at most `batch` items).
    pub fn open(
        dir: &Path,
        fsync: bool,
        batch: usize,
    ) -> Result<(Self, Leftovers, Arc<Handoff>), OutboxError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| OutboxError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut numbered = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let path = entry.map_err(io_err(dir))?.path();
            if let Some(number) = segment_number(&path) {
                numbered.push((number, path));
            }
        }
        numbered.sort();
        let mut events = Vec::new();
        for (_, path) in &numbered {
            events.extend(read_segment(path).map_err(io_err(path))?);
        }
        let next = numbered.last().map_or(1, |(n, _)| n + 1);
        let segment = create_segment(dir, next)?;
        let handoff = Arc::new(Handoff::new(batch));
        let outbox = Self {
            dir: dir.to_owned(),
            fsync,
            writer: Mutex::new(Writer {
                segment,
                written: 0,
            }),
            synced: tokio::sync::Mutex::new(0),
            drained: Arc::clone(&handoff),
        };
        let leftovers = Leftovers {
            segments: numbered.into_iter().map(|(_, p)| p).collect(),
            events,
        };
        Ok((outbox, leftovers, handoff))
    }

    /// Events appended (and durable in the outbox) that the drainer has not yet taken
    /// into the database.
    pub fn backlog(&self) -> usize {
        self.drained.events()
    }

    /// Appends an event. When this returns `Ok`, the event survives a crash of the process
    /// (and, with `fsync`, of the machine).
    pub async fn append(&self, event: UsageEvent) -> Result<(), OutboxError> {
        let mut line = serde_json::to_vec(&event).expect("usage events serialise");
        line.push(b'\n');
        let sequence = {
            let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let segment = &mut writer.segment;
            if let Err(source) = (&*segment.file).write_all(&line) {
                // Cut off a partial line, so a reader never sees half an event.
                let _ = segment.file.set_len(segment.len);
                return Err(OutboxError::Io {
                    path: segment.path.clone(),
                    source,
                });
            }
            segment.len += line.len() as u64;
            writer.written += 1;
            self.drained.push(Drained::Event(event));
            let sequence = writer.written;
            if writer.segment.len >= SEGMENT_BYTES {
                self.rotate(&mut writer)?;
            }
            sequence
        };
        if self.fsync {
            self.sync_through(sequence).await?;
        }
        Ok(())
    }

    /// Waits until every event appended before this call is committed to the database.
    pub async fn flush(&self) -> Result<(), OutboxError> {
        let (tx, rx) = oneshot::channel();
        {
            let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            self.drained.push(Drained::Flush(tx));
        }
        rx.await.map_err(|_| OutboxError::Closed)
    }

    /// Starts a new segment and hands the old one to the drainer for deletion. With
    /// `fsync`, the old one is synced first: an append that wrote to it may be waiting for
    /// a sync that will now cover only its successor. Without, no sync: the kernel has the
    /// data, and a sync here would stall every request (appends wait for this lock) for as
    /// long as the disk takes to write 4 MiB.
    fn rotate(&self, writer: &mut Writer) -> Result<(), OutboxError> {
        let old = &writer.segment;
        if self.fsync {
            old.file.sync_data().map_err(|source| OutboxError::Io {
                path: old.path.clone(),
                source,
            })?;
        }
        let next = create_segment(&self.dir, old.number + 1)?;
        let old = std::mem::replace(&mut writer.segment, next);
        self.drained.push(Drained::Sealed(old.path));
        Ok(())
    }

    /// Group commit: one `fdatasync` covers every append written before it started.
    async fn sync_through(&self, sequence: u64) -> Result<(), OutboxError> {
        let mut synced = self.synced.lock().await;
        if *synced >= sequence {
            return Ok(());
        }
        // Every append up to `through` is in this file or in an older segment, and a
        // rotation syncs the old segment before starting the next.
        let (through, file, path) = {
            let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            (
                writer.written,
                Arc::clone(&writer.segment.file),
                writer.segment.path.clone(),
            )
        };
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|e| OutboxError::Io {
                path: path.clone(),
                source: io::Error::other(e),
            })?
            .map_err(|source| OutboxError::Io { path, source })?;
        *synced = through;
        Ok(())
    }
}

fn segment_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".log")?.parse().ok()
}

fn create_segment(dir: &Path, number: u64) -> Result<Segment, OutboxError> {
    let path = dir.join(format!("{number:020}.log"));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| OutboxError::Io {
            path: path.clone(),
            source,
        })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Segment {
        file: Arc::new(file),
        path,
        number,
        len,
    })
}

/// Reads the events of a segment, skipping lines that do not parse (a torn last write).
pub fn read_segment(path: &Path) -> io::Result<Vec<UsageEvent>> {
    let reader = io::BufReader::new(File::open(path)?);
    let mut events = Vec::new();
    for (number, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice(&line) {
            Ok(event) => events.push(event),
            Err(error) => tracing::warn!(
                error = %error,
                segment = %path.display(),
                line = number + 1,
                "skipping an unreadable outbox line (torn write)"
            ),
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::sample;

    #[tokio::test]
    async fn appended_events_reach_the_drainer_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, leftovers, handoff) = Outbox::open(dir.path(), true, 100).unwrap();
        assert!(leftovers.events.is_empty());
        for i in 0..3 {
            outbox.append(sample(&format!("e{i}"), i)).await.unwrap();
        }
        let batch = handoff.next_batch(Duration::ZERO).await.unwrap();
        assert_eq!(batch.len(), 3);
        for (i, item) in batch.into_iter().enumerate() {
            match item {
                Drained::Event(e) => assert_eq!(e.id, format!("e{i}")),
                other => panic!("unexpected {other:?}"),
            }
        }
        drop(outbox);
        // Nothing was drained into a database: the next start finds all three.
        let (_outbox, leftovers, _handoff) = Outbox::open(dir.path(), false, 100).unwrap();
        let ids: Vec<_> = leftovers.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["e0", "e1", "e2"]);
        assert_eq!(leftovers.segments.len(), 1);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, _, _handoff) = Outbox::open(dir.path(), false, 100).unwrap();
        outbox.append(sample("whole", 1)).await.unwrap();
        drop(outbox);
        let segment = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(b"{\"id\":\"torn\",\"org_").unwrap();
        let events = read_segment(&segment).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].id, "whole");
    }

    #[tokio::test]
    async fn full_segments_are_sealed_after_their_events() {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, _, handoff) = Outbox::open(dir.path(), false, 100).unwrap();
        let mut big = sample("big", 0);
        big.model_name = "m".repeat(SEGMENT_BYTES as usize);
        outbox.append(big).await.unwrap();
        outbox.append(sample("next", 1)).await.unwrap();
        let batch = handoff.next_batch(Duration::ZERO).await.unwrap();
        assert!(
            matches!(&batch[..], [Drained::Event(big), Drained::Sealed(_), Drained::Event(next)]
            if big.id == "big" && next.id == "next")
        );
    }
}
