//! `poolscope DIR --screenshot FILE.png [--run]`: draw a few frames (or run to the end),
//! save the window as a PNG, and close.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Frames drawn before the picture, so that layout has settled.
const SETTLE_FRAMES: u32 = 10;

/// Give up on a run that has not finished after this long.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// The outcome of the save, once the screenshot callback has run: the window's owner
/// reads it after the window closed.
pub type Saved = Arc<Mutex<Option<Result<(), String>>>>;

pub struct Plan {
    path: PathBuf,
    pub run: bool,
    frames: u32,
    started: Instant,
    saved: Saved,
    requested: bool,
}

impl Plan {
    pub fn new(path: PathBuf, run: bool, saved: Saved) -> Self {
        Plan {
            path,
            run,
            frames: 0,
            started: Instant::now(),
            saved,
            requested: false,
        }
    }

    /// Called once per frame.
    pub fn step(&mut self, ctx: &egui::Context, running: bool) {
        self.frames += 1;
        if self.saved.lock().is_ok_and(|s| s.is_some()) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        let ready = self.frames >= SETTLE_FRAMES
            && (!running || !self.run || self.started.elapsed() > RUN_LIMIT);
        if ready && !self.requested {
            self.requested = true;
            let path = self.path.clone();
            let saved = Arc::clone(&self.saved);
            let wake = ctx.clone();
            ctx.request_screenshot(move |image| {
                let result = save_png(&path, &image);
                if let Ok(mut s) = saved.lock() {
                    *s = Some(result);
                }
                wake.request_repaint();
            });
        }
        ctx.request_repaint_after(Duration::from_millis(100));
    }
}

/// Why the screenshot cannot be saved at `path`, before any window opens: its folder
/// must exist, and `path` must not be a folder.
pub fn check_path(path: &std::path::Path) -> Result<(), String> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !folder.is_dir() {
        return Err(format!(
            "cannot save the screenshot to {}: the folder {} does not exist; create it first, or give another path",
            path.display(),
            folder.display()
        ));
    }
    if path.is_dir() {
        return Err(format!(
            "cannot save the screenshot to {}: that is a folder; give a file name such as {}",
            path.display(),
            path.join("window.png").display()
        ));
    }
    Ok(())
}

/// Write `image` as an 8-bit RGBA PNG.
pub fn save_png(path: &std::path::Path, image: &egui::ColorImage) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| {
        format!("cannot save the screenshot to {}: {e}", path.display())
    };
    let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
    let [w, h] = image.size;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| fail(&e))?;
    let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    writer.write_image_data(&bytes).map_err(|e| fail(&e))
}
