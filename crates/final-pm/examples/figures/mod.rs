//! The benchmark drivers' one output format. Each figure is a JSON line on
//! stdout, which `bench/run` collects and `bench_table` turns into the
//! summary, and a line for people on stderr. Shared by the drivers with
//! `mod figures;` so every driver reports the same fields the same way.

/// Median, min and max of `samples` (not empty).
fn stats(samples: &[f64]) -> (f64, f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
    )
}

/// One figure: `samples` of `scenario` (its id in `bench/run`'s table)
/// measured on `subject` (`final-pm`, `bare`, `pm2`, `finalpm`).
pub(crate) fn report(scenario: &str, subject: &str, what: &str, unit: &str, samples: &[f64]) {
    let (median, min, max) = stats(samples);
    println!(
        "{}",
        serde_json::json!({
            "scenario": scenario, "subject": subject, "bench": what, "unit": unit,
            "median": round3(median), "min": round3(min), "max": round3(max),
            "runs": samples.len(),
        })
    );
    eprintln!(
        "{scenario:<16} {subject:<9} {what:<60} median {median:>10.3} {unit:<4} (min {min:.3}, max {max:.3}, {} runs)",
        samples.len()
    );
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
