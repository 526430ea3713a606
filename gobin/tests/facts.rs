//! Prints what gobin finds in every binary of the matrix (run with `--nocapture`); asserts
//! only that every binary parses.

mod common;

use gobin::GoBinary;

#[test]
fn print_facts() {
    for case in common::matrix() {
        let bin = GoBinary::open(&case.path).unwrap_or_else(|e| panic!("{}: {e}", case.label()));
        let p = bin.pclntab_info();
        let dwarf = bin.struct_offsets_from_dwarf().unwrap_or_else(|e| panic!("{}: {e}", case.label()));
        let offs = dwarf
            .map(|o| {
                format!(
                    "g.goid={} g.atomicstatus={} g.m={} m.curg={} m.procid={} p.id={} p.status={} |g|={} |m|={} |p|={}",
                    o.g_goid.offset, o.g_atomicstatus.offset, o.g_m.offset, o.m_curg.offset,
                    o.m_procid.offset, o.p_id.offset, o.p_status.offset, o.g_size.offset,
                    o.m_size.offset, o.p_size.offset
                )
            })
            .unwrap_or_else(|| "no DWARF".into());
        let func1 = bin.function("runtime.stopTheWorld.func1").is_ok();
        let casg = bin.function("runtime.casgstatus").expect("casgstatus");
        let calls: Vec<String> = ["runtime.execute", "runtime.ready", "runtime.newproc1", "runtime.park_m"]
            .iter()
            .map(|c| {
                let n = bin
                    .function(c)
                    .ok()
                    .and_then(|f| bin.call_return_sites(&f, &casg).ok())
                    .map_or(0, |s| s.len());
                format!("{}:{n}", c.trim_start_matches("runtime."))
            })
            .collect();
        println!(
            "{:<34} {:?} at {} ({:#x}) textStart={:#x} via {:?} nfunc={} stw.func1={} casgstatus calls [{}] {}",
            case.label(),
            p.version,
            p.location,
            p.address,
            p.text_start,
            p.text_start_source,
            p.nfunc,
            func1,
            calls.join(" "),
            offs
        );
    }
}
