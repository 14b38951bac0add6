//! The output viewer: one attempt's stdout and stderr, live while it runs (from its
//! in-memory tail), from the saved files once it ended. Bytes that are not UTF-8 are shown
//! lossily.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::event::{AttemptKey, Stream};
use crate::record::output_path;
use crate::state::RunState;

/// The most of a saved file the viewer reads: its last bytes.
const SHOW_BYTES: u64 = 512 * 1024;

/// An open output viewer.
#[derive(Debug, Clone)]
pub struct OutputView {
    pub key: AttemptKey,
    pub stream: Stream,
    /// What the saved file said, once read (files do not change after the attempt).
    cached: Option<(Stream, String)>,
    /// Not drawn yet: egui lays a new window out on its first frame and shows it on the
    /// next, which must come without waiting for input.
    fresh: bool,
}

impl OutputView {
    pub fn new(key: AttemptKey, stream: Stream) -> Self {
        OutputView {
            key,
            stream,
            cached: None,
            fresh: true,
        }
    }

    /// Show the window; false once the user closed it.
    pub fn show(&mut self, ctx: &egui::Context, state: &RunState) -> bool {
        if std::mem::take(&mut self.fresh) {
            ctx.request_repaint();
        }
        let mut open = true;
        let title = format!(
            "Output of {} (attempt {})",
            state.task_label(self.key.seq),
            self.key.attempt
        );
        egui::Window::new(title)
            .open(&mut open)
            .default_size([720.0, 420.0])
            .show(ctx, |ui| {
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut self.stream, Stream::Stdout, "stdout");
                    ui.selectable_value(&mut self.stream, Stream::Stderr, "stderr");
                });
                let text = self.text(state);
                egui::ScrollArea::both()
                    .stick_to_bottom(true)
                    .auto_shrink([false, false])
                    .show(ui, |ui| {
                        ui.add(
                            egui::TextEdit::multiline(&mut text.as_str())
                                .code_editor()
                                .desired_width(f32::INFINITY),
                        );
                    });
            });
        open
    }

    /// The stream's text: the live tail while running, else the saved file's end.
    fn text(&mut self, state: &RunState) -> String {
        let live = state
            .slots
            .iter()
            .filter_map(|s| s.current.as_ref())
            .find(|c| c.key == self.key);
        if let Some(run) = live {
            self.cached = None;
            let tail = match self.stream {
                Stream::Stdout => &run.output.stdout,
                Stream::Stderr => &run.output.stderr,
            };
            return tail.text();
        }
        if let Some((stream, text)) = &self.cached
            && *stream == self.stream
        {
            return text.clone();
        }
        let text = match self.path(state) {
            Some(path) => read_end(&path),
            None => "(this attempt has not run)".to_string(),
        };
        self.cached = Some((self.stream, text.clone()));
        text
    }

    fn path(&self, state: &RunState) -> Option<PathBuf> {
        let run_dir = &state.info.as_ref()?.run_dir;
        Some(output_path(run_dir, self.key, self.stream))
    }
}

/// The last [`SHOW_BYTES`] of `path`, lossily decoded; a missing file means no output.
fn read_end(path: &Path) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return "(no output)".to_string();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut text = String::new();
    if len > SHOW_BYTES {
        let _ = file.seek(SeekFrom::Start(len - SHOW_BYTES));
        text.push_str(&format!(
            "[… the first {} bytes are in {}]\n",
            len - SHOW_BYTES,
            path.display()
        ));
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    text.push_str(&String::from_utf8_lossy(&bytes));
    text
}
