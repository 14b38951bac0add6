//! `poolscope bench`: runs every worker count, writes bench.json in hyperfine's schema, and
//! its statistics agree with its own raw times.

mod common;

use common::*;

const TEN_SLEEPS: &str = "[each]\nrange = [1, 10]\ncmd = [\"sleep\", \"0.1\"]\n";

#[test]
fn bench_json_follows_hyperfines_schema() {
    let dir = task_dir(TEN_SLEEPS);
    let out = tempfile::tempdir().expect("tmp");
    let export = out.path().join("export.json");
    let md = out.path().join("table.md");
    let o = run(&[
        "bench",
        dir.path().to_str().expect("utf8"),
        "--workers",
        "1,5",
        "--runs",
        "2",
        "--warmup",
        "1",
        "--out",
        out.path().join("records").to_str().expect("utf8"),
        "--export-json",
        export.to_str().expect("utf8"),
        "--export-markdown",
        md.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(out.path().join("records/bench.json")).expect("bench.json");
    assert_eq!(std::fs::read_to_string(&export).expect("export"), text);
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let results = json["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    for (r, workers) in results.iter().zip(["1", "5"]) {
        assert_eq!(r["parameters"]["workers"], workers);
        assert!(
            r["command"]
                .as_str()
                .is_some_and(|c| c.ends_with(&format!("--workers {workers}")))
        );
        for key in ["mean", "stddev", "median", "user", "system", "min", "max"] {
            assert!(r[key].is_f64(), "{key} is a number: {r}");
        }
        let times: Vec<f64> = r["times"]
            .as_array()
            .expect("times")
            .iter()
            .map(|t| t.as_f64().expect("f64"))
            .collect();
        assert_eq!(times.len(), 2, "warm-ups are not timed");
        assert_eq!(r["exit_codes"], serde_json::json!([0, 0]));
        let mean = times.iter().sum::<f64>() / 2.0;
        assert!((r["mean"].as_f64().expect("mean") - mean).abs() < 1e-9);
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(r["min"].as_f64(), Some(min));
    }
    // Speed-up, efficiency and Karp–Flatt follow from the means.
    let settings = json["poolscope"]["settings"].as_array().expect("settings");
    let serial = results[0]["mean"].as_f64().expect("mean");
    let five = results[1]["mean"].as_f64().expect("mean");
    let speedup = settings[1]["speedup"].as_f64().expect("speedup");
    assert!((speedup - serial / five).abs() < 1e-9);
    assert!((settings[1]["efficiency"].as_f64().expect("eff") - speedup / 5.0).abs() < 1e-9);
    let kf = (1.0 / speedup - 0.2) / 0.8;
    assert!((settings[1]["karp_flatt"].as_f64().expect("kf") - kf).abs() < 1e-9);
    assert_eq!(json["poolscope"]["measured_serial"].as_f64(), Some(serial));
    // Each run has its own run directory, warm-ups included.
    for name in [
        "w1-warmup1",
        "w1-run1",
        "w1-run2",
        "w5-warmup1",
        "w5-run1",
        "w5-run2",
    ] {
        assert!(
            out.path()
                .join("records")
                .join(name)
                .join("joblog.tsv")
                .is_file(),
            "{name}"
        );
    }
    let table = std::fs::read_to_string(&md).expect("markdown");
    assert!(table.starts_with("| workers | mean ± σ [s] |"), "{table}");
    assert!(stdout(&o).contains("Serial: measured"));
}

#[test]
fn bad_worker_lists_are_refused() {
    let dir = task_dir(TEN_SLEEPS);
    let o = run(&[
        "bench",
        dir.path().to_str().expect("utf8"),
        "--workers",
        "0,2",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not a worker count"),
        "{}",
        stderr(&o)
    );
}
