//! How long the app takes to build and tessellate one frame with 1,000, 10,000 and
//! 100,000 finished attempts in the timeline (headless egui context, 1280×800, 16 worker
//! slots), and how long the first frame takes, which rasterizes the glyphs the frame
//! draws. Run with `cargo bench --bench ui_frame`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use poolscope::config::PoolConfig;
use poolscope::event::{AttemptKey, AttemptRecord, Event, Outcome, RunInfo, TaskInfo};
use poolscope::gui::{PoolscopeApp, Settings};

const SLOTS: usize = 16;
const FRAMES: usize = 60;

/// A finished run of `n` attempts of 10 ms on 16 slots, one in 50 failing.
fn events(n: usize) -> Vec<Event> {
    let mut events = vec![Event::RunStarted(Arc::new(RunInfo {
        name: "bench".into(),
        run_dir: PathBuf::from("/nonexistent"),
        config: PoolConfig {
            workers: SLOTS,
            ..PoolConfig::default()
        },
        cores: 2,
        started_at: SystemTime::now(),
        tasks: (1..=n)
            .map(|seq| TaskInfo {
                seq,
                name: format!("task-{seq}"),
            })
            .collect(),
        cleanup: Default::default(),
    }))];
    for i in 0..n {
        let slot = i % SLOTS + 1;
        let start = Duration::from_millis((i / SLOTS) as u64 * 10);
        let key = AttemptKey {
            seq: i + 1,
            attempt: 1,
        };
        events.push(Event::AttemptFinished(Arc::new(AttemptRecord {
            pid: 1000 + i as u32,
            ended: start + Duration::from_millis(9),
            outcome: Outcome::Exited {
                code: i32::from(i % 50 == 7),
            },
            stderr_tail: String::new(),
            cores: vec![0],
            is_final: true,
            ..AttemptRecord::not_started(key, slot, start, String::new())
        })));
    }
    let end = Duration::from_millis((n / SLOTS) as u64 * 10 + 10);
    events.push(Event::RunFinished {
        at: end,
        interrupted: false,
        self_cpu: Duration::ZERO,
    });
    events
}

fn input(time: f64) -> egui::RawInput {
    egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1280.0, 800.0),
        )),
        time: Some(time),
        ..Default::default()
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    println!(
        "| finished attempts | first frame ms | median ms/frame | p90 ms/frame | max ms/frame |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for n in [1_000, 10_000, 100_000] {
        let ctx = egui::Context::default();
        let mut app = PoolscopeApp::new(Settings::default(), None);
        app.show_finished_run(dir, &events(n));
        // The first frame rasterizes every glyph it draws; four more warm the layout caches.
        let t = Instant::now();
        let out = ctx.run_ui(input(0.0), |ui| app.show(ui));
        let _ = ctx.tessellate(out.shapes, out.pixels_per_point);
        let first = t.elapsed().as_secs_f64() * 1000.0;
        for i in 1..5 {
            let out = ctx.run_ui(input(i as f64), |ui| app.show(ui));
            let _ = ctx.tessellate(out.shapes, out.pixels_per_point);
        }
        let mut times = Vec::with_capacity(FRAMES);
        for i in 0..FRAMES {
            let t = Instant::now();
            let out = ctx.run_ui(input(10.0 + i as f64), |ui| app.show(ui));
            let meshes = ctx.tessellate(out.shapes, out.pixels_per_point);
            std::hint::black_box(meshes);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {n} | {first:.2} | {:.2} | {:.2} | {:.2} |",
            times[FRAMES / 2],
            times[FRAMES * 9 / 10],
            times[FRAMES - 1]
        );
    }
}
