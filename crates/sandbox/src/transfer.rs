//! Bringing an image to another engine: `docker save` on one end streamed into
//! `docker load` on the other, through the engines' APIs (no registry, no file).

use crate::{Docker, Error, Result};
use bytes::Bytes;
use futures_util::stream::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The longest an image copy may take: 6 hours.
const COPY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// How far an image copy is ([`copy_image`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyProgress {
    /// Bytes of the image archive sent to the target engine so far.
    pub copied_bytes: u64,
    /// The image's size as the source engine reports it (bytes, uncompressed
    /// layers): the archive is about this size, a little more.
    pub total_bytes: u64,
}

/// Copies `image` (a tag or id) from engine `from` to engine `to`: the source's
/// image archive (`GET /images/{name}/get`) is streamed into the target's load
/// (`POST /images/load`) as it comes, so nothing is held whole in memory or on
/// disk, within 6 hours. `progress` is called as the source's chunks go through
/// (no more often than the caller takes them) and once at the end. The copy is
/// checked: the target then has the image under the same id.
///
/// Errors: [`Error::NoImage`] when the source lacks it; [`Error::Copy`] when the
/// source's stream breaks, the target refuses the archive, or the ids differ;
/// engine errors.
pub async fn copy_image(from: &Docker, to: &Docker, image: &str, mut progress: impl FnMut(CopyProgress) + Send) -> Result<()> {
    let info = match from.api.inspect_image(image).await {
        Ok(i) => i,
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Err(Error::NoImage(image.to_string())),
        Err(e) => return Err(e.into()),
    };
    let total_bytes = info.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
    let source_id = info.id.unwrap_or_default();
    let copied = Arc::new(AtomicU64::new(0));
    let export_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let (tick_tx, mut tick_rx) = tokio::sync::mpsc::channel::<()>(1);
    let (count, failed) = (copied.clone(), export_error.clone());
    // import_image_stream takes plain bytes: a source error ends the stream early
    // (the target then refuses the cut archive) and is reported from here.
    let body = from
        .api
        .export_image(image)
        .take_while(move |chunk: &std::result::Result<Bytes, bollard::errors::Error>| {
            let go = match chunk {
                Ok(_) => true,
                Err(e) => {
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    false
                }
            };
            std::future::ready(go)
        })
        .filter_map(move |chunk| {
            let out = chunk.ok().inspect(|b: &Bytes| {
                count.fetch_add(b.len() as u64, Ordering::Relaxed);
                let _ = tick_tx.try_send(());
            });
            std::future::ready(out)
        });
    let opts = bollard::image::ImportImageOptions { quiet: true };
    // The target answers only after it read the whole archive: bollard's request
    // timeout (2 min until the answer's head) would cut a large image on a slow link.
    let target = to.api.clone().with_timeout(COPY_TIMEOUT);
    let mut load = target.import_image_stream(opts, body, None).boxed();
    let mut target_error: Option<String> = None;
    let mut ticks_open = true;
    loop {
        tokio::select! {
            item = load.next() => match item {
                Some(Ok(info)) => {
                    if let Some(e) = info.error.or(info.error_detail.and_then(|d| d.message)) {
                        target_error = Some(e);
                    }
                }
                Some(Err(e)) => {
                    target_error = Some(e.to_string());
                    break;
                }
                None => break,
            },
            tick = tick_rx.recv(), if ticks_open => match tick {
                Some(()) => progress(CopyProgress { copied_bytes: copied.load(Ordering::Relaxed), total_bytes }),
                None => ticks_open = false,
            },
        }
    }
    let copied_bytes = copied.load(Ordering::Relaxed);
    progress(CopyProgress { copied_bytes, total_bytes });
    if let Some(e) = export_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(Error::Copy(format!("reading {image} from {} failed after {copied_bytes} bytes: {e}", from.endpoint)));
    }
    if let Some(e) = target_error {
        return Err(Error::Copy(format!("{} refused the image {image}: {e}", to.endpoint)));
    }
    match to.api.inspect_image(image).await {
        Ok(i) if i.id.as_deref() == Some(source_id.as_str()) => Ok(()),
        Ok(i) => Err(Error::Copy(format!("{} has {image} as {} after the copy, not {source_id}", to.endpoint, i.id.unwrap_or_default()))),
        Err(e) => Err(Error::Copy(format!("{} does not have {image} after the copy: {e}", to.endpoint))),
    }
}
