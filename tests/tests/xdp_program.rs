//! The XDP program alone, run by the kernel on frames we build (BPF_PROG_TEST_RUN): it counts
//! TCP segments from a known backend and passes everything through unchanged, including frames
//! it must not parse (truncated, IPv6, UDP, IPv4 fragments).
use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{HashMap, PerCpuArray},
    programs::{TestRun, TestRunOptions, Xdp},
};
use proxy_common::{BackendCounters, BackendKey, BackendSlot, SERVICE_NAME_LEN};

const BACKEND: [u8; 4] = [198, 18, 0, 2];
const BACKEND_PORT: u16 = 8080;
const XDP_PASS: u32 = 2;

/// The program loaded (maps unpinned, private to this test) with one backend registered.
fn loaded() -> anyhow::Result<Ebpf> {
    let mut ebpf = Ebpf::load(&flowproxy_tests::bpftool::bpf_object()?)?;
    let program: &mut Xdp = ebpf
        .program_mut("flowproxy_xdp")
        .context("program")?
        .try_into()?;
    program.load()?;
    let mut backends: HashMap<_, BackendKey, BackendSlot> =
        HashMap::try_from(ebpf.map_mut("BACKENDS").context("BACKENDS")?)?;
    let slot = BackendSlot {
        slot: 7,
        service: [0; SERVICE_NAME_LEN],
    };
    backends.insert(BackendKey::v4(BACKEND, BACKEND_PORT), slot, 0)?;
    Ok(ebpf)
}

fn counters(ebpf: &Ebpf) -> anyhow::Result<BackendCounters> {
    let stats: PerCpuArray<_, BackendCounters> =
        PerCpuArray::try_from(ebpf.map("BACKEND_STATS").context("BACKEND_STATS")?)?;
    Ok(proxy_common::sum(stats.get(&7, 0)?.iter()))
}

/// Runs the program on `frame`; asserts it passed the frame on byte for byte.
fn run(ebpf: &Ebpf, frame: &[u8]) -> anyhow::Result<()> {
    let program: &Xdp = ebpf
        .program("flowproxy_xdp")
        .context("program")?
        .try_into()?;
    let mut out = vec![0u8; frame.len() + 256];
    let result = program.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        repeat: 1,
        ..Default::default()
    })?;
    assert_eq!(result.return_value, XDP_PASS, "every frame must pass");
    assert_eq!(
        &out[..result.data_size_out as usize],
        frame,
        "the frame was changed"
    );
    Ok(())
}

/// Ethernet + IPv4 + TCP from the backend, with `flags` and a payload.
fn tcp4_frame(src: [u8; 4], sport: u16, flags: u8, payload: usize) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 20 + payload) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[198, 18, 0, 1]);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend(std::iter::repeat_n(0x61, payload));
    f
}

#[test]
fn a_segment_from_a_known_backend_is_counted_and_passed() -> anyhow::Result<()> {
    let ebpf = loaded()?;
    let frame = tcp4_frame(BACKEND, BACKEND_PORT, 0x18, 100);
    run(&ebpf, &frame)?;
    run(&ebpf, &tcp4_frame(BACKEND, BACKEND_PORT, 0x04, 0))?;
    let c = counters(&ebpf)?;
    assert_eq!(c.packets_in, 2);
    assert_eq!(c.bytes_in, frame.len() as u64 + 54);
    assert_eq!(c.resets, 1, "the RST is counted");
    assert_eq!(
        (c.packets_out, c.connections),
        (0, 0),
        "ingress never counts as out"
    );
    Ok(())
}

#[test]
fn frames_it_must_not_parse_pass_unchanged_and_uncounted() -> anyhow::Result<()> {
    let ebpf = loaded()?;
    let good = tcp4_frame(BACKEND, BACKEND_PORT, 0x10, 20);
    let mut ipv6 = good.clone();
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut udp = good.clone();
    udp[14 + 9] = 17;
    let mut fragment = good.clone();
    fragment[14 + 6] = 0x20; // more fragments
    let mut later_fragment = good.clone();
    later_fragment[14 + 7] = 0x10; // offset 16
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x43;
    let other_backend = tcp4_frame([198, 18, 0, 3], BACKEND_PORT, 0x10, 20);
    let other_port = tcp4_frame(BACKEND, 9999, 0x10, 20);
    let cases: [(&str, &[u8]); 10] = [
        ("truncated in the IP header", &good[..20]),
        ("truncated in the TCP header", &good[..40]),
        ("runt frame", &good[..14]),
        ("IPv6", &ipv6),
        ("UDP", &udp),
        ("first fragment", &fragment),
        ("later fragment", &later_fragment),
        ("IHL below 5", &bad_ihl),
        ("another address", &other_backend),
        ("another port", &other_port),
    ];
    for (name, frame) in cases {
        run(&ebpf, frame).with_context(|| name.to_owned())?;
        assert_eq!(
            counters(&ebpf)?,
            BackendCounters::default(),
            "{name} was counted"
        );
    }
    Ok(())
}
