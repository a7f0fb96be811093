//! Property-based fuzzing of the code that reads untrusted bytes before anything else: the
//! first-packet parser and the framer. Runs in CI with every `cargo test`. It checks that no
//! input panics, that lengths are validated, and that the framer finds the same messages
//! however the stream is cut into chunks.

use pgtrickle_proxy::protocol::framer::Framer;
use pgtrickle_proxy::protocol::startup::{check_length, parse_first_packet, FirstPacket};
use proptest::prelude::*;

fn encode(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn frames_of(stream: &[u8], cuts: &[usize]) -> Result<Vec<(u8, u32, Vec<u8>)>, String> {
    let mut framer = Framer::new(1 << 30, b"Z");
    let mut out = Vec::new();
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(stream.len());
    points.sort_unstable();
    for p in points {
        framer
            .feed(&stream[start..p], |f| {
                out.push((f.tag, f.body_len, f.captured.to_vec()))
            })
            .map_err(|e| e.to_string())?;
        start = p;
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn first_packet_parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_first_packet(&body);
    }

    #[test]
    fn first_packet_lengths_are_capped(len in any::<u32>()) {
        let ok = check_length(len).is_ok();
        prop_assert_eq!(ok, (8..=10_000).contains(&len));
    }

    #[test]
    fn startup_messages_round_trip(
        params in proptest::collection::vec(("[a-z_]{1,12}", "[^\u{0}]{0,20}"), 0..6),
    ) {
        let mut body = (3u32 << 16).to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0u\0");
        for (k, v) in &params {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        match parse_first_packet(&body) {
            Ok(FirstPacket::Startup(m)) => {
                prop_assert_eq!(m.params.len(), params.len() + 1);
                let again = m.encode_for_upstream();
                prop_assert_eq!(&again[4..], &body[..]);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn framer_never_panics_on_garbage(
        stream in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let _ = frames_of(&stream, &cuts);
    }

    #[test]
    fn framer_finds_the_same_messages_however_the_stream_is_cut(
        messages in proptest::collection::vec(
            (prop_oneof![Just(b'Z'), Just(b'D'), Just(b'C'), any::<u8>()],
             proptest::collection::vec(any::<u8>(), 0..300)),
            0..20,
        ),
        cuts in proptest::collection::vec(any::<usize>(), 0..30),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (tag, body) in &messages {
            stream.extend(encode(*tag, body));
            let captured = if *tag == b'Z' { body[..body.len().min(16)].to_vec() } else { vec![] };
            expected.push((*tag, body.len() as u32, captured));
        }
        prop_assert_eq!(frames_of(&stream, &[]).unwrap(), expected.clone());
        prop_assert_eq!(frames_of(&stream, &cuts).unwrap(), expected);
    }

    #[test]
    fn framer_rejects_every_invalid_length(tag in any::<u8>(), len in 0u32..4) {
        let mut framer = Framer::new(1 << 30, b"");
        let mut header = vec![tag];
        header.extend_from_slice(&len.to_be_bytes());
        let rejected = framer.feed(&header, |_| {}).is_err();
        prop_assert!(rejected);
    }
}
