//! Embeds the dashboard's charting library (uPlot, pinned in
//! dashboard/package.json and installed by scripts/install-deps.sh with
//! `npm ci`), so levee serves every asset itself.

use std::path::Path;

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboard/node_modules/uplot/dist");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for (from, to) in [
        ("uPlot.iife.min.js", "uplot.js"),
        ("uPlot.min.css", "uplot.css"),
    ] {
        let source = dist.join(from);
        println!("cargo:rerun-if-changed={}", source.display());
        if let Err(e) = std::fs::copy(&source, out.join(to)) {
            panic!(
                "{}: {e}\nthe dashboard's charting library is missing: run scripts/install-deps.sh \
                 (or `npm ci --prefix dashboard`)",
                source.display()
            );
        }
    }
}
