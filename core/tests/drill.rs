//! Drills: scenario parsing, simulated POCs, a scripted drill with exact figures, tampering,
//! and the renderers' escaping.

use pocnet_core::drill::{builtin, Scenario, BUILTIN};

#[test]
fn shipped_scenarios_parse() {
    for name in BUILTIN {
        let s = Scenario::parse(builtin(name).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!("{name}: {} injects, {} ms", s.injects.len(), s.duration_ms);
    }
}
